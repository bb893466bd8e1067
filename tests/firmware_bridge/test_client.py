"""DeviceClient: handshake, sequence matching, typed requests and transports (in-thread devices on ptys)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import numpy as np
import pytest

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.agent import AgentConfig, DeviceAgent
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.errors import BridgeError, DeviceErrorReply, DeviceTimeout, ProtocolError
from hearmask.firmware_bridge.fake_runtime import FakeRuntimeForTests
from hearmask.firmware_bridge.framing import encode_frame


def fake_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"features": rng.integers(-128, 128, (1, 16), dtype=np.int8),
            "state_in": rng.integers(-128, 128, (1, 8), dtype=np.int8)}


def info_payload(nonce: int) -> bytes:
    return DeviceAgent(AgentConfig(target_name="scripted")).info(nonce).to_payload()


def test_typed_requests_against_the_agent(make_pty_agent):
    device = make_pty_agent()
    with DeviceClient("pty", transport=device.transport(), timeout_s=1.0) as client:
        assert client.device_info.target_name == "pty-test"
        inputs = fake_inputs(4)
        reply = client.infer(inputs)
        expected = FakeRuntimeForTests.reference(inputs)
        assert list(reply.outputs) == ["mask", "state_out"]
        for name, array in expected.items():
            np.testing.assert_array_equal(reply.outputs[name], array)
        assert reply.device_time.microseconds > 0 and reply.round_trip_us > reply.device_time.microseconds
        bench = client.bench(20, warmup=2, return_samples=True)
        assert bench.runs == 20 and len(bench.samples) == 20 and bench.min <= bench.median <= bench.max
        client.set_audiogram([10, 20, 30, 40, 50, 60, 70, 80])
        client.set_strengths(0.5, 0.75)
        assert device.agent.settings.audiogram_db_hl == (10, 20, 30, 40, 50, 60, 70, 80)
        assert (device.agent.settings.alpha, device.agent.settings.beta) == (0.5, 0.75)
        assert client.reset().nonce == 0
        assert device.agent.settings.audiogram_db_hl is None
        assert client.info().target_name == "pty-test"
        assert (client.stats.requests, client.stats.handshakes, client.stats.resends) == (5, 2, 0)


def test_load_model_chunked_updates_expected_hash(make_pty_agent):
    device = make_pty_agent()
    model = bytes(range(256)) * 40
    with DeviceClient("pty", transport=device.transport()) as client:
        info = client.load_model(model, chunk_bytes=1000)
        assert info.model_sha256 == hashlib.sha256(model).digest()
        assert client.expected_model_sha256 == info.model_sha256
        assert client.stats.requests == 11  # ceil(10240 / 1000) chunks


def test_device_error_reply_has_code_and_message(make_pty_agent):
    device = make_pty_agent()
    with DeviceClient("pty", transport=device.transport()) as client:
        with pytest.raises(DeviceErrorReply, match=r"TENSOR_MISMATCH: input 'features' must be \(1, 16\) int8") as caught:
            client.infer({"features": np.zeros((1, 3), np.int8), "state_in": np.zeros((1, 8), np.int8)})
        assert caught.value.code == msg.ErrorCode.TENSOR_MISMATCH
        with pytest.raises(DeviceErrorReply, match="NO_POWER_BACKEND"):
            client.power()


def test_request_over_the_device_payload_limit_is_refused_before_sending(make_pty_agent):
    config = AgentConfig(max_payload_bytes=128)
    device = make_pty_agent(DeviceAgent(config, FakeRuntimeForTests(16)))
    with DeviceClient("pty", transport=device.transport()) as client:
        with pytest.raises(BridgeError, match="exceeds the link limit of 128 bytes"):
            client.stream(np.zeros(200, np.int16))
        assert client.stats.bytes_sent < 100  # only the HELLO went out


def test_client_validates_settings_before_sending(make_pty_agent):
    device = make_pty_agent()
    with DeviceClient("pty", transport=device.transport()) as client:
        sent = client.stats.bytes_sent
        with pytest.raises(BridgeError, match=r"\[0, 4\]"):
            client.set_strengths(5.0, 1.0)
        with pytest.raises(BridgeError, match="8 thresholds"):
            client.set_audiogram([10, 20])
        assert client.stats.bytes_sent == sent


def test_handshake_discards_noise_until_info_with_its_nonce(scripted_device):
    def respond(frame):
        if frame.message_type != msg.MessageType.HELLO:
            return b""
        nonce = msg.Hello.from_payload(frame.payload).nonce
        return (b"\x13\x37 boot log line\r\n" + encode_frame(msg.MessageType.INFO, frame.seq, info_payload(nonce ^ 1))
                + encode_frame(msg.MessageType.INFO, 0, info_payload(0))
                + encode_frame(msg.MessageType.INFO, frame.seq, info_payload(nonce)))

    device = scripted_device(respond)
    with DeviceClient("scripted", transport=device.transport()) as client:
        assert client.device_info.target_name == "scripted"
        assert client.stats.handshakes == 1


def test_stale_reply_with_an_old_seq_is_ignored(scripted_device):
    state = {}

    def respond(frame):
        if frame.message_type == msg.MessageType.HELLO:
            return encode_frame(msg.MessageType.INFO, frame.seq, info_payload(msg.Hello.from_payload(frame.payload).nonce))
        stale = msg.InferResult(msg.DeviceTime(1, msg.TimeUnit.NANOSECONDS), (msg.WireTensor("mask", np.full(2, 99, np.int8)),))
        fresh = msg.InferResult(msg.DeviceTime(2, msg.TimeUnit.NANOSECONDS), (msg.WireTensor("mask", np.full(2, 7, np.int8)),))
        state["seq"] = frame.seq
        return (encode_frame(msg.MessageType.INFER_RESULT, frame.seq - 1, stale.to_payload())
                + encode_frame(msg.MessageType.INFER_RESULT, frame.seq, fresh.to_payload()))

    device = scripted_device(respond)
    with DeviceClient("scripted", transport=device.transport()) as client:
        reply = client.infer([np.zeros(2, np.int8)])
        np.testing.assert_array_equal(reply.outputs["mask"], [7, 7])
        assert client.stats.stale_frames == 1


def test_malformed_reply_from_the_device_raises_protocol_error(scripted_device):
    def respond(frame):
        if frame.message_type == msg.MessageType.HELLO:
            return encode_frame(msg.MessageType.INFO, frame.seq, info_payload(msg.Hello.from_payload(frame.payload).nonce))
        return encode_frame(msg.MessageType.INFER_RESULT, frame.seq, b"\x01\x02\x03")  # CRC fine, payload not

    device = scripted_device(respond)
    with DeviceClient("scripted", transport=device.transport()) as client:
        with pytest.raises(ProtocolError, match="malformed reply to INFER: INFER_RESULT: payload ends at byte 3"):
            client.infer([np.zeros(2, np.int8)])


def test_wrong_reply_type_raises_protocol_error(scripted_device):
    def respond(frame):
        if frame.message_type == msg.MessageType.HELLO:
            return encode_frame(msg.MessageType.INFO, frame.seq, info_payload(msg.Hello.from_payload(frame.payload).nonce))
        return encode_frame(msg.MessageType.ACK, frame.seq, msg.Ack(1).to_payload())

    device = scripted_device(respond)
    with DeviceClient("scripted", transport=device.transport()) as client:
        with pytest.raises(ProtocolError, match="answered POWER with ACK; expected POWER_RESULT"):
            client.power()


def test_loop_url_times_out_naming_the_handshake():
    start = time.monotonic()
    client = DeviceClient("loop://", timeout_s=0.2, handshake_attempts=2)
    with pytest.raises(DeviceTimeout, match=r"no INFO echoing HELLO nonce 0x[0-9a-f]{8} from loop:// after 2 HELLOs"):
        client.open()
    client.close()
    assert time.monotonic() - start < 2.0


def test_bad_url_is_a_clear_error():
    with pytest.raises(BridgeError, match="cannot open serial port '/dev/does-not-exist'"):
        DeviceClient("/dev/does-not-exist").open()


class _SocketTransport:
    """The device end of a TCP connection, as a Transport for the agent."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.timeout = 0.02

    @property
    def in_waiting(self) -> int:
        return 0

    def read(self, size: int = 1) -> bytes:
        self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(max(size, 4096))
        except socket.timeout:
            return b""
        if not data:
            raise OSError("peer closed")
        return data

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)


def test_socket_url_reaches_an_agent_over_tcp():
    """``socket://host:port`` is how QEMU's UART is reached (issue 7)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()
    agent = DeviceAgent(AgentConfig(target_name="tcp"), FakeRuntimeForTests(16))

    def serve():
        connection, _ = server.accept()
        try:
            agent.serve(_SocketTransport(connection), stop)
        except OSError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with DeviceClient(f"socket://127.0.0.1:{port}", timeout_s=1.0) as client:
            assert client.device_info.target_name == "tcp"
            inputs = fake_inputs(9)
            np.testing.assert_array_equal(client.infer(inputs).outputs["mask"], FakeRuntimeForTests.reference(inputs)["mask"])
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
