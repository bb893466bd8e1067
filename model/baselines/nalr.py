"""NAL-R prescription baseline: static insertion gains from an audiogram, applied causally.

Formula
-------
NAL-R (Byrne & Dillon, "The National Acoustic Laboratories' (NAL) new procedure for
selecting the gain and frequency response of a hearing aid", Ear Hear. 7(4), 1986) with
the NAL-RP extension for severe losses (Byrne, Parkinson & Newall, Ear Hear. 11(1),
1990), exactly as pyclarity's ``clarity.enhancer.nalr.NALR`` (v0.9.0) computes it, so
the two can be compared:

- thresholds ``H_f`` (dB HL) at f = 250, 500, 1000, 2000, 4000, 6000 Hz, interpolated
  from the audiogram linearly on log-frequency, flat outside its range (pyclarity's
  ``Audiogram.resample``, our :func:`hearmask.profiles.interpolate.interpolate_db_hl`);
- ``S = H_500 + H_1000 + H_2000``; ``X = 0.05·S`` if ``S ≤ 180``, else
  ``9 + 0.116·(S − 180)`` (NAL-RP);
- ``gain_f = X + 0.31·H_f + k_f`` with ``k_f = −17, −8, +1, −1, −2, −2`` dB;
- **negative gains are clipped to 0 dB** (the prescription never attenuates);
- **if no threshold at those six frequencies is above 0 dB HL, the gain is 0 dB at all
  frequencies** (pyclarity then returns a pure delay; the formula alone would give
  +1 dB at 1 kHz after clipping).

The original NAL-R table also has constants at 750, 1500 and 3000 Hz; pyclarity (and we)
use only the six points above.

Between those frequencies the gain in dB is interpolated **linearly in Hz** (pyclarity's
``interp1d`` over its FIR design grid); below 250 Hz it stays at the 250 Hz gain and above
6000 Hz at the 6000 Hz gain (pyclarity extends the end values to 0 Hz and Nyquist).

Processing
----------
:class:`NalrProcessor` applies the gains as a static real gain per bin in the causal
streaming WOLA engine (:func:`hearmask.model.stft_stream.process_signal`). A real gain
adds no delay of its own, so the output's delay is the frame engine's algorithmic
latency, ``stft_config.algorithmic_latency_samples`` (the synthesis window length; 8 ms
for the default configuration). pyclarity instead uses a linear-phase FIR, which delays
by ``nfir / 2`` samples.

The mono thresholds of the audiogram (``Audiogram.thresholds_db_hl``) are used; pass
``audiogram.for_ear("left")`` (or ``"right"``) to fit one ear.

Only numpy is imported, so this runs on a device agent.
"""

from __future__ import annotations

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.model.stft_config import StftConfig, shipped_stft_config
from hearmask.model.stft_stream import process_signal
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.interpolate import interpolate_db_hl

# Frequencies (Hz) at which the NAL-R formula is evaluated, and their constants k_f (dB),
# as in pyclarity 0.9.0 (clarity/enhancer/nalr.py).
NALR_FREQUENCIES_HZ: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0)
NALR_BIAS_DB: tuple[float, ...] = (-17.0, -8.0, 1.0, -1.0, -2.0, -2.0)

# NAL-RP: above this three-frequency sum (dB HL) the overall gain grows faster.
_SEVERE_SUM_DB_HL = 180.0


def nalr_prescription_db(thresholds_db_hl: np.ndarray) -> np.ndarray:
    """NAL-R gains (dB) at :data:`NALR_FREQUENCIES_HZ` for thresholds (dB HL) at those frequencies.

    ``thresholds_db_hl``: shape ``(6,)``. Returns float64 ``(6,)``, every value ≥ 0; all
    zeros when no threshold is above 0 dB HL (see the module docstring).
    """
    thresholds_db_hl = np.asarray(thresholds_db_hl, dtype=np.float64)
    if thresholds_db_hl.shape != (len(NALR_FREQUENCIES_HZ),):
        raise HearmaskError(
            f"NAL-R needs thresholds at {len(NALR_FREQUENCIES_HZ)} frequencies "
            f"{NALR_FREQUENCIES_HZ} Hz, got shape {thresholds_db_hl.shape}"
        )
    if not np.all(np.isfinite(thresholds_db_hl)):
        raise HearmaskError(f"NAL-R thresholds must be finite, got {thresholds_db_hl.tolist()}")
    if thresholds_db_hl.max() <= 0.0:
        return np.zeros(len(NALR_FREQUENCIES_HZ))
    three_frequency_sum_db_hl = thresholds_db_hl[1] + thresholds_db_hl[2] + thresholds_db_hl[3]
    if three_frequency_sum_db_hl <= _SEVERE_SUM_DB_HL:
        overall_gain_db = 0.05 * three_frequency_sum_db_hl
    else:
        overall_gain_db = 0.05 * _SEVERE_SUM_DB_HL + 0.116 * (three_frequency_sum_db_hl - _SEVERE_SUM_DB_HL)
    gains_db = overall_gain_db + 0.31 * thresholds_db_hl + np.asarray(NALR_BIAS_DB)
    return np.clip(gains_db, 0.0, None)


def nalr_gains_db(audiogram: Audiogram, frequencies_hz: np.ndarray) -> np.ndarray:
    """NAL-R insertion gain in dB at ``frequencies_hz`` (any shape, Hz, ≥ 0) for ``audiogram``.

    Returns float64 of the same shape. Linear-in-Hz interpolation between the six NAL-R
    frequencies, flat outside 250–6000 Hz, never negative (module docstring).
    """
    frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64)
    if not np.all(np.isfinite(frequencies_hz)) or np.any(frequencies_hz < 0.0):
        bad_hz = frequencies_hz[~(frequencies_hz >= 0.0) | ~np.isfinite(frequencies_hz)]
        raise HearmaskError(
            f"NAL-R gain frequencies must be finite and >= 0 Hz, got {bad_hz.reshape(-1)[:4].tolist()}"
        )
    thresholds_db_hl = interpolate_db_hl(audiogram.frequencies_hz, audiogram.thresholds_db_hl, NALR_FREQUENCIES_HZ)
    prescription_db = nalr_prescription_db(thresholds_db_hl)
    # np.interp holds the end values outside the range, as pyclarity's extension does.
    return np.interp(frequencies_hz, NALR_FREQUENCIES_HZ, prescription_db)


class NalrProcessor:
    """Static NAL-R gain per STFT bin, applied in the causal streaming frame engine.

    Attributes:
        audiogram: the listener.
        stft_config: the frame engine; signals must be at ``stft_config.sample_rate_hz``.
        gains_db: NAL-R gain at each bin centre, float64 ``(num_bins,)``.
        gains_linear: ``10**(gains_db / 20)``, float64 ``(num_bins,)``.
    """

    def __init__(self, audiogram: Audiogram, stft_config: StftConfig):
        self.audiogram = audiogram
        self.stft_config = stft_config
        self.gains_db = nalr_gains_db(audiogram, stft_config.bin_frequencies_hz())
        self.gains_linear = np.power(10.0, self.gains_db / 20.0)

    @property
    def latency_samples(self) -> int:
        """Input-to-output delay: the frame engine's algorithmic latency (NAL-R adds none)."""
        return self.stft_config.algorithmic_latency_samples

    def gain_for_frame(self, frame_index: int, spectrum: np.ndarray) -> np.ndarray:
        """The same real linear gain for every frame, shape ``(num_bins,)``."""
        return self.gains_linear

    def process(self, signal: np.ndarray) -> np.ndarray:
        """Amplify a mono signal ``(T,)``; returns float64 ``(T,)`` delayed by :attr:`latency_samples`.

        No limiting is applied: with severe losses the gain exceeds 50 dB, so the caller
        decides the level (pyclarity's ``NALR.apply`` does not limit either).
        """
        return process_signal(signal, self.stft_config, self.gain_for_frame)


def enhance_nalr(signal: np.ndarray, audiogram: Audiogram, stft_config: StftConfig | None = None) -> np.ndarray:
    """NAL-R-amplify ``signal`` (mono, ``(T,)``, at ``stft_config.sample_rate_hz``); returns ``(T,)``.

    ``stft_config`` defaults to the shipped ``"default"`` configuration. The output is
    delayed by ``stft_config.algorithmic_latency_samples`` and has the input's length.
    """
    if stft_config is None:
        stft_config = shipped_stft_config("default")
    return NalrProcessor(audiogram, stft_config).process(signal)
