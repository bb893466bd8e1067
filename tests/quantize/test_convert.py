"""Conversion: fully int8 op set, every Brevitas scale honoured, float .tflite and ONNX equal to torch."""

import numpy as np
import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.quantize.convert import export_onnx
from hearmask.quantize.quant_spec import STATE
from hearmask.quantize.runtimes import LiteRtRuntime
from hearmask.quantize.scale_check import check_scales_honoured, scale_report
from hearmask.quantize.tflite_inspect import check_int8_target, inspect_tflite

GRAPH_OPS = {"FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "CONCATENATION", "STRIDED_SLICE"}


def test_int8_model_has_only_int8_ops_and_int32_biases(int8_model):
    summary = inspect_tflite(int8_model)
    check_int8_target(summary)
    counts = summary.op_counts
    assert set(counts) <= GRAPH_OPS  # in particular no QUANTIZE / DEQUANTIZE inside the graph
    assert counts["FULLY_CONNECTED"] == 10 and counts["LOGISTIC"] == 4 and counts["TANH"] == 3
    tensors = summary.tensors
    for op in summary.ops:
        if op.name != "FULLY_CONNECTED":
            continue
        weight = tensors[op.inputs[1]]
        assert weight.dtype == "int8" and weight.is_constant and not weight.per_channel
        assert weight.quantization.zero_point == 0
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            assert tensors[op.inputs[2]].dtype == "int32"
    assert all(t.dtype in ("int8", "int32") for t in tensors)
    assert {entry.name for entry in summary.inputs} == {"features", "audiogram", "state"}
    assert {entry.name for entry in summary.outputs} == {"nr_fraction", "hlc_fraction", "new_state"}


def test_every_activation_scale_is_brevitas_scale(int8_model, tiny_networks):
    specs = tiny_networks[1].activation_specs()
    summary = inspect_tflite(int8_model)
    report = check_scales_honoured(summary, specs)  # relative 1e-6, same zero points
    assert all(report[name]["match"] for name in specs)
    # Every int8 activation tensor is either a quant point or a slice/concatenation of one.
    activations = [t for t in summary.tensors if not t.is_constant]
    assert len(report) == len(activations)


def test_scale_check_catches_a_different_range(int8_model, tiny_networks):
    specs = dict(tiny_networks[1].activation_specs())
    original = specs["recurrent_layers.1.gate_sum"]
    specs["recurrent_layers.1.gate_sum"] = type(original)(original.scale * 1.001, original.zero_point)
    assert not scale_report(inspect_tflite(int8_model), specs)["recurrent_layers.1.gate_sum"]["match"]
    with pytest.raises(HearmaskError, match="recurrent_layers.1.gate_sum"):
        check_scales_honoured(inspect_tflite(int8_model), specs)


def test_state_output_is_quantized_as_the_state_input(int8_model):
    summary = inspect_tflite(int8_model)
    state_in = summary.input("state").tensor
    state_out = summary.output("new_state").tensor
    assert state_in.shape == state_out.shape == (1, 32)
    assert state_in.quantization == state_out.quantization
    assert state_in.quantization.matches(STATE)


def _float_reference(network, features, audiogram, hops):
    state = network.initial_state(1)
    outputs = []
    with torch.no_grad():
        for hop in range(hops):
            nr_fraction, hlc_fraction, state = network.step_fractions(
                torch.as_tensor(features[hop : hop + 1]), torch.as_tensor(audiogram), state)
            outputs.append((nr_fraction.numpy(), hlc_fraction.numpy(), state.numpy()))
    return outputs


def test_float_tflite_equals_the_float_step(float_model, tiny_networks, helpers):
    network = tiny_networks[0]
    features = helpers.feature_sequence(20, 32, 21)
    expected = _float_reference(network, features, helpers.audiogram, 20)
    runtime = LiteRtRuntime(float_model, reference_kernels=True)
    assert {entry.tensor.dtype for entry in (*runtime.inputs, *runtime.outputs)} == {"float32"}
    state = np.zeros((1, 32), np.float32)
    for hop in range(20):
        outputs = runtime.step({"features": features[hop : hop + 1], "audiogram": helpers.audiogram, "state": state})
        state = outputs["new_state"]
        for name, value in zip(("nr_fraction", "hlc_fraction", "new_state"), expected[hop]):
            assert np.allclose(outputs[name], value, atol=2e-5), name


def test_onnx_export_equals_the_float_step_with_a_batch_of_two(tiny_networks, helpers):
    import onnxruntime

    network = tiny_networks[0]
    session = onnxruntime.InferenceSession(export_onnx(network), providers=["CPUExecutionProvider"])
    features = np.stack([helpers.feature_sequence(1, 32, seed)[0] for seed in (1, 2)])
    audiogram = np.repeat(helpers.audiogram, 2, axis=0)
    state = np.tanh(np.random.default_rng(0).standard_normal((2, 32))).astype(np.float32)
    nr_fraction, hlc_fraction, new_state = session.run(
        ["nr_fraction", "hlc_fraction", "new_state"], {"features": features, "audiogram": audiogram, "state": state})
    with torch.no_grad():
        nr_db, hlc_db, expected_state = network.step(torch.as_tensor(features), torch.as_tensor(audiogram),
                                                     torch.as_tensor(state))
    assert np.allclose(nr_fraction * network.config.nr_floor_db, nr_db.numpy(), atol=1e-4)
    assert np.allclose(new_state, expected_state.numpy(), atol=1e-5)
    assert hlc_fraction.shape == (2, 129)
