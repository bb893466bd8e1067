"""The audiogram type: pure-tone hearing thresholds in dB HL, per ear where given.

An :class:`Audiogram` holds one frequency grid (Hz, strictly increasing) and, on that
grid, the thresholds the mono model uses (``thresholds_db_hl``) plus optional per-ear
thresholds (``left_db_hl``, ``right_db_hl``).

Mono thresholds when per-ear data are given
    If ``thresholds_db_hl`` is not given (``None``), it is derived: the per-frequency mean
    of left and right when both ears are given, or the one ear given. An explicitly given
    ``thresholds_db_hl`` is kept as it is, even next to per-ear values.

Validation (every construction, raising :class:`hearmask.errors.HearmaskError`): at
least 2 points; frequencies strictly increasing (no duplicates) within 125–16000 Hz;
thresholds finite and within -10..120 dB HL; every threshold list as long as the
frequency list.

Only numpy is imported here, so device-side code can use this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Sequence

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.profiles.interpolate import interpolate_db_hl

# Accepted ranges (issue 3, "Listener profiles"): the span of clinical audiometers.
MIN_FREQUENCY_HZ = 125.0
MAX_FREQUENCY_HZ = 16000.0
MIN_THRESHOLD_DB_HL = -10.0
MAX_THRESHOLD_DB_HL = 120.0
MIN_POINTS = 2

# The fixed grid the network sees (DESIGN.md, "Audiogram input"); 8 kHz takes the
# 6 kHz value when an audiogram stops there (flat extrapolation of interpolate_db_hl).
MODEL_AUDIOGRAM_FREQUENCIES_HZ: tuple[float, ...] = (
    250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0,
)
# Network input = dB HL / this (DESIGN.md: "normalised (e.g. /100)").
MODEL_INPUT_SCALE_DB = 100.0

EARS = ("left", "right", "mean")


@dataclass(frozen=True)
class Audiogram:
    """Hearing thresholds of one listener.

    Attributes:
        name: label of the listener or profile (e.g. ``"N3"``, a Clarity listener id).
        frequencies_hz: audiometric frequencies in Hz, strictly increasing, shape (F,).
        thresholds_db_hl: thresholds in dB HL used by the mono model, shape (F,).
            ``None`` on construction means "derive from the ears" (mean of left and
            right, or the one ear given); after construction it is always a tuple.
        left_db_hl: left-ear thresholds in dB HL, shape (F,), or ``None``.
        right_db_hl: right-ear thresholds in dB HL, shape (F,), or ``None``.

    Sequences (lists, numpy arrays) are stored as tuples of Python floats, so an
    audiogram is hashable and compares by value.
    """

    name: str
    frequencies_hz: tuple[float, ...]
    thresholds_db_hl: tuple[float, ...] | None = None
    left_db_hl: tuple[float, ...] | None = None
    right_db_hl: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise HearmaskError(
                f"audiogram name must be a non-empty string, got {self.name!r}"
            )
        label = f"audiogram {self.name!r}"
        frequencies_hz = _as_float_tuple(self.frequencies_hz, f"{label}: frequencies_hz")
        left_db_hl = _optional_float_tuple(self.left_db_hl, f"{label}: left_db_hl")
        right_db_hl = _optional_float_tuple(self.right_db_hl, f"{label}: right_db_hl")
        thresholds_db_hl = _optional_float_tuple(self.thresholds_db_hl, f"{label}: thresholds_db_hl")
        if thresholds_db_hl is None:
            # Before averaging the ears, make sure each matches the frequency list.
            _check_length(label, frequencies_hz, "left_db_hl", left_db_hl)
            _check_length(label, frequencies_hz, "right_db_hl", right_db_hl)
            if left_db_hl is None and right_db_hl is None:
                raise HearmaskError(
                    f"{label} has no thresholds: give thresholds_db_hl, or left_db_hl "
                    "and/or right_db_hl"
                )
            thresholds_db_hl = _derived_mono_db_hl(left_db_hl, right_db_hl)
        object.__setattr__(self, "frequencies_hz", frequencies_hz)
        object.__setattr__(self, "thresholds_db_hl", thresholds_db_hl)
        object.__setattr__(self, "left_db_hl", left_db_hl)
        object.__setattr__(self, "right_db_hl", right_db_hl)
        validate_audiogram(self)

    @property
    def has_per_ear(self) -> bool:
        """True when left or right thresholds are given."""
        return self.left_db_hl is not None or self.right_db_hl is not None

    @property
    def has_explicit_mono(self) -> bool:
        """True when ``thresholds_db_hl`` is not just derived from the ears (always without ears)."""
        if not self.has_per_ear:
            return True
        return self.thresholds_db_hl != _derived_mono_db_hl(self.left_db_hl, self.right_db_hl)

    def for_ear(self, ear: str) -> Audiogram:
        """A mono audiogram for ``"left"``, ``"right"`` or ``"mean"``.

        ``"mean"`` gives ``thresholds_db_hl`` (the mono model's thresholds). An audiogram
        without per-ear data describes both ears alike, so any ear gives its mono
        thresholds; asking for an ear that is missing while the other is given is an error.
        """
        if ear not in EARS:
            raise HearmaskError(f"unknown ear {ear!r}; accepted: {', '.join(EARS)}")
        if ear == "mean" or not self.has_per_ear:
            return Audiogram(self.name, self.frequencies_hz, self.thresholds_db_hl)
        ear_db_hl = self.left_db_hl if ear == "left" else self.right_db_hl
        if ear_db_hl is None:
            given = "right" if ear == "left" else "left"
            raise HearmaskError(
                f"audiogram {self.name!r} has no {ear}-ear thresholds (only {given}); "
                f"use for_ear({given!r}) or for_ear('mean')"
            )
        return Audiogram(f"{self.name} ({ear})", self.frequencies_hz, ear_db_hl)

    def to_json_dict(self) -> dict[str, Any]:
        """``{"name", "frequencies_hz", "thresholds_db_hl"}`` plus the ears that are given."""
        result: dict[str, Any] = {
            "name": self.name,
            "frequencies_hz": list(self.frequencies_hz),
            "thresholds_db_hl": list(self.thresholds_db_hl),
        }
        if self.left_db_hl is not None:
            result["left_db_hl"] = list(self.left_db_hl)
        if self.right_db_hl is not None:
            result["right_db_hl"] = list(self.right_db_hl)
        return result

    def model_input(
        self, frequencies_hz: Sequence[float] = MODEL_AUDIOGRAM_FREQUENCIES_HZ
    ) -> np.ndarray:
        """The network's audiogram input: mono thresholds on ``frequencies_hz`` / 100.

        Interpolated linearly in log-frequency, flat outside the measured range (so
        8 kHz copies the last measured value, e.g. 6 kHz). Returns float32, shape (F',).
        """
        thresholds_db_hl = interpolate_db_hl(
            self.frequencies_hz, self.thresholds_db_hl, frequencies_hz
        )
        return (thresholds_db_hl / MODEL_INPUT_SCALE_DB).astype(np.float32)


def validate_audiogram(audiogram: Audiogram) -> None:
    """Raise HearmaskError unless ``audiogram`` meets the rules in the module docstring."""
    label = f"audiogram {audiogram.name!r}"
    frequencies_hz = audiogram.frequencies_hz
    for index, frequency_hz in enumerate(frequencies_hz):
        if not math.isfinite(frequency_hz):
            raise HearmaskError(
                f"{label}: frequency #{index + 1} is {frequency_hz}; frequencies must be "
                f"finite numbers in {MIN_FREQUENCY_HZ:g}-{MAX_FREQUENCY_HZ:g} Hz"
            )
    if len(frequencies_hz) < MIN_POINTS:
        raise HearmaskError(
            f"{label} has {len(frequencies_hz)} frequency point(s); at least {MIN_POINTS} "
            "are needed"
        )
    for field_name in ("thresholds_db_hl", "left_db_hl", "right_db_hl"):
        _check_length(label, frequencies_hz, field_name, getattr(audiogram, field_name))
    for index in range(1, len(frequencies_hz)):
        previous_hz, current_hz = frequencies_hz[index - 1], frequencies_hz[index]
        if current_hz == previous_hz:
            raise HearmaskError(
                f"{label}: frequency {_num(current_hz)} Hz appears more than once "
                f"(#{index} and #{index + 1}); give each frequency once"
            )
        if current_hz < previous_hz:
            raise HearmaskError(
                f"{label}: frequencies must be in increasing order, but {_num(current_hz)} Hz "
                f"(#{index + 1}) follows {_num(previous_hz)} Hz (#{index}); sort them ascending"
            )
    for frequency_hz in frequencies_hz:
        if not MIN_FREQUENCY_HZ <= frequency_hz <= MAX_FREQUENCY_HZ:
            raise HearmaskError(
                f"{label}: frequency {_num(frequency_hz)} Hz is outside the accepted range "
                f"{MIN_FREQUENCY_HZ:g}-{MAX_FREQUENCY_HZ:g} Hz"
            )
    for field_name in ("thresholds_db_hl", "left_db_hl", "right_db_hl"):
        values = getattr(audiogram, field_name)
        if values is None:
            continue
        for frequency_hz, threshold_db_hl in zip(frequencies_hz, values):
            if not math.isfinite(threshold_db_hl):
                raise HearmaskError(
                    f"{label}: {field_name} at {_num(frequency_hz)} Hz is {threshold_db_hl}; "
                    "thresholds must be finite numbers"
                )
            if not MIN_THRESHOLD_DB_HL <= threshold_db_hl <= MAX_THRESHOLD_DB_HL:
                raise HearmaskError(
                    f"{label}: {field_name} at {_num(frequency_hz)} Hz is {_num(threshold_db_hl)} dB HL, "
                    f"outside the accepted range {MIN_THRESHOLD_DB_HL:g}..{MAX_THRESHOLD_DB_HL:g} dB HL"
                )


def _check_length(
    label: str, frequencies_hz: tuple[float, ...], field_name: str, values: tuple[float, ...] | None
) -> None:
    if values is not None and len(values) != len(frequencies_hz):
        raise HearmaskError(
            f"{label}: {len(frequencies_hz)} frequencies but {len(values)} "
            f"{field_name} values; give one threshold per frequency"
        )


def _num(value: float) -> str:
    """Shortest exact text for a number in a message (``250``, ``124.99999``)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _derived_mono_db_hl(
    left_db_hl: tuple[float, ...] | None, right_db_hl: tuple[float, ...] | None
) -> tuple[float, ...]:
    """Mean of the two ears per frequency (same lengths, checked), or the one ear given."""
    if left_db_hl is None:
        return right_db_hl
    if right_db_hl is None:
        return left_db_hl
    return tuple((left + right) / 2.0 for left, right in zip(left_db_hl, right_db_hl))


def _optional_float_tuple(values: Any, what: str) -> tuple[float, ...] | None:
    return None if values is None else _as_float_tuple(values, what)


def _as_float_tuple(values: Any, what: str) -> tuple[float, ...]:
    """Convert a 1-D sequence of real numbers to a tuple of floats, or raise."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise HearmaskError(f"{what} must be 1-D, got an array of shape {values.shape}")
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise HearmaskError(
            f"{what} must be a list of numbers, got {type(values).__name__} {values!r}"
        )
    converted = []
    for index, value in enumerate(values):
        # bool is an int subclass; a true/false in an audiogram file is a mistake.
        if isinstance(value, bool) or not isinstance(value, Real):
            raise HearmaskError(
                f"{what}: item #{index + 1} is {value!r} ({type(value).__name__}); "
                "expected a number"
            )
        try:
            converted.append(float(value))
        except OverflowError:
            raise HearmaskError(f"{what}: item #{index + 1} is too large for a float") from None
    return tuple(converted)
