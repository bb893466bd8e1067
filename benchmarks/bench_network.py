"""Mask network benchmark: size, compute and CPU latency of the step form (issue 4).

For each named size (``MASKNET_SIZES``) prints parameters, MAC per frame and per second
of audio (analytic count, cross-checked in tests/model/test_network.py), and:
  - step latency in torch on CPU, batch 1: ``repeats`` windows of ``steps`` hops after a
    warm-up; the median µs/step over all hops, and the spread of the window medians;
    real-time factor = step time / hop duration (4 ms at 16 kHz, hop 64);
  - training throughput of the sequence form (forward + backward, batch 16 x 4 s):
    seconds of audio per second, for the primitive-op loop and the fused GRU kernel.
Prints its conditions and results; copy them into benchmarks/RESULTS.md with the date.

    .venv/bin/python benchmarks/bench_network.py [--steps 1000] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from hearmask.model.network import MASKNET_SIZES, MaskNet
from hearmask.model.stft_config import StftConfig


def bench_step(net: MaskNet, steps: int, repeats: int) -> tuple[float, float, float]:
    """Return (median µs/step over all steps, min and max of the per-window medians)."""
    config = net.config
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(steps, 1, config.num_features, generator=generator)
    audiogram = torch.rand(1, config.audiogram_size, generator=generator)
    all_steps_us: list[float] = []
    window_medians_us: list[float] = []
    with torch.inference_mode():
        state = net.initial_state(1)
        for frame in range(min(steps, 200)):  # warm-up
            _, _, state = net.step(features[frame], audiogram, state)
        for _ in range(repeats):
            window_us = []
            for frame in range(steps):
                start = time.perf_counter()
                _, _, state = net.step(features[frame], audiogram, state)
                window_us.append((time.perf_counter() - start) * 1e6)
            all_steps_us.extend(window_us)
            window_medians_us.append(statistics.median(window_us))
    return statistics.median(all_steps_us), min(window_medians_us), max(window_medians_us)


def bench_training(net: MaskNet, fused: bool, repeats: int, batch: int = 16, seconds: float = 4.0) -> float:
    """Return seconds of audio per second of forward + backward through the sequence form."""
    frames = int(seconds * StftConfig().frames_per_second)
    features = torch.randn(batch, frames, net.config.num_features)
    audiogram = torch.rand(batch, net.config.audiogram_size)
    net.train()
    times = []
    for _ in range(repeats):
        net.zero_grad()
        start = time.perf_counter()
        nr_db, hlc_db = net(features, audiogram, fused_recurrence=fused)
        (nr_db.mean() + hlc_db.mean()).backward()
        times.append(time.perf_counter() - start)
    net.eval()
    return batch * seconds / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="hops per timed window")
    parser.add_argument("--repeats", type=int, default=7, help="timed windows (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 = like a device)")
    parser.add_argument("--training-repeats", type=int, default=3, help="0 skips the training throughput")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stft = StftConfig()
    hop_us = stft.hop_ms * 1000.0
    print(f"# bench_network  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  "
          f"python {platform.python_version()}  torch {torch.__version__} (CPU)  torch threads "
          f"{torch.get_num_threads()}  step: batch 1, float32, inference_mode, {args.repeats} windows x "
          f"{args.steps} steps, median  hop {stft.hop_ms:g} ms ({stft.frames_per_second:g} frames/s)")
    print("| size | parameters | MAC/frame | M MAC/s | step µs (median) | window medians µs | step RTF | "
          "train s/s primitive | train s/s fused |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, config in MASKNET_SIZES.items():
        torch.manual_seed(0)
        net = MaskNet(config).eval()
        median_us, fastest_us, slowest_us = bench_step(net, args.steps, args.repeats)
        if args.training_repeats > 0:
            primitive = f"{bench_training(net, False, args.training_repeats):.0f}"
            fused = f"{bench_training(net, True, args.training_repeats):.0f}"
        else:
            primitive = fused = "-"
        print(f"| {name} | {net.count_parameters():,} | {net.macs_per_frame():,} | "
              f"{net.macs_per_second(stft.frames_per_second) / 1e6:.2f} | {median_us:.1f} | "
              f"{fastest_us:.1f}-{slowest_us:.1f} | {median_us / hop_us:.4f} | {primitive} | {fused} |")


if __name__ == "__main__":
    main()
