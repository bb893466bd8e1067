"""Streaming enhancement benchmark: real-time factor of the step-form path (issue 4).

Times ``StreamingEnhancer.process_hop`` (numpy STFT + numpy features + torch step of the
mask network + gains + numpy synthesis) per 4 ms hop for each task variant at the default
size, and training throughput of the full loss (STFT, network, auditory model, backward)
in seconds of audio per second. Prints conditions and results; record them in
benchmarks/RESULTS.md with the date.

    .venv/bin/python benchmarks/bench_enhance.py [--seconds 5] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from hearmask.model.auditory import AuditoryModel
from hearmask.model.losses import MultiTaskLoss
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.streaming import StreamingEnhancer
from hearmask.model.system import VARIANTS, HearingAidSystem, build_masknet_configs
from hearmask.profiles.standard import standard_audiogram


def build(variant: str) -> HearingAidSystem:
    torch.manual_seed(0)
    config = shipped_stft_config("default")
    return HearingAidSystem(variant, config, build_masknet_configs(variant, config, "default", {})).eval()


def bench_streaming(system: HearingAidSystem, seconds: float, repeats: int) -> float:
    """Median µs per hop over ``repeats`` passes of ``seconds`` of audio."""
    hop = system.stft_config.hop_samples
    hops = np.random.default_rng(0).standard_normal((int(seconds * 16000 / hop), hop)) * 0.05
    window_medians = []
    for _ in range(repeats):
        enhancer = StreamingEnhancer(system, standard_audiogram("N3"), 1.0, 1.0)
        times = []
        for samples in hops:
            start = time.perf_counter()
            enhancer.process_hop(samples)
            times.append(time.perf_counter() - start)
        window_medians.append(statistics.median(times) * 1e6)
    return statistics.median(window_medians)


def bench_training(system: HearingAidSystem, repeats: int, batch: int = 8, seconds: float = 2.0) -> float:
    """Seconds of audio per second for forward + backward of the full loss."""
    system.train()
    loss = MultiTaskLoss(AuditoryModel(), system.variant)
    noisy = torch.randn(batch, int(seconds * 16000)) * 0.02
    clean, audiogram, channel_loss = noisy * 0.5, torch.rand(batch, 8) * 0.6, torch.rand(batch, 32) * 60
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss(system, noisy, clean, audiogram, channel_loss).total.backward()
        times.append(time.perf_counter() - start)
    system.eval()
    return batch * seconds / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# bench_enhance  {time.strftime('%Y-%m-%d')}  {platform.machine()}  python {platform.python_version()}  "
          f"torch {torch.__version__}  threads {args.threads}  audio {args.seconds:g} s x {args.repeats} (median)")
    print("| variant | parameters | M MAC/s | stream µs/hop | stream RTF | train s audio/s (batch 8 x 2 s) |")
    print("|---|---|---|---|---|---|")
    for variant in VARIANTS:
        system = build(variant)
        per_hop_us = bench_streaming(system, args.seconds, args.repeats)
        rtf = per_hop_us * 1e-6 / (system.stft_config.hop_samples / 16000)
        throughput = bench_training(system, args.repeats)
        print(f"| {variant} | {system.count_parameters():,} | {system.macs_per_second() / 1e6:.2f} | "
              f"{per_hop_us:.0f} | {rtf:.3f} | {throughput:.1f} |")


if __name__ == "__main__":
    main()
