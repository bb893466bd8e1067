"""Audio-level check: the held-out set enhanced through the int8 streaming path vs the float model.

Both paths are the device's streaming loop (:class:`hearmask.model.streaming.StreamingEnhancer`,
numpy STFT and features, hop by hop, the state fed back over the whole utterance); only the
step differs:

- float: :meth:`MaskNet.step` (torch);
- int8: the int8 ``.tflite`` in each device arithmetic — LiteRT default kernels (the Raspberry
  Pi runtime) and the TFLM host interpreter (bit-exact with the Cortex-M firmware) — its
  sigmoid fractions mapped to dB on the host with the listener's per-bin HLC span
  (:func:`hearmask.model.network.mask_db_from_fractions`), exactly as a device does.

Metrics as in :mod:`hearmask.model.evaluate`: PESQ (wb) and ESTOI of the NR output (alpha 1,
beta 0) against the clean speech, HASPI v2 of the full output (alpha 1, beta 1) with the
listener's audiogram; mixtures from :func:`hearmask.model.evaluate.build_held_out_set`
(real pocketsphinx clips alternating with held-out espeak-ng sentences, never trained on).
Deltas are int8 − float per utterance and runtime; the thresholds bound the mean *drop*
(float − int8) of every runtime, and the top-level figures are the worst runtime's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hearmask.model.network import mask_db_from_fractions

METRICS = ("haspi", "estoi", "pesq")


@dataclass(frozen=True)
class AudioThresholds:
    haspi_drop: float = 0.01  # mean float − int8 HASPI v2
    estoi_drop: float = 0.01
    pesq_drop: float = 0.1


def drop_limits(thresholds: AudioThresholds) -> dict[str, float]:
    return {"haspi": thresholds.haspi_drop, "estoi": thresholds.estoi_drop, "pesq": thresholds.pesq_drop}


def audio_failures(mean_delta: dict[str, float], thresholds: AudioThresholds, runtime: str = "int8") -> list[str]:
    """One message per metric whose mean drop (float − int8, i.e. ``−mean_delta``) exceeds its limit."""
    limits = drop_limits(thresholds)
    return [f"audio {metric}: mean drop {-mean_delta[metric]:.4f} > {limits[metric]:g} ({runtime} vs float)"
            for metric in METRICS if -mean_delta[metric] > limits[metric]]


class Int8StepNetwork:
    """:meth:`MaskNet.step`'s interface over an int8 runtime (torch in and out, batch 1)."""

    def __init__(self, runtime, float_network):
        self.runtime = runtime
        self.config = float_network.config
        self._float_network = float_network  # only for the per-bin HLC span of an audiogram

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.config.state_size)

    def step(self, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor):
        """``features`` (1, F), ``audiogram`` (1, 8), ``state`` (1, S) -> ``nr_db``, ``hlc_db`` (1, bins), new state."""
        outputs = self.runtime.step({"features": features.numpy(), "audiogram": audiogram.numpy(),
                                     "state": state.numpy()})
        span_db = self._float_network.hlc_span_db(audiogram)
        nr_db, hlc_db = mask_db_from_fractions(self.config, torch.as_tensor(outputs["nr_fraction"]),
                                               torch.as_tensor(outputs["hlc_fraction"]), span_db)
        return nr_db, hlc_db, torch.as_tensor(outputs["new_state"])


class Int8System:
    """What :class:`StreamingEnhancer` reads of a :class:`HearingAidSystem`, with int8 steps."""

    def __init__(self, float_system, runtimes):
        self.variant = float_system.variant
        self.stft_config = float_system.stft_config
        self.feature_config = float_system.feature_config
        self.networks = [Int8StepNetwork(runtime, network) for runtime, network in zip(runtimes, float_system.networks)]

    def eval(self) -> "Int8System":
        return self


def streaming_outputs(system, audiogram, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(NR output at alpha 1 beta 0, full output at alpha 1 beta 1)``, latency removed, float64 (T,)."""
    from hearmask.model.streaming import StreamingEnhancer

    latency = system.stft_config.algorithmic_latency_samples
    padded = np.concatenate([noisy.astype(np.float64), np.zeros(latency)])
    return tuple(StreamingEnhancer(system, audiogram, 1.0, beta).process_signal(padded)[latency:]
                 for beta in (0.0, 1.0))


def utterance_metrics(clean: np.ndarray, nr_output: np.ndarray, full_output: np.ndarray, audiogram,
                      level_db_spl: float, sample_rate_hz: int) -> dict[str, float]:
    from hearmask.model import metrics

    clean = clean.astype(np.float64)
    return {"haspi": metrics.haspi_v2(clean, full_output, sample_rate_hz, audiogram, level_db_spl),
            "estoi": metrics.estoi(clean, nr_output, sample_rate_hz),
            "pesq": metrics.pesq_wb(clean, nr_output, sample_rate_hz)}


def _standard_error(values: list[float]) -> float | None:
    """Standard error of the mean (sample standard deviation / sqrt(n)); None for fewer than 2 values."""
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


def audio_comparison(float_system, runtimes: dict[str, list], utterances: int, seconds: float,
                     audiogram_name: str = "N3", snr_db: float = 5.0,
                     thresholds: AudioThresholds = AudioThresholds()) -> dict[str, Any]:
    """Enhance ``utterances`` held-out mixtures (``seconds`` long at most, ``snr_db``) for the listener
    ``audiogram_name`` with the float model and with each int8 runtime; per-utterance metrics, deltas
    and the verdict.

    ``runtimes``: ``{name: [one int8 runtime per network of float_system]}`` (two per name for the cascade).
    """
    from hearmask.model.evaluate import (PRESENTATION_LEVEL_DB_SPL, SAMPLE_RATE_HZ, EvaluationConfig,
                                         build_held_out_set)
    from hearmask.profiles.io import load_audiogram

    audiogram = load_audiogram(audiogram_name)
    config = EvaluationConfig(num_utterances=utterances, snrs_db=(snr_db,), audiograms=(audiogram_name,),
                              max_seconds=seconds, workers=1)
    systems = {"float": float_system, **{name: Int8System(float_system, group) for name, group in runtimes.items()}}
    rows = []
    for item in build_held_out_set(config):
        values = {}
        for name, system in systems.items():
            nr_output, full_output = streaming_outputs(system, audiogram, item.noisy)
            values[name] = utterance_metrics(item.clean, nr_output, full_output, audiogram, PRESENTATION_LEVEL_DB_SPL,
                                             SAMPLE_RATE_HZ)
        rows.append({**item.describe(), "float": values["float"], "int8": {name: values[name] for name in runtimes},
                     "delta": {name: {metric: values[name][metric] - values["float"][metric] for metric in METRICS}
                               for name in runtimes}})
    mean_delta = {name: {metric: float(np.mean([row["delta"][name][metric] for row in rows])) for metric in METRICS}
                  for name in runtimes}
    standard_error = {name: {metric: _standard_error([row["delta"][name][metric] for row in rows]) for metric in METRICS}
                      for name in runtimes}
    limits = drop_limits(thresholds)
    summary = {}
    for metric in METRICS:
        worst = min(runtimes, key=lambda name: mean_delta[name][metric])
        summary[metric] = {
            "float_mean": float(np.mean([row["float"][metric] for row in rows])),
            "int8_mean": float(np.mean([row["int8"][worst][metric] for row in rows])),
            "mean_delta": mean_delta[worst][metric], "standard_error": standard_error[worst][metric],
            "max_drop": limits[metric], "worst_runtime": worst,
            "by_runtime": {name: {"int8_mean": float(np.mean([row["int8"][name][metric] for row in rows])),
                                  "mean_delta": mean_delta[name][metric],
                                  "standard_error": standard_error[name][metric]} for name in runtimes}}
    return {
        "computed": True,
        **summary,
        "per_utterance": rows,
        "failures": [failure for name in runtimes for failure in audio_failures(mean_delta[name], thresholds, name)],
        "conditions": {"utterances": len(rows), "max_seconds": seconds, "snr_db": snr_db, "audiogram": audiogram_name,
                       "presentation_level_db_spl": PRESENTATION_LEVEL_DB_SPL, "int8_runtimes": list(runtimes),
                       "path": "streaming (numpy STFT, hop by hop, state fed back); NR output alpha 1 beta 0 for "
                               "PESQ/ESTOI, full output alpha 1 beta 1 for HASPI v2"},
    }
