"""The emulated device: the real agent as a subprocess on a pty; clean shutdown; line-rate pacing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.emulate import EmulatedDevice, EmulatorOptions
from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.fake_runtime import FAKE_RUNTIME_NAME, FakeRuntimeForTests
from hearmask.firmware_bridge.messages import DeviceKind
from hearmask.firmware_bridge.transport import UART_BITS_PER_BYTE


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting for a reaper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return False


def inputs_of(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"features": rng.integers(-128, 128, (1, size), dtype=np.int8),
            "state_in": rng.integers(-128, 128, (1, 8), dtype=np.int8)}


def test_emulate_url_runs_the_real_agent_labelled_emulated():
    with DeviceClient("emulate://rpi?size=32", timeout_s=2.0) as client:
        info = client.device_info
        assert info.kind == DeviceKind.EMULATED and info.kind.label == "emulated"
        assert info.target_name.startswith("emulated-rpi") and info.runtime_name == FAKE_RUNTIME_NAME
        pid = client.transport.device.pid
        assert not process_gone(pid)
        inputs = inputs_of(32, 1)
        reply = client.infer(inputs)
        np.testing.assert_array_equal(reply.outputs["mask"], FakeRuntimeForTests.reference(inputs)["mask"])
    assert wait_gone(pid, 5.0), "closing the client must stop the emulated agent"


def test_context_manager_stops_the_agent_on_normal_exit_and_on_error():
    with EmulatedDevice() as device:
        pid = device.pid
        port_path = device.port_path
        assert port_path.startswith("/dev/pts/")
    assert wait_gone(pid, 5.0)
    with pytest.raises(RuntimeError, match="boom"):
        with EmulatedDevice() as device:
            pid = device.pid
            raise RuntimeError("boom")
    assert wait_gone(pid, 5.0)
    device.stop()  # idempotent


def test_agent_exits_when_the_host_process_dies_without_cleanup():
    """No orphans: a host killed mid-session (no context exit) must not leave the agent running."""
    script = textwrap.dedent(
        """
        import os, sys
        from hearmask.firmware_bridge.emulate import EmulatedDevice
        device = EmulatedDevice().start()
        print(device.pid, flush=True)
        os._exit(0)  # no stop(), no finalizers: like a crash or SIGKILL
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    agent_pid = int(result.stdout.strip())
    assert wait_gone(agent_pid, 10.0), f"agent {agent_pid} outlived its host"


def test_restart_replaces_the_process_on_the_same_pty():
    with EmulatedDevice() as device:
        with DeviceClient(device.url_label, transport=device.transport(), timeout_s=1.0) as client:
            first_pid = device.pid
            device.restart()
            assert device.pid != first_pid and wait_gone(first_pid, 5.0)
            inputs = inputs_of(16, 2)
            reply = client.infer(inputs)  # the new agent's boot INFO tells the client it restarted
            np.testing.assert_array_equal(reply.outputs["state_out"], FakeRuntimeForTests.reference(inputs)["state_out"])
            assert client.stats.device_resets == 1


@pytest.mark.parametrize("url, text", [
    ("emulate://vax", "emulated target 'vax'"),
    ("emulate://rpi?colour=blue", "unknown option"),
    ("emulate://rpi?line_rate=fast", "bad number"),
])
def test_bad_emulate_urls_are_clear_errors(url, text):
    with pytest.raises(BridgeError, match=text):
        EmulatorOptions.from_url(url)


def test_agent_start_failure_reports_its_stderr(tmp_path):
    options = EmulatorOptions(runtime="litert", model_path=tmp_path / "missing.tflite")
    with pytest.raises(BridgeError, match="missing.tflite"):
        EmulatedDevice(options).start()


def test_line_rate_pacing_makes_round_trips_at_least_the_wire_time():
    size = 1024
    line_rate_baud = 115200
    inputs = inputs_of(size, 3)
    with EmulatedDevice(EmulatorOptions(fake_size=size, line_rate_baud=line_rate_baud)) as device:
        with DeviceClient(device.url_label, transport=device.transport(), timeout_s=3.0) as client:
            sent_before, received_before = client.stats.bytes_sent, client.stats.bytes_received
            start = time.perf_counter()
            client.infer(inputs)
            round_trip_s = time.perf_counter() - start
            wire_bytes = (client.stats.bytes_sent - sent_before) + (client.stats.bytes_received - received_before)
    wire_s = wire_bytes * UART_BITS_PER_BYTE / line_rate_baud
    assert wire_bytes > 2 * size
    assert wire_s <= round_trip_s < 2 * wire_s + 0.2, (wire_s, round_trip_s)
