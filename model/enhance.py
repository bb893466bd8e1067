"""Enhance a sound file for a listener: read, resample, process causally, resample back, write.

The processing itself is a *method* (``nalr`` now; the trained network later). Every
method runs in the streaming frame engine, so the output is the input delayed by the
STFT's algorithmic latency (plus whatever the method itself adds, which is nothing for
NAL-R). The output file has the same length, rate and channel layout policy as stated
by ``channel_mode`` (see :data:`hearmask.model.audio_io.CHANNEL_MODES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.model.audio_io import Audio, channels_to_process, read_audio, resample, write_audio
from hearmask.model.stft_config import StftConfig
from hearmask.profiles.audiogram import Audiogram

# A method maps a mono float signal at the model rate to a processed one of equal length.
Method = Callable[[np.ndarray, Audiogram, StftConfig], np.ndarray]


def _nalr(signal: np.ndarray, audiogram: Audiogram, stft_config: StftConfig) -> np.ndarray:
    from hearmask.model.baselines.nalr import enhance_nalr

    return enhance_nalr(signal, audiogram, stft_config)


METHODS: dict[str, Method] = {"nalr": _nalr}

# What to do when the processed signal exceeds full scale (prescribed gain can add tens
# of dB) and the output format is integer PCM, which cannot hold it:
#   "float":     write 32-bit float instead of PCM, keeping every sample (default);
#   "normalize": scale the whole output down to a -1 dBFS peak;
#   "clip":      clip to full scale (loses the peaks; only when asked).
OVERLOAD_POLICIES = ("float", "normalize", "clip")


@dataclass(frozen=True)
class EnhanceResult:
    """What :func:`enhance_file` did, for reports."""

    input_path: str
    output_path: str
    method: str
    audiogram_name: str
    input_sample_rate_hz: int
    model_sample_rate_hz: int
    num_channels_in: int
    num_channels_out: int
    duration_s: float
    algorithmic_latency_ms: float
    output_peak_dbfs: float  # peak of the processed signal before any overload handling
    overload_action: str  # "none", or what OVERLOAD_POLICIES entry was applied

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def enhance_audio(
    audio: Audio,
    audiogram: Audiogram,
    method: str,
    stft_config: StftConfig,
    channel_mode: str = "mix",
) -> Audio:
    """Process ``audio`` with ``method`` for ``audiogram``; the result has the input's rate and length."""
    if method not in METHODS:
        raise HearmaskError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    process = METHODS[method]
    model_rate_hz = stft_config.sample_rate_hz
    processed_channels = []
    for channel in channels_to_process(audio.samples, channel_mode):
        at_model_rate = resample(channel.astype(np.float64), audio.sample_rate_hz, model_rate_hz)
        processed = process(at_model_rate, audiogram, stft_config)
        back = resample(processed, model_rate_hz, audio.sample_rate_hz)
        processed_channels.append(_fit_length(back, audio.samples.shape[0]))
    samples = np.stack(processed_channels, axis=1).astype(np.float32)
    return Audio(samples, audio.sample_rate_hz, audio.subtype)


def handle_overload(audio: Audio, policy: str) -> tuple[Audio, str]:
    """Apply ``policy`` when ``audio`` exceeds full scale in a PCM subtype; return (audio, action)."""
    if policy not in OVERLOAD_POLICIES:
        raise HearmaskError(f"unknown overload policy {policy!r}; accepted: {', '.join(OVERLOAD_POLICIES)}")
    peak = float(np.max(np.abs(audio.samples)))
    if peak <= 1.0 or not audio.subtype.startswith("PCM"):
        return audio, "none"
    if policy == "float":
        return Audio(audio.samples, audio.sample_rate_hz, "FLOAT"), "float"
    if policy == "normalize":
        return Audio(audio.samples * (10 ** (-1 / 20) / peak), audio.sample_rate_hz, audio.subtype), "normalize"
    return Audio(np.clip(audio.samples, -1.0, 1.0), audio.sample_rate_hz, audio.subtype), "clip"


def enhance_file(
    input_path: str | Path,
    output_path: str | Path,
    audiogram: Audiogram,
    method: str,
    stft_config: StftConfig,
    channel_mode: str = "mix",
    overload_policy: str = "float",
) -> EnhanceResult:
    """Read ``input_path``, enhance it, write ``output_path`` (same rate and length)."""
    audio = read_audio(input_path)
    enhanced = enhance_audio(audio, audiogram, method, stft_config, channel_mode)
    peak_dbfs = 20 * np.log10(max(float(np.max(np.abs(enhanced.samples))), 1e-12))
    enhanced, overload_action = handle_overload(enhanced, overload_policy)
    write_audio(output_path, enhanced)
    return EnhanceResult(
        input_path=str(input_path),
        output_path=str(output_path),
        method=method,
        audiogram_name=audiogram.name,
        input_sample_rate_hz=audio.sample_rate_hz,
        model_sample_rate_hz=stft_config.sample_rate_hz,
        num_channels_in=audio.num_channels,
        num_channels_out=enhanced.num_channels,
        duration_s=audio.duration_s,
        algorithmic_latency_ms=stft_config.algorithmic_latency_ms,
        output_peak_dbfs=round(peak_dbfs, 2),
        overload_action=overload_action,
    )


def _fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad to ``length`` (resampling round trips can differ by a sample)."""
    if len(signal) >= length:
        return signal[:length]
    return np.pad(signal, (0, length - len(signal)))
