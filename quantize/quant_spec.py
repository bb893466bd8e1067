"""Per-tensor int8 quantization parameters in TFLite terms (numpy only: device code may import it).

A tensor is stored as ``q ∈ [-128, 127]`` (int8) and means ``x = (q − zero_point)·scale``
(TFLite 8-bit quantization specification). The fixed parameters below are the ones
TFLite imposes or that hearmask chooses as part of the model contract:

- LOGISTIC output: scale 1/256, zero point −128 (range [0, 255/256]); TFLite's int8
  kernels require exactly this.
- TANH output: scale 1/128, zero point 0 (range [−1, 127/128]); likewise required.
- Recurrent state: the TANH parameters. Every GRU hidden state is a convex combination
  of tanh outputs (and the zero initial state), so it lies in [−1, 1]; sharing the tanh
  quantization also satisfies TFLite's rule that CONCATENATION inputs and output share
  one scale and zero point (the state concatenation, and the heads' ``[h, encoder]``
  input), and it makes the output state bit-compatible with the next hop's input state.
- Audiogram input: scale 0.01, zero point 0, i.e. one LSB per dB HL of the
  ``dB HL / 100`` network input. Every whole-dB audiogram (−10 … 120 dB HL) is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError

INT8_MIN = -128
INT8_MAX = 127


@dataclass(frozen=True)
class QuantSpec:
    """``x = (q − zero_point)·scale`` with ``q`` int8. ``scale`` > 0, ``zero_point`` in [−128, 127]."""

    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise HearmaskError(f"a quantization scale must be finite and > 0, got {self.scale!r}")
        if not INT8_MIN <= int(self.zero_point) <= INT8_MAX:
            raise HearmaskError(f"an int8 zero point must be in [-128, 127], got {self.zero_point!r}")

    @property
    def min_value(self) -> float:
        """Smallest representable real value, ``(−128 − zero_point)·scale``."""
        return (INT8_MIN - self.zero_point) * self.scale

    @property
    def max_value(self) -> float:
        """Largest representable real value, ``(127 − zero_point)·scale``."""
        return (INT8_MAX - self.zero_point) * self.scale

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Real values -> int8 (round half away from zero, as TFLite's reference QUANTIZE; saturating)."""
        scaled = np.asarray(values, dtype=np.float64) / self.scale
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
        return np.clip(rounded + self.zero_point, INT8_MIN, INT8_MAX).astype(np.int8)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """int8 codes -> float32 real values."""
        return ((np.asarray(codes, dtype=np.int32) - self.zero_point) * self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point)}

    @classmethod
    def from_dict(cls, values: dict) -> "QuantSpec":
        return cls(float(values["scale"]), int(values["zero_point"]))

    def matches(self, other: "QuantSpec", relative_tolerance: float = 1e-6) -> bool:
        """Same zero point and scales equal within ``relative_tolerance``."""
        return (int(self.zero_point) == int(other.zero_point)
                and abs(self.scale - other.scale) <= relative_tolerance * abs(self.scale))


SIGMOID_OUTPUT = QuantSpec(1.0 / 256.0, -128)
TANH_OUTPUT = QuantSpec(1.0 / 128.0, 0)
STATE = TANH_OUTPUT
AUDIOGRAM_INPUT = QuantSpec(0.01, 0)
