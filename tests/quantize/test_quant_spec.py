"""int8 quantization parameters: round trip within half a step, saturation, the fixed TFLite conventions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.quantize.quant_spec import AUDIOGRAM_INPUT, SIGMOID_OUTPUT, STATE, TANH_OUTPUT, QuantSpec

specs = st.builds(QuantSpec, st.floats(1e-5, 10.0), st.integers(-128, 127))


@settings(max_examples=200, deadline=None)
@given(specs, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_round_trip_error_is_at_most_half_a_step_inside_the_range(spec, positions):
    values = spec.min_value + np.asarray(positions) * (spec.max_value - spec.min_value)
    restored = spec.dequantize(spec.quantize(values))
    # Half a step, plus float32 rounding of the dequantized value (relative 2^-24).
    assert np.all(np.abs(restored - values) <= 0.5 * spec.scale * (1 + 1e-5) + 1e-6 * np.abs(values))


@settings(max_examples=100, deadline=None)
@given(specs, st.floats(1.0, 1e6))
def test_values_outside_the_range_saturate(spec, excess):
    codes = spec.quantize(np.array([spec.min_value - excess * spec.scale, spec.max_value + excess * spec.scale]))
    assert codes.tolist() == [-128, 127]


def test_fixed_parameters_are_tflites_and_the_state_shares_tanh():
    assert (SIGMOID_OUTPUT.scale, SIGMOID_OUTPUT.zero_point) == (1 / 256, -128)
    assert (SIGMOID_OUTPUT.min_value, SIGMOID_OUTPUT.max_value) == (0.0, 255 / 256)
    assert (TANH_OUTPUT.scale, TANH_OUTPUT.zero_point) == (1 / 128, 0)
    assert STATE == TANH_OUTPUT
    # One LSB per dB HL: every whole-dB audiogram from -10 to 120 dB HL is exact.
    thresholds_db_hl = np.arange(-10, 121)
    codes = AUDIOGRAM_INPUT.quantize(thresholds_db_hl / 100.0)
    assert codes.astype(int).tolist() == thresholds_db_hl.tolist()


def test_zero_is_exact_and_ties_round_away_from_zero():
    spec = QuantSpec(0.5, 3)
    assert spec.quantize(np.array([0.0]))[0] == 3
    assert spec.quantize(np.array([0.25, -0.25])).tolist() == [4, 2]  # ±half a step from 0


@pytest.mark.parametrize("scale, zero_point, message", [(0.0, 0, "scale"), (float("nan"), 0, "scale"),
                                                        (0.1, 128, "zero point"), (0.1, -129, "zero point")])
def test_invalid_parameters_are_rejected(scale, zero_point, message):
    with pytest.raises(HearmaskError, match=message):
        QuantSpec(scale, zero_point)


def test_matches_uses_a_relative_tolerance_and_the_zero_point():
    spec = QuantSpec(0.01, -3)
    assert spec.matches(QuantSpec(0.01 * (1 + 5e-7), -3))
    assert not spec.matches(QuantSpec(0.01 * (1 + 5e-6), -3))
    assert not spec.matches(QuantSpec(0.01, -2))
