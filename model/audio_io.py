"""Reading, writing and resampling audio files, with errors a user can act on.

numpy/scipy/soundfile only (no torch), so the device agent can use it too.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from hearmask.errors import HearmaskError

# How multi-channel input is handled (stated in the CLI's --help):
#   "mix":  average the channels to mono, process once, write mono.
#   "each": process every channel independently with the same settings, write all channels.
CHANNEL_MODES = ("mix", "each")

MAX_CHANNELS = 32


@dataclass(frozen=True)
class Audio:
    """Samples as float32 ``(T, C)`` in [-1, 1] full scale, at ``sample_rate_hz``."""

    samples: np.ndarray
    sample_rate_hz: int
    subtype: str = "FLOAT"  # soundfile subtype of the source file, reused when writing

    @property
    def num_channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz


def read_audio(path: str | Path) -> Audio:
    """Read a sound file (wav, flac, ogg, ...) as float32 ``(T, C)``.

    Raises :class:`HearmaskError` for a missing or unreadable file, an empty file, more than
    :data:`MAX_CHANNELS` channels, or non-finite samples.
    """
    path = Path(path)
    if not path.exists():
        raise HearmaskError(f"audio file {str(path)!r} does not exist")
    if not path.is_file():
        raise HearmaskError(f"audio path {str(path)!r} is not a file")
    try:
        info = soundfile.info(str(path))
        samples, sample_rate_hz = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise HearmaskError(
            f"cannot read audio file {str(path)!r}: {error}; accepted: wav, flac, ogg and other formats libsndfile reads"
        ) from None
    if samples.shape[0] == 0:
        raise HearmaskError(f"audio file {str(path)!r} holds no samples")
    if samples.shape[1] > MAX_CHANNELS:
        raise HearmaskError(f"audio file {str(path)!r} has {samples.shape[1]} channels; at most {MAX_CHANNELS} are accepted")
    if not np.all(np.isfinite(samples)):
        raise HearmaskError(f"audio file {str(path)!r} contains NaN or infinite samples")
    return Audio(samples, int(sample_rate_hz), info.subtype)


def write_audio(path: str | Path, audio: Audio) -> None:
    """Write ``audio`` atomically (temporary file, then rename), clipping to full scale for PCM."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = audio.samples
    subtype = audio.subtype if audio.subtype in soundfile.available_subtypes(_format_for(path)) else "FLOAT"
    if subtype.startswith("PCM"):
        samples = np.clip(samples, -1.0, 1.0)  # PCM cannot hold more than full scale
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        soundfile.write(temporary, samples, audio.sample_rate_hz, subtype=subtype, format=_format_for(path))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}
    if suffix not in formats:
        raise HearmaskError(f"cannot write {str(path)!r}: unknown audio suffix {path.suffix!r}; accepted: .wav, .flac, .ogg")
    return formats[suffix]


def resample(samples: np.ndarray, from_rate_hz: int, to_rate_hz: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (``(T,)`` or ``(T, C)``); a no-op at equal rates."""
    if from_rate_hz <= 0 or to_rate_hz <= 0:
        raise HearmaskError(f"sample rates must be positive, got {from_rate_hz} and {to_rate_hz} Hz")
    if from_rate_hz == to_rate_hz:
        return samples
    divisor = gcd(int(from_rate_hz), int(to_rate_hz))
    up, down = int(to_rate_hz) // divisor, int(from_rate_hz) // divisor
    return resample_poly(samples, up, down, axis=0).astype(samples.dtype, copy=False)


def channels_to_process(samples: np.ndarray, channel_mode: str) -> np.ndarray:
    """``(T, C)`` -> ``(C', T)``: one row per signal to process (``mix``: C' = 1, ``each``: C' = C)."""
    if channel_mode not in CHANNEL_MODES:
        raise HearmaskError(f"unknown channel mode {channel_mode!r}; accepted: {', '.join(CHANNEL_MODES)}")
    if channel_mode == "mix":
        return samples.mean(axis=1, keepdims=True).T
    return samples.T
