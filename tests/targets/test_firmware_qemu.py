"""The firmware on QEMU's Cortex-M boards, driven by the real host client over ``socket://``.

Built around a hand-written fixture model (tests/targets/fixtures/saturating_add: not a
model, a stand-in with the generated interface): sum = saturate(features[:8] + state_in),
copy = features. Checks the handshake, INFO, exact INFER bytes, deterministic BENCH
instruction counts (QEMU ``-icount``), per-op counts, resynchronisation after garbage,
oversized frames, RESET, error codes, and that QEMU never outlives its owner.
The Cortex-M55 board runs by default; the M3 and M33 boards are marked slow.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.errors import DeviceErrorReply
from hearmask.firmware_bridge.framing import FrameDecoder, cobs_encode
from hearmask.targets.firmware_build import build_firmware, section_sizes, toolchain_available
from hearmask.targets.qemu import QEMU_BOARDS, QemuMachine, parse_qemu_url, qemu_available, resolve_board

FIXTURE_MODEL_DIR = Path(__file__).resolve().parent / "fixtures" / "saturating_add"
FEATURES, STATE, SUM = 24, 8, 8  # sizes of the fixture's tensors
CODE_ORIGIN = {"mps2-an385": 0x00000000, "mps2-an505": 0x10000000, "mps3-an547": 0x10000000}
DEFAULT_BOARD = "mps3-an547"
BOARDS = [pytest.param(machine, marks=() if machine == DEFAULT_BOARD else pytest.mark.slow)
          for machine in QEMU_BOARDS]

needs_toolchain = pytest.mark.skipif(not toolchain_available(), reason="arm-none-eabi-gcc is not installed")
needs_qemu = pytest.mark.skipif(not (toolchain_available() and qemu_available()),
                                reason="arm-none-eabi-gcc or qemu-system-arm is not installed")


def fixture_outputs(features: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
    """What the fixture computes, in numpy."""
    total = features[:SUM].astype(np.int32) + state.astype(np.int32)
    return {"sum": np.clip(total, -128, 127).astype(np.int8), "copy": features.copy()}


@pytest.fixture(scope="session")
def firmware(tmp_path_factory):
    """build(board, profile=False) -> FirmwareImage, each built once per session."""
    built = {}
    out_dir = tmp_path_factory.mktemp("firmware")

    def build(board: str, profile: bool = False):
        key = (board, profile)
        if key not in built:
            built[key] = build_firmware(board, FIXTURE_MODEL_DIR, out_dir, profile=profile,
                                        model_sha256=bytes(range(32)), extra_cflags=("-Werror",))
        return built[key]

    return build


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has stopped running all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------- building


@needs_toolchain
@pytest.mark.parametrize("machine", BOARDS)
def test_firmware_builds_with_vectors_at_the_boards_reset_base(firmware, machine):
    image = firmware(machine)
    assert image.elf_path.is_file() and image.board.machine == machine
    assert (image.text_bytes, image.data_bytes, image.bss_bytes) == section_sizes(image.elf_path)
    assert 0 < image.text_bytes < 64 * 1024  # protocol + board support + fixture, no libc bloat
    # RX + TX frame buffers (64 KiB payload cap), tensor pool and BENCH samples are static RAM.
    assert image.bss_bytes > 2 * 65536
    symbols = subprocess.run(["arm-none-eabi-nm", str(image.elf_path)], capture_output=True, text=True,
                             check=True).stdout.split("\n")
    table = next(line for line in symbols if line.endswith(" hm_vector_table"))
    assert int(table.split()[0], 16) == CODE_ORIGIN[machine]
    assert not any(line.endswith((" malloc", " _malloc_r")) for line in symbols)


@needs_toolchain
def test_build_errors_name_the_problem(tmp_path):
    with pytest.raises(HearmaskError, match="no hm_model.h"):
        build_firmware("cortex-m55", tmp_path, tmp_path / "out")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "hm_model.h").write_text((FIXTURE_MODEL_DIR / "hm_model.h").read_text())
    (broken / "hm_model.c").write_text("this is not C;\n")
    compiler_error = r"(?s)failed \(arm-none-eabi-gcc exit 1\).*error: unknown type name 'this'"
    with pytest.raises(HearmaskError, match=compiler_error):
        build_firmware("cortex-m55", broken, tmp_path / "out")
    with pytest.raises(HearmaskError, match="32 bytes"):
        build_firmware("cortex-m55", FIXTURE_MODEL_DIR, tmp_path / "out", model_sha256=b"short")


def test_boards_resolve_by_machine_core_or_target_name():
    assert resolve_board("cortex-m55") is resolve_board("mps3-an547") is resolve_board("cortex-m55-qemu")
    with pytest.raises(HearmaskError, match="'cortex-m7' is unknown; accepted: mps2-an385"):
        resolve_board("cortex-m7")
    board, path = parse_qemu_url("qemu://cortex-m33?firmware=/tmp/fw.elf")
    assert (board.machine, path) == ("mps2-an505", Path("/tmp/fw.elf"))
    with pytest.raises(HearmaskError, match="names no firmware"):
        parse_qemu_url("qemu://cortex-m33")


# ---------------------------------------------------------------------------- protocol on the firmware


@needs_qemu
@pytest.mark.parametrize("machine", BOARDS)
def test_firmware_serves_the_protocol_in_qemu(firmware, machine):
    image = firmware(machine)
    rng = np.random.default_rng(7)
    with QemuMachine(machine, image.elf_path) as qemu, \
            DeviceClient(qemu.url, timeout_s=3.0, expected_model_sha256=bytes(range(32))) as device:
        info = device.device_info
        assert info.target_name.startswith(machine) and info.kind == msg.DeviceKind.EMULATED
        assert info.capabilities & (msg.Capability.INFER | msg.Capability.BENCH | msg.Capability.RESET)
        assert not info.capabilities & msg.Capability.PER_OP_COUNTS  # not a profiling build
        assert info.max_payload_bytes == 65536 and info.model_sha256 == bytes(range(32))

        for _ in range(3):  # exact bytes, including saturation at both ends
            features = rng.integers(-128, 128, FEATURES, dtype=np.int8)
            state = rng.integers(-128, 128, STATE, dtype=np.int8)
            reply = device.infer({"state_in": state, "features": features})  # by name, any order
            expected = fixture_outputs(features, state)
            assert list(reply.outputs) == ["sum", "copy"]
            for name in expected:
                np.testing.assert_array_equal(reply.outputs[name], expected[name])
            assert reply.device_time.unit == msg.TimeUnit.INSTRUCTIONS and reply.device_time.value > 0
            assert reply.device_time.microseconds is None  # instruction counts are not time
        by_position = device.infer([features, state])
        np.testing.assert_array_equal(by_position.outputs["sum"], expected["sum"])

        first = device.bench(50, warmup=2, return_samples=True)
        second = device.bench(50, warmup=2, return_samples=True)
        assert first.unit == msg.TimeUnit.INSTRUCTIONS and len(first.samples) == 50
        assert first == second  # -icount: identical instruction counts on every run
        assert first.min == first.max == first.median > 0 and first.op_counts == ()

        reset_info = device.reset()
        assert reset_info.nonce == 0 and reset_info.target_name == info.target_name
        zeros = device.infer({"features": np.zeros(FEATURES, np.int8), "state_in": np.zeros(STATE, np.int8)})
        assert not zeros.outputs["sum"].any()


@needs_qemu
def test_firmware_rejects_bad_requests_with_error_codes(firmware):
    image = firmware(DEFAULT_BOARD)
    with QemuMachine(DEFAULT_BOARD, image.elf_path) as qemu, DeviceClient(qemu.url, timeout_s=3.0) as device:
        with pytest.raises(DeviceErrorReply, match="features") as wrong_size:
            device.infer({"features": np.zeros(FEATURES + 1, np.int8), "state_in": np.zeros(STATE, np.int8)})
        assert wrong_size.value.code == msg.ErrorCode.TENSOR_MISMATCH
        with pytest.raises(DeviceErrorReply) as wrong_dtype:
            device.infer({"features": np.zeros(FEATURES, np.int16), "state_in": np.zeros(STATE, np.int8)})
        assert wrong_dtype.value.code == msg.ErrorCode.TENSOR_MISMATCH
        with pytest.raises(DeviceErrorReply, match="no tensor named 'state_in'") as wrong_name:
            device.infer({"features": np.zeros(FEATURES, np.int8), "state": np.zeros(STATE, np.int8)})
        assert wrong_name.value.code == msg.ErrorCode.TENSOR_MISMATCH
        with pytest.raises(DeviceErrorReply) as unsupported:
            device.set_strengths(0.5, 1.0)
        assert unsupported.value.code == msg.ErrorCode.UNSUPPORTED
        with pytest.raises(DeviceErrorReply) as out_of_range:  # the client checks too: send the raw request
            device.request(_RawRequest(msg.MessageType.BENCH, struct.pack("<IIBBH", 0, 0, 0, 0, 0)),
                           (msg.MessageType.BENCH_RESULT,))
        assert out_of_range.value.code == msg.ErrorCode.OUT_OF_RANGE
        assert device.infer([np.ones(FEATURES, np.int8), np.ones(STATE, np.int8)]).outputs["sum"].tolist() == [2] * SUM


class _RawRequest:
    """A request with a hand-made payload (bypasses the client's own range checks)."""

    def __init__(self, message_type: msg.MessageType, payload: bytes):
        self.TYPE = message_type
        self._payload = payload

    def to_payload(self) -> bytes:
        return self._payload


def _device_replies(device: DeviceClient, data: bytes, wait_s: float = 2.0, expect: int = 1) -> list:
    """Write raw bytes to the device and collect the frames it sends back."""
    device.transport.write(data)
    decoder, frames = FrameDecoder(), []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and len(frames) < expect:
        frames += decoder.feed(device.transport.read(4096))
    return frames


@needs_qemu
def test_firmware_resynchronises_after_garbage_and_oversized_frames(firmware):
    image = firmware(DEFAULT_BOARD)
    rng = np.random.default_rng(3)
    with QemuMachine(DEFAULT_BOARD, image.elf_path) as qemu, DeviceClient(qemu.url, timeout_s=3.0) as device:
        # Line noise (with and without delimiters): each run is reported as FRAME_CORRUPT, seq 0.
        (garbage_error,) = _device_replies(device, b"\x00\x17\x42noise" + b"\x00")
        error = msg.decode_message(garbage_error)
        assert (garbage_error.seq, error.code) == (0, msg.ErrorCode.FRAME_CORRUPT)

        # An intact frame announcing more than the 64 KiB cap: FRAME_OVERSIZE without reading it.
        header = struct.pack("<BBHI", 1, msg.MessageType.INFER, 77, 70000) + b"\x01\x02\x03\x04"
        oversize = b"\x00" + cobs_encode(header + struct.pack("<I", zlib.crc32(header))) + b"\x00"
        (oversize_error,) = _device_replies(device, oversize)
        assert (oversize_error.seq, msg.decode_message(oversize_error).code) == (0, msg.ErrorCode.FRAME_OVERSIZE)

        # A request preceded by random garbage still gets its exact answer (the client resends).
        device.transport.write(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
        features = rng.integers(-128, 128, FEATURES, dtype=np.int8)
        state = rng.integers(-128, 128, STATE, dtype=np.int8)
        reply = device.infer({"features": features, "state_in": state})
        np.testing.assert_array_equal(reply.outputs["sum"], fixture_outputs(features, state)["sum"])
        assert device.stats.device_dropped_frames >= 1  # the firmware reported the noise


@needs_qemu
@pytest.mark.slow
def test_firmware_drops_a_run_longer_than_its_buffer(firmware):
    image = firmware(DEFAULT_BOARD)
    with QemuMachine(DEFAULT_BOARD, image.elf_path) as qemu, DeviceClient(qemu.url, timeout_s=3.0) as device:
        (error_frame,) = _device_replies(device, b"\x00" + b"\x33" * 70000 + b"\x00", wait_s=30.0)
        assert msg.decode_message(error_frame).code == msg.ErrorCode.FRAME_OVERSIZE
        reply = device.infer([np.zeros(FEATURES, np.int8), np.full(STATE, 5, np.int8)])
        assert reply.outputs["sum"].tolist() == [5] * SUM


@needs_qemu
def test_profiling_build_returns_per_op_counts_identical_across_runs_and_boots(firmware):
    image = firmware(DEFAULT_BOARD, profile=True)
    results = []
    for _ in range(2):  # two QEMU boots: host timing must not leak into the counts
        with QemuMachine(DEFAULT_BOARD, image.elf_path) as qemu, DeviceClient(qemu.url, timeout_s=3.0) as device:
            assert device.device_info.capabilities & msg.Capability.PER_OP_COUNTS
            features, state = np.arange(FEATURES, dtype=np.int8), np.full(STATE, 120, np.int8)
            infer_count = device.infer({"features": features, "state_in": state}).device_time
            results.append((infer_count, device.bench(20, per_op=True), device.bench(20, per_op=True)))
    (infer_count, first, second), other_boot = results
    assert first == second and results[0] == other_boot
    assert [name for name, _ in first.op_counts] == ["ADD", "COPY"]
    op_total = sum(value for _, value in first.op_counts)
    assert all(value > 0 for _, value in first.op_counts) and op_total <= first.median == infer_count.value


@needs_qemu
def test_client_recovers_when_the_board_resets_mid_run(firmware):
    """A board reset between requests: boot INFO (seq 0) -> the client notices, resends, gets the answer."""
    image = firmware(DEFAULT_BOARD)
    with QemuMachine(DEFAULT_BOARD, image.elf_path, control=True) as qemu, \
            DeviceClient(qemu.url, timeout_s=3.0) as device:
        features, state = np.full(FEATURES, 100, np.int8), np.full(STATE, 100, np.int8)
        assert device.infer([features, state]).outputs["sum"].tolist() == [127] * SUM
        qemu.system_reset()
        time.sleep(0.3)  # the reset happens in QEMU's main loop shortly after the QMP reply
        reply = device.infer([features, -state])
        assert reply.outputs["sum"].tolist() == [0] * SUM
        assert device.stats.device_resets == 1
        assert device.bench(5).min > 0


# ---------------------------------------------------------------------------- no orphan QEMU


@needs_qemu
def test_qemu_stops_when_the_context_exits_or_raises(firmware):
    image = firmware(DEFAULT_BOARD)
    with QemuMachine(DEFAULT_BOARD, image.elf_path) as qemu:
        pid = qemu.pid
        assert _pid_alive(pid)
    assert not _pid_alive(pid)
    with pytest.raises(RuntimeError, match="body failed"):
        with QemuMachine(DEFAULT_BOARD, image.elf_path) as qemu:
            pid = qemu.pid
            raise RuntimeError("body failed")
    assert not _pid_alive(pid)


@needs_qemu
def test_qemu_url_transport_stops_qemu_when_the_client_closes(firmware):
    image = firmware(DEFAULT_BOARD)
    with DeviceClient(f"qemu://cortex-m55?firmware={image.elf_path}", timeout_s=3.0) as device:
        pid = device.transport.machine.pid
        assert device.device_info.target_name.startswith("mps3-an547")
    assert not _pid_alive(pid)


@needs_qemu
def test_qemu_dies_with_a_killed_parent(firmware, tmp_path):
    """SIGKILL skips context managers and atexit: PR_SET_PDEATHSIG still takes QEMU down."""
    image = firmware(DEFAULT_BOARD)
    script = textwrap.dedent(f"""
        import os, signal
        from hearmask.targets.qemu import QemuMachine
        machine = QemuMachine({DEFAULT_BOARD!r}, {str(image.elf_path)!r}).start()
        print(machine.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    qemu_pid = int(parent.stdout.split()[0])
    assert _wait_gone(qemu_pid)
