"""Brevitas quantizers of the QAT model, each matching one TFLite int8 convention.

- Weights: :class:`WeightQuant`, per-tensor symmetric int8 on [−127, 127] (TFLite's
  weight convention; zero point 0), scale = max|w| / 127.
- Biases: Brevitas ``Int32Bias``, scale = input scale · weight scale (TFLite's bias rule).
- Calibrated activations: :class:`CalibratedActQuant`, per-tensor asymmetric 8 bit with
  a learned scale and an integer zero point, both initialised from runtime statistics
  (percentile interval 0.001–99.999 %) in the calibration pass and trained by QAT.
- Fixed activations (constant scale, never trained): :class:`SigmoidOutputQuant`
  (1/256, unsigned: TFLite LOGISTIC), :class:`TanhOutputQuant` (1/128, signed: TFLite
  TANH and the recurrent state), :class:`AudiogramInputQuant` (0.01 per unit, signed).

Brevitas scales: signed 8 bit ``scale = threshold / 128``, unsigned
``scale = threshold / 255`` (``brevitas.core.scaling.IntScaling``), so the constants
below are the thresholds that give the scales in :mod:`hearmask.quantize.quant_spec`.
Unsigned Brevitas codes ``u ∈ [0, 255]`` with zero point ``z`` are TFLite int8 codes
``u − 128`` with zero point ``z − 128``.
"""

from __future__ import annotations

import math

import torch
from brevitas.core.stats.stats_op import PercentileInterval
from brevitas.inject.enum import ScalingImplType
from brevitas.quant import Int8WeightPerTensorFloat, Int32Bias, ShiftedUint8ActPerTensorFloat
from brevitas.quant.base import IntQuant, PerTensorFloatScaling8bit, UintQuant
from brevitas.quant.solver import ActQuantSolver

from hearmask.quantize.quant_spec import AUDIOGRAM_INPUT, SIGMOID_OUTPUT, TANH_OUTPUT

WeightQuant = Int8WeightPerTensorFloat
BiasQuant = Int32Bias


class ZeroInclusivePercentileInterval(PercentileInterval):
    """Width of ``[min(low, 0), max(high, 0)]`` for the 0.001 % / 99.999 % percentiles (per tensor).

    Brevitas's :class:`PercentileInterval` clamps only the low end at 0, so a tensor whose
    values are all negative (e.g. a head's logits of an untrained net) gets the range
    ``[low, high]`` without 0, and a zero point outside the int8 range. Int8 ranges must
    contain 0 exactly (TFLite spec), so the high end is clamped at 0 as well.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = x.reshape(-1)
        low_k = max(1, int(math.ceil(0.01 * self.low_q * values.numel())))
        high_k = min(values.numel(), max(1, int(math.floor(0.01 * self.high_q * values.numel() + 0.5))))
        low = torch.kthvalue(values, low_k)[0]
        high = torch.kthvalue(values, high_k)[0]
        return torch.clamp(high, min=0.0) - torch.clamp(low, max=0.0)


class CalibratedActQuant(ShiftedUint8ActPerTensorFloat):
    """Asymmetric 8-bit activation, scale and zero point learned from calibration statistics."""

    scaling_stats_impl = ZeroInclusivePercentileInterval


class _ConstantSignedQuant(IntQuant, PerTensorFloatScaling8bit, ActQuantSolver):
    scaling_impl_type = ScalingImplType.CONST


class _ConstantUnsignedQuant(UintQuant, PerTensorFloatScaling8bit, ActQuantSolver):
    scaling_impl_type = ScalingImplType.CONST


class SigmoidOutputQuant(_ConstantUnsignedQuant):
    """Unsigned codes 0..255 at 1/256: TFLite LOGISTIC's int8 output (zero point −128)."""

    min_val = 0.0
    max_val = 255.0 * SIGMOID_OUTPUT.scale  # threshold 255/256 -> scale 1/256


class TanhOutputQuant(_ConstantSignedQuant):
    """Signed codes −128..127 at 1/128: TFLite TANH's int8 output; also the recurrent state."""

    min_val = -128.0 * TANH_OUTPUT.scale
    max_val = 128.0 * TANH_OUTPUT.scale  # threshold 1 -> scale 1/128


class AudiogramInputQuant(_ConstantSignedQuant):
    """Signed codes at 0.01 (1 dB HL per LSB of dB HL / 100): range −1.28 … 1.27."""

    min_val = -128.0 * AUDIOGRAM_INPUT.scale
    max_val = 128.0 * AUDIOGRAM_INPUT.scale
