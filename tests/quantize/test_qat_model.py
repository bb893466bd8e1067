"""The Brevitas QAT form of the network: fixed TFLite scales, state feedback, step = sequence, float parity."""

import numpy as np
import pytest
import torch
from brevitas.graph.calibrate import calibration_mode
from brevitas.nn import QuantIdentity

from hearmask.model.network import MaskNet
from hearmask.quantize.qat_model import QuantMaskNet, proxy_spec
from hearmask.quantize.quant_spec import AUDIOGRAM_INPUT, SIGMOID_OUTPUT, STATE, TANH_OUTPUT, QuantSpec
from hearmask.quantize.quantizers import CalibratedActQuant


def test_fixed_quant_points_have_tflites_scales(tiny_networks):
    specs = tiny_networks[1].activation_specs()
    layers = range(tiny_networks[1].config.num_layers)
    assert specs["audiogram_input"].matches(AUDIOGRAM_INPUT)
    for name in ["state_input", "encoder_activation", *[f"recurrent_layers.{i}.new_state" for i in layers],
                 *[f"recurrent_layers.{i}.candidate_activation" for i in layers]]:
        assert specs[name].matches(TANH_OUTPUT), name
    for name in ["nr_activation", "hlc_activation", *[f"recurrent_layers.{i}.gate_activation" for i in layers]]:
        assert specs[name].matches(SIGMOID_OUTPUT), name


def test_every_op_boundary_is_a_quant_point(tiny_networks):
    specs = tiny_networks[1].activation_specs()
    per_layer = {"input_linear", "hidden_linear", "gate_sum", "gate_activation", "reset_product", "candidate_sum",
                 "candidate_activation", "state_difference", "update_product", "new_state"}
    expected = {"features_input", "audiogram_input", "state_input", "encoder", "film", "film_product", "film_sum",
                "encoder_activation", "nr_head", "hlc_head", "nr_band_to_bin", "hlc_band_to_bin", "nr_activation",
                "hlc_activation"} | {f"recurrent_layers.{i}.{name}" for i in range(2) for name in per_layer}
    assert set(specs) == expected


def test_calibrated_range_covers_tensors_of_one_sign():
    """Brevitas's percentile interval alone gives an all-negative tensor a range without 0."""
    quantizer = QuantIdentity(act_quant=CalibratedActQuant, return_quant_tensor=True)
    negative = -3.1 - 0.1 * torch.rand(400)
    with torch.no_grad(), calibration_mode(quantizer):
        quantizer(negative)
    spec = proxy_spec(quantizer.eval().act_quant)
    assert spec.min_value == pytest.approx(-3.2, abs=0.02) and spec.max_value >= 0
    assert torch.max(torch.abs(quantizer(negative).value - negative)) <= spec.scale / 2 + 1e-6


def test_sequence_form_equals_the_step_form_with_state_feedback(tiny_networks, helpers):
    network = tiny_networks[1]
    features = torch.as_tensor(np.stack([helpers.feature_sequence(15, 32, seed) for seed in (5, 6)]))
    audiogram = torch.as_tensor(np.repeat(helpers.audiogram, 2, axis=0))
    with torch.no_grad():
        nr_sequence, hlc_sequence, states = network.sequence_fractions(features, audiogram)
        nr_db_sequence, hlc_db_sequence = network(features, audiogram)
        state = network.initial_state(2)
        for frame in range(features.shape[1]):
            nr_fraction, hlc_fraction, state = network.step_fractions(features[:, frame], audiogram, state)
            assert torch.allclose(nr_fraction, nr_sequence[:, frame], atol=1e-6)
            assert torch.allclose(hlc_fraction, hlc_sequence[:, frame], atol=1e-6)
            assert torch.allclose(state, states[:, frame], atol=1e-6)
    nr_db, hlc_db = network.fractions_to_db(nr_sequence, hlc_sequence, audiogram)
    assert torch.allclose(nr_db_sequence, nr_db) and torch.allclose(hlc_db_sequence, hlc_db)


def test_output_state_is_on_the_input_state_grid(tiny_networks, helpers):
    network = tiny_networks[1]
    features = torch.as_tensor(helpers.feature_sequence(20, 32, 9))
    audiogram = torch.as_tensor(helpers.audiogram)
    state = network.initial_state(1)
    with torch.no_grad():
        for frame in range(20):
            nr_fraction, hlc_fraction, state = network.step_fractions(features[frame : frame + 1], audiogram, state)
            codes = STATE.quantize(state.numpy())
            assert np.array_equal(STATE.dequantize(codes), state.numpy())  # feeding it back changes nothing
            for fraction in (nr_fraction, hlc_fraction):
                assert np.array_equal(SIGMOID_OUTPUT.dequantize(SIGMOID_OUTPUT.quantize(fraction.numpy())),
                                      fraction.numpy())
    assert np.abs(state.numpy()).max() > 0.05  # the state did move


def test_fake_quant_stays_close_to_the_float_network(tiny_networks, helpers):
    float_network, network = tiny_networks
    features = torch.as_tensor(helpers.feature_sequence(60, 32, 11))[None]
    audiogram = torch.as_tensor(helpers.audiogram)
    with torch.no_grad():
        float_nr, float_hlc = float_network(features, audiogram)
        nr_db, hlc_db = network(features, audiogram)
    # One LSB of the sigmoid output is 25/256 dB (NR) and 60/256 dB (HLC).
    assert torch.mean(torch.abs(nr_db - float_nr)) < 0.3
    assert torch.mean(torch.abs(hlc_db - float_hlc)) < 0.6
    assert torch.std(float_hlc) > 0.5  # the outputs vary, so the comparison means something


@pytest.mark.parametrize("conditioning", ["film", "concat"])
def test_with_quantization_off_the_qat_form_is_the_float_network(conditioning, helpers):
    torch.manual_seed(3)
    float_network = MaskNet(helpers.tiny_config(conditioning=conditioning)).eval()
    network = QuantMaskNet(float_network)
    assert network.count_parameters() == float_network.count_parameters()
    assert network.macs_per_frame() == float_network.macs_per_frame()
    features = torch.as_tensor(helpers.feature_sequence(12, 32, 2))[None]
    audiogram = torch.as_tensor(helpers.audiogram)
    with torch.no_grad():
        expected = float_network(features, audiogram)
        with calibration_mode(network):  # quantizers off (they only record statistics)
            actual = network(features, audiogram)
    for expected_db, actual_db in zip(expected, actual):
        assert torch.allclose(expected_db, actual_db, atol=1e-4)


def test_quantized_linears_follow_tflites_weight_and_bias_rules(tiny_networks):
    float_network, network = tiny_networks
    linears = network.quantized_linears()
    assert len(linears) == 10
    for name, linear in linears.items():
        assert np.abs(linear.weight_int8.astype(int)).max() <= 127, name  # symmetric, zero point 0
        if linear.bias_int32 is not None:
            assert linear.bias_scale == pytest.approx(linear.input.scale * linear.weight_scale, rel=1e-6)
    head = linears["nr_head"]
    assert np.allclose(head.bias, float_network.nr_head.bias.detach().numpy(), atol=head.bias_scale / 2 + 1e-9)
    assert np.allclose(head.weight, float_network.nr_head.weight.detach().numpy(), atol=head.weight_scale / 2 + 1e-7)
    # The interpolation matrix is fixed: quantized at 1/127 (its largest entry is 1) and has no bias.
    interpolation = linears["nr_band_to_bin"]
    assert interpolation.bias_int32 is None and interpolation.weight_scale == pytest.approx(1 / 127)
    assert np.allclose(interpolation.weight, float_network.band_to_bin.numpy(), atol=0.5 / 127 + 1e-7)


def test_integer_add_follows_the_kernels_where_brevitas_rounds_a_near_half_the_other_way():
    """An int8 ADD/SUB whose exact sum is 9.5000017 output LSB (the session-6 model's recurrent_layers.1.gate_sum,
    36 of 128 000 values): Brevitas's float32 gives 9, the golden in any runtime's arithmetic 10 as the kernels."""
    from brevitas.quant_tensor import IntQuantTensor

    from hearmask.quantize.qat_model import _sum

    scales = (0.06974532455205917, 0.065192312002182, 0.10101815313100815)
    output_scale = float(np.float32(scales[2]))
    quantizer = QuantIdentity(act_quant=CalibratedActQuant, return_quant_tensor=True)
    with torch.no_grad(), calibration_mode(quantizer):
        quantizer(torch.linspace(-2.0, 20.0, 50))
    state = quantizer.state_dict()
    prefix = "act_quant.fused_activation_quant_proxy.tensor_quant."
    state[prefix + "scaling_impl.value"] = torch.tensor(output_scale * 255.0)  # scale = value / 255
    state[prefix + "zero_point_impl.value"] = torch.tensor(-153 * output_scale)  # unsigned 153 = int8 25
    quantizer.load_state_dict(state)
    quantizer.eval()
    assert proxy_spec(quantizer.act_quant) == QuantSpec(output_scale, 25)

    def quantized(codes, scale):
        scale = torch.tensor(float(np.float32(scale)))
        return IntQuantTensor(torch.tensor(codes, dtype=torch.float32) * scale, scale, torch.tensor(0.0),
                              torch.tensor(8.0), True, False)

    first, second = quantized([-4.0, 4.0, 1.0], scales[0]), quantized([19.0, -19.0, 2.0], scales[1])
    with torch.no_grad():
        as_trained = _sum(quantizer, first, second, None)
        assert torch.round(as_trained.value / as_trained.scale).tolist() == [9.0, -9.0, 2.0]
        for rounding in ("double", "single", "xnnpack"):
            golden = _sum(quantizer, first, second, rounding)
            assert torch.round(golden.value / golden.scale).tolist() == [10.0, -10.0, 2.0], rounding
            negated = _sum(quantizer, first, quantized([-19.0, 19.0, -2.0], scales[1]), rounding, subtract=True)
            assert torch.round(negated.value / negated.scale).tolist() == [10.0, -10.0, 2.0], rounding


def test_under_integer_requantization_model_inputs_get_the_runtimes_codes(tiny_networks):
    """Features a hair above a half-LSB: Brevitas (float32, ties to even after adding the zero point) picks
    the lower code for some; the golden takes what the runtimes are given (QuantSpec.quantize)."""
    from hearmask.quantize.qat_model import integer_requantization
    from hearmask.quantize.validate_compare import RUNTIME_ARITHMETIC

    network = tiny_networks[1]
    spec = proxy_spec(network.features_input.act_quant)
    halves = np.arange(-120, 120) + 0.5 - spec.zero_point
    features = torch.as_tensor((halves * (1 + 4e-7) * spec.scale).astype(np.float32)[None])
    expected = spec.quantize(features.numpy()).astype(np.int64)

    def codes():
        with torch.no_grad():
            quantized = network._model_input(network.features_input, features)
        return torch.round(quantized.value / quantized.scale).numpy().astype(np.int64) + spec.zero_point

    assert np.count_nonzero(codes() != expected) > 0  # Brevitas's float32 rounding, as trained
    with integer_requantization(network, RUNTIME_ARITHMETIC["tflm"]):
        np.testing.assert_array_equal(codes(), expected)


def test_integer_requantization_reproduces_each_runtime_bit_for_bit(tiny_networks, int8_model, helpers):
    """Fake-quant with FULLY_CONNECTED / MUL / ADD / SUB computed in a runtime's arithmetic equals that runtime's int8
    outputs bit for bit, free-running over a whole utterance; the float-rounded (trained) form does not
    equal TFLM, and the context restores the trained form on exit."""
    from hearmask.quantize.qat_model import integer_requantization
    from hearmask.quantize.runtimes import LiteRtRuntime, TflmRuntime
    from hearmask.quantize.validate_compare import RUNTIME_ARITHMETIC, run_fake_quant, run_runtime

    network = tiny_networks[1]
    features, audiogram = helpers.feature_sequence(120, 32, 11), helpers.audiogram[0]
    runtimes = {"tflm": TflmRuntime(int8_model), "litert_ref": LiteRtRuntime(int8_model, reference_kernels=True),
                "litert": LiteRtRuntime(int8_model)}
    as_trained = run_fake_quant(network, features, audiogram)
    for name, runtime in runtimes.items():
        golden = run_fake_quant(network, features, audiogram, RUNTIME_ARITHMETIC[name])
        actual = run_runtime(runtime, features, audiogram)
        for output in ("nr_fraction", "hlc_fraction", "new_state"):
            np.testing.assert_array_equal(actual[output], golden[output], err_msg=f"{name} {output}")
    tflm = run_runtime(runtimes["tflm"], features, audiogram)
    assert any(not np.array_equal(tflm[output], as_trained[output]) for output in ("nr_fraction", "new_state"))
    np.testing.assert_array_equal(run_fake_quant(network, features, audiogram)["new_state"], as_trained["new_state"])
    with pytest.raises(ValueError, match="accepted: a rounding in"):
        with integer_requantization(network, {"FULLY_CONNECTED": "twice", "MUL": "double"}):
            pass
    assert network.requantization is None and all(cell.requantization is None for cell in network.recurrent_layers)
