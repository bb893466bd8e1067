"""``hearmask profile --port qemu://BOARD --bundle DIR``: the generated-C firmware in QEMU against the
TFLM host interpreter, bit for bit over whole utterances with state feedback; BENCH and per-op QEMU
instruction counts; faults (garbage, oversized frames, a board reset mid-run, an interrupted run
resumed); no QEMU left behind. The tiny model for the fault cases; the shipped default model for the
acceptance check (1000 hops with state feedback on every board, about 25 ms per hop over QEMU's UART)."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.framing import FrameDecoder, cobs_encode
from hearmask.firmware_bridge.profile import ProfileConfig, ProfileInterrupted, profile_device
from hearmask.targets.bundle_cortex_m import BUNDLE_FILE, export_cortex_m_bundle
from hearmask.targets.firmware_build import toolchain_available
from hearmask.targets.qemu import QemuMachine, qemu_available

pytestmark = pytest.mark.skipif(not (toolchain_available() and qemu_available()),
                                reason="arm-none-eabi-gcc or qemu-system-arm is not installed")
FAST = ProfileConfig(utterances=1, hops=100, bench_runs=20, bench_warmup=2)


@pytest.fixture(scope="module")
def m55_bundle(quantized_dir, tmp_path_factory):
    return export_cortex_m_bundle(quantized_dir, "cortex-m55-qemu", tmp_path_factory.mktemp("bundle") / "m55")


def _qemu_children() -> list[int]:
    """QEMU processes whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and comm.startswith("qemu-system") and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _infer_records(report_dir: Path) -> int:
    path = report_dir / "records.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"record": "infer"' in line)


def _when_records_reach(report_dir: Path, count: int, action) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + 60
        while _infer_records(report_dir) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_profile_on_emulated_m55_is_bit_exact_with_tflm(m55_bundle, quantized_dir, tmp_path):
    report = profile_device("qemu://cortex-m55", m55_bundle, tmp_path / "report", FAST, progress=False)
    device, validation = report["device"], report["validation"]
    assert device["kind"] == "emulated" and "mps3-an547" in device["name"]
    assert device["url"].endswith(json.loads((m55_bundle / BUNDLE_FILE).read_text())["firmware"]["elf"])
    assert validation["golden"].startswith("TFLM host interpreter") and validation["expectation"] == "bit-exact"
    assert validation["bit_exact"] and validation["frames"] == 100 and validation["max_abs_lsb"] == 0
    assert validation["values_compared"] == 100 * (32 + 129 + 129)
    per_hop = report["instructions_per_hop"]
    assert 0 < per_hop["min"] <= per_hop["median"] <= per_hop["max"]
    assert report["latency_us"] is None and report["bench"]["unit"] == "instructions"
    assert "QEMU instruction counts" in report["labels"]["instructions_per_hop"]
    per_op = report["per_op"]
    manifest_ops = json.loads((quantized_dir / "manifest.json").read_text())["networks"][0]["ops"]
    assert set(per_op["by_op_type"]) == set(manifest_ops) and len(per_op["ops"]) == sum(manifest_ops.values())
    assert 0 < per_op["sum_of_ops"] <= per_op["profiling_build_median"]
    assert "QEMU instruction counts" in report["labels"]["per_op"]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "QEMU instruction counts per hop" in markdown and "FULLY_CONNECTED" in markdown
    assert _qemu_children() == []  # both QEMU sessions (plain and profiling build) are gone


@pytest.mark.parametrize("board", ["cortex-m3", "cortex-m33", "cortex-m55"])
def test_bench_counts_are_identical_across_boots(quantized_dir, tmp_path, board):
    config = ProfileConfig(utterances=1, hops=3, bench_runs=10, bench_warmup=1)
    first, second = (profile_device(f"qemu://{board}", quantized_dir, tmp_path / name, config, progress=False)
                     for name in ("a", "b"))
    assert first["bench"] == second["bench"] and first["per_op"]["ops"] == second["per_op"]["ops"]
    assert first["instructions_per_hop"] == second["instructions_per_hop"]


def test_profile_builds_the_firmware_for_a_model_folder(quantized_dir, tmp_path):
    config = ProfileConfig(utterances=1, hops=20, bench_runs=5, bench_warmup=0)
    report = profile_device("qemu://cortex-m3", quantized_dir, tmp_path / "report", config, progress=False)
    assert "mps2-an385" in report["device"]["name"] and report["validation"]["bit_exact"]
    assert sorted(p.name for p in (tmp_path / "report" / "firmware").rglob("*.elf")) == \
        ["firmware-mps2-an385-profile.elf", "firmware-mps2-an385.elf"]


def test_profile_survives_a_board_reset_mid_run(m55_bundle, tmp_path):
    """QMP system_reset while INFER runs: the client sees the boot INFO, resends, and the state the host
    feeds back keeps the whole utterance bit-exact."""
    elf = m55_bundle / json.loads((m55_bundle / BUNDLE_FILE).read_text())["firmware"]["elf"]
    config = ProfileConfig(utterances=1, hops=60, bench_runs=0)
    with QemuMachine("cortex-m55", elf, control=True) as qemu:
        watcher = _when_records_reach(tmp_path / "report", 20, qemu.system_reset)
        report = profile_device(qemu.url, m55_bundle, tmp_path / "report", config, progress=False, timeout_s=3.0)
        watcher.join()
    assert report["device"]["kind"] == "emulated"
    assert report["validation"]["bit_exact"] and report["validation"]["frames"] == 60


def test_interrupted_profile_resumes_to_the_same_result(m55_bundle, tmp_path):
    """QEMU dies mid-INFER: ProfileInterrupted keeps the records; --resume boots a new QEMU and finishes."""
    from hearmask.targets import qemu as qemu_module

    def kill_qemu():
        with qemu_module._RUNNING_LOCK:
            machines = list(qemu_module._RUNNING)
        for machine in machines:
            machine.process.kill()

    config = ProfileConfig(utterances=1, hops=60, bench_runs=5, bench_warmup=0)
    watcher = _when_records_reach(tmp_path / "report", 25, kill_qemu)
    with pytest.raises(ProfileInterrupted, match="--resume"):
        profile_device("qemu://cortex-m55", m55_bundle, tmp_path / "report", config, progress=False, timeout_s=2.0)
    watcher.join()
    kept = _infer_records(tmp_path / "report")
    assert 25 <= kept < 60 and _qemu_children() == []
    report = profile_device("qemu://cortex-m55", m55_bundle, tmp_path / "report", config, resume=True, progress=False)
    assert report["validation"]["bit_exact"] and report["validation"]["frames"] == 60
    assert _infer_records(tmp_path / "report") == 60 and report["sessions"] == 2


def test_real_model_firmware_resynchronises_after_garbage_and_oversized_frames(m55_bundle, quantized_dir):
    from hearmask.quantize.runtimes import TflmRuntime

    elf = m55_bundle / json.loads((m55_bundle / BUNDLE_FILE).read_text())["firmware"]["elf"]
    golden = TflmRuntime((quantized_dir / "model_int8.tflite").read_bytes())
    rng = np.random.default_rng(5)
    inputs = {entry.name: rng.integers(-128, 128, entry.tensor.shape, dtype=np.int8) for entry in golden.inputs}
    with QemuMachine("cortex-m55", elf) as qemu, DeviceClient(qemu.url, timeout_s=3.0) as device:
        header = struct.pack("<BBHI", 1, msg.MessageType.INFER, 9, 70000) + b"\x01\x02\x03\x04"
        device.transport.write(b"\x00\x17\x42noise\x00" + b"\x00" + cobs_encode(header + struct.pack("<I", zlib.crc32(header))) + b"\x00")
        decoder, frames, deadline = FrameDecoder(), [], time.monotonic() + 3
        while len(frames) < 2 and time.monotonic() < deadline:
            frames += decoder.feed(device.transport.read(4096))
        assert [msg.decode_message(f).code for f in frames] == [msg.ErrorCode.FRAME_CORRUPT, msg.ErrorCode.FRAME_OVERSIZE]
        device.transport.write(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
        reply = device.infer(inputs)
    expected = golden.invoke_codes(inputs)
    for name, codes in expected.items():
        np.testing.assert_array_equal(reply.outputs[name].reshape(codes.shape), codes)


@pytest.mark.parametrize("board", ["cortex-m3", "cortex-m33", "cortex-m55"])
def test_thousand_hops_of_the_default_model_bit_exact_on_every_board(tmp_path, board):
    """The issue's acceptance check: the shipped model, 1000 hops of state feedback per board, against TFLM."""
    from hearmask.model.default_model import DEFAULT_MODEL_DIR

    config = ProfileConfig(utterances=4, hops=250, bench_runs=50, bench_warmup=5)
    report = profile_device(f"qemu://{board}", DEFAULT_MODEL_DIR, tmp_path / "report", config, progress=False)
    assert report["validation"]["bit_exact"] and report["validation"]["frames"] == 1000
    assert report["instructions_per_hop"]["count"] == 1000
