"""Cost of the differentiable auditory model per second of audio (forward + backward).

Usage: python benchmarks/bench_auditory.py [--batch 8] [--seconds 2] [--channels 32]
       [--threads N] [--repeats 20] [--hearing-loss] [--filterbank gammatone|drnl]

Prints the conditions, then the median (and quartiles) over ``--repeats`` timed runs after
``--warmup`` untimed ones, in milliseconds per second of audio (batch x seconds), for the
whole model and for its stages, so the dominant stage is visible. The backward pass
starts from the mean of the output, as a loss would.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from hearmask.model.auditory import FILTERBANKS, AuditoryModel, AuditoryModelConfig


def _time_ms(run: Callable[[], None], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        run()
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times_ms.append(1000.0 * (time.perf_counter() - start))
    return times_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each signal")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--hop", type=int, default=16, help="output_hop_samples")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--hearing-loss", action="store_true", help="time the HI variant (40 dB flat)")
    parser.add_argument("--filterbank", choices=FILTERBANKS, default="gammatone", help="auditory front end")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    config = AuditoryModelConfig(
        num_channels=args.channels, output_hop_samples=args.hop, filterbank=args.filterbank
    )
    model = AuditoryModel(config)
    num_samples = int(round(args.seconds * config.sample_rate_hz))
    audio_seconds = args.batch * num_samples / config.sample_rate_hz
    generator = torch.Generator().manual_seed(0)
    signal = (0.03 * torch.randn(args.batch, num_samples, generator=generator)).requires_grad_()
    loss_db = torch.full((args.batch, args.channels), 40.0) if args.hearing_loss else None

    def full_forward_backward() -> None:
        signal.grad = None
        model(signal, loss_db).mean().backward()

    def full_forward() -> None:
        with torch.no_grad():
            model(signal, loss_db)

    def filterbank_forward_backward() -> None:
        signal.grad = None
        model.filterbank(signal).mean().backward()

    basilar_membrane = model.filterbank(signal.detach()).requires_grad_()

    def after_filterbank_forward_backward() -> None:
        # Rectification, compression (gammatone only: the DRNL compresses inside its
        # filterbank), IHC low-pass + pooling, adaptation.
        basilar_membrane.grad = None
        if model.drnl is not None:
            rectified = basilar_membrane.clamp_min(0.0)
        else:
            rectified = model._compress(basilar_membrane, model.cochlear_gain_db.view(1, -1, 1))
        envelope = model._lowpass_and_pool(rectified)
        torch.log1p(envelope.clamp_min(0.0) / config.eps).mean().backward()

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads {torch.get_num_threads()}, {args.filterbank}, batch {args.batch}, channels {args.channels}, "
        f"{args.seconds:g} s per signal ({audio_seconds:g} s of audio per call), "
        f"filter {config.filter_length_samples} taps, hop {args.hop}, "
        f"{'HI 40 dB flat' if args.hearing_loss else 'NH'}, float32, CPU, "
        f"median of {args.repeats} after {args.warmup} warm-up"
    )
    cases = [
        ("forward+backward (whole model)", full_forward_backward),
        ("forward only (whole model, no_grad)", full_forward),
        ("  stage: filterbank fwd+bwd", filterbank_forward_backward),
        ("  stage: after filterbank fwd+bwd", after_filterbank_forward_backward),
    ]
    for name, run in cases:
        times_ms = sorted(t / audio_seconds for t in _time_ms(run, args.warmup, args.repeats))
        quartiles = statistics.quantiles(times_ms, n=4)
        print(
            f"{name:38s} {statistics.median(times_ms):7.2f} ms per s of audio "
            f"(IQR {quartiles[0]:.2f}-{quartiles[2]:.2f})"
        )


if __name__ == "__main__":
    main()
