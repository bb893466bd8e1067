"""Mix speech and noise at a chosen SNR and level.

Definitions (used everywhere in hearmask, and by the tests that measure them back):

- **Active speech samples**: the speech is cut into 20 ms frames; a frame is active when
  its power is within 40 dB of the loudest frame. Every sample of an active frame is
  active. The mask does not change when the signal is scaled, so it is the same on the
  input speech and on the returned ``clean``. A signal whose loudest frame is below
  -65 dBFS has no active frame (a synthetic noise floor alone is not speech). This is a
  simple energy detector in the spirit of the active speech level of ITU-T P.56, without
  its hangover and envelope filter.
- **SNR** = ``10 log10(P_speech / P_noise)`` where ``P_speech`` is the mean power of the
  speech over its active samples and ``P_noise`` is the mean power of the noise over the
  *whole* mixture length. Pauses in the speech therefore do not lower the SNR, and an
  intermittent noise (clatter) counts with its average power.
- **Level** (``level_dbfs``) = the active speech level, ``10 log10(P_speech)`` in dBFS.

The noise is looped (with a 10 ms raised-cosine crossfade at each join, so the loop does
not click) or cropped to the speech length; with an ``rng`` the crop/loop start is random.

Clipping is never silent: when the noisy or clean signal would exceed ``PEAK_LIMIT``, all
three signals are scaled down by the same gain (the SNR is unchanged, the level drops) and
``peak_gain_db`` records that gain; with ``on_clip="raise"`` a :class:`HearmaskError` is
raised instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ, power_to_db

ACTIVITY_FRAME_SECONDS = 0.02
ACTIVITY_RANGE_DB = 40.0
ACTIVITY_FLOOR_DBFS = -65.0
LOOP_CROSSFADE_SECONDS = 0.01
# Largest allowed absolute sample value after mixing (headroom below full scale 1.0).
PEAK_LIMIT = 0.99
DEFAULT_SNR_RANGE_DB = (-5.0, 20.0)
DEFAULT_LEVEL_RANGE_DBFS = (-40.0, -20.0)


@dataclass(frozen=True)
class Mixture:
    """``noisy = clean + noise``; all float32, shape ``(num_samples,)``.

    Attributes:
        snr_db: the SNR of ``clean`` to ``noise`` (definition in the module docstring).
        level_dbfs: active speech level of ``clean`` in dBFS, after any peak scaling.
        peak_gain_db: gain (<= 0) applied to all three signals to keep peaks within
            ``PEAK_LIMIT``; 0.0 when no scaling was needed.
    """

    clean: np.ndarray
    noise: np.ndarray
    noisy: np.ndarray
    snr_db: float
    level_dbfs: float
    peak_gain_db: float

    @property
    def clipping_avoided(self) -> bool:
        """True when the signals were scaled down to avoid clipping."""
        return self.peak_gain_db < 0.0


def speech_activity_mask(speech: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> np.ndarray:
    """Boolean mask of active speech samples, shape ``(num_samples,)`` (see module docstring)."""
    speech = np.asarray(speech)
    frame_samples = max(1, int(round(ACTIVITY_FRAME_SECONDS * sample_rate_hz)))
    num_frames = -(-speech.size // frame_samples)
    padded = np.zeros(num_frames * frame_samples, dtype=np.float64)
    padded[: speech.size] = speech
    frames = padded.reshape(num_frames, frame_samples)
    # The last frame's power is taken over its real samples only.
    counts = np.full(num_frames, frame_samples, dtype=np.float64)
    counts[-1] = speech.size - (num_frames - 1) * frame_samples
    frame_power = np.sum(frames * frames, axis=1) / counts
    if frame_power.size == 0:
        return np.zeros(0, dtype=bool)
    loudest = float(frame_power.max())
    if loudest < 10.0 ** (ACTIVITY_FLOOR_DBFS / 10.0):
        return np.zeros(speech.size, dtype=bool)
    active_frames = frame_power >= loudest * 10.0 ** (-ACTIVITY_RANGE_DB / 10.0)
    return np.repeat(active_frames, frame_samples)[: speech.size]


def active_speech_power(speech: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> float:
    """Mean power of ``speech`` over its active samples; raises if none are active."""
    mask = speech_activity_mask(speech, sample_rate_hz)
    if not np.any(mask):
        raise HearmaskError(
            f"speech of {speech.size} samples has no active frame (peak frame below "
            f"{ACTIVITY_FLOOR_DBFS:g} dBFS); expected audible speech"
        )
    active = np.asarray(speech, dtype=np.float64)[mask]
    return float(np.mean(active * active))


def fit_noise_length(noise: np.ndarray, num_samples: int, rng: np.random.Generator | None = None,
                     sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> np.ndarray:
    """Loop or crop ``noise`` to ``num_samples`` (float32); a random start when ``rng`` is given."""
    noise = np.asarray(noise, dtype=np.float32)
    if noise.size == 0:
        raise HearmaskError("noise has zero samples; expected a non-empty noise signal")
    if noise.size >= num_samples:
        start = int(rng.integers(noise.size - num_samples + 1)) if rng is not None else 0
        return noise[start : start + num_samples].copy()
    # Loop with a crossfade: each repetition overlaps the previous by `fade` samples.
    start = int(rng.integers(noise.size)) if rng is not None else 0
    fade = min(int(LOOP_CROSSFADE_SECONDS * sample_rate_hz), noise.size // 4)
    rotated = np.roll(noise, -start)
    if fade == 0:
        return np.resize(rotated, num_samples).astype(np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    # sin/cos-shaped (equal-power) fades keep the power of uncorrelated noise constant.
    fade_in = np.sqrt(ramp).astype(np.float32)
    fade_out = np.sqrt(1.0 - ramp).astype(np.float32)
    output = np.zeros(num_samples + noise.size, dtype=np.float32)
    output[: noise.size] = rotated
    position = noise.size - fade
    while position < num_samples:
        piece = rotated.copy()
        piece[:fade] *= fade_in
        output[position : position + fade] *= fade_out
        output[position : position + noise.size] += piece
        position += noise.size - fade
    return output[:num_samples]


def mix(
    speech: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    level_dbfs: float | None = None,
    rng: np.random.Generator | None = None,
    *,
    sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
    on_clip: str = "scale",
) -> Mixture:
    """Mix ``speech`` and ``noise`` (1-D float) at ``snr_db``; optionally set the active level.

    Args:
        speech: clean speech, shape ``(num_samples,)``.
        noise: noise of any length; looped or cropped to ``num_samples``.
        snr_db: target SNR in dB (definition in the module docstring).
        level_dbfs: target active speech level in dBFS; None keeps the speech's level.
        rng: when given, the noise start is random; otherwise it starts at sample 0.
        on_clip: ``"scale"`` (scale all down, recorded in ``peak_gain_db``) or ``"raise"``.
    """
    if on_clip not in ("scale", "raise"):
        raise HearmaskError(f"on_clip={on_clip!r} is not accepted; expected 'scale' or 'raise'")
    if not np.isfinite(snr_db):
        raise HearmaskError(f"snr_db={snr_db} is not finite; expected a number of dB")
    speech = np.asarray(speech, dtype=np.float32)
    if speech.ndim != 1 or speech.size == 0:
        raise HearmaskError(f"speech must be a non-empty 1-D signal; got shape {speech.shape}")
    speech_power = active_speech_power(speech, sample_rate_hz)
    fitted_noise = fit_noise_length(noise, speech.size, rng, sample_rate_hz).astype(np.float64)
    noise_power = float(np.mean(fitted_noise * fitted_noise))
    if noise_power <= 0.0:
        raise HearmaskError("noise is digital silence over the mixture length; expected audible noise")

    speech_gain = 1.0 if level_dbfs is None else 10.0 ** ((level_dbfs - power_to_db(speech_power)) / 20.0)
    clean = speech.astype(np.float64) * speech_gain
    target_noise_power = speech_power * speech_gain**2 * 10.0 ** (-snr_db / 10.0)
    scaled_noise = fitted_noise * np.sqrt(target_noise_power / noise_power)
    noisy = clean + scaled_noise

    peak = max(float(np.max(np.abs(noisy))), float(np.max(np.abs(clean))))
    peak_gain = 1.0
    if peak > PEAK_LIMIT:
        if on_clip == "raise":
            raise HearmaskError(
                f"the mixture would clip: peak {peak:.3f} exceeds {PEAK_LIMIT} at level "
                f"{level_dbfs} dBFS and SNR {snr_db} dB; lower the level or use on_clip='scale'"
            )
        peak_gain = PEAK_LIMIT / peak
    clean *= peak_gain
    scaled_noise *= peak_gain
    noisy = clean + scaled_noise
    return Mixture(
        clean=clean.astype(np.float32),
        noise=scaled_noise.astype(np.float32),
        noisy=noisy.astype(np.float32),
        snr_db=float(snr_db),
        level_dbfs=power_to_db(speech_power * (speech_gain * peak_gain) ** 2),
        peak_gain_db=20.0 * float(np.log10(peak_gain)),
    )


def mix_random_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    rng: np.random.Generator,
    snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB,
    level_range_dbfs: tuple[float, float] | None = DEFAULT_LEVEL_RANGE_DBFS,
    *,
    sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
) -> Mixture:
    """:func:`mix` with the SNR (and level, unless None) drawn uniformly from the ranges."""
    low_db, high_db = snr_range_db
    if not low_db <= high_db:
        raise HearmaskError(f"SNR range {snr_range_db} is empty; expected (low, high) with low <= high")
    snr_db = float(rng.uniform(low_db, high_db))
    level_dbfs = None
    if level_range_dbfs is not None:
        if not level_range_dbfs[0] <= level_range_dbfs[1]:
            raise HearmaskError(f"level range {level_range_dbfs} is empty; expected (low, high) with low <= high")
        level_dbfs = float(rng.uniform(*level_range_dbfs))
    return mix(speech, noise, snr_db, level_dbfs, rng, sample_rate_hz=sample_rate_hz)
