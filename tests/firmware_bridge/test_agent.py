"""The device agent's request handling, in-process (no serial line), and its import graph."""

from __future__ import annotations

import hashlib
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.agent import MODEL_FILE_NAME, AgentConfig, DeviceAgent
from hearmask.firmware_bridge.fake_runtime import (
    FAKE_RUNTIME_NAME,
    DelayLineStreamProcessorForTests,
    FakeRuntimeForTests,
    SyntheticPowerBackendForTests,
)
from hearmask.firmware_bridge.framing import FrameDecoder, encode_frame, max_encoded_frame_bytes
from hearmask.firmware_bridge.runtime import file_sha256


def fake_inputs(seed: int = 0, size: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"features": rng.integers(-128, 128, (1, size), dtype=np.int8),
            "state_in": rng.integers(-128, 128, (1, 8), dtype=np.int8)}


def wire(inputs: dict[str, np.ndarray]) -> msg.Infer:
    return msg.Infer(tuple(msg.WireTensor(name, array) for name, array in inputs.items()))


def replies(agent: DeviceAgent, data: bytes) -> list:
    return FrameDecoder().feed(b"".join(agent.feed(data)))


def ask(agent: DeviceAgent, message, seq: int = 7):
    (frame,) = replies(agent, encode_frame(message.TYPE, seq, message.to_payload()))
    assert frame.seq == seq
    return msg.decode_message(frame)


def ask_error(agent: DeviceAgent, message, code: msg.ErrorCode) -> str:
    reply = ask(agent, message)
    assert isinstance(reply, msg.ErrorMessage), reply
    assert reply.code == code, reply
    return reply.message


@pytest.fixture
def agent(tmp_path) -> DeviceAgent:
    config = AgentConfig(target_name="unit", kind=msg.DeviceKind.EMULATED, model_dir=tmp_path / "model")
    return DeviceAgent(config, FakeRuntimeForTests(16), lambda path: FakeRuntimeForTests(16, file_sha256(path)))


def test_hello_echoes_nonce_and_describes_the_device(agent):
    info = ask(agent, msg.Hello(0xCAFE))
    assert info.nonce == 0xCAFE
    assert info.kind == msg.DeviceKind.EMULATED
    assert info.target_name == "unit" and info.runtime_name == FAKE_RUNTIME_NAME
    assert info.model_sha256 == agent.runtime.model_sha256
    assert msg.Capability.LOAD_MODEL in info.capabilities
    assert msg.Capability.STREAM not in info.capabilities and msg.Capability.POWER not in info.capabilities


def test_boot_frame_is_unsolicited_info():
    (frame,) = FrameDecoder().feed(DeviceAgent().boot_frame())
    info = msg.decode_message(frame)
    assert frame.seq == 0 and info.nonce == 0 and not info.has_model


def test_infer_returns_runtime_outputs_and_device_time(agent):
    inputs = fake_inputs(1)
    result = ask(agent, wire(inputs))
    expected = FakeRuntimeForTests.reference(inputs)
    assert [t.name for t in result.tensors] == ["mask", "state_out"]
    for tensor in result.tensors:
        np.testing.assert_array_equal(tensor.array, expected[tensor.name])
    assert result.device_time.unit == msg.TimeUnit.NANOSECONDS and result.device_time.value > 0


def test_infer_by_position_matches_by_name(agent):
    inputs = fake_inputs(2)
    by_name = ask(agent, wire(inputs))
    by_position = ask(agent, msg.Infer(tuple(msg.WireTensor("", a) for a in inputs.values())))
    for a, b in zip(by_name.tensors, by_position.tensors):
        np.testing.assert_array_equal(a.array, b.array)


@pytest.mark.parametrize("tensors, text", [
    ({"features": np.zeros((1, 15), np.int8), "state_in": np.zeros((1, 8), np.int8)}, r"must be \(1, 16\) int8"),
    ({"features": np.zeros((1, 16), np.int16), "state_in": np.zeros((1, 8), np.int8)}, "int16"),
    ({"features": np.zeros((1, 16), np.int8)}, "takes 2 input tensors"),
    ({"feature": np.zeros((1, 16), np.int8), "state_in": np.zeros((1, 8), np.int8)}, "do not match"),
])
def test_infer_tensor_mismatch_names_what_is_expected(agent, tensors, text):
    message = ask_error(agent, wire(tensors), msg.ErrorCode.TENSOR_MISMATCH)
    assert "features (1, 16) int8" in message or "must be" in message
    assert re.search(text, message), message


def test_requests_without_model_answer_no_model():
    agent = DeviceAgent(AgentConfig())
    ask_error(agent, wire(fake_inputs()), msg.ErrorCode.NO_MODEL)
    ask_error(agent, msg.Bench(3), msg.ErrorCode.NO_MODEL)


def test_bench_statistics_are_ordered_and_samples_returned(agent):
    ask(agent, wire(fake_inputs(3)))
    result = ask(agent, msg.Bench(50, 5, return_samples=True))
    assert result.runs == 50 and len(result.samples) == 50
    assert result.unit == msg.TimeUnit.NANOSECONDS
    assert result.min <= result.median <= result.max and result.min <= result.mean <= result.max
    assert result.min == min(result.samples) and result.max == max(result.samples)
    assert abs(result.median - np.median(result.samples)) <= 1
    assert ask(agent, msg.Bench(4)).samples == ()


def test_stream_without_pipeline_is_unsupported(agent):
    text = ask_error(agent, msg.Stream(np.zeros(32, np.int16)), msg.ErrorCode.UNSUPPORTED)
    assert "no stream pipeline" in text


def test_stream_runs_pipeline_with_current_strengths_in_both_formats():
    agent = DeviceAgent(AgentConfig(), FakeRuntimeForTests(16), stream_processor_factory=DelayLineStreamProcessorForTests)
    assert isinstance(ask(agent, msg.SetStrengths(0.5, 0.25)), msg.Ack)
    first = ask(agent, msg.Stream(np.full(8, 0.5, np.float32)))
    np.testing.assert_allclose(first.samples, 0.25)  # 0.5·0.5 + 0.25·0
    second = ask(agent, msg.Stream(np.full(8, 16384, np.int16)))  # 0.5 full scale
    assert second.samples.dtype == np.int16
    np.testing.assert_array_equal(second.samples, np.full(8, round((0.5 * 0.5 + 0.25 * 0.5) * 32768)))
    ask(agent, msg.Reset())
    after_reset = ask(agent, msg.Stream(np.full(8, 0.5, np.float32)))
    np.testing.assert_allclose(after_reset.samples, 0.5)  # strengths back to 1, 1 and the delay line empty


def test_power_needs_a_backend_and_reports_its_source(agent):
    ask_error(agent, msg.PowerRequest(), msg.ErrorCode.NO_POWER_BACKEND)
    agent.power_backend = SyntheticPowerBackendForTests()
    reading = ask(agent, msg.PowerRequest())
    assert reading.source == msg.PowerSource.SYNTHETIC and reading.power_mw == pytest.approx(1234.5)
    assert "not a measurement" in reading.detail


def test_settings_reach_the_callback_and_reset_clears_them(agent):
    seen = []
    agent.on_settings = seen.append
    ask(agent, msg.SetAudiogram((10, 20, 30, 40, 50, 60, 70, 80)))
    ask(agent, msg.SetStrengths(0.0, 2.0))
    assert seen[-1].audiogram_db_hl == (10, 20, 30, 40, 50, 60, 70, 80)
    assert (seen[-1].alpha, seen[-1].beta) == (0.0, 2.0)
    info = ask(agent, msg.Reset())
    assert isinstance(info, msg.Info) and info.nonce == 0
    assert seen[-1].audiogram_db_hl is None and (seen[-1].alpha, seen[-1].beta) == (1.0, 1.0)


def test_out_of_range_settings_answer_out_of_range(agent):
    frame = encode_frame(msg.MessageType.SET_STRENGTHS, 4, struct.pack("<ff", 9.0, 1.0))
    (reply,) = replies(agent, frame)
    error = msg.decode_message(reply)
    assert error.code == msg.ErrorCode.OUT_OF_RANGE and "alpha" in error.message
    assert agent.settings.alpha == 1.0


def load(agent: DeviceAgent, model: bytes, chunk: int, sha: bytes | None = None):
    reply = None
    for offset in range(0, len(model), chunk):
        data = model[offset:offset + chunk]
        final = offset + len(data) == len(model)
        reply = ask(agent, msg.LoadModel(len(model), offset, data, (sha or hashlib.sha256(model).digest()) if final else None))
        if not final:
            assert isinstance(reply, msg.Ack) and reply.value == offset + len(data)
    return reply


def test_load_model_in_chunks_writes_atomically_and_switches_model(agent, tmp_path):
    model = bytes(range(256)) * 10
    info = load(agent, model, 700)
    assert isinstance(info, msg.Info) and info.model_sha256 == hashlib.sha256(model).digest()
    stored = tmp_path / "model" / MODEL_FILE_NAME
    assert stored.read_bytes() == model
    assert [p.name for p in stored.parent.iterdir()] == [MODEL_FILE_NAME]  # no temp file left behind


def test_load_model_resent_chunks_are_accepted_once(agent):
    model = bytes(range(200))
    sha = hashlib.sha256(model).digest()
    ask(agent, msg.LoadModel(200, 0, model[:100]))
    ask(agent, msg.LoadModel(200, 0, model[:100]))  # its ACK was lost: resent
    info = ask(agent, msg.LoadModel(200, 100, model[100:], sha))
    again = ask(agent, msg.LoadModel(200, 100, model[100:], sha))  # the INFO was lost: resent
    assert info.model_sha256 == again.model_sha256 == sha


def test_load_model_hash_mismatch_keeps_previous_model(agent):
    before = agent.runtime.model_sha256
    reply = load(agent, b"x" * 100, 60, sha=hashlib.sha256(b"other").digest())
    assert isinstance(reply, msg.ErrorMessage) and reply.code == msg.ErrorCode.MODEL_HASH_MISMATCH, reply
    assert agent.runtime.model_sha256 == before


def test_load_model_out_of_order_chunk_is_rejected(agent):
    ask(agent, msg.LoadModel(300, 0, bytes(100)))
    text = ask_error(agent, msg.LoadModel(300, 200, bytes(100)), msg.ErrorCode.LOAD_SEQUENCE)
    assert "expected offset 100" in text


def test_load_model_that_fails_to_load_keeps_previous_model(tmp_path):
    def refuse(path):
        raise ValueError("not a flatbuffer")

    agent = DeviceAgent(AgentConfig(model_dir=tmp_path), FakeRuntimeForTests(16), refuse)
    reply = load(agent, b"junk" * 10, 100)
    assert reply.code == msg.ErrorCode.STORAGE and "previous model stays" in reply.message
    assert agent.runtime.model_sha256 == FakeRuntimeForTests(16).model_sha256
    assert list(tmp_path.iterdir()) == []


def test_load_model_unsupported_without_model_dir():
    agent = DeviceAgent(AgentConfig(), FakeRuntimeForTests(16))
    ask_error(agent, msg.LoadModel(3, 0, b"abc", hashlib.sha256(b"abc").digest()), msg.ErrorCode.UNSUPPORTED)


def test_unknown_type_and_malformed_payload_get_errors_with_the_request_seq(agent):
    (reply,) = replies(agent, encode_frame(0x7E, 11, b""))
    assert reply.seq == 11 and msg.decode_message(reply).code == msg.ErrorCode.UNKNOWN_MESSAGE
    (reply,) = replies(agent, encode_frame(msg.MessageType.INFER, 12, b"\x01\x00"))
    error = msg.decode_message(reply)
    assert reply.seq == 12 and error.code == msg.ErrorCode.MALFORMED_PAYLOAD and "INFER" in error.message
    (reply,) = replies(agent, encode_frame(msg.MessageType.INFO, 13, b""))
    assert msg.decode_message(reply).code in (msg.ErrorCode.MALFORMED_PAYLOAD, msg.ErrorCode.UNSUPPORTED)
    assert isinstance(ask(agent, msg.Hello(1)), msg.Info)  # still serving


def test_corrupt_and_oversize_frames_get_unsolicited_errors_and_serving_continues(agent):
    good = encode_frame(msg.MessageType.HELLO, 20, msg.Hello(5).to_payload())
    corrupt = bytearray(good)
    corrupt[5] ^= 0x10
    oversize = b"\x00" + b"\x01" * (max_encoded_frame_bytes(agent.config.max_payload_bytes) + 10) + b"\x00"
    frames = replies(agent, bytes(corrupt) + oversize + good)  # answered in wire order
    codes = [(f.seq, msg.decode_message(f)) for f in frames]
    assert [(seq, getattr(m, "code", None)) for seq, m in codes[:2]] == [
        (0, msg.ErrorCode.FRAME_CORRUPT), (0, msg.ErrorCode.FRAME_OVERSIZE)]
    assert codes[2][0] == 20 and codes[2][1].nonce == 5


def test_reply_over_payload_cap_is_an_error(tmp_path):
    agent = DeviceAgent(AgentConfig(max_payload_bytes=200), FakeRuntimeForTests(154))  # request 198 bytes, reply 203
    text = ask_error(agent, wire(fake_inputs(size=154)), msg.ErrorCode.REPLY_TOO_LARGE)
    assert "exceeds the payload limit of 200" in text


def test_runtime_failure_is_internal_error_and_agent_keeps_serving(agent):
    def explode():
        raise RuntimeError("tensor arena exhausted")

    agent.runtime.invoke = explode
    text = ask_error(agent, wire(fake_inputs()), msg.ErrorCode.INTERNAL)
    assert "tensor arena exhausted" in text
    assert isinstance(ask(agent, msg.Hello(2)), msg.Info)


def test_agent_import_graph_has_no_torch_or_tensorflow():
    """Issue 6: the Pi agent runs with numpy + pyserial + LiteRT only."""
    code = ("import sys; import hearmask.firmware_bridge.agent, hearmask.firmware_bridge.client, "
            "hearmask.firmware_bridge.mlperf_dut, hearmask.firmware_bridge.runtime, hearmask.firmware_bridge.emulate, "
            "hearmask.firmware_bridge.power, hearmask.firmware_bridge.mlperf; "
            "from hearmask.firmware_bridge.agent import build_parser, build_agent; "
            "build_agent(build_parser().parse_args(['--port', 'loop://', '--runtime', 'fake-test'])); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras')); "
            "print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
