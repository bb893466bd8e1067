"""Model card of a trained model: what it was trained on, how long, how big, how good.

Built from the checkpoint's own metadata, the run's ``log.csv`` and (when given) the
Markdown results of ``hearmask evaluate``, so every figure traces back to a file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hearmask.model.checkpoint import resolve_checkpoint_path
from hearmask.model.system_io import load_system, system_description


def _log_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def model_card_markdown(checkpoint_path: str | Path, evaluation_markdown: str | None = None) -> str:
    checkpoint = resolve_checkpoint_path(checkpoint_path)
    system, metadata = load_system(checkpoint)
    description = system_description(system)
    network = description["networks"][0]
    config = metadata.get("train_config", {})
    train, data, task = config.get("train", {}), config.get("data", {}), config.get("task", {})
    progress = metadata.get("progress", {})
    rows = _log_rows(checkpoint.parent)
    last = rows[-1] if rows else {}
    audio_hours = (progress.get("step", 0) * train.get("batch_size", 0) * progress.get("world_size", 1)
                   * data.get("segment_seconds", 0) / 3600)
    lines = [
        "# hearmask default model",
        "",
        "## What it is",
        "",
        f"- Variant: **{description['variant']}** (one causal network emitting an NR mask in "
        f"[{network['nr_floor_db']}, 0] dB and an HLC gain in "
        f"[{network['hlc_min_db']}, +{network['hlc_max_db']}] dB per bin, capped per bin at "
        f"{network.get('hlc_ceiling_offset_db', 0):g} dB + {network.get('hlc_ceiling_loss_fraction', 0):g} x the "
        "listener's loss in dB HL (0.5 would be the half-gain rule)).",
        f"- Parameters: **{description['parameters']:,}**; compute: **{description['macs_per_second'] / 1e6:.2f} M MAC/s** "
        f"of audio (analytic count of the step form).",
        f"- Algorithmic latency: **{description['algorithmic_latency_ms']:g} ms** at {description['sample_rate_hz']} Hz "
        f"(STFT {json.dumps(description['stft'])}).",
        f"- Weights SHA-256: `{metadata.get('weights_sha256')}`; software: {json.dumps(metadata.get('versions', {}))}.",
        "",
        "## Training",
        "",
        f"- Objective: auditory-model losses (NR: NH(x·M_NR) vs NH(clean); HLC: HI(x·M_HLC; audiogram) vs NH(x)), "
        f"{task.get('distance')} distance, {task.get('weighting')} weighting"
        + (f" (NR {task.get('nr_weight'):g} : HLC {task.get('hlc_weight'):g})" if task.get("weighting") == "fixed" else "")
        + (f"; plus the end-to-end term HI(x·M_NR·M_HLC; audiogram) vs NH(clean), weight {task['combined_weight']:g}"
           if task.get("combined_weight") else "") + ".",
        *([f"- Warm start: this run began from the weights of `{train['init_from']}` (fresh optimiser; the step "
           "counts below are this run's own)."] if train.get("init_from") else []),
        f"- Data: speech sources {data.get('sources')} (real recorded fr/it/ru asterisk prompts + flite + espeak-ng)"
        + (f" as packed by `hearmask data pack` (`{data['speech_pack']}`: FLAC copies of part of the training "
           "utterances, same splits)" if data.get("speech_pack") else "") + ", "
        f"{data.get('segment_seconds')} s segments, SNR {data.get('snr_db')} dB, procedural noise; audiograms uniform over "
        "NH, N1–N7, S1–S3 with ±10 dB jitter.",
        f"- Steps: **{progress.get('step')}** x batch {train.get('batch_size')} x {progress.get('world_size', 1)} "
        f"process(es) = {audio_hours:.1f} h of audio seen; wall time {progress.get('elapsed_s', 0) / 60:.0f} min on "
        + (", then ".join(progress["devices"]) if progress.get("devices") else "a device the checkpoint does not record")
        + ".",
        f"- Best validation loss: {progress.get('best_val_loss')}; last epoch: train {last.get('train_loss')}, "
        f"validation {last.get('val_loss')} (NR {last.get('val_nr_loss')}, HLC {last.get('val_hlc_loss')}).",
        "",
        "| step | train loss | val loss | val NR | val HLC |",
        "|---|---|---|---|---|",
        *[f"| {r['step']} | {float(r['train_loss']):.4f} | {float(r['val_loss']):.4f} | {float(r['val_nr_loss']):.4f} | "
          f"{float(r['val_hlc_loss']):.4f} |" for r in rows],
        "",
    ]
    if evaluation_markdown:
        lines += ["## Evaluation (held-out set)", "", evaluation_markdown.strip(), ""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet (run `hearmask evaluate`).", ""]
    return "\n".join(lines)
