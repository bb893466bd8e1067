"""Audio conventions of the data layer, on top of :mod:`hearmask.model.audio_io`.

- Audio is a float32 array of shape ``(num_samples,)``, full scale = 1.0, at 16 kHz.
- Files at any sample rate are resampled to 16 kHz (polyphase, :func:`hearmask.model.audio_io.resample`).
- Multichannel files are mixed to mono by the plain average of the channels: it keeps the
  level of a centred source, never raises the peak, and needs no choice of a "best" channel.
- Levels in dBFS are ``20 * log10(rms)`` with full scale 1.0 (a full-scale sine is -3 dBFS).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hearmask.model.audio_io import read_audio, resample

MODEL_SAMPLE_RATE_HZ = 16000
# Below this power a signal counts as digital silence when converting to dB.
POWER_FLOOR = 1e-20


def power_to_db(power: float) -> float:
    """``10 * log10(power)``, with a floor so silence gives -200 dB rather than -inf."""
    return 10.0 * math.log10(max(float(power), POWER_FLOOR))


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of ``audio`` in dBFS (full scale 1.0)."""
    if audio.size == 0:
        return power_to_db(0.0)
    return power_to_db(float(np.mean(np.square(audio, dtype=np.float64))))


def to_model_rate(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """1-D ``audio`` at ``sample_rate_hz`` resampled to 16 kHz, float32."""
    return resample(np.asarray(audio, dtype=np.float32), int(sample_rate_hz), MODEL_SAMPLE_RATE_HZ).astype(np.float32)


def read_mono(path: str | Path) -> np.ndarray:
    """Read an audio file as mono float32 at 16 kHz, shape ``(num_samples,)``.

    Raises:
        HearmaskError: naming the file, if it is missing, unreadable, empty, or holds
            non-finite samples (see :func:`hearmask.model.audio_io.read_audio`).
    """
    audio = read_audio(path)
    mono = audio.samples.mean(axis=1, dtype=np.float64).astype(np.float32)
    return to_model_rate(mono, audio.sample_rate_hz)
