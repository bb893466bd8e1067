"""Cortex-M firmware in QEMU (issue 7): flash/RAM and QEMU instruction counts per hop, per board and kernel path.

For each QEMU board (mps2-an385 Cortex-M3, mps2-an505 Cortex-M33, mps3-an547 Cortex-M55) and
each kernel path the core offers (plain C everywhere; the DSP extension, default on M33/M55;
Helium/MVE, opt-in on M55 with -mfloat-abi=hard), the firmware is built around the generated
C of one model and run in QEMU (``-icount shift=0``):
  - text/data/bss from arm-none-eabi-size;
  - a bit-exactness check: ``--hops`` hops of random int8 features with state feedback, every
    output byte against the TFLM host interpreter;
  - BENCH: ``--runs`` invokes, QEMU instruction counts per hop (median/min/max);
  - an ESTIMATE of time per hop on real silicon: instructions x CPI / clock, for a stated CPI
    range (QEMU does not model pipelines, caches or wait states; see CPI_RANGE) at the clock
    of a hardware board with that core (targets/boards), as a share of the model's hop.

Counts are QEMU instruction counts, never cycles; the time column is an estimate.

    .venv/bin/python benchmarks/bench_cortex_m.py [--model QUANTIZED_DIR] [--hops 50] [--runs 50]

Without --model it builds the tiny test model (E = H = 16, two training steps, calibrated, int8:
the shipped network's op set and structure, not its size) in a temporary folder (~40 s).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

# (QEMU board, kernel path, extra cflags). The DSP path is the default where __ARM_FEATURE_DSP.
VARIANTS = (
    ("cortex-m3", "plain C", ()),
    ("cortex-m33", "plain C", ("-DHM_KERNELS_PLAIN_C",)),
    ("cortex-m33", "DSP", ()),
    ("cortex-m55", "plain C", ("-DHM_KERNELS_PLAIN_C",)),
    ("cortex-m55", "DSP", ()),
    ("cortex-m55", "MVE", ("-mfloat-abi=hard", "-DHM_KERNELS_USE_MVE")),
)
# Hardware boards whose clocks the estimate uses (targets/boards descriptors).
ESTIMATE_BOARDS = {"cortex-m3": "cortex-m3-qemu", "cortex-m33": "cortex-m33-nrf5340", "cortex-m55": "cortex-m55-alif-e7"}
# ASSUMED cycles per instruction (low, high). Scalar in-order cores run most instructions in one
# cycle; loads with flash wait states, multi-cycle multiplies/branches raise that. On the M55
# a 128-bit MVE instruction takes two beats on its 64-bit datapath (overlapped when interleaved).
CPI_RANGE = {("cortex-m3", "plain C"): (1.2, 1.8), ("cortex-m33", "plain C"): (1.1, 1.6),
             ("cortex-m33", "DSP"): (1.1, 1.6), ("cortex-m55", "plain C"): (1.0, 1.5),
             ("cortex-m55", "DSP"): (1.0, 1.5), ("cortex-m55", "MVE"): (1.2, 2.0)}


def tiny_model(work: Path) -> Path:
    """The session fixture's tiny model (tests/conftest.py), built here."""
    import soundfile

    from hearmask.model.train_config import train_config_from_dict
    from hearmask.model.trainer import Trainer
    from hearmask.quantize.qat_training import QatConfig
    from hearmask.quantize.quantize_model import quantize_model

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for folder in ("clean", "noise"):
        (work / "corpus" / folder).mkdir(parents=True)
    for i in range(4):
        voiced = sum(np.sin(2 * np.pi * (100 + 30 * i) * k * t) / k for k in range(1, 12))
        envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t + i))
        soundfile.write(work / "corpus" / "clean" / f"s{i}.wav", (0.1 * voiced * envelope).astype(np.float32), 16000)
        soundfile.write(work / "corpus" / "noise" / f"n{i}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    config = train_config_from_dict({
        "data": {"clean_dir": str(work / "corpus" / "clean"), "noise_dir": str(work / "corpus" / "noise"),
                 "segment_seconds": 0.5},
        "model": {"hidden_size": 16, "encoder_size": 16},
        "train": {"steps": 2, "steps_per_epoch": 2, "batch_size": 2, "validation_batches": 1},
    })
    Trainer(config, work / "run", progress=False).run()
    quantize_model(work / "run", work / "int8", QatConfig(steps=0, calibration_batches=1, batch_size=1,
                                                         segment_seconds=0.1), progress=False)
    return work / "int8"


def build_variant(board: str, model_c_dir: Path, out_dir: Path, model_sha256: str, cflags: tuple[str, ...]):
    """build_firmware with the variant's flags (a -mfloat-abi among them replaces the base soft-float one)."""
    from hearmask.targets.firmware_build import build_firmware

    return build_firmware(board, model_c_dir, out_dir, model_sha256=model_sha256, extra_cflags=cflags)


def measure(board: str, elf: Path, golden, hops: int, runs: int) -> dict:
    from hearmask.firmware_bridge.client import DeviceClient
    from hearmask.targets.qemu import QemuMachine

    rng = np.random.default_rng(1)
    names = [entry.name for entry in golden.inputs]
    shapes = {entry.name: entry.tensor.shape for entry in golden.inputs}
    mismatched = 0
    with QemuMachine(board, elf) as qemu, DeviceClient(qemu.url, timeout_s=5.0) as device:
        state = device_state = np.zeros(shapes["state"], np.int8)
        audiogram = rng.integers(-128, 128, shapes["audiogram"], dtype=np.int8)
        for _ in range(hops):
            features = rng.integers(-128, 128, shapes["features"], dtype=np.int8)
            inputs = {"features": features, "audiogram": audiogram}
            expected = golden.invoke_codes({**inputs, "state": state})
            reply = device.infer({**inputs, "state": device_state})
            mismatched += sum(int(np.count_nonzero(reply.outputs[n].reshape(v.shape) != v)) for n, v in expected.items())
            state, device_state = expected["new_state"], reply.outputs["new_state"].reshape(shapes["state"])
        bench = device.bench(runs, 5)
    assert set(names) == {"features", "audiogram", "state"}
    return {"median": bench.median, "min": bench.min, "max": bench.max, "unit": bench.unit.name.lower(),
            "mismatched_values": mismatched}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a hearmask quantize folder (default: the tiny test model)")
    parser.add_argument("--hops", type=int, default=50, help="hops of the bit-exactness check per variant")
    parser.add_argument("--runs", type=int, default=50, help="BENCH invokes per variant")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from hearmask.quantize.runtimes import TflmRuntime
    from hearmask.targets.codegen import generate_c_model
    from hearmask.targets.descriptors import load_target
    from hearmask.targets.firmware_build import GCC
    from hearmask.targets.qemu import QEMU_BINARY

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        started = time.perf_counter()
        model_dir = args.model or tiny_model(work)
        manifest = json.loads((model_dir / "manifest.json").read_text())
        network = manifest["networks"][0]
        model_bytes = (model_dir / network["files"]["int8_tflite"]).read_bytes()
        hop_us = 1e6 * manifest["hop_samples"] / manifest["sample_rate_hz"]
        generated = generate_c_model(model_bytes, work / "model_c")
        golden = TflmRuntime(model_bytes)
        gcc_version = subprocess.run([GCC, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        qemu_version = subprocess.run([QEMU_BINARY, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        print("Conditions:")
        print(f"  model: {model_dir if args.model else 'tiny test model (E = H = 16)'}: {network['parameters']} parameters, "
              f"{network['macs_per_hop']} MAC/hop, ops {network['ops']}, hop {hop_us:.0f} us")
        print(f"  generated C: const {generated.const_bytes} B, static arena {generated.arena_bytes} B")
        print(f"  compiler: {gcc_version}; -O2 -mthumb, soft-float ABI except MVE (hard)")
        print(f"  emulator: {qemu_version}, -icount shift=0 (counts are QEMU instructions, not cycles)")
        print(f"  host: {platform.machine()} {platform.python_version()}; bit-exact check {args.hops} hops of random "
              f"int8 features with state feedback vs the TFLM host interpreter; BENCH {args.runs} runs")
        print()
        rows = []
        for board, path, cflags in VARIANTS:
            image = build_variant(board, work / "model_c", work / "fw" / f"{board}-{path.replace(' ', '_')}",
                                  generated.model_sha256, cflags)
            counts = measure(board, image.elf_path, golden, args.hops, args.runs)
            target = load_target(ESTIMATE_BOARDS[board])
            cpi_low, cpi_high = CPI_RANGE[(board, path)]
            estimate_us = [counts["median"] * cpi / target.clock_hz * 1e6 for cpi in (cpi_low, cpi_high)]
            rows.append({"board": image.board.machine, "cpu": board, "path": path, "text": image.text_bytes,
                         "data": image.data_bytes, "bss": image.bss_bytes, **counts,
                         "estimate_board": target.name, "estimate_clock_hz": target.clock_hz,
                         "cpi_range": [cpi_low, cpi_high], "estimate_us": estimate_us,
                         "estimate_hop_fraction": [us / hop_us for us in estimate_us]})
        print("| board | kernels | text B | data B | bss B | QEMU instr./hop median (min-max) | bit-exact | "
              "ESTIMATE us/hop (CPI range @ clock of board) | ESTIMATE % of hop |")
        print("|---|---|---:|---:|---:|---:|---|---|---:|")
        for row in rows:
            print(f"| {row['board']} ({row['cpu']}) | {row['path']} | {row['text']} | {row['data']} | {row['bss']} | "
                  f"{row['median']} ({row['min']}-{row['max']}) | "
                  f"{'yes' if row['mismatched_values'] == 0 else 'NO: ' + str(row['mismatched_values']) + ' values'} | "
                  f"{row['estimate_us'][0]:.0f}-{row['estimate_us'][1]:.0f} (CPI {row['cpi_range'][0]}-"
                  f"{row['cpi_range'][1]} @ {row['estimate_clock_hz'] / 1e6:.0f} MHz, {row['estimate_board']}) | "
                  f"{100 * row['estimate_hop_fraction'][0]:.1f}-{100 * row['estimate_hop_fraction'][1]:.1f} |")
        by_key = {(row["cpu"], row["path"]): row["median"] for row in rows}
        print()
        print(f"Ratios of QEMU instruction counts: M55 MVE / DSP = {by_key[('cortex-m55', 'MVE')] / by_key[('cortex-m55', 'DSP')]:.3f}, "
              f"M55 MVE / plain C = {by_key[('cortex-m55', 'MVE')] / by_key[('cortex-m55', 'plain C')]:.3f}, "
              f"M55 DSP / plain C = {by_key[('cortex-m55', 'DSP')] / by_key[('cortex-m55', 'plain C')]:.3f}, "
              f"M33 DSP / plain C = {by_key[('cortex-m33', 'DSP')] / by_key[('cortex-m33', 'plain C')]:.3f}")
        m4f = load_target("cortex-m4f-nrf52840")
        low, high = (by_key[("cortex-m33", "DSP")] * cpi / m4f.clock_hz * 1e6 for cpi in CPI_RANGE[("cortex-m33", "DSP")])
        print(f"ESTIMATE for a Cortex-M4F at {m4f.clock_hz / 1e6:.0f} MHz ({m4f.name}; QEMU has no M4 board, so the "
              f"Armv8-M M33 DSP build's count stands in for the Armv7E-M DSP code): {low:.0f}-{high:.0f} us per hop, "
              f"{100 * low / hop_us:.0f}-{100 * high / hop_us:.0f} % of the {hop_us:.0f} us hop.")
        print("Instruction counts are not cycle counts: an MVE instruction does up to 16 int8 lanes and takes more "
              "than one cycle, so the MVE ratio overstates its speed-up in time (see the CPI range).")
        print(f"Wall time {time.perf_counter() - started:.0f} s.")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["mismatched_values"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
