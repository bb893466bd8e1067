"""ERB formulas of Glasberg & Moore (1990), "Derivation of auditory filter shapes from
notched-noise data", Hearing Research 47. numpy only: the feature extractor (device side)
and the auditory model (training) share them.
"""

from __future__ import annotations

import numpy as np


def erb_bandwidth_hz(frequencies_hz: np.ndarray) -> np.ndarray:
    """Equivalent rectangular bandwidth in Hz at ``frequencies_hz`` (Glasberg & Moore 1990)."""
    return 24.7 * (4.37 * np.asarray(frequencies_hz, dtype=np.float64) / 1000.0 + 1.0)


def erb_number(frequencies_hz: np.ndarray) -> np.ndarray:
    """ERB-number (Cams) at ``frequencies_hz``: ``21.4 log10(4.37 f/1000 + 1)``."""
    return 21.4 * np.log10(4.37 * np.asarray(frequencies_hz, dtype=np.float64) / 1000.0 + 1.0)


def erb_number_to_hz(erb_numbers: np.ndarray) -> np.ndarray:
    """Inverse of :func:`erb_number`: frequency in Hz at the given ERB-numbers."""
    return (10.0 ** (np.asarray(erb_numbers, dtype=np.float64) / 21.4) - 1.0) * 1000.0 / 4.37


def erb_spaced_frequencies_hz(low_hz: float, high_hz: float, num_channels: int) -> np.ndarray:
    """``num_channels`` centre frequencies from ``low_hz`` to ``high_hz`` (both included),
    equally spaced on the ERB-number scale. Shape (C,), increasing, float64."""
    if num_channels == 1:
        return np.array([float(low_hz)])
    return erb_number_to_hz(np.linspace(erb_number(low_hz), erb_number(high_hz), num_channels))
