"""Combining the two log-domain masks into one gain per bin (numpy or torch, no torch import).

DESIGN.md "Signal chain": the applied gain is ``alpha·nr_db + beta·hlc_db`` dB, i.e.
``M_NR^alpha · M_HLC^beta`` in the linear domain. The listener's strengths alpha (noise
reduction) and beta (hearing-loss compensation) are in [0, 1]; values above 1
exaggerate a mask and are accepted only when asked for.
"""

from __future__ import annotations

import math
from numbers import Real

from hearmask.errors import HearmaskError


def validate_strength(name: str, value: float, allow_exaggeration: bool = False) -> float:
    """Return ``value`` as a float if it is an accepted strength, else raise :class:`HearmaskError`."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise HearmaskError(f"strength {name} must be a finite number, got {value!r}")
    value = float(value)
    if value < 0.0:
        upper = "any value >= 0 with exaggeration enabled" if allow_exaggeration else "[0, 1]"
        raise HearmaskError(f"strength {name} must not be negative, got {value}; accepted: {upper}")
    if value > 1.0 and not allow_exaggeration:
        raise HearmaskError(
            f"strength {name} = {value} is above 1; accepted range is [0, 1]. Values above 1 exaggerate "
            "the mask and need allow_exaggeration=True (CLI: --allow-exaggeration)"
        )
    return value


def combine_gains_db(nr_db, hlc_db, alpha: float, beta: float, allow_exaggeration: bool = False):
    """Combined gain in dB, ``alpha·nr_db + beta·hlc_db``, same shape and type as the inputs.

    ``nr_db`` and ``hlc_db``: numpy arrays or torch tensors of equal (broadcastable) shape,
    e.g. ``(num_bins,)`` per hop or ``(B, K, num_bins)``. alpha = beta = 0 gives 0 dB
    (identity). Raises :class:`HearmaskError` for strengths outside [0, 1] unless
    ``allow_exaggeration`` (then any finite value >= 0).
    """
    alpha = validate_strength("alpha", alpha, allow_exaggeration)
    beta = validate_strength("beta", beta, allow_exaggeration)
    return alpha * nr_db + beta * hlc_db


def db_to_linear(gain_db):
    """Amplitude gain ``10^(gain_db / 20)`` of a numpy array, tensor or float."""
    return 10.0 ** (gain_db / 20.0)
