"""Training audiograms: a standard profile at random, jittered per frequency.

DESIGN.md ("Training audiograms"): uniform over NH, N1-N7 and S1-S3, with +-10 dB
uniform jitter per frequency, clipped to 0-105 dB HL. Seeded with a numpy Generator,
so the same seed gives the same sequence of audiograms.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.interpolate import interpolate_db_hl
from hearmask.profiles.standard import STANDARD_FREQUENCIES_HZ, STANDARD_PROFILE_NAMES, standard_audiogram

# Clip range of the sampled thresholds (DESIGN.md): 105 dB HL is N7's maximum.
SAMPLED_MIN_DB_HL = 0.0
SAMPLED_MAX_DB_HL = 105.0


class AudiogramSampler:
    """Draws jittered standard audiograms, reproducibly from ``seed``.

    Args:
        seed: seed of the numpy Generator (PCG64).
        jitter_db: half-width in dB of the uniform jitter added per frequency (>= 0).
        names: standard profiles drawn from, uniformly (any case; repeats weight a name).
        frequencies_hz: grid the thresholds are given on; default the standard grid
            (Bisgaard's frequencies plus 8 kHz). Profiles are interpolated to it first.

    ``sample()`` and ``sample_batch()`` draw from one stream: ``sample()`` equals the
    one row of ``sample_batch(1)`` drawn at the same point.
    """

    def __init__(
        self,
        seed: int,
        jitter_db: float = 10.0,
        names: Sequence[str] = STANDARD_PROFILE_NAMES,
        *,
        frequencies_hz: Sequence[float] = STANDARD_FREQUENCIES_HZ,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise HearmaskError(f"sampler seed must be a non-negative integer, got {seed!r}")
        if not isinstance(jitter_db, (int, float)) or not math.isfinite(jitter_db) or jitter_db < 0:
            raise HearmaskError(f"jitter_db must be a finite number >= 0 dB, got {jitter_db!r}")
        if isinstance(names, str) or len(names) == 0:
            raise HearmaskError(
                f"names must be a non-empty list of profile names, got {names!r}; accepted "
                f"names: {', '.join(STANDARD_PROFILE_NAMES)}"
            )
        profiles = [standard_audiogram(name) for name in names]
        # Validates the grid with the audiogram rules (sorted, 125-16000 Hz, >= 2 points).
        grid = Audiogram("sampler grid", frequencies_hz, (0.0,) * len(frequencies_hz))
        self.seed = int(seed)
        self.jitter_db = float(jitter_db)
        self.names: tuple[str, ...] = tuple(profile.name for profile in profiles)
        self.frequencies_hz: tuple[float, ...] = grid.frequencies_hz
        # (P, F): each profile's thresholds on the grid, before jitter.
        self.base_db_hl = np.stack(
            [
                interpolate_db_hl(profile.frequencies_hz, profile.thresholds_db_hl, self.frequencies_hz)
                for profile in profiles
            ]
        )
        self._generator = np.random.default_rng(self.seed)
        self._drawn = 0

    def sample(self) -> Audiogram:
        """One jittered audiogram, named after its profile (e.g. ``"N3~jitter#4"``)."""
        profile_indices, thresholds_db_hl = self._draw(1)
        self._drawn += 1
        return Audiogram(
            f"{self.names[profile_indices[0]]}~jitter#{self._drawn}",
            self.frequencies_hz,
            tuple(thresholds_db_hl[0].tolist()),
        )

    def sample_batch(self, n: int) -> np.ndarray:
        """``n`` jittered audiograms as thresholds in dB HL, float64, shape (n, F)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise HearmaskError(f"sample_batch needs a count n >= 0, got {n!r}")
        _, thresholds_db_hl = self._draw(int(n))
        self._drawn += int(n)
        return thresholds_db_hl

    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        profile_indices = self._generator.integers(0, len(self.names), size=n)
        jitter_db = self._generator.uniform(
            -self.jitter_db, self.jitter_db, size=(n, len(self.frequencies_hz))
        )
        thresholds_db_hl = np.clip(
            self.base_db_hl[profile_indices] + jitter_db, SAMPLED_MIN_DB_HL, SAMPLED_MAX_DB_HL
        )
        return profile_indices, thresholds_db_hl
