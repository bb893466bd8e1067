"""Streaming-DSP benchmark: real-time factor of the STFT engines (issue 3).

Measures, for each shipped STFT configuration, analysis + synthesis with a per-bin gain:
  - numpy per-hop streaming (``StreamingStft``): median time per hop, real-time factor;
  - torch batch (``TorchStft``): median time per second of audio (batch 1 and batch 8).
Real-time factor = processing time / audio duration (below 1 is faster than real time).
Prints its conditions and results; copy them into benchmarks/RESULTS.md with the date.

    .venv/bin/python benchmarks/bench_stft.py [--seconds 10] [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from hearmask.model.stft_config import SHIPPED_STFT_CONFIGS
from hearmask.model.stft_stream import StreamingStft
from hearmask.model.stft_torch import TorchStft


def bench_streaming(config, seconds: float, repeats: int) -> tuple[float, float]:
    """Return (median µs per hop, real-time factor) of analyze+gain+synthesize."""
    rng = np.random.default_rng(0)
    hops = rng.standard_normal((int(seconds * config.frames_per_second), config.hop_samples))
    gain = rng.uniform(0.5, 1.5, config.num_bins)
    per_hop_us = []
    for _ in range(repeats):
        engine = StreamingStft(config)
        start = time.perf_counter()
        for hop in hops:
            engine.synthesize_hop(engine.analyze_hop(hop) * gain)
        per_hop_us.append((time.perf_counter() - start) / len(hops) * 1e6)
    median_us = statistics.median(per_hop_us)
    return median_us, median_us * 1e-6 / (config.hop_samples / config.sample_rate_hz)


def bench_torch(config, seconds: float, repeats: int, batch: int) -> float:
    """Return the real-time factor of batched stft+istft (per second of audio, all items)."""
    engine = TorchStft(config)
    signal = torch.randn(batch, int(seconds * config.sample_rate_hz))
    gain = torch.rand(config.num_bins) + 0.5
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            engine.istft(engine.stft(signal) * gain, signal.shape[-1])
            times.append(time.perf_counter() - start)
    return statistics.median(times) / (seconds * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"# bench_stft  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  "
          f"python {platform.python_version()}  numpy {np.__version__}  torch {torch.__version__}  "
          f"torch threads {torch.get_num_threads()}  audio {args.seconds:g} s  repeats {args.repeats} (median)")
    print("| config | latency ms | hop ms | numpy stream µs/hop | numpy stream RTF | torch batch1 RTF | torch batch8 RTF | stream/torch1 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, config in SHIPPED_STFT_CONFIGS.items():
        per_hop_us, stream_rtf = bench_streaming(config, args.seconds, args.repeats)
        torch1 = bench_torch(config, args.seconds, args.repeats, 1)
        torch8 = bench_torch(config, args.seconds, args.repeats, 8)
        print(f"| {name} | {config.algorithmic_latency_ms:g} | {config.hop_ms:g} | {per_hop_us:.1f} | "
              f"{stream_rtf:.4f} | {torch1:.5f} | {torch8:.5f} | {stream_rtf / torch1:.0f}x |")


if __name__ == "__main__":
    main()
