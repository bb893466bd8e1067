"""The TFLite/TFLM integer arithmetic emulation: gemmlowp primitives, requantization roundings, LOGISTIC/TANH."""

import math
from fractions import Fraction

import numpy as np
import pytest

from hearmask.quantize import int8_reference as ref


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def _round_half_away(value: Fraction) -> int:
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def test_doubling_high_multiply_rounds_half_up_and_saturates():
    rng = np.random.default_rng(0)
    a = rng.integers(-(2**31), 2**31, 500)
    b = rng.integers(-(2**31), 2**31, 500)
    expected = [_round_half_up(Fraction(int(x) * int(y), 2**31)) for x, y in zip(a, b)]
    assert ref.doubling_high_multiply(a, b).tolist() == expected
    # Exact halves: +0.5 -> 1, -0.5 -> 0, -1.5 -> -1 (half up, as VQRDMULH).
    assert ref.doubling_high_multiply([2**30, -(2**30), -3 * 2**30], 1).tolist() == [1, 0, -1]
    assert int(ref.doubling_high_multiply(ref.INT32_MIN, ref.INT32_MIN)) == ref.INT32_MAX


def test_rounding_divide_by_pot_rounds_half_away_from_zero():
    values = np.arange(-70, 71)
    for exponent in (1, 2, 5):
        expected = [_round_half_away(Fraction(int(v), 2**exponent)) for v in values]
        assert ref.rounding_divide_by_pot(values, exponent).tolist() == expected


def test_single_rounding_is_exact_and_double_rounding_differs_by_one_lsb_near_halves():
    rng = np.random.default_rng(1)
    accumulators = rng.integers(-60000, 60000, 2000)
    for scales in ((0.0037, 1.0, 1.0), (0.021, 0.5, 0.05), (0.93, 0.25, 0.25), (1.7e-4, 0.125, 0.125)):
        multiplier, shift = ref.quantize_multiplier(ref.requantization_multiplier(*scales))
        stored = Fraction(multiplier, 2 ** (31 - shift))  # the multiplier the kernel really uses
        single = ref.requantize(accumulators, scales, "single")
        assert single.tolist() == [_round_half_up(int(x) * stored) for x in accumulators]
        assert np.max(np.abs(ref.requantize(accumulators, scales, "double") - single)) <= 1
    # 341 · 1.5/1024 = 0.4995: the high multiply rounds 255.75 up to 256 = exactly half of 512,
    # which the rounding shift then rounds away from zero: 1 instead of 0.
    assert ref.requantize(np.array([341]), (1.5, 1.0, 1024.0), "single").tolist() == [0]
    assert ref.requantize(np.array([341]), (1.5, 1.0, 1024.0), "double").tolist() == [1]
    with pytest.raises(ValueError, match="rounding 'triple'; accepted: double, single, fp32"):
        ref.requantize(np.array([1]), (0.5, 1.0, 1.0), "triple")


def test_fp32_rounding_rounds_exact_halves_to_even_and_uses_the_float32_scale():
    """XNNPACK's requantization: float32 product, ties to even (single: half up)."""
    halves = np.array([5, -5, 7, -7, 9])  # · 0.5 = 2.5, -2.5, 3.5, -3.5, 4.5
    assert ref.requantize(halves, (1.0, 1.0, 2.0), "fp32").tolist() == [2, -2, 4, -4, 4]
    assert ref.requantize(halves, (1.0, 1.0, 2.0), "single").tolist() == [3, -2, 4, -3, 5]
    # Scales whose float32 evaluation (s_a·s_b rounded to float32, then / s_out) gives a scale below the
    # exact one: an accumulator whose exact product lies just above a half rounds down in fp32 only.
    scales = (0.0123, 0.0456, 0.654)
    exact = Fraction(float(np.float32(0.0123))) * Fraction(float(np.float32(0.0456))) / Fraction(float(np.float32(0.654)))
    float32_scale = ref.fp32_requantization_scale(*scales)
    assert float32_scale == np.float32(np.float32(np.float32(0.0123) * np.float32(0.0456)) / np.float32(0.654))
    rng = np.random.default_rng(2)
    accumulators = rng.integers(-(2**20), 2**20, 20000)
    fp32 = ref.requantize(accumulators, scales, "fp32")
    single = ref.requantize(accumulators, scales, "single")
    assert np.max(np.abs(fp32 - single)) <= 1
    # Exact products 80.5000025 and 161.4999943 both land on a half in float32, which goes to even:
    # the one-LSB differences to ``single`` that LiteRT's default kernels showed on a trained model.
    assert ref.requantize(np.array([93865, 188313]), scales, "fp32").tolist() == [80, 162]
    assert ref.requantize(np.array([93865, 188313]), scales, "single").tolist() == [81, 161]
    assert all(abs(int(x) * exact - int(f)) <= Fraction(1, 2) + Fraction(1, 10**4) for x, f in zip(accumulators, fp32))


# One gate ADD of the session-6 model: input scales, output scale (float32 in the .tflite).
GATE_SUM_SCALES = (0.06974532455205917, 0.065192312002182, 0.10101815313100815)


def _exact_sum(first, second, scales, subtract=False) -> Fraction:
    first_scale, second_scale, output_scale = (Fraction(float(np.float32(scale))) for scale in scales)
    return (first * first_scale + (-1 if subtract else 1) * second * second_scale) / output_scale


def test_add_and_sub_arithmetics_round_the_exact_sum_except_within_a_hair_of_a_half():
    """TFLite/TFLM (left shift 20, per-input multipliers) and XNNPACK (21-bit multipliers) compute ADD/SUB in
    integers: the exactly rounded sum, except where it lies within about 1e-5 LSB of a half."""
    rng = np.random.default_rng(3)
    first, second = rng.integers(-255, 256, 3000), rng.integers(-255, 256, 3000)
    for scales in ((0.0575, 0.0534, 0.0730), (0.0078125, 0.0127, 0.0078125), (0.0078125, 0.0078125, 0.0129),
                   (0.071, 0.0324, 0.0717), GATE_SUM_SCALES):
        for subtract in (False, True):
            exact = [_exact_sum(int(a), int(b), scales, subtract) for a, b in zip(first, second)]
            clear = np.array([abs(value - math.floor(value) - Fraction(1, 2)) > Fraction(1, 10**5) for value in exact])
            expected = np.array([_round_half_away(value) for value in exact])
            for rounding in ref.ADD_ROUNDINGS:
                actual = ref.add_requantize(first, second, scales, rounding, subtract)
                assert np.max(np.abs(actual - expected)) <= 1, (scales, subtract, rounding)
                np.testing.assert_array_equal(actual[clear], expected[clear], err_msg=f"{scales} {rounding}")
    with pytest.raises(ValueError, match="rounding 'fp32'; accepted: double, single, xnnpack"):
        ref.add_requantize(np.array([1]), np.array([1]), GATE_SUM_SCALES, "fp32")


def test_add_rounds_a_sum_just_above_a_half_up_where_float32_lands_on_the_half():
    """The session-6 model's case: -4·s_a + 19·s_b is 9.5000017 output LSB. Every kernel gives 10; Brevitas's
    float32 (x/s_out + 153 for the unsigned zero point) is exactly 162.5, which ties to even: 9."""
    value = _exact_sum(-4, 19, GATE_SUM_SCALES)
    assert Fraction(19, 2) < value < Fraction(19, 2) + Fraction(2, 10**6)
    for rounding in ref.ADD_ROUNDINGS:
        first, second = np.array([-4, 4]), np.array([19, -19])
        assert ref.add_requantize(first, second, GATE_SUM_SCALES, rounding).tolist() == [10, -10]
        assert ref.add_requantize(first, -second, GATE_SUM_SCALES, rounding, subtract=True).tolist() == [10, -10]
    first_scale, second_scale, output_scale = (np.float32(scale) for scale in GATE_SUM_SCALES)
    float_sum = np.float32(np.float32(-4) * first_scale) + np.float32(np.float32(19) * second_scale)
    assert np.float32(float_sum / output_scale) + np.float32(153) == np.float32(162.5)


def test_fixed_point_logistic_and_tanh_are_accurate_to_about_1e_7():
    q4 = np.linspace(-15.9, 15.9, 4001)
    raw = np.round(q4 * 2**27).astype(np.int64)
    values = raw / 2**27
    assert np.max(np.abs(ref.fixed_logistic(raw) / 2**31 - 1 / (1 + np.exp(-values)))) < 2e-7
    assert np.max(np.abs(ref.fixed_tanh(raw) / 2**31 - np.tanh(values))) < 2e-7
    assert int(ref.fixed_logistic(np.array([0]))[0]) == 2**30 and int(ref.fixed_tanh(np.array([0]))[0]) == 0


@pytest.mark.parametrize("kind", ["logistic", "tanh"])
def test_reference_tables_equal_the_float_rounded_tables_at_model_scales(kind):
    """The finding the validation report relies on: LOGISTIC/TANH are not where the runtimes differ."""
    table_of = ref.logistic_table if kind == "logistic" else ref.tanh_table
    for scale in np.geomspace(0.002, 0.12, 25):
        for zero_point in (-128, -40, 0, 17, 127):
            table = table_of(float(scale), zero_point)
            assert table.dtype == np.int8 and table.shape == (256,)
            assert np.all(np.diff(table.astype(int)) >= 0)  # monotone
            assert ref.differing_codes(kind, float(scale), zero_point) == {}, (scale, zero_point)


def test_inputs_beyond_the_radius_saturate():
    multiplier, shift, radius = ref.input_rescale(0.1)
    fraction, exponent = math.frexp(float(np.float32(0.1)) * 2**27)  # the .tflite stores float32 scales
    assert (multiplier, shift) == (round(fraction * 2**31), exponent)
    assert radius == math.floor(15 * 2**27 / 2**shift) == 120  # saturation from 15·fraction = 12.0 on
    assert 7.5 <= radius * 0.1 < 15
    table = ref.logistic_table(0.1, 0)
    assert table[0] == -128 and table[-1] == 127  # -12.8 and 12.7: beyond the radius, saturated
