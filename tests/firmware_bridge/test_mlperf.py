"""MLPerf Tiny DUT protocol: the emulated DUT's state machine, the host driver, and both end to end over a pty."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.firmware_bridge.errors import BridgeError, DeviceTimeout, ProtocolError
from hearmask.firmware_bridge.fake_runtime import FakeRuntimeForTests
from hearmask.firmware_bridge.mlperf import MlperfDeviceError, MlperfTinyClient
from hearmask.firmware_bridge.mlperf_dut import MAX_COMMAND_CHARS, MlperfDut

SIZE = 32


def dequantized_reference(features: np.ndarray) -> np.ndarray:
    """What m-results-[...] must list: the fake runtime's mask, dequantized (scale 1/128, zero point 0)."""
    inputs = {"features": features.reshape(1, SIZE), "state_in": np.zeros((1, 8), np.int8)}
    return FakeRuntimeForTests.reference(inputs)["mask"].ravel() / 128.0


def run(dut: MlperfDut, command: str) -> list[str]:
    lines = dut.feed(f"{command}%".encode())
    assert lines[-1] == "m-ready"
    return lines[:-1]


@pytest.fixture
def dut() -> MlperfDut:
    return MlperfDut(FakeRuntimeForTests(SIZE), vendor="unit-vendor", model_version="hm01")


def test_boot_and_identity(dut):
    boot = dut.boot_lines()
    assert boot[0] == "m-timestamp-mode-performance" and boot[1].startswith("m-lap-us-") and boot[-2:] == ["m-init-done", "m-ready"]
    assert run(dut, "name") == ["m-name-dut-[unit-vendor]"]
    profile = run(dut, "profile")
    assert profile[1] == "m-model-[hm01]" and profile[0].startswith("m-profile-[")


def test_db_load_then_infer_gives_laps_and_results(dut):
    features = np.arange(-16, 16, dtype=np.int8)
    assert run(dut, f"db load {SIZE}") == [f"m-[Expecting {SIZE} bytes]"]
    hex_digits = features.tobytes().hex()
    assert run(dut, "db " + hex_digits[:40]) == []
    assert run(dut, "db " + hex_digits[40:] + "ffff") == ["m-load-done"]  # extra digits are disregarded
    lines = run(dut, "infer 3 2")
    assert lines[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-3"]
    assert lines[3].startswith("m-lap-us-") and lines[4].startswith("m-lap-us-") and lines[5] == "m-infer-done"
    assert int(lines[4].split("-")[-1]) >= int(lines[3].split("-")[-1])
    values = [float(v) for v in lines[6][len("m-results-["):-1].split(",")]
    np.testing.assert_allclose(values, dequantized_reference(features), rtol=1e-9)
    assert run(dut, "results") == [lines[6]]


def test_infer_without_warmup_argument_uses_the_reference_default(dut):
    run(dut, f"db load {SIZE}")
    run(dut, "db " + "00" * SIZE)
    assert run(dut, "infer 1")[0] == "m-warmup-start-10"


@pytest.mark.parametrize("command, error", [
    ("bogus", "e-[Unknown command: bogus]"),
    ("db", "e-[Command 'db' requires a subcommand]"),
    ("db load 0", "e-[Command 'db load' must be >0 bytes]"),
    ("db abc", "e-[Insufficient number of hex digits]"),
    ("db zz", "e-[Invalid hex digit 'zz']"),
    ("infer 0", "e-[Inference iterations must be >0]"),
    ("infer 1 -1", "e-[Inference warmup must be >=0]"),
    ("infer 1 0", f"e-[Input db has 0 bytes, expected {SIZE}]"),
])
def test_errors_are_e_lines_followed_by_ready(dut, command, error):
    assert run(dut, command) == [error]


def test_command_longer_than_the_firmware_buffer_is_rejected(dut):
    assert run(dut, "db " + "0" * MAX_COMMAND_CHARS) == [f"e-[Command longer than {MAX_COMMAND_CHARS} characters]"]
    assert run(dut, "name") == ["m-name-dut-[unit-vendor]"]  # back in step


def test_commands_split_across_reads(dut):
    assert dut.feed(b"na") == []
    assert dut.feed(b"me%prof") == ["m-name-dut-[unit-vendor]", "m-ready"]
    assert dut.feed(b"ile%")[-1] == "m-ready"


def test_host_driver_end_to_end_over_an_emulated_dut():
    features = np.random.default_rng(0).integers(-128, 128, SIZE, dtype=np.int8)
    with MlperfTinyClient(f"emulate://rpi?protocol=mlperf&size={SIZE}", timeout_s=3.0) as dut:
        assert dut.device_name == "hearmask-emulated"
        assert dut.profile()["model"] == "hearmask"
        sent_before = dut.bytes_sent
        dut.load(features.tobytes())
        # 2 hex digits per byte, 31 bytes per `db` command: ceil(32/31) = 2 chunks after `db load 32%`.
        assert dut.bytes_sent - sent_before == len("db load 32%") + (3 + 62 + 1) + (3 + 2 + 1)
        result = dut.infer(runs=5, warmup=1)
        assert result.runs == 5 and result.elapsed_us >= 0
        assert result.per_inference_us == pytest.approx(result.elapsed_us / 5)
        np.testing.assert_allclose(result.results, dequantized_reference(features), rtol=1e-9)
        with pytest.raises(MlperfDeviceError, match=r"rejected 'infer 1 -1': e-\[Inference warmup must be >=0\]"):
            dut.command("infer 1 -1")
        assert dut.name() == "hearmask-emulated"  # still in step after an error


class ScriptedLines:
    """A transport that answers each `...%` command with canned lines."""

    def __init__(self, answers: dict[str, str], preamble: bytes = b""):
        self.answers = answers
        self.pending = bytearray(preamble)
        self.timeout = 0.01
        self.written = bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self.pending)

    def write(self, data: bytes) -> int:
        self.written += data
        while b"%" in self.written:
            command, _, rest = bytes(self.written).partition(b"%")
            self.written = bytearray(rest)
            self.pending += self.answers.get(command.decode(), "e-[?]\r\nm-ready\r\n").encode()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self.pending[:size])
        del self.pending[:size]
        return data

    def reset_input_buffer(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_sync_skips_boot_noise_and_a_stale_ready():
    transport = ScriptedLines({"name": "m-name-dut-[board-x]\r\nm-ready\r\n"},
                              preamble=b"\x00\xffgarbage\r\nm-init-done\r\nm-ready\r\n")
    client = MlperfTinyClient("scripted", transport=transport)
    assert client.open() == "board-x"


def test_lap_timer_wrap_is_handled():
    answer = ("m-warmup-start-0\r\nm-warmup-done\r\nm-infer-start-2\r\nm-lap-us-4294967000\r\nm-lap-us-296\r\n"
              "m-infer-done\r\nm-results-[0.5,-0.25]\r\nm-ready\r\n")
    client = MlperfTinyClient("scripted", transport=ScriptedLines({"infer 2 0": answer}))
    result = client.infer(2, 0)
    assert result.elapsed_us == 592 and result.per_inference_us == 296 and result.results == (0.5, -0.25)


def test_energy_mode_answer_without_laps_is_a_clear_error():
    answer = "m-warmup-start-0\r\nm-warmup-done\r\nm-infer-start-1\r\nm-infer-done\r\nm-results-[1]\r\nm-ready\r\n"
    client = MlperfTinyClient("scripted", transport=ScriptedLines({"infer 1 0": answer}))
    with pytest.raises(ProtocolError, match="0 m-lap-us lines; 2 needed"):
        client.infer(1, 0)


def test_silent_dut_times_out_naming_the_command():
    client = MlperfTinyClient("scripted", transport=ScriptedLines({"name": ""}), timeout_s=0.1, sync_attempts=2)
    with pytest.raises(DeviceTimeout, match="no MLPerf Tiny DUT answered name%"):
        client.open()


def test_db_chunk_size_must_fit_the_firmware_buffer():
    with pytest.raises(BridgeError, match="80 characters"):
        MlperfTinyClient("x", db_chunk_bytes=39)
