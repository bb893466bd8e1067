"""Generation-time quantization parameters, computed exactly as TFLite Micro's Prepare does.

Every multiplier, shift and clamping bound the generated C uses comes from here, so the C
kernels (``c/hm_kernels.c``) see the same integers as the TFLM reference kernels. The
formulas follow TFLM's ``*_common.cc`` Prepare functions and ``quantization_util.cc``
(read, not copied), including their floating-point details:

- scales are float32 in the flatbuffer and in TFLM; Python floats hold them exactly;
- FULLY_CONNECTED multiplies input and weight scale in **float32**, then divides in double;
- ADD works in double, but SUB computes all three multipliers in **float32** arithmetic;
- MUL works in double;
- LOGISTIC/TANH: ``frexp(input_scale * 2^27)`` with the mantissa rounded to Q31, and the
  saturation radius ``floor(15 * 2^27 / 2^left_shift)``;
- ``TfLiteRound`` is C's ``round`` (ties away from zero).

TFLM is built without ``TFLITE_SINGLE_ROUNDING``, so requantization is the double-rounding
``MultiplyByQuantizedMultiplier`` (checked bit for bit in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.quantize.int8_reference import quantize_multiplier  # TFLM QuantizeMultiplier: one implementation

ADD_SUB_LEFT_SHIFT = 20  # int8 ADD/SUB headroom bits (TFLM: 20 for int8, 15 for int16)
FIXED_ACTIVATION_INTEGER_BITS = 4  # LOGISTIC/TANH evaluate in Q4.27
INT8_RANGE = (-128, 127)
# TFLite ActivationFunctionType values accepted as fused activations.
FUSED_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


def tflite_round(value: float) -> int:
    """C's ``round``: nearest integer, ties away from zero (exact for every double)."""
    magnitude = abs(value)
    floor = math.floor(magnitude)
    rounded = floor + 1 if magnitude - floor >= 0.5 else floor
    return int(rounded if value >= 0 else -rounded)


def quantize_multiplier_smaller_than_one(real_multiplier: float, what: str) -> tuple[int, int]:
    """:func:`quantize_multiplier` for a multiplier in (0, 1) (TFLM aborts otherwise)."""
    if not 0.0 < real_multiplier < 1.0:
        raise HearmaskError(f"{what}: rescaling factor {real_multiplier!r} is outside (0, 1), which TFLite Micro's "
                            "int8 kernels reject; check the tensor scales")
    return quantize_multiplier(real_multiplier)


def activation_range(activation: int, scale: float, zero_point: int, what: str) -> tuple[int, int]:
    """int8 clamping bounds of a fused activation (TFLM ``CalculateActivationRangeQuantized``;
    the real bounds are quantized in float32 with C ``round``)."""
    if activation not in FUSED_ACTIVATIONS:
        raise HearmaskError(f"{what}: fused activation {activation} is not supported; accepted: "
                            f"{', '.join(FUSED_ACTIVATIONS.values())}")
    low, high = INT8_RANGE

    def quantize(value: float) -> int:
        return zero_point + tflite_round(float(np.float32(value) / np.float32(scale)))

    name = FUSED_ACTIVATIONS[activation]
    if name == "RELU":
        return max(low, quantize(0.0)), high
    if name == "RELU6":
        return max(low, quantize(0.0)), min(high, quantize(6.0))
    if name == "RELU_N1_TO_1":
        return max(low, quantize(-1.0)), min(high, quantize(1.0))
    return low, high


def fully_connected_multiplier(input_scale: float, weight_scale: float, output_scale: float) -> tuple[int, int]:
    """TFLM ``GetQuantizedConvolutionMultipler``: the scale product in float32, divided in double."""
    product = float(np.float32(input_scale) * np.float32(weight_scale))
    return quantize_multiplier(product / float(output_scale))


def mul_multiplier(input1_scale: float, input2_scale: float, output_scale: float) -> tuple[int, int]:
    """TFLM MUL Prepare: ``s1 · s2 / s_out`` in double."""
    return quantize_multiplier(float(input1_scale) * float(input2_scale) / float(output_scale))


@dataclass(frozen=True)
class AddSubMultipliers:
    input1: tuple[int, int]
    input2: tuple[int, int]
    output: tuple[int, int]


def add_multipliers(input1_scale: float, input2_scale: float, output_scale: float, what: str) -> AddSubMultipliers:
    """TFLM ADD Prepare (double arithmetic): inputs rescaled to ``2·max(s1, s2)``, output by
    ``2·max / (2^20 · s_out)``."""
    twice_max = 2.0 * float(max(input1_scale, input2_scale))
    output_real = twice_max / (float(1 << ADD_SUB_LEFT_SHIFT) * float(output_scale))
    return AddSubMultipliers(quantize_multiplier_smaller_than_one(float(input1_scale) / twice_max, what),
                             quantize_multiplier_smaller_than_one(float(input2_scale) / twice_max, what),
                             quantize_multiplier_smaller_than_one(output_real, what))


def sub_multipliers(input1_scale: float, input2_scale: float, output_scale: float, what: str) -> AddSubMultipliers:
    """TFLM SUB Prepare: the same formulas as ADD but evaluated in float32 (then widened)."""
    single = np.float32
    twice_max = single(2) * max(single(input1_scale), single(input2_scale))
    output_real = twice_max / (single(1 << ADD_SUB_LEFT_SHIFT) * single(output_scale))
    return AddSubMultipliers(quantize_multiplier_smaller_than_one(float(single(input1_scale) / twice_max), what),
                             quantize_multiplier_smaller_than_one(float(single(input2_scale) / twice_max), what),
                             quantize_multiplier_smaller_than_one(float(output_real), what))


@dataclass(frozen=True)
class FixedActivationParams:
    """LOGISTIC/TANH int8 parameters: input rescaled to Q4.27 by ``multiplier · 2^left_shift``."""

    multiplier: int
    left_shift: int
    range_radius: int


def fixed_activation_params(input_scale: float, what: str) -> FixedActivationParams:
    """TFLM LOGISTIC/TANH int8 Prepare: ``frexp(s_in · 2^27)``; radius ``floor(15 · 2^27 / 2^shift)``."""
    real = float(input_scale) * float(1 << (31 - FIXED_ACTIVATION_INTEGER_BITS))
    mantissa, left_shift = math.frexp(real)
    if not 1 <= left_shift <= 31:
        raise HearmaskError(f"{what}: input scale {input_scale!r} is outside what TFLite Micro's int8 LOGISTIC/TANH "
                            f"handle (accepted: about 2^-27 to 2^4)")
    multiplier = tflite_round(mantissa * float(1 << 31))
    integer_bits = FIXED_ACTIVATION_INTEGER_BITS
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * float(1 << (31 - integer_bits)) / float(1 << left_shift))
    return FixedActivationParams(multiplier, left_shift, radius)
