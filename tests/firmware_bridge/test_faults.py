"""Link faults, each against the real agent running as a subprocess on a pty (issue 6, "Faults").

Malformed replies from a device are tested in test_client.py with a scripted device,
since the real agent never sends them.
"""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.emulate import EmulatedDevice, EmulatorOptions
from hearmask.firmware_bridge.errors import DeviceErrorReply, DeviceTimeout, ModelHashMismatch, ProtocolError
from hearmask.firmware_bridge.fake_runtime import FakeRuntimeForTests
from hearmask.firmware_bridge.framing import FrameDecoder, encode_frame

SIZE = 64
FAKE_STREAM = "hearmask.firmware_bridge.fake_runtime:DelayLineStreamProcessorForTests"


def inputs_of(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"features": rng.integers(-128, 128, (1, SIZE), dtype=np.int8),
            "state_in": rng.integers(-128, 128, (1, 8), dtype=np.int8)}


def assert_correct(reply, inputs) -> None:
    expected = FakeRuntimeForTests.reference(inputs)
    for name, array in expected.items():
        np.testing.assert_array_equal(reply.outputs[name], array)


@pytest.fixture(scope="module")
def device():
    with EmulatedDevice(EmulatorOptions(fake_size=SIZE, stream_processor=FAKE_STREAM)) as emulated:
        yield emulated


def read_frames_until(transport, predicate, timeout_s: float = 2.0):
    decoder = FrameDecoder()
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        for frame in decoder.feed(transport.read(4096)):
            seen.append(frame)
            if predicate(frame):
                return seen
    raise AssertionError(f"no matching frame within {timeout_s} s; saw {seen}")


def test_corrupted_bytes_are_detected_and_requests_resent(device, faulty_transport):
    faulty = faulty_transport(device.transport(), seed=1, flip_probability=0.002)
    with DeviceClient("flips", transport=faulty, timeout_s=0.3, retries=10, handshake_attempts=10) as client:
        for seed in range(150):
            inputs = inputs_of(seed)
            assert_correct(client.infer(inputs), inputs)
        assert faulty.flipped > 20
        assert client.stats.resends > 5  # every flip cost a resend, none a wrong answer
        assert client.stats.corrupt_replies + client.stats.device_dropped_frames > 5


def test_dropped_bytes_are_detected_and_requests_resent(device, faulty_transport):
    faulty = faulty_transport(device.transport(), seed=2, drop_probability=0.002)
    with DeviceClient("drops", transport=faulty, timeout_s=0.3, retries=10, handshake_attempts=10) as client:
        for seed in range(150):
            inputs = inputs_of(seed)
            assert_correct(client.infer(inputs), inputs)
        assert faulty.dropped > 20
        assert client.stats.resends > 5


def test_line_noise_between_requests_does_not_disturb_the_session(device):
    rng = np.random.default_rng(3)
    with DeviceClient("noise", transport=device.transport(), timeout_s=0.5) as client:
        for seed in range(20):
            client.transport.write(rng.integers(0, 256, 50, dtype=np.uint8).tobytes())
            inputs = inputs_of(seed)
            assert_correct(client.infer(inputs), inputs)


def test_device_restart_mid_run_reconnects_and_restores_settings():
    with EmulatedDevice(EmulatorOptions(fake_size=SIZE, stream_processor=FAKE_STREAM)) as device:
        with DeviceClient("restart", transport=device.transport(), timeout_s=1.0, retries=4) as client:
            client.set_strengths(0.5, 0.25)
            count = {"done": 0}
            restarter = threading.Thread(
                target=lambda: (_wait_for(lambda: count["done"] >= 20), device.restart()), daemon=True)
            restarter.start()
            first_pid = device.pid
            for seed in range(80):
                inputs = inputs_of(seed)
                assert_correct(client.infer(inputs), inputs)
                count["done"] += 1
            restarter.join(timeout=10)
            assert device.pid != first_pid
            assert client.stats.device_resets == 1
            # The delay-line pipeline outputs alpha·hop + beta·previous: the strengths survived the restart.
            hop = client.stream(np.full(16, 0.5, np.float32)).samples
            np.testing.assert_allclose(hop, 0.25)


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


def test_device_that_stops_answering_raises_a_clear_timeout_then_recovers(device):
    with DeviceClient("paused", transport=device.transport(), timeout_s=0.3, retries=1, handshake_attempts=1) as client:
        device.pause()
        try:
            start = time.monotonic()
            with pytest.raises(DeviceTimeout, match=r"no reply to INFER within 0.3 s .* no answer to a new handshake"):
                client.infer(inputs_of(0))
            assert time.monotonic() - start < 2.0  # bounded: no hang
        finally:
            device.resume()
        inputs = inputs_of(1)
        assert_correct(client.infer(inputs), inputs)  # late replies to old sequence numbers are ignored


def test_stream_is_not_resent_after_a_timeout(device):
    with DeviceClient("paused-stream", transport=device.transport(), timeout_s=0.3, retries=3) as client:
        device.pause()
        try:
            with pytest.raises(DeviceTimeout, match="not resent because the device may have consumed the hop"):
                client.stream(np.zeros(16, np.float32))
        finally:
            device.resume()
        assert client.stats.resends == 0


def test_wrong_model_hash_is_a_clear_error(device):
    expected = hashlib.sha256(b"the bundle's model").hexdigest()
    with pytest.raises(ModelHashMismatch, match=f"runs model SHA-256 [0-9a-f]{{64}}; expected {expected}"):
        DeviceClient("hash", transport=device.transport(), expected_model_sha256=expected).open()


def test_oversized_frame_from_the_host_gets_an_error_and_the_agent_keeps_serving(device):
    transport = device.transport()
    with DeviceClient("oversize", transport=transport, timeout_s=0.5) as client:
        oversized = encode_frame(msg.MessageType.INFER, 900, bytes(70_000), max_payload_bytes=70_000)
        transport.write(oversized)
        frames = read_frames_until(transport, lambda f: f.message_type == msg.MessageType.ERROR)
        error = msg.decode_message(frames[-1])
        assert frames[-1].seq == 0 and error.code == msg.ErrorCode.FRAME_OVERSIZE
        assert "65536" in error.message
        inputs = inputs_of(5)
        assert_correct(client.infer(inputs), inputs)


class _MalformedInfer:
    """An INFER whose payload claims one tensor and carries none."""

    TYPE = msg.MessageType.INFER

    def to_payload(self) -> bytes:
        return b"\x01\x00\x00\x00"


def test_malformed_frame_from_the_host_gets_an_error_and_the_agent_keeps_serving(device):
    with DeviceClient("malformed", transport=device.transport(), timeout_s=0.5) as client:
        with pytest.raises(DeviceErrorReply, match="MALFORMED_PAYLOAD: INFER: payload ends at byte 4") as caught:
            client.request(_MalformedInfer(), (msg.MessageType.INFER_RESULT,))
        assert caught.value.code == msg.ErrorCode.MALFORMED_PAYLOAD
        inputs = inputs_of(6)
        assert_correct(client.infer(inputs), inputs)


def test_oversized_frame_from_the_device_is_a_clear_client_error(device):
    with DeviceClient("small-host", transport=device.transport(), timeout_s=0.5, max_payload_bytes=200) as client:
        with pytest.raises(ProtocolError, match="sent a frame over this host's limit while answering BENCH"):
            client.bench(100, return_samples=True)  # 400 bytes of samples
