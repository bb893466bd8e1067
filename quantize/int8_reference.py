"""Integer arithmetic of the TFLite reference kernels and TFLM (numpy): requantization, ADD / SUB, LOGISTIC, TANH.

Used by :mod:`hearmask.quantize.validate` to explain, element by element, where the int8
runtimes differ from each other and from Brevitas fake quantization (which computes
in float and rounds once). Learned from the TFLite/TFLM sources
(``kernels/internal/common.h``, ``kernels/add.cc``,
``reference/integer_ops/{fully_connected,mul,add,logistic,tanh}.h``,
``micro/kernels/{add_common,sub_common,logistic_common,tanh}.cc``), gemmlowp's ``fixedpoint.h`` and
XNNPACK's ``fp32`` requantization and ``qs8`` add parameters (``params-init.c``,
``microparams-init.c``); our own code.

**Requantization** (FULLY_CONNECTED, MUL): the int32 accumulator ``x`` is scaled by
``real = s_in·s_w/s_out`` (FC) or ``s_a·s_b/s_out`` (MUL), stored as a 31-bit multiplier and
a shift (:func:`quantize_multiplier`). Three roundings exist (:func:`requantize`):

- ``"double"`` (TFLite's default ``MultiplyByQuantizedMultiplier``): a rounding doubling
  high multiply (round half up to 31 fractional bits of the shifted value), then a
  rounding right shift (half away from zero). Measured here: TFLM's FULLY_CONNECTED and
  MUL, and LiteRT's reference MUL.
- ``"single"``: one rounding (half up) of ``x·multiplier / 2^(31 − shift)``, equal to the
  exactly rounded ``x·real`` for every accumulator in our models. Measured here: LiteRT's
  reference FULLY_CONNECTED. Brevitas rounds once too, after computing in float32 (rarely a
  float32 error crosses a half).
- ``"fp32"`` (XNNPACK's ``fp32`` requantization, LiteRT's default kernels): ``x`` converted to
  float32, times the float32 scale ``s_in·s_w/s_out`` computed in float32
  (:func:`fp32_requantization_scale`), rounded half to even (``lrintf`` or the magic-bias
  trick). Measured here: LiteRT's default FULLY_CONNECTED and MUL, every value of every op
  over 4 utterances of two trained models (5.1 M FC and 1.3 M MUL values each). It equals
  ``single`` except where ``x·real`` lies within a float32 rounding of a half: 2 and 46 of
  those 5.1 M FC values, where the float32 scale (a little below the exact one) and the
  half-to-even rule round down.

``double`` differs from the others by one LSB wherever the exact value lies within
``2^−right_shift`` of a half-integer above it — a few in a thousand outputs of the FC and MUL
ops of our graph.

**ADD / SUB** (int8, inputs and output of different scales; :func:`add_requantize`): no kernel
computes ``round((x_a·s_a ± x_b·s_b)/s_out)`` in float as Brevitas does. Two arithmetics exist:

- ``"double"`` / ``"single"`` (TFLite ``kernels/add.cc``/``sub.cc`` Prepare with
  ``reference/integer_ops/add.h``, TFLM ``micro/kernels/add_common.cc``/``sub_common.cc``): each
  centred input is shifted left by 20 bits and rescaled by its quantized multiplier
  ``s_i / (2·max(s_a, s_b))`` (``MultiplyByQuantizedMultiplierSmallerThanOneExp``, one or two
  roundings as above), the two are added (subtracted), and the sum is rescaled by the quantized
  ``2·max(s_a, s_b) / (2^20·s_out)``. Measured here: LiteRT's reference kernels and TFLM, every
  value (the two roundings are not told apart by our models; ``double`` is TFLite's default build).
- ``"xnnpack"`` (XNNPACK ``qs8-vadd``, LiteRT's default kernels): float32 ratios
  ``s_a/s_out``, ``s_b/s_out`` turned into 21-bit integer multipliers (``lrintf(ratio·2^shift)``,
  ``shift = 20 − exponent of the larger ratio``), one integer sum ``2^(shift−1) + x_a·m_a ± x_b·m_b``
  and an arithmetic right shift (round half up). Measured here: LiteRT's default ADD and SUB.

The integer ones agree with the exactly rounded sum except within about 1e-6 LSB of a half; there
Brevitas's float32 (``x/s_out + zero_point`` rounded to float32, ties to even) lands on the half and
picks the other side: 36 of 128 000 values of one gate ADD of the session-6 model (the exact value
9.5000017 rounded to 9 instead of 10), which a GRU then amplifies to several LSB of its outputs.

**LOGISTIC / TANH** (int8): the reference kernels evaluate gemmlowp fixed point instead of
a float table:

1. ``x = code − input_zero_point``; ``|x| ≥ radius`` saturates to −128 / 127, with
   ``radius = ⌊15·2^27 / 2^shift⌋`` (``CalculateInputRadius(4, shift, 31)``).
2. ``x`` is rescaled to Q4.27 with the quantized multiplier of ``input_scale·2^27``
   (``frexp``; multiplier = round(q·2^31)).
3. gemmlowp's ``logistic``/``tanh`` of that value, a Q0.31 result: exp by a 4th-order
   Taylor polynomial around −1/8 on [−1/4, 0) times a barrel of constants ``exp(−2^k)``,
   then 1/(1+x) (or (1−x)/(1+x)) by three Newton–Raphson steps.
4. ``RoundingDivideByPOT(y, 23) − 128`` (LOGISTIC, scale 1/256) or
   ``RoundingDivideByPOT(y, 24)`` (TANH, scale 1/128), clamped to int8.

Step 3 is accurate to about 1e-7 (2.6e-5 of an output LSB), so :func:`logistic_table` / :func:`tanh_table` equal
the float-rounded tables (:func:`float_rounded_table`) for every input code of our models'
scales (:func:`differing_codes` is empty): the activations are *not* where the runtimes
differ; the requantization rounding is.

Every intermediate is an int32 value held in int64 numpy arrays; the helpers mirror
gemmlowp's primitives (round-half-up doubling high multiply, round-half-away-from-zero
power-of-two division, saturating shifts).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INPUT_INTEGER_BITS = 4  # Q4.27 input in both kernels
CODES = np.arange(-128, 128, dtype=np.int64)  # every int8 input code, in table order
ROUNDINGS = ("double", "single", "fp32")  # the requantization roundings :func:`requantize` models
ADD_ROUNDINGS = ("double", "single", "xnnpack")  # the ADD / SUB arithmetics :func:`add_requantize` models
# The arithmetics modelled per rescaling int8 op type (FULLY_CONNECTED / MUL: requantize; ADD / SUB: add_requantize).
OP_ROUNDINGS = {"FULLY_CONNECTED": ROUNDINGS, "MUL": ROUNDINGS, "ADD": ADD_ROUNDINGS, "SUB": ADD_ROUNDINGS}
ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD / SUB headroom (``left_shift``)


def _fixed_constant(value: float, integer_bits: int) -> int:
    """A gemmlowp constant: ``round(value·2^(31 − integer_bits))``, clamped to int32."""
    return int(min(max(round(value * 2.0 ** (31 - integer_bits)), INT32_MIN), INT32_MAX))


def _truncating_divide(values: np.ndarray, divisor: int) -> np.ndarray:
    """C integer division (rounds toward zero)."""
    return np.where(values >= 0, values // divisor, -((-values) // divisor))


def doubling_high_multiply(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: ``(a·b + nudge) / 2^31`` truncated
    (round half up), INT32_MIN·INT32_MIN saturating to INT32_MAX."""
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    result = _truncating_divide(product + nudge, 1 << 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, result)


def rounding_divide_by_pot(values: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: divide by 2^exponent, rounding half away from zero."""
    values = np.asarray(values, np.int64)
    mask = (1 << exponent) - 1
    remainder = values & mask
    threshold = (mask >> 1) + (values < 0)
    return (values >> exponent) + (remainder > threshold)


def saturating_multiply_by_pot(values: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT``: a saturating left shift for exponent > 0,
    a rounding right shift for exponent < 0."""
    values = np.asarray(values, np.int64)
    if exponent < 0:
        return rounding_divide_by_pot(values, -exponent)
    if exponent == 0:
        return values
    threshold = (1 << (31 - exponent)) - 1
    shifted = values << exponent
    return np.where(values > threshold, INT32_MAX, np.where(values < -threshold, INT32_MIN, shifted))


def _exp_on_quarter_interval(a: np.ndarray) -> np.ndarray:
    """exp(a) for Q0.31 ``a`` in [−1/4, 0): Taylor series around −1/8 (4th order)."""
    exp_minus_eighth = _fixed_constant(math.exp(-1.0 / 8.0), 0)
    one_third = _fixed_constant(1.0 / 3.0, 0)
    x = a + (1 << 28)  # x = a + 1/8
    x2 = doubling_high_multiply(x, x)
    x3 = doubling_high_multiply(x2, x)
    x4 = doubling_high_multiply(x2, x2)
    x4_over_4 = saturating_multiply_by_pot(x4, -2)
    series = saturating_multiply_by_pot(doubling_high_multiply(x4_over_4 + x3, one_third) + x2, -1)
    return exp_minus_eighth + doubling_high_multiply(np.int64(exp_minus_eighth), x + series)


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a ≤ 0 in Q(integer_bits) -> Q0.31 (gemmlowp ``exp_on_negative_values``)."""
    a = np.asarray(a, np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    shifted = (a & (one_quarter - 1)) - one_quarter  # a mod 1/4 − 1/4, in [−1/4, 0)
    result = _exp_on_quarter_interval(saturating_multiply_by_pot(shifted, integer_bits))
    remainder = shifted - a  # the multiple of 1/4 still to apply, as bits
    for exponent in range(-2, 5):  # multiply by exp(−2^k) for every set bit 2^k of the remainder
        if integer_bits > exponent:
            multiplier = _fixed_constant(math.exp(-(2.0**exponent)), 0)
            selected = (remainder & (1 << (fractional_bits + exponent))) != 0
            result = np.where(selected, doubling_high_multiply(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)  # below −32: 0
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_steps(half_denominator: np.ndarray) -> np.ndarray:
    """x ≈ 1/half_denominator in Q2.29 (half_denominator in [1/2, 1)): three Newton–Raphson steps
    from the linear start 48/17 − 32/17·d."""
    x = _fixed_constant(48.0 / 17.0, 2) + doubling_high_multiply(half_denominator, _fixed_constant(-32.0 / 17.0, 2))
    one_q2 = 1 << 29
    for _ in range(3):
        error = one_q2 - doubling_high_multiply(half_denominator, x)
        x = x + saturating_multiply_by_pot(doubling_high_multiply(x, error), 2)
    return x


def _rounding_half_sum(a: np.ndarray, b: int) -> np.ndarray:
    total = np.asarray(a, np.int64) + b
    return _truncating_divide(total + np.where(total >= 0, 1, -1), 2)


def fixed_logistic(a: np.ndarray, integer_bits: int = INPUT_INTEGER_BITS) -> np.ndarray:
    """gemmlowp ``logistic``: Q(integer_bits) -> Q0.31."""
    a = np.asarray(a, np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, -a)
    exp_negative = exp_on_negative_values(-magnitude, integer_bits)
    # 1 / (1 + e) for e in (0, 1]: Newton on (1 + e)/2, then halve.
    reciprocal = _newton_reciprocal_steps(_rounding_half_sum(exp_negative, INT32_MAX))
    on_positive = saturating_multiply_by_pot(reciprocal, 1)  # Q1 -> Q0 after the exact halving
    result = np.where(positive, on_positive, INT32_MAX - on_positive)
    return np.where(a == 0, 1 << 30, result)


def fixed_tanh(a: np.ndarray, integer_bits: int = INPUT_INTEGER_BITS) -> np.ndarray:
    """gemmlowp ``tanh``: Q(integer_bits) -> Q0.31, as (1 − e^{−2|x|}) / (1 + e^{−2|x|})."""
    a = np.asarray(a, np.int64)
    negative = a < 0
    negative_input = np.where(negative, a, -a)
    exp_negative = exp_on_negative_values(negative_input, integer_bits + 1)  # exact ×2: one more integer bit
    half_denominator = _rounding_half_sum(exp_negative, INT32_MAX)
    magnitude = saturating_multiply_by_pot(_newton_reciprocal_steps(half_denominator) - (1 << 29), 2)
    return np.where(a == 0, 0, np.where(negative, -magnitude, magnitude))


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``real = multiplier·2^(shift − 31)``, multiplier in [2^30, 2^31)."""
    if real_multiplier <= 0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    multiplier = int(math.floor(fraction * 2.0**31 + 0.5))  # C round(): ties away from zero (positive here)
    if multiplier == 1 << 31:
        multiplier, shift = multiplier // 2, shift + 1
    if shift < -31:  # TFLite flushes multipliers below 2^-31 to zero
        return 0, 0
    return multiplier, shift


def requantization_multiplier(first_scale: float, second_scale: float, output_scale: float) -> float:
    """``s_a·s_b / s_out`` (FULLY_CONNECTED: input and weight scale; MUL: the two input scales) of
    float32 scales, in double: the multiplier the integer roundings quantize (``single``, ``double``)."""
    first, second, output = (float(np.float32(scale)) for scale in (first_scale, second_scale, output_scale))
    return first * second / output


def fp32_requantization_scale(first_scale: float, second_scale: float, output_scale: float) -> np.float32:
    """``s_a·s_b / s_out`` evaluated in float32, left to right, as XNNPACK computes its requantization
    scale (``input_scale * kernel_scale / output_scale`` in C ``float``)."""
    first, second, output = (np.float32(scale) for scale in (first_scale, second_scale, output_scale))
    return np.float32(np.float32(first * second) / output)


def requantize(accumulator: np.ndarray, scales: tuple[float, float, float], rounding: str = "double") -> np.ndarray:
    """``accumulator · s_a·s_b/s_out`` rounded to an integer as a kernel does (see the module docstring).

    ``scales``: ``(s_a, s_b, s_out)`` as the .tflite stores them (FULLY_CONNECTED: input, weight and
    output scale; MUL: the two input scales and the output scale). ``rounding``: ``"double"``
    (gemmlowp high multiply, then rounding shift), ``"single"`` (one rounding of the 31-bit
    multiplier's product) or ``"fp32"`` (XNNPACK: float32 product, rounded half to even).
    Returns int64 codes before the zero point is added (not clamped)."""
    accumulator = np.asarray(accumulator, np.int64)
    if rounding == "fp32":
        # int32 -> float conversion rounds to nearest like numpy's; lrintf rounds half to even like rint.
        product = accumulator.astype(np.float32) * fp32_requantization_scale(*scales)
        return np.rint(product).astype(np.int64)
    multiplier, shift = quantize_multiplier(requantization_multiplier(*scales))
    if rounding == "single":
        total_shift = 31 - shift
        return (accumulator * multiplier + (1 << (total_shift - 1))) >> total_shift
    if rounding != "double":
        raise ValueError(f"rounding {rounding!r}; accepted: {', '.join(ROUNDINGS)}")
    high = doubling_high_multiply(accumulator * (1 << max(shift, 0)), multiplier)
    return rounding_divide_by_pot(high, max(-shift, 0))


def _multiply_smaller_than_one(values: np.ndarray, multiplier: int, shift: int, rounding: str) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (``shift`` <= 0): ``values·multiplier /
    2^(31 − shift)``, rounded twice (``double``: high multiply, then rounding shift) or once (``single``)."""
    if rounding == "single":
        total_shift = 31 - shift
        return (values * multiplier + (1 << (total_shift - 1))) >> total_shift
    return rounding_divide_by_pot(doubling_high_multiply(values, multiplier), -shift)


def add_requantize(first: np.ndarray, second: np.ndarray, scales: tuple[float, float, float],
                   rounding: str = "double", subtract: bool = False) -> np.ndarray:
    """``first·s_a ± second·s_b`` in units of ``s_out``, rounded as an int8 ADD (SUB) kernel does.

    ``first``, ``second``: centred input codes (``q − zero_point``, broadcastable); ``scales``:
    ``(s_a, s_b, s_out)`` as the .tflite stores them; ``rounding``: ``"double"`` / ``"single"`` (TFLite
    and TFLM, left shift 20 and one quantized multiplier per input and for the output) or ``"xnnpack"``
    (21-bit multipliers of the float32 ratios, one sum, a rounding right shift); see the module
    docstring. Returns int64 codes before the output zero point is added (not clamped)."""
    first, second = np.broadcast_arrays(np.asarray(first, np.int64), np.asarray(second, np.int64))
    sign = -1 if subtract else 1
    if rounding == "xnnpack":
        ratios = [np.float32(np.float32(scale) / np.float32(scales[2])) for scale in scales[:2]]
        exponent = math.frexp(float(max(ratios)))[1] - 1  # the larger ratio is in [2^exponent, 2^(exponent + 1))
        shift = 20 - exponent
        first_multiplier, second_multiplier = (int(np.rint(float(ratio) * 2.0**shift)) for ratio in ratios)
        total = (1 << (shift - 1)) + first * first_multiplier + sign * second * second_multiplier
        return total >> shift
    if rounding not in ("double", "single"):
        raise ValueError(f"rounding {rounding!r}; accepted: {', '.join(ADD_ROUNDINGS)}")
    first_scale, second_scale, output_scale = (float(np.float32(scale)) for scale in scales)
    twice_max = 2.0 * max(first_scale, second_scale)
    rescaled = [_multiply_smaller_than_one(values << ADD_LEFT_SHIFT, *quantize_multiplier(scale / twice_max), rounding)
                for values, scale in ((first, first_scale), (second, second_scale))]
    output_multiplier = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * output_scale))
    return _multiply_smaller_than_one(rescaled[0] + sign * rescaled[1], *output_multiplier, rounding)


def input_rescale(input_scale: float) -> tuple[int, int, int]:
    """``(multiplier, left_shift, radius)`` of the TFLM LOGISTIC/TANH Prepare step for an int8 input of
    ``input_scale`` (float32, as the .tflite stores it): the quantized ``input_scale·2^27`` and the
    saturation radius in input codes."""
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) * float(1 << (31 - INPUT_INTEGER_BITS)))
    radius = int(math.floor(((1 << INPUT_INTEGER_BITS) - 1) * 2.0 ** (31 - INPUT_INTEGER_BITS) / 2.0**shift))
    return multiplier, shift, radius


def _table(input_scale: float, input_zero_point: int, function, output_shift: int,
           output_zero_point: int) -> np.ndarray:
    multiplier, shift, radius = input_rescale(input_scale)
    if not 0 <= shift <= 30:
        raise ValueError(f"int8 activation input scale {input_scale!r} is outside what the kernel handles")
    centred = CODES - int(input_zero_point)
    fixed_input = doubling_high_multiply(centred << shift, multiplier)
    fixed_output = function(np.clip(fixed_input, INT32_MIN, INT32_MAX))
    codes = np.clip(rounding_divide_by_pot(fixed_output, output_shift) + output_zero_point, -128, 127)
    table = np.where(centred <= -radius, -128, np.where(centred >= radius, 127, codes)).astype(np.int8)
    table.setflags(write=False)  # cached and shared
    return table


@lru_cache(maxsize=256)
def logistic_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """int8 LOGISTIC (output scale 1/256, zero point −128) for every input code −128…127 -> (256,) int8."""
    return _table(input_scale, input_zero_point, fixed_logistic, 31 - 8, -128)


@lru_cache(maxsize=256)
def tanh_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """int8 TANH (output scale 1/128, zero point 0) for every input code −128…127 -> (256,) int8."""
    return _table(input_scale, input_zero_point, fixed_tanh, 31 - 7, 0)


def float_rounded_table(kind: str, input_scale: float, input_zero_point: int) -> np.ndarray:
    """What the default LiteRT kernels' lookup table and Brevitas compute: ``round(f(x)/scale)`` in float."""
    values = np.float32(input_scale) * (CODES - input_zero_point).astype(np.float32)
    if kind == "logistic":
        return np.clip(np.round(256.0 / (1.0 + np.exp(-values.astype(np.float64)))) - 128, -128, 127).astype(np.int8)
    return np.clip(np.round(128.0 * np.tanh(values.astype(np.float64))), -128, 127).astype(np.int8)


def differing_codes(kind: str, input_scale: float, input_zero_point: int) -> dict[int, tuple[int, int]]:
    """Input codes where the reference kernel differs from the float-rounded table:
    ``{code: (reference_output, float_rounded_output)}``."""
    table = (logistic_table if kind == "logistic" else tanh_table)(input_scale, input_zero_point)
    rounded = float_rounded_table(kind, input_scale, input_zero_point)
    return {int(code): (int(a), int(b)) for code, a, b in zip(CODES, table, rounded) if a != b}
