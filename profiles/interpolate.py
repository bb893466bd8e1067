"""The one audiogram interpolation: linear in log-frequency, flat outside the data.

Every area that needs thresholds at other frequencies (the network input grid, the
auditory model's channel centre frequencies, NAL-R's frequency bands) calls
:func:`interpolate_db_hl`, so all of them see the same hearing loss. Pure numpy.

Flat (constant) extrapolation is what DESIGN.md asks for at 8 kHz ("8 kHz copies 6 kHz
where missing") and it never invents a slope the audiogram did not measure.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hearmask.errors import HearmaskError


def interpolate_db_hl(
    frequencies_hz: ArrayLike,
    thresholds_db_hl: ArrayLike,
    target_frequencies_hz: ArrayLike,
) -> np.ndarray:
    """Thresholds at ``target_frequencies_hz``, linear in log-frequency.

    Args:
        frequencies_hz: measured frequencies in Hz, strictly increasing, shape (F,).
        thresholds_db_hl: thresholds in dB HL, shape (..., F): one audiogram or a batch
            (e.g. the (n, F) array of ``AudiogramSampler.sample_batch``).
        target_frequencies_hz: frequencies in Hz to evaluate, any shape (T...), > 0.

    Returns:
        float64 array of shape (..., T...). At a measured frequency the measured value
        is returned exactly; between two measured frequencies the value lies on the
        straight line between them on a log-frequency axis; below the first (above the
        last) measured frequency it equals the first (last) measured value.
    """
    frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64)
    thresholds_db_hl = np.asarray(thresholds_db_hl, dtype=np.float64)
    target_frequencies_hz = np.asarray(target_frequencies_hz, dtype=np.float64)
    _check_inputs(frequencies_hz, thresholds_db_hl, target_frequencies_hz)

    output_shape = thresholds_db_hl.shape[:-1] + target_frequencies_hz.shape
    if frequencies_hz.size == 1:  # one point: flat everywhere
        return np.repeat(thresholds_db_hl, target_frequencies_hz.size, axis=-1).reshape(output_shape)

    targets_hz = target_frequencies_hz.reshape(-1)
    # Searching on the raw frequencies (exact comparisons) puts a target equal to a
    # measured frequency at the lower end of its segment with weight 0: exact value.
    lower = np.searchsorted(frequencies_hz, targets_hz, side="right") - 1
    lower = np.clip(lower, 0, frequencies_hz.size - 2)
    upper = lower + 1
    log_lower = np.log(frequencies_hz[lower])
    log_upper = np.log(frequencies_hz[upper])
    log_span = log_upper - log_lower
    # Two distinct frequencies a few ulps apart can share a logarithm: weight 0 there.
    weight = np.divide(
        np.log(targets_hz) - log_lower, log_span, out=np.zeros_like(log_span), where=log_span > 0
    )
    weight = np.clip(weight, 0.0, 1.0)

    lower_db = thresholds_db_hl[..., lower]
    upper_db = thresholds_db_hl[..., upper]
    # lower + w * (upper - lower) returns lower exactly for w = 0 and stays constant on
    # flat segments; the ends are then pinned to the measured end values exactly.
    result = lower_db + weight * (upper_db - lower_db)
    result = np.where(targets_hz <= frequencies_hz[0], thresholds_db_hl[..., :1], result)
    result = np.where(targets_hz >= frequencies_hz[-1], thresholds_db_hl[..., -1:], result)
    return result.reshape(output_shape)


def _check_inputs(
    frequencies_hz: np.ndarray, thresholds_db_hl: np.ndarray, target_frequencies_hz: np.ndarray
) -> None:
    if frequencies_hz.ndim != 1 or frequencies_hz.size == 0:
        raise HearmaskError(
            f"frequencies_hz must be a non-empty 1-D list, got shape {frequencies_hz.shape}"
        )
    if thresholds_db_hl.ndim == 0 or thresholds_db_hl.shape[-1] != frequencies_hz.size:
        raise HearmaskError(
            f"thresholds_db_hl must end in one value per frequency ({frequencies_hz.size}), "
            f"got shape {thresholds_db_hl.shape}"
        )
    if not np.all(np.isfinite(frequencies_hz)) or np.any(frequencies_hz <= 0):
        raise HearmaskError(f"frequencies_hz must be finite and > 0 Hz, got {frequencies_hz.tolist()}")
    if np.any(np.diff(frequencies_hz) <= 0):
        raise HearmaskError(
            f"frequencies_hz must be strictly increasing, got {frequencies_hz.tolist()}"
        )
    if not np.all(np.isfinite(target_frequencies_hz)) or np.any(target_frequencies_hz <= 0):
        raise HearmaskError(
            "target_frequencies_hz must be finite and > 0 Hz, got "
            f"{target_frequencies_hz.reshape(-1)[:8].tolist()}"
        )
