"""Speech augmentation: level, spectral tilt / EQ, and synthetic-room reverberation. Seeded.

- EQ is a zero-phase gain curve applied in the frequency domain (FFT of the zero-padded
  signal), piecewise linear in dB over log frequency; a *tilt* of ``t`` dB/octave is the
  curve ``t * log2(f / pivot)``, held constant outside 100 Hz - 8 kHz so that it cannot
  blow up DC or the band edge.
- A synthetic room impulse response is a direct path (a unit impulse at sample 0, so the
  reverberant speech stays time-aligned with the dry speech) followed, after a 1-5 ms gap,
  by Gaussian noise under an exponential envelope that falls by 60 dB in ``rt60_s``
  (Schroeder's statistical model of a diffuse tail; Polack 1988). The tail is scaled to a
  direct-to-reverberant energy ratio (DRR). :func:`measure_rt60_s` measures it back with
  Schroeder backward integration (T20, extrapolated to 60 dB; ISO 3382).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import fftconvolve

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ

TILT_PIVOT_HZ = 1000.0
TILT_BAND_HZ = (100.0, 8000.0)


def apply_gain_db(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """``audio`` scaled by ``gain_db`` (float32)."""
    return (np.asarray(audio, dtype=np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def apply_eq(audio: np.ndarray, breakpoints_hz: Sequence[float], gains_db: Sequence[float],
             sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> np.ndarray:
    """Zero-phase EQ: gain curve through (``breakpoints_hz``, ``gains_db``), linear in log f.

    Outside the first/last breakpoint the end gains hold. Output float32, same length.
    """
    breakpoints_hz = np.asarray(breakpoints_hz, dtype=np.float64)
    gains_db = np.asarray(gains_db, dtype=np.float64)
    if breakpoints_hz.size == 0 or breakpoints_hz.shape != gains_db.shape:
        raise HearmaskError(f"EQ needs matching non-empty breakpoints and gains; "
                            f"got {breakpoints_hz.size} and {gains_db.size}")
    if np.any(breakpoints_hz <= 0) or np.any(np.diff(breakpoints_hz) <= 0):
        raise HearmaskError(f"EQ breakpoints {breakpoints_hz.tolist()} Hz must be positive and increasing")
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        return audio.astype(np.float32)
    # Zero padding keeps the (short) smooth-curve impulse response from wrapping around.
    num_fft = 1 << int(math.ceil(math.log2(audio.size + 2048)))
    frequencies_hz = np.fft.rfftfreq(num_fft, 1.0 / sample_rate_hz)
    log_frequency = np.log2(np.maximum(frequencies_hz, breakpoints_hz[0]))
    curve_db = np.interp(log_frequency, np.log2(breakpoints_hz), gains_db)
    spectrum = np.fft.rfft(audio, n=num_fft) * 10.0 ** (curve_db / 20.0)
    return np.fft.irfft(spectrum, n=num_fft)[: audio.size].astype(np.float32)


def apply_tilt(audio: np.ndarray, tilt_db_per_octave: float, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> np.ndarray:
    """Spectral tilt of ``tilt_db_per_octave`` around 1 kHz, flat outside 100 Hz - 8 kHz."""
    low_hz, high_hz = TILT_BAND_HZ
    high_hz = min(high_hz, sample_rate_hz / 2.0)
    gains_db = [tilt_db_per_octave * math.log2(f / TILT_PIVOT_HZ) for f in (low_hz, high_hz)]
    return apply_eq(audio, [low_hz, high_hz], gains_db, sample_rate_hz)


def synthetic_rir(rt60_s: float, rng: np.random.Generator, *, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
                  direct_to_reverberant_db: float = 3.0, duration_s: float | None = None) -> np.ndarray:
    """A room impulse response: direct path at sample 0 plus an exponentially decaying tail.

    Args:
        rt60_s: time for the tail's energy to fall by 60 dB (0.05-3 s accepted).
        direct_to_reverberant_db: energy of the direct path over that of the tail.
        duration_s: length of the response (default ``rt60_s``, where the tail is 60 dB down).

    Returns:
        float32, shape ``(round(duration_s * sample_rate_hz),)``; ``h[0] == 1``.
    """
    if not 0.05 <= rt60_s <= 3.0:
        raise HearmaskError(f"rt60_s={rt60_s}; expected 0.05 to 3 s")
    num_samples = max(2, int(round((duration_s if duration_s is not None else rt60_s) * sample_rate_hz)))
    gap_samples = int(rng.integers(int(0.001 * sample_rate_hz), int(0.005 * sample_rate_hz) + 1))
    time_s = np.arange(num_samples - gap_samples) / sample_rate_hz
    # Energy falls 60 dB over rt60: amplitude envelope exp(-3 ln(10) t / rt60).
    tail = rng.standard_normal(time_s.size) * np.exp(-3.0 * math.log(10.0) * time_s / rt60_s)
    tail_energy = float(np.sum(tail * tail))
    response = np.zeros(num_samples, dtype=np.float64)
    response[0] = 1.0
    if tail_energy > 0.0:
        response[gap_samples:] = tail * math.sqrt(10.0 ** (-direct_to_reverberant_db / 10.0) / tail_energy)
    return response.astype(np.float32)


def reverberate(audio: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """``audio`` convolved with ``impulse_response``, cut to the input length (float32)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        return audio.astype(np.float32)
    return fftconvolve(audio, np.asarray(impulse_response, dtype=np.float64))[: audio.size].astype(np.float32)


def measure_rt60_s(impulse_response: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> float:
    """RT60 from the Schroeder decay curve: a line fitted from -5 to -25 dB (T20), times 3.

    The direct path (sample 0) is excluded, so the measure describes the diffuse tail.
    """
    tail = np.asarray(impulse_response, dtype=np.float64)[1:]
    energy = np.cumsum((tail * tail)[::-1])[::-1]
    if energy[0] <= 0.0:
        raise HearmaskError("impulse response has no tail energy; cannot measure RT60")
    decay_db = 10.0 * np.log10(np.maximum(energy / energy[0], 1e-30))
    fit = (decay_db <= -5.0) & (decay_db >= -25.0)
    if np.count_nonzero(fit) < 2:
        raise HearmaskError("impulse response too short to measure a 20 dB decay")
    slope_db_per_s, _ = np.polyfit(np.flatnonzero(fit) / sample_rate_hz, decay_db[fit], 1)
    return -60.0 / slope_db_per_s


@dataclass(frozen=True)
class AugmentConfig:
    """Random speech augmentation; each effect is applied with its own probability."""

    #: Probability and range (dB/octave, uniform) of a spectral tilt.
    tilt_probability: float = 0.5
    tilt_range_db_per_octave: tuple[float, float] = (-2.0, 2.0)
    #: Probability of a random 4-band EQ with gains uniform in ``eq_range_db``.
    eq_probability: float = 0.3
    eq_range_db: tuple[float, float] = (-6.0, 6.0)
    #: Probability of synthetic-room reverberation, RT60 and DRR drawn uniformly.
    reverb_probability: float = 0.3
    rt60_range_s: tuple[float, float] = (0.15, 0.9)
    drr_range_db: tuple[float, float] = (0.0, 12.0)

    def to_dict(self) -> dict:
        """Plain-JSON form, for manifests and checkpoints."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


NO_AUGMENTATION = AugmentConfig(tilt_probability=0.0, eq_probability=0.0, reverb_probability=0.0)
# Log-spaced EQ breakpoints for the random EQ (Hz): one band per ~2 octaves of speech.
_EQ_BREAKPOINTS_HZ = (250.0, 1000.0, 3000.0, 6000.0)


def augment_speech(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig(),
                   sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> tuple[np.ndarray, dict]:
    """Apply ``config``'s random tilt, EQ and reverberation to ``audio``.

    The same number of random draws is made whatever is applied, so one effect's
    probability does not shift the randomness of the others.

    Returns:
        ``(augmented float32 audio, {"tilt_db_per_octave", "eq_gains_db", "rt60_s", "drr_db"})``
        with None for effects not applied.
    """
    draws = rng.random(3)
    tilt = float(rng.uniform(*config.tilt_range_db_per_octave))
    eq_gains_db = rng.uniform(*config.eq_range_db, size=len(_EQ_BREAKPOINTS_HZ))
    rt60_s = float(rng.uniform(*config.rt60_range_s))
    drr_db = float(rng.uniform(*config.drr_range_db))
    rir_seed = int(rng.integers(2**32))
    applied: dict = {"tilt_db_per_octave": None, "eq_gains_db": None, "rt60_s": None, "drr_db": None}
    output = np.asarray(audio, dtype=np.float32)
    if draws[0] < config.tilt_probability:
        output = apply_tilt(output, tilt, sample_rate_hz)
        applied["tilt_db_per_octave"] = tilt
    if draws[1] < config.eq_probability:
        output = apply_eq(output, _EQ_BREAKPOINTS_HZ, eq_gains_db, sample_rate_hz)
        applied["eq_gains_db"] = [float(g) for g in eq_gains_db]
    if draws[2] < config.reverb_probability:
        response = synthetic_rir(rt60_s, np.random.default_rng(rir_seed), sample_rate_hz=sample_rate_hz,
                                 direct_to_reverberant_db=drr_db)
        output = reverberate(output, response)
        applied["rt60_s"], applied["drr_db"] = rt60_s, drr_db
    return output, applied
