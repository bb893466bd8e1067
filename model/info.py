"""What a model is, in the figures users ask for first (``hearmask info``)."""

from __future__ import annotations

from pathlib import Path

from hearmask.model.checkpoint import resolve_checkpoint_path
from hearmask.model.default_model import resolve_model_path
from hearmask.model.system_io import load_system, system_description


def model_info(model_path: str | Path | None = None) -> dict:
    """Figures of the model at ``model_path`` (run folder or checkpoint), or of the shipped default.

    ``files`` lists the checkpoint and, when they exist beside it, the int8 ``.tflite``
    and its manifest (written by the quantization stage).
    """
    checkpoint = resolve_checkpoint_path(resolve_model_path(model_path))
    system, metadata = load_system(checkpoint)
    description = system_description(system)
    folder = checkpoint.parent
    files = {"checkpoint": str(checkpoint), "weights": str(checkpoint.with_suffix(".safetensors"))}
    for key, name in (("tflite_int8", "model_int8.tflite"), ("manifest", "manifest.json"),
                      ("model_card", "MODEL_CARD.md")):
        if (folder / name).is_file():
            files[key] = str(folder / name)
    progress = metadata.get("progress", {})
    return {
        "variant": description["variant"],
        "parameters": description["parameters"],
        "macs_per_second": description["macs_per_second"],
        "macs_per_frame": int(round(description["macs_per_second"] / system.stft_config.frames_per_second)),
        "algorithmic_latency_ms": description["algorithmic_latency_ms"],
        "sample_rate": description["sample_rate_hz"],
        "hop_ms": system.stft_config.hop_ms,
        "training_steps": progress.get("step"),
        "best_val_loss": progress.get("best_val_loss"),
        "weights_sha256": metadata.get("weights_sha256"),
        "files": files,
    }
