"""int8 model benchmark: size, TFLM arena, MACs per hop and per-hop latency, next to the float model (issue 5).

For the models written by ``hearmask quantize`` (``MODEL_DIR`` with ``manifest.json``),
or, without ``MODEL_DIR``, a random default-size network calibrated on synthetic
features (same graph, same sizes; its numbers are labelled ``random weights``):

- model bytes, MACs per hop (analytic, from the manifest), TFLM arena (smallest that
  allocates and invokes, and the allocator's reported use, host interpreter);
- per-hop latency of one invoke (inputs set, invoke, outputs read; the state fed back),
  batch 1, one thread: LiteRT default kernels (XNNPACK), LiteRT reference kernels and
  the TFLM host interpreter, for the int8 and the float ``.tflite``. ``repeats`` windows
  of ``hops`` invokes after a warm-up; median µs over all hops, spread of the window
  medians, real-time factor = latency / hop duration.
Prints its conditions and results; copy them into benchmarks/RESULTS.md with the date.

    .venv/bin/python benchmarks/bench_int8.py [MODEL_DIR] [--hops 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def time_invokes(runtime, hops: int, repeats: int) -> tuple[float, float, float]:
    """Return (median µs/hop over all hops, min and max of the window medians); state fed back."""
    rng = np.random.default_rng(0)
    dtypes = {entry.name: entry.tensor for entry in runtime.inputs}

    def draw(name):
        tensor = dtypes[name]
        if tensor.dtype == "int8":
            return rng.integers(-60, 60, tensor.shape).astype(np.int8)
        return (0.5 * rng.standard_normal(tensor.shape)).astype(np.float32)

    features = [draw("features") for _ in range(64)]
    inputs = {"audiogram": draw("audiogram"), "state": np.zeros(dtypes["state"].shape, _numpy_type(dtypes["state"]))}
    for hop in range(min(hops, 200)):  # warm-up
        inputs["features"] = features[hop % 64]
        inputs["state"] = runtime.invoke_unchecked(inputs)["new_state"]
    all_us: list[float] = []
    window_medians: list[float] = []
    for _ in range(repeats):
        window = []
        for hop in range(hops):
            inputs["features"] = features[hop % 64]
            start = time.perf_counter()
            inputs["state"] = runtime.invoke_unchecked(inputs)["new_state"]
            window.append((time.perf_counter() - start) * 1e6)
        all_us.extend(window)
        window_medians.append(statistics.median(window))
    return statistics.median(all_us), min(window_medians), max(window_medians)


def _numpy_type(tensor):
    return np.int8 if tensor.dtype == "int8" else np.float32


def random_model_dir(directory: Path) -> Path:
    """Export a random default-size joint network, calibrated on synthetic features, to ``directory``."""
    import torch
    from brevitas.graph.calibrate import calibration_mode

    from hearmask.model.stft_config import shipped_stft_config
    from hearmask.model.system import HearingAidSystem, build_masknet_configs
    from hearmask.quantize.calibrate import build_qat_system
    from hearmask.quantize.quantize_model import export_model_files

    stft = shipped_stft_config("default")
    torch.manual_seed(0)
    float_system = HearingAidSystem("joint", stft, build_masknet_configs("joint", stft, "default", {})).eval()
    qat_system = build_qat_system(float_system)
    network = qat_system.networks[0]
    features = torch.tanh(torch.cumsum(0.1 * torch.randn(4, 200, network.config.num_features), dim=1))
    with torch.no_grad(), calibration_mode(qat_system):
        network(features, torch.rand(4, network.config.audiogram_size))
    export_model_files(qat_system, float_system, directory, {"source_checkpoint": {"path": "random weights"}})
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="output of hearmask quantize (default: random weights)")
    parser.add_argument("--hops", type=int, default=2000, help="invokes per timed window")
    parser.add_argument("--repeats", type=int, default=7, help="timed windows (median reported)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import ai_edge_litert

    from hearmask.quantize.manifest import read_manifest
    from hearmask.quantize.runtimes import LiteRtRuntime, TflmRuntime

    with tempfile.TemporaryDirectory() as temporary:
        model_dir = args.model_dir or random_model_dir(Path(temporary))
        manifest = read_manifest(model_dir)
        load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
        print(f"# bench_int8  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  "
              f"{os.cpu_count()} CPUs, load average {load[0]:.1f}  python {platform.python_version()}  "
              f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}  tflite-micro host interpreter  "
              f"batch 1, 1 thread, {args.repeats} windows x {args.hops} hops, state fed back")
        print(f"# model: {manifest['source_checkpoint']['path']}  variant {manifest['variant']}  "
              f"hop {manifest['hop_samples']} samples = {1000 / manifest['frames_per_second']:g} ms")
        hop_us = 1e6 / manifest["frames_per_second"]
        for entry in manifest["networks"]:
            print(f"\n## network {entry['role']}: {entry['parameters']:,} parameters, {entry['macs_per_hop']:,} MAC/hop "
                  f"({entry['macs_per_second'] / 1e6:.2f} M MAC/s), ops {', '.join(entry['op_resolver'])}")
            print(f"{'model':<7} {'runtime':<11} {'bytes':>8} {'arena B (used)':>16} {'µs/hop':>8} "
                  f"{'window medians':>16} {'RTF':>7}")
            for kind in ("int8", "float"):
                data = (model_dir / entry["files"][f"{kind}_tflite"]).read_bytes()
                arena = "-"
                if kind == "int8":
                    arena = f"{entry['tflm_arena_bytes']:,} ({entry['tflm_arena_used_bytes']:,})"
                runtimes = [LiteRtRuntime(data), LiteRtRuntime(data, reference_kernels=True), TflmRuntime(data)]
                for runtime in runtimes:
                    median_us, low_us, high_us = time_invokes(runtime, args.hops, args.repeats)
                    print(f"{kind:<7} {runtime.name:<11} {len(data):>8,} {arena:>16} {median_us:>8.1f} "
                          f"{low_us:>7.1f}–{high_us:<8.1f} {median_us / hop_us:>7.4f}")


if __name__ == "__main__":
    main()
