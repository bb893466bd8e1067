"""The main job's model stage: the trained network on the pipeline's sample, beside NAL-R.

Runs the network's step form hop by hop (the device path on the host,
:class:`~hearmask.model.streaming.StreamingEnhancer`) at (alpha, beta) = (1, 1) and
(1, 0), records the masks, scores the outputs against the clean speech and plots the masks.
Metrics: ESTOI and SI-SDR of the NR-only output (1, 0); HASPI v2 of the full output with
the listener's audiogram (reference: clean speech at 65 dB SPL, normal ear), for
unprocessed, NAL-R and the model. Every output is on the real-time timeline, so the
algorithmic latency is removed before scoring (the input is padded by it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hearmask.model.audio_io import Audio, write_audio
from hearmask.profiles.audiogram import Audiogram

PRESENTATION_LEVEL_DB_SPL = 65.0


def _masks_and_output(system, audiogram: Audiogram, noisy: np.ndarray, alpha: float, beta: float):
    """``(output (T,), nr_db (K, bins), hlc_db (K, bins))`` through the step form, latency removed."""
    from hearmask.model.streaming import StreamingEnhancer

    class RecordingEnhancer(StreamingEnhancer):
        def masks_db(self, spectrum):
            nr_db, hlc_db = super().masks_db(spectrum)
            recorded.append((nr_db, hlc_db))
            return nr_db, hlc_db

    recorded: list[tuple[np.ndarray, np.ndarray]] = []
    latency = system.stft_config.algorithmic_latency_samples
    padded = np.concatenate([noisy, np.zeros(latency, dtype=noisy.dtype)]).astype(np.float64)
    output = RecordingEnhancer(system, audiogram, alpha, beta).process_signal(padded)[latency:]
    return output, np.stack([r[0] for r in recorded]), np.stack([r[1] for r in recorded])


def plot_masks(nr_db: np.ndarray, hlc_db: np.ndarray, stft_config, title: str, path: Path) -> None:
    """NR mask and HLC gain (dB) over time and frequency, side by side, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    extent = (0.0, nr_db.shape[0] / stft_config.frames_per_second, 0.0, stft_config.sample_rate_hz / 2000.0)
    for axes, values, label, cmap in zip(figure.subplots(1, 2), (nr_db, hlc_db),
                                         ("NR mask (dB)", "HLC gain (dB)"), ("viridis", "magma")):
        image = axes.imshow(values.T, origin="lower", aspect="auto", extent=extent, cmap=cmap)
        axes.set(xlabel="time (s)", ylabel="frequency (kHz)", title=label)
        figure.colorbar(image, ax=axes)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def run_model_stage(model_path: Path, audiogram: Audiogram, clean: np.ndarray, noisy: np.ndarray,
                    nalr_output: np.ndarray, out_dir: Path) -> dict:
    """Enhance with the model, write ``model.wav``, ``model_nr_only.wav``, ``masks.png``; return the report part.

    ``nalr_output`` is NAL-R's output with its latency already removed (aligned with ``clean``).
    """
    from hearmask.model.metrics import estoi, haspi_v2, si_sdr_db
    from hearmask.model.system_io import load_system

    system, _ = load_system(model_path)
    rate_hz = system.stft_config.sample_rate_hz
    full, nr_db, hlc_db = _masks_and_output(system, audiogram, noisy, 1.0, 1.0)
    nr_only, _, _ = _masks_and_output(system, audiogram, noisy, 1.0, 0.0)
    write_audio(out_dir / "model.wav", Audio(full.astype(np.float32)[:, None], rate_hz))
    write_audio(out_dir / "model_nr_only.wav", Audio(nr_only.astype(np.float32)[:, None], rate_hz))
    plot_masks(nr_db, hlc_db, system.stft_config, f"{system.variant} model, listener {audiogram.name}",
               out_dir / "masks.png")

    def haspi(signal: np.ndarray) -> float:
        return round(haspi_v2(clean, signal, rate_hz, audiogram, PRESENTATION_LEVEL_DB_SPL), 4)

    return {
        "model": str(model_path),
        "variant": system.variant,
        "parameters": system.count_parameters(),
        "noise_reduction": {  # NR-only output (alpha 1, beta 0) and the input, against clean speech
            "estoi": {"unprocessed": round(estoi(clean, noisy, rate_hz), 4),
                      "model": round(estoi(clean, nr_only, rate_hz), 4)},
            "si_sdr_db": {"unprocessed": round(si_sdr_db(clean, noisy), 2), "model": round(si_sdr_db(clean, nr_only), 2)},
        },
        "haspi_v2": {"unprocessed": haspi(noisy), "nalr": haspi(nalr_output), "model": haspi(full)},
        "mean_mask_db": {"nr": round(float(nr_db.mean()), 2), "hlc": round(float(hlc_db.mean()), 2)},
        "labels": {"metrics": f"computed on this one sample (clean speech at {PRESENTATION_LEVEL_DB_SPL:g} dB SPL); "
                              "see the model card for the held-out evaluation"},
    }
