"""STREAM on the agent: the live per-hop int8 processor, bit-exact with the host running it offline."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.agent import AgentConfig, DeviceAgent
from hearmask.firmware_bridge.agent_stream import host_stream_processor, manifest_stream_factory
from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.errors import DeviceErrorReply
from hearmask.firmware_bridge.framing import FrameDecoder, encode_frame
from hearmask.firmware_bridge.plugins import ListenerSettings
from hearmask.firmware_bridge.runtime import LiteRTRuntime

N3_DB_HL = (35.0, 35.0, 40.0, 50.0, 55.0, 60.0, 65.0, 65.0)  # Bisgaard N3 (8 kHz copies 6 kHz)
N7_DB_HL = (90.0, 95.0, 105.0, 105.0, 105.0, 105.0, 105.0, 105.0)
# Strengths exactly representable in f32 (SET_STRENGTHS carries f32), so host and device hold the same values.
ALPHA, BETA = 0.75, 0.5


@pytest.fixture(scope="module")
def model_dir(quantized_dir):
    return quantized_dir  # the shared tiny int8 folder (tests/conftest.py)


def model_path(model_dir):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    return model_dir / manifest["networks"][0]["files"]["int8_tflite"]


@pytest.fixture(scope="module")
def noisy_utterance():
    """A whole real utterance (pocketsphinx cards/003, 1.54 s) in white noise, cut to whole 64-sample hops."""
    from hearmask.model.data.speech import PocketsphinxSpeech

    speech = PocketsphinxSpeech().load("pocketsphinx/cards/003.wav")
    noisy = 0.5 * speech + 0.02 * np.random.default_rng(0).standard_normal(speech.size)
    return noisy[: noisy.size // 64 * 64].astype(np.float32)


def in_process_agent(model_dir, runtime=None) -> DeviceAgent:
    factory = manifest_stream_factory(model_dir / "manifest.json", LiteRTRuntime)
    runtime = runtime or LiteRTRuntime(model_path(model_dir))
    return DeviceAgent(AgentConfig(), runtime, LiteRTRuntime, stream_processor_factory=factory)


def ask(agent: DeviceAgent, message, seq: int = 1):
    (frame,) = FrameDecoder().feed(b"".join(agent.feed(encode_frame(message.TYPE, seq, message.to_payload()))))
    return msg.decode_message(frame)


def test_stream_over_emulated_pi_is_bit_exact_with_the_host_processor(model_dir, noisy_utterance):
    """Whole utterance through ``emulate://rpi`` (real agent, LiteRT) vs the same processor on the host;
    strengths change mid-utterance and ramp in identically on both sides."""
    url = f"emulate://rpi?runtime=litert&model={model_path(model_dir)}"
    change_hop, hop_samples = 150, 64
    hops = noisy_utterance.reshape(-1, hop_samples)
    before = ListenerSettings(N3_DB_HL, ALPHA, BETA)
    after = ListenerSettings(N3_DB_HL, 1.0, 1.25)
    with DeviceClient(url) as client:
        assert msg.Capability.STREAM in client.info().capabilities
        client.set_audiogram(N3_DB_HL)
        client.set_strengths(ALPHA, BETA)
        device_hops = []
        for index, hop in enumerate(hops):
            if index == change_hop:
                client.set_strengths(after.alpha, after.beta)
            device_hops.append(client.stream(hop).samples)
    device_out = np.concatenate(device_hops)
    host = host_stream_processor(model_dir, before)
    host_out = np.concatenate([host.process_hop(hop, before if index < change_hop else after)
                               for index, hop in enumerate(hops)])
    assert device_out.dtype == np.float32 and device_out.shape == noisy_utterance.shape
    np.testing.assert_array_equal(device_out, host_out)
    # The pipeline does something: output is neither silence nor the delayed input.
    delay = host.hop_delay_samples
    assert np.max(np.abs(device_out)) > 0.05
    assert np.max(np.abs(device_out[delay:] - noisy_utterance[:-delay])) > 1e-2


def test_set_audiogram_and_strengths_change_the_stream(model_dir, noisy_utterance):
    """In-process agent: each SET_* changes the processed audio, exactly as the host processor predicts."""
    hops = noisy_utterance[: 80 * 64].reshape(-1, 64)
    outputs = {}
    for name, settings in {"n3": ListenerSettings(N3_DB_HL, ALPHA, BETA), "n7": ListenerSettings(N7_DB_HL, ALPHA, BETA),
                           "zero": ListenerSettings(N3_DB_HL, 0.0, 0.0)}.items():
        agent = in_process_agent(model_dir)
        ask(agent, msg.SetAudiogram(settings.audiogram_db_hl))
        ask(agent, msg.SetStrengths(settings.alpha, settings.beta))
        outputs[name] = np.concatenate([ask(agent, msg.Stream(hop)).samples for hop in hops])
        host = host_stream_processor(model_dir, settings)
        np.testing.assert_array_equal(outputs[name], host.process_signal(hops.reshape(-1)))
    assert np.max(np.abs(outputs["n3"] - outputs["n7"])) > 1e-3  # the audiogram reaches the HLC gain
    # Both strengths 0: the input delayed by the STFT overlap (identity guarantee).
    delay = 64
    error = outputs["zero"][delay + 256:] - hops.reshape(-1)[256:-delay]
    assert np.max(np.abs(error)) < 1e-4


def test_reset_restarts_the_stream_and_int16_hops_round_like_the_host(model_dir, noisy_utterance):
    hops = np.round(noisy_utterance[: 40 * 64] * 32768).astype(np.int16).reshape(-1, 64)
    agent = in_process_agent(model_dir)
    ask(agent, msg.SetAudiogram(N3_DB_HL))
    ask(agent, msg.SetStrengths(ALPHA, BETA))
    first = [ask(agent, msg.Stream(hop)).samples for hop in hops]
    ask(agent, msg.Reset())  # forgets the stream and the settings (audiogram back to normal hearing, strengths 1)
    ask(agent, msg.SetAudiogram(N3_DB_HL))
    ask(agent, msg.SetStrengths(ALPHA, BETA))
    second = [ask(agent, msg.Stream(hop)).samples for hop in hops]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))
    host = host_stream_processor(model_dir, ListenerSettings(N3_DB_HL, ALPHA, BETA))
    expected = host.process_signal(hops.reshape(-1).astype(np.float32) / 32768.0)
    expected = np.clip(np.round(expected * 32768.0), -32768, 32767).astype(np.int16)
    assert first[0].dtype == np.int16
    np.testing.assert_array_equal(np.concatenate(first), expected)


def test_wrong_hop_size_is_out_of_range(model_dir):
    agent = in_process_agent(model_dir)
    reply = ask(agent, msg.Stream(np.zeros(100, np.float32)))
    assert isinstance(reply, msg.ErrorMessage) and reply.code == msg.ErrorCode.OUT_OF_RANGE
    assert "100 samples" in reply.message and "exactly 64 samples" in reply.message
    assert isinstance(ask(agent, msg.Stream(np.zeros(64, np.float32))), msg.StreamResult)


def test_a_manifest_of_another_model_turns_stream_off_with_the_reason(model_dir, tmp_path):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["networks"][0]["sha256"]["int8_tflite"] = "ab" * 32  # describes some other model
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    factory = manifest_stream_factory(tmp_path / "manifest.json", LiteRTRuntime)
    agent = DeviceAgent(AgentConfig(), LiteRTRuntime(model_path(model_dir)), stream_processor_factory=factory)
    assert msg.Capability.STREAM not in agent.capabilities
    reply = ask(agent, msg.Stream(np.zeros(64, np.float32)))
    assert reply.code == msg.ErrorCode.UNSUPPORTED and "is not the one the manifest" in reply.message


def test_stream_without_a_manifest_is_unsupported_over_the_link(model_dir, tmp_path):
    lone_model = tmp_path / "model.tflite"  # the same model, no manifest.json beside it
    lone_model.write_bytes(model_path(model_dir).read_bytes())
    with DeviceClient(f"emulate://rpi?runtime=litert&model={lone_model}") as client:
        assert msg.Capability.STREAM not in client.info().capabilities
        with pytest.raises(DeviceErrorReply, match="no stream pipeline"):
            client.stream(np.zeros(64, np.float32))


def test_agent_with_a_stream_pipeline_imports_no_torch_or_tensorflow(model_dir):
    """Issue 6: the agent's whole STREAM path (manifest, LiveProcessor, LiteRT) runs without torch/tensorflow."""
    code = ("import sys, numpy as np; from hearmask.firmware_bridge.agent import build_parser, build_agent; "
            "from hearmask.firmware_bridge.plugins import ListenerSettings; "
            f"agent = build_agent(build_parser().parse_args(['--port', 'loop://', '--model', {str(model_path(model_dir))!r}])); "
            "out = agent.stream_processor.process_hop(np.zeros(64, np.float32), ListenerSettings()); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras')); "
            "print(bad, out.shape); sys.exit(bool(bad) or out.shape != (64,))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
