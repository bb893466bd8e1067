"""Enhance a sound file for a listener: read, resample, process causally, resample back, write.

The processing itself is a *method*: ``model`` (the network's step form) or ``nalr``. Every
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

# A processor maps a mono float signal at the model rate to a processed one of equal length.
Processor = Callable[[np.ndarray], np.ndarray]

METHODS = ("model", "nalr")


def make_processor(method: str, audiogram: Audiogram, *, stft_config: StftConfig | None = None,
                   model_path: str | Path | None = None, nr_strength: float = 1.0, hlc_strength: float = 1.0,
                   allow_exaggeration: bool = False) -> tuple[Processor, StftConfig, str]:
    """Build the per-channel processor of ``method``; return it, its STFT config and a description.

    ``model``: the network's step form, hop by hop (``--nr`` = alpha, ``--hlc`` = beta), from
    ``model_path`` or the shipped default model. ``nalr``: the NAL-R prescription.
    """
    if method == "nalr":
        from hearmask.model.baselines.nalr import enhance_nalr
        from hearmask.model.stft_config import shipped_stft_config

        config = stft_config or shipped_stft_config("default")
        return (lambda signal: enhance_nalr(signal, audiogram, config)), config, "NAL-R"
    if method == "model":
        from hearmask.model.default_model import resolve_model_path
        from hearmask.model.streaming import StreamingEnhancer
        from hearmask.model.system_io import load_system

        path = resolve_model_path(model_path)
        system, _ = load_system(path)
        if stft_config is not None and stft_config != system.stft_config:
            raise HearmaskError(f"the model {path} was trained with its own STFT configuration; do not pass --stft with it")

        def process(signal: np.ndarray) -> np.ndarray:
            # A fresh enhancer per channel: each channel starts from the initial state.
            return StreamingEnhancer(system, audiogram, nr_strength, hlc_strength, allow_exaggeration).process_signal(signal)

        return process, system.stft_config, f"model {path} (nr {nr_strength:g}, hlc {hlc_strength:g})"
    raise HearmaskError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")


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
    method_description: str
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


def enhance_audio(audio: Audio, process: Processor, model_rate_hz: int, channel_mode: str = "mix") -> Audio:
    """Run ``process`` on each channel to process; the result has the input's rate and length."""
    processed_channels = []
    for channel in channels_to_process(audio.samples, channel_mode):
        at_model_rate = resample(channel.astype(np.float64), audio.sample_rate_hz, model_rate_hz)
        processed = process(at_model_rate)
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
    stft_config: StftConfig | None = None,
    channel_mode: str = "mix",
    overload_policy: str = "float",
    **processor_options,
) -> EnhanceResult:
    """Read ``input_path``, enhance it, write ``output_path`` (same rate and length).

    ``processor_options`` go to :func:`make_processor` (model_path, nr_strength, hlc_strength, ...).
    """
    audio = read_audio(input_path)
    process, stft_config, description = make_processor(method, audiogram, stft_config=stft_config, **processor_options)
    enhanced = enhance_audio(audio, process, stft_config.sample_rate_hz, channel_mode)
    peak_dbfs = 20 * np.log10(max(float(np.max(np.abs(enhanced.samples))), 1e-12))
    enhanced, overload_action = handle_overload(enhanced, overload_policy)
    write_audio(output_path, enhanced)
    return EnhanceResult(
        input_path=str(input_path),
        output_path=str(output_path),
        method=method,
        method_description=description,
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
