"""The LiteRT runtime on a tiny int8 .tflite made in a fixture, in-process and behind the emulated agent."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.errors import BridgeError, DeviceErrorReply, TensorMismatch
from hearmask.firmware_bridge.messages import ErrorCode
from hearmask.firmware_bridge.runtime import LiteRTRuntime


def step_inputs(rng) -> dict[str, np.ndarray]:
    return {"features": rng.integers(-128, 128, (1, 8), dtype=np.int8)}


def test_specs_come_from_the_signature(tiny_tflite):
    runtime = LiteRTRuntime(tiny_tflite)
    assert [(s.name, s.shape, s.dtype) for s in runtime.input_specs] == [
        ("features", (1, 8), np.dtype(np.int8)), ("state_in", (1, 8), np.dtype(np.int8))]
    assert [s.name for s in runtime.output_specs] == ["mask", "state_out"]
    assert all(s.scale > 0 for s in runtime.input_specs + runtime.output_specs)
    assert runtime.model_sha256 == hashlib.sha256(tiny_tflite.read_bytes()).digest()
    assert runtime.name.startswith("litert 2.") and "builtin kernels" in runtime.name


@pytest.mark.parametrize("reference_kernels", [False, True])
def test_run_equals_the_interpreter_bit_for_bit(tiny_tflite, reference_kernels):
    runtime = LiteRTRuntime(tiny_tflite, reference_kernels=reference_kernels)
    interpreter = Interpreter(model_path=str(tiny_tflite))
    interpreter.allocate_tensors()
    signature = interpreter.get_signature_runner()
    rng = np.random.default_rng(0)
    for _ in range(5):
        inputs = {"features": rng.integers(-128, 128, (1, 8), dtype=np.int8),
                  "state_in": rng.integers(-128, 128, (1, 8), dtype=np.int8)}
        result = runtime.run(inputs)
        expected = signature(**inputs)
        assert list(result.outputs) == ["mask", "state_out"]
        for name in ("mask", "state_out"):
            np.testing.assert_array_equal(result.outputs[name], expected[name])
        assert result.device_time_ns > 0


def test_match_inputs_rejects_wrong_shapes(tiny_tflite):
    runtime = LiteRTRuntime(tiny_tflite)
    with pytest.raises(TensorMismatch, match=r"input 'state_in' must be \(1, 8\) int8, got \(8,\) int8"):
        runtime.match_inputs([("features", np.zeros((1, 8), np.int8)), ("state_in", np.zeros(8, np.int8))])


def test_missing_or_broken_model_is_a_clear_error(tmp_path):
    with pytest.raises(BridgeError, match="does not exist"):
        LiteRTRuntime(tmp_path / "none.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(BridgeError, match="LiteRT cannot load"):
        LiteRTRuntime(junk)


def test_emulated_agent_matches_host_litert_over_a_sequence_with_state_feedback(tiny_tflite):
    host = LiteRTRuntime(tiny_tflite)
    url = f"emulate://rpi?runtime=litert&model={tiny_tflite}"
    rng = np.random.default_rng(1)
    with DeviceClient(url, timeout_s=5.0, expected_model_sha256=host.model_sha256) as client:
        assert client.device_info.runtime_name == host.name
        device_state = host_state = np.zeros((1, 8), np.int8)
        for _ in range(30):
            features = step_inputs(rng)["features"]
            device = client.infer({"features": features, "state_in": device_state})
            expected = host.run({"features": features, "state_in": host_state}).outputs
            np.testing.assert_array_equal(device.outputs["mask"], expected["mask"])
            device_state, host_state = device.outputs["state_out"], expected["state_out"]
        bench = client.bench(50, warmup=5)
        assert 0 < bench.min <= bench.median <= bench.max


def test_load_model_over_the_link_into_an_empty_agent(tiny_tflite):
    model = tiny_tflite.read_bytes()
    with DeviceClient("emulate://rpi?runtime=litert", timeout_s=5.0) as client:
        assert not client.device_info.has_model
        with pytest.raises(DeviceErrorReply, match="NO_MODEL"):
            client.infer([np.zeros((1, 8), np.int8)] * 2)
        with pytest.raises(DeviceErrorReply, match="did not load") as caught:
            client.load_model(b"\x00junk" * 100)
        assert caught.value.code == ErrorCode.STORAGE
        info = client.load_model(model, chunk_bytes=700)
        assert info.model_sha256 == hashlib.sha256(model).digest() and info.runtime_name.startswith("litert")
        reply = client.infer({"features": np.ones((1, 8), np.int8), "state_in": np.zeros((1, 8), np.int8)})
        expected = LiteRTRuntime(tiny_tflite).run({"features": np.ones((1, 8), np.int8),
                                                   "state_in": np.zeros((1, 8), np.int8)}).outputs
        np.testing.assert_array_equal(reply.outputs["mask"], expected["mask"])
