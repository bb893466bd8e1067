"""256-entry int8 lookup tables for LOGISTIC and TANH, computed at generation time.

An int8 LOGISTIC/TANH output depends only on the input code, so the generated model can
look it up instead of evaluating the fixed-point function per element (about half of
the tiny model's run time on a Cortex-M55 went to LOGISTIC). Each table entry is the
exact integer result of the TFLM reference kernel: this module evaluates the same
gemmlowp-style Q4.27 fixed-point arithmetic as ``c/hm_kernels.c`` (``hm_logistic`` /
``hm_tanh``) with Python integers, wrapping to int32 where C wraps. The tests compare
the two for every input code over many scales, and both against the TFLM interpreter.
"""

from __future__ import annotations

import numpy as np

from hearmask.targets.codegen.tflm_arithmetic import FixedActivationParams

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_EXP_OF_MINUS_POWER_OF_TWO = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)  # exp(-2^k), k=-2..4


def _wrap(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def _truncating_divide(value: int, power: int) -> int:
    """C integer division by 2^power (toward zero)."""
    return value >> power if value >= 0 else -((-value) >> power)


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    product = a * b
    return _truncating_divide(product + ((1 << 30) if product >= 0 else 1 - (1 << 30)), 31)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    shifted = _wrap(x << max(shift, 0))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), max(-shift, 0))


def _saturating_shift_left(x: int, exponent: int) -> int:
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    mul = saturating_rounding_doubling_high_mul
    x = _wrap(a + (1 << 28))
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    polynomial = rounding_divide_by_pot(_wrap(mul(_wrap(x4_over_4 + x3), 715827883) + x2), 1)
    return _wrap(1895147668 + mul(1895147668, _wrap(x + polynomial)))


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter
    remainder = _wrap(a_mod_quarter_minus_quarter - a)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits))
    for k, constant in enumerate(_EXP_OF_MINUS_POWER_OF_TWO):
        exponent = k - 2
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = saturating_rounding_doubling_high_mul(result, constant)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return INT32_MAX if a == 0 else result


def _reciprocal_of_half_one_plus_x(a: int) -> int:
    """Q2.29 approximation of 2 / (1 + a) for a in (0, 1] given in Q0.31 (3 Newton-Raphson steps)."""
    mul = saturating_rounding_doubling_high_mul
    total = a + INT32_MAX
    half_denominator = _truncating_divide(total + (1 if total >= 0 else -1), 1)
    x = _wrap(1515870810 + mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = _wrap((1 << 29) - mul(half_denominator, x))
        x = _wrap(x + _saturating_shift_left(mul(x, one_minus), 2))
    return x


def logistic_q4(a: int) -> int:
    """logistic of a Q4.27 value, Q0.31 result."""
    magnitude = a if a > 0 else _wrap(-a)
    positive = _saturating_shift_left(_reciprocal_of_half_one_plus_x(_exp_on_negative_values(_wrap(-magnitude), 4)), 1)
    if a == 0:
        return 1 << 30
    return positive if a > 0 else _wrap(INT32_MAX - positive)


def tanh_q4(a: int) -> int:
    """tanh of a Q4.27 value, Q0.31 result."""
    negative_magnitude = a if a < 0 else _wrap(-a)
    reciprocal = _reciprocal_of_half_one_plus_x(_exp_on_negative_values(negative_magnitude, 5))
    magnitude = _saturating_shift_left(_wrap(reciprocal - (1 << 29)), 2)
    if a == 0:
        return 0
    return _wrap(-magnitude) if a < 0 else magnitude


def activation_table(op_name: str, input_zero_point: int, params: FixedActivationParams) -> np.ndarray:
    """int8 outputs of int8 LOGISTIC (scale 1/256, zero point -128) or TANH (1/128, 0) for the
    input codes -128..127, in that order (index = code + 128)."""
    table = np.empty(256, np.int8)
    for position, code in enumerate(range(-128, 128)):
        centred = code - input_zero_point
        if centred <= -params.range_radius:
            value = -128
        elif centred >= params.range_radius:
            value = 127
        else:
            input_q4 = multiply_by_quantized_multiplier(centred, params.multiplier, params.left_shift)
            if op_name == "LOGISTIC":
                value = rounding_divide_by_pot(logistic_q4(input_q4), 23) - 128
            else:
                value = rounding_divide_by_pot(tanh_q4(input_q4), 24)
        table[position] = min(127, max(-128, value))
    return table
