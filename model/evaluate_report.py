"""Report files of ``hearmask evaluate``: JSON, CSV, a paper-style Markdown table and plots.

Input is the list of rows of :mod:`hearmask.model.evaluate` (one per system, audiogram and
SNR, each metric already averaged over utterances). Averages here are plain means over
rows, i.e. over audiograms and SNRs with equal weight (every system has the same rows).
Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hearmask.model.evaluate import METRIC_NAMES, REPORT_FORMAT, REPORT_VERSION
from hearmask.model.evaluate_paired import CONFIDENCE_LEVEL, format_difference, paired_comparisons

METRIC_INFO: dict[str, dict[str, Any]] = {
    "pesq": {"title": "PESQ", "digits": 2, "higher_is_better": True,
             "definition": "wide-band PESQ (P.862.2) of the NR-only output (alpha, 0) against clean speech"},
    "estoi": {"title": "ESTOI", "digits": 3, "higher_is_better": True,
              "definition": "extended STOI of the NR-only output (alpha, 0) against clean speech"},
    "si_sdr": {"title": "SI-SDR (dB)", "digits": 1, "higher_is_better": True,
               "definition": "scale-invariant SDR (Le Roux et al. 2019) of the NR-only output against clean speech"},
    "haspi": {"title": "HASPI v2", "digits": 3, "higher_is_better": True,
              "definition": "HASPI v2 (pyclarity) of the full output (alpha, beta) for the listener's audiogram; "
                            "reference: clean speech at the presentation level, normal ear"},
    "hasqi": {"title": "HASQI v2", "digits": 3, "higher_is_better": True,
              "definition": "HASQI v2 combined (pyclarity, NAL-R-equalised reference) of the full output for the "
                            "listener's audiogram"},
    "auditory_loss": {"title": "Aud. loss", "digits": 3, "higher_is_better": False,
                      "definition": "L1 distance of the training auditory model: impaired ear hearing the full "
                                    "output vs normal ear hearing clean speech (lower is better)"},
}
CSV_COLUMNS = ("system", "model", "variant", "alpha", "beta", "sweep", "audiogram", "snr_db", "utterances",
               *METRIC_NAMES, "cpu_s")
SNR_TABLE_METRICS = ("estoi", "si_sdr", "haspi")
# Metrics plotted against each strength. The NR metrics use the output at (alpha, 0), so
# they do not change with beta; the beta row shows the auditory-model loss instead.
SWEEP_PLOT_METRICS = {"alpha": ("haspi", "hasqi", "estoi", "si_sdr"), "beta": ("haspi", "hasqi", "auditory_loss")}


def _mean(values: Sequence[float | None]) -> float | None:
    valid = [value for value in values if value is not None]
    return float(np.mean(valid)) if valid else None


def _systems_in_order(rows: Sequence[dict[str, Any]], sweep: bool) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["sweep"] == sweep and row["system"] not in seen:
            seen[row["system"]] = row
    return list(seen.values())


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per system: each metric averaged over its rows (audiograms × SNRs); main systems first."""
    summary = []
    for sweep in (False, True):
        for first in _systems_in_order(rows, sweep):
            mine = [row for row in rows if row["system"] == first["system"]]
            entry = {key: first[key] for key in ("system", "model", "variant", "alpha", "beta", "sweep")}
            entry["audiograms"] = list(dict.fromkeys(row["audiogram"] for row in mine))
            entry["rows"] = len(mine)
            for name in METRIC_NAMES:
                entry[name] = _mean([row.get(name) for row in mine])
            summary.append(entry)
    return summary


def _format(value: float | None, metric: str, bold: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:.{METRIC_INFO[metric]['digits']}f}"
    return f"**{text}**" if bold else text


def _system_name(entry: dict[str, Any]) -> str:
    return {"unprocessed": "Unprocessed", "nalr": "NAL-R"}.get(entry["system"], entry["model"] or entry["system"])


def _strength(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _present_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [name for name in METRIC_NAMES if any(row.get(name) is not None for row in rows)]


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def markdown_report(rows: Sequence[dict[str, Any]], conditions: dict[str, Any], summary: Sequence[dict[str, Any]]) -> str:
    """``results.md``: main table, per-SNR table, per-audiogram HASPI table, sweep table, notes."""
    metrics = _present_metrics(rows)
    main = [entry for entry in summary if not entry["sweep"]]
    audiograms = list(conditions["audiograms"])
    snrs = conditions["config"]["snrs_db"]
    utterances = conditions["utterances"]
    sources = sorted({u["source"] for u in utterances})
    counts = ", ".join(f"{sum(u['source'] == source for u in utterances)} {source}" for source in sources)
    lines = [
        "# hearmask evaluation",
        "",
        f"Held-out set: {len(utterances)} utterances ({counts}), "
        f"each mixed at SNR {', '.join(f'{snr:g}' for snr in snrs)} dB with one procedural noise "
        f"({', '.join(dict.fromkeys(u['noise_kind'] for u in utterances))}); clean speech at "
        f"{conditions['presentation_level_db_spl']:g} dB SPL ({conditions['speech_level_dbfs']:g} dBFS active level); "
        f"seed {conditions['config']['seed']}. Audiograms: {', '.join(audiograms)}.",
        "",
        f"## Main results (mean over {len(audiograms)} audiograms and {len(snrs)} SNRs)",
        "",
    ]
    # Best as displayed: values that round to the same text are all bold.
    best = {}
    for name in metrics:
        values = [round(entry[name], METRIC_INFO[name]["digits"]) for entry in main if entry[name] is not None]
        if values:
            best[name] = max(values) if METRIC_INFO[name]["higher_is_better"] else min(values)
    body = [[_system_name(e), _strength(e["alpha"]), _strength(e["beta"])]
            + [_format(e[name], name, e[name] is not None and round(e[name], METRIC_INFO[name]["digits"]) == best.get(name))
               for name in metrics] for e in main]
    lines += _table(["System", "α (NR)", "β (HLC)"] + [METRIC_INFO[name]["title"] for name in metrics], body)
    lines += ["", "Best value per column in bold. " + " ".join(
        f"{METRIC_INFO[name]['title']}: {METRIC_INFO[name]['definition']}." for name in metrics), ""]

    snr_metrics = [name for name in SNR_TABLE_METRICS if name in metrics]
    if snr_metrics and len(snrs) > 1:
        lines += [f"## By SNR (mean over {len(audiograms)} audiograms)", ""]
        header = ["System", "α", "β"] + [f"{METRIC_INFO[name]['title']} @ {snr:g} dB" for name in snr_metrics for snr in snrs]
        body = []
        for entry in main:
            mine = [row for row in rows if row["system"] == entry["system"]]
            body.append([_system_name(entry), _strength(entry["alpha"]), _strength(entry["beta"])] + [
                _format(_mean([row[name] for row in mine if row["snr_db"] == snr]), name)
                for name in snr_metrics for snr in snrs])
        lines += _table(header, body) + [""]

    if "haspi" in metrics:
        lines += [f"## HASPI v2 per audiogram (mean over {len(snrs)} SNRs)", ""]
        body = []
        for entry in main:
            mine = [row for row in rows if row["system"] == entry["system"]]
            body.append([_system_name(entry), _strength(entry["alpha"]), _strength(entry["beta"])] + [
                _format(_mean([row["haspi"] for row in mine if row["audiogram"] == name]), "haspi")
                for name in audiograms] + [_format(entry["haspi"], "haspi")])
        lines += _table(["System", "α", "β"] + audiograms + ["mean"], body) + [""]

    lines += _paired_table(rows, summary, audiograms)

    sweep_systems = [entry for entry in summary if entry["model"] is not None and entry["variant"] == "joint"]
    sweep_audiograms = conditions.get("sweep_audiograms") or []
    if any(entry["sweep"] for entry in summary) and sweep_audiograms:
        lines += [f"## Strength sweep (joint models; mean over audiograms {', '.join(sweep_audiograms)} "
                  f"and {len(snrs)} SNRs)", ""]
        body = []
        for entry in sorted(sweep_systems, key=lambda e: (e["model"], -e["beta"], e["alpha"])):
            mine = [row for row in rows if row["system"] == entry["system"] and row["audiogram"] in sweep_audiograms]
            body.append([_system_name(entry), _strength(entry["alpha"]), _strength(entry["beta"])]
                        + [_format(_mean([row[name] for row in mine]), name) for name in metrics])
        lines += _table(["System", "α", "β"] + [METRIC_INFO[name]["title"] for name in metrics], body) + [""]

    errors = sum(len(row.get("errors", [])) for row in rows)
    models = conditions.get("models", {})
    lines += ["## Conditions", ""]
    for name, record in models.items():
        lines.append(f"- model `{name}`: {record['variant']}, {record['parameters']} parameters, step "
                     f"{record['step']}, `{record['path']}` (weights SHA-256 {str(record['weights_sha256'])[:12]}…)")
    lines.append("- utterances: " + "; ".join(f"{u['utterance_id']} ({u['duration_s']:.2f} s, {u['noise_kind']})"
                                               for u in utterances))
    versions = conditions.get("versions", {})
    lines.append("- software: " + ", ".join(f"{key} {value}" for key, value in versions.items()))
    if errors:
        lines.append(f"- {errors} metric value(s) could not be computed and were left out of the means "
                     "(see `errors` in report.json)")
    return "\n".join(lines) + "\n"


def _paired_table(rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                  audiograms: Sequence[str]) -> list[str]:
    """HASPI v2 of each model system minus NAL-R's, per audiogram, with the 95 % interval."""
    entries = paired_comparisons(rows, audiograms, "haspi")
    if not entries:
        return []
    columns = [name for name in [*audiograms, "mean"] if any(entry["audiogram"] == name for entry in entries)]
    body = []
    for summary_entry in summary:
        mine = {entry["audiogram"]: entry for entry in entries if entry["system"] == summary_entry["system"]}
        if mine and not summary_entry["sweep"]:
            body.append([_system_name(summary_entry), _strength(summary_entry["alpha"]), _strength(summary_entry["beta"])]
                        + [format_difference(mine[name]) if name in mine else "–" for name in columns])
    utterances = max(entry["utterances"] for entry in entries)
    return [f"## HASPI v2 minus NAL-R per audiogram (paired; {CONFIDENCE_LEVEL:.0%} interval over utterances)", "",
            *_table(["System", "α", "β", *columns], body), "",
            f"Mean difference over up to {utterances} utterances (each averaged over the SNRs) and, in brackets, "
            "its Student-t interval: where the interval holds 0 the held-out set cannot tell the system from "
            "NAL-R for that listener.", ""]


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ("" if row.get(key) is None else row.get(key)) for key in CSV_COLUMNS})


# ----- plots -----------------------------------------------------------------------------------


def mask_example(evaluator, items, audiogram_names: Sequence[str], model_names: Sequence[str]) -> dict[str, Any] | None:
    """NR mask and HLC gain (dB) of each model for one utterance and one listener, for the plot."""
    import torch

    if not model_names:
        return None
    snrs = sorted({item.snr_db for item in items})
    snr_db = min(snrs, key=lambda snr: abs(snr - 5.0))
    item = next(item for item in items if item.snr_db == snr_db)
    impaired = [name for name in audiogram_names if name != "NH"]
    audiogram_name = "N3" if "N3" in audiogram_names else (impaired or list(audiogram_names))[0]
    audiogram = evaluator.audiograms[audiogram_name]
    example = {"utterance_id": item.utterance_id, "snr_db": snr_db, "noise_kind": item.noise_kind,
               "audiogram": audiogram_name, "models": {}}
    for name in model_names:
        system = evaluator.system(name)
        with torch.inference_mode():
            spectrum = system.stft.stft(torch.as_tensor(item.noisy)[None])
            nr_db, hlc_db = system.masks_db(spectrum, torch.as_tensor(audiogram.model_input())[None])
        example["models"][name] = {
            "noisy_db": (20.0 * torch.log10(spectrum.abs() + 1e-7))[0].numpy(),
            "nr_db": nr_db[0].numpy(), "hlc_db": hlc_db[0].numpy(),
            "hop_s": system.stft_config.hop_samples / system.stft_config.sample_rate_hz,
            "bin_frequencies_hz": np.asarray(system.stft_config.bin_frequencies_hz()),
            "variant": system.variant,
        }
    return example


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_masks(example: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    names = list(example["models"])
    figure, axes = plt.subplots(len(names), 3, figsize=(13, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        data = example["models"][name]
        frames = data["nr_db"].shape[0]
        extent = (0.0, frames * data["hop_s"], 0.0, float(data["bin_frequencies_hz"][-1]) / 1000.0)
        panels = (("noisy input (dB)", data["noisy_db"], "magma", None),
                  ("NR mask nr_db (dB)", data["nr_db"], "viridis", None),
                  ("HLC gain hlc_db (dB)", data["hlc_db"], "coolwarm", None))
        for column, (title, values, cmap, _) in enumerate(panels):
            axis = axes[row, column]
            image = axis.imshow(values.T, origin="lower", aspect="auto", extent=extent, cmap=cmap)
            figure.colorbar(image, ax=axis)
            axis.set_title(f"{name} ({data['variant']}): {title}", fontsize=9)
            axis.set_xlabel("time (s)")
            axis.set_ylabel("frequency (kHz)")
    figure.suptitle(f"{example['utterance_id']}, {example['noise_kind']} noise at {example['snr_db']:g} dB SNR, "
                    f"audiogram {example['audiogram']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_sweep(rows: Sequence[dict[str, Any]], model: str, audiograms: Sequence[str], path: Path) -> bool:
    """Metrics vs alpha (at beta=1) and vs beta (at alpha=1) per audiogram; False if nothing to plot."""
    mine = [row for row in rows if row["model"] == model and row["audiogram"] in audiograms]
    # curves[(swept strength, metric)][audiogram] = (strengths, means over SNRs)
    curves: dict[tuple[str, str], dict[str, tuple[list, list]]] = {}
    for axis_name, fixed_name in (("alpha", "beta"), ("beta", "alpha")):
        for metric in SWEEP_PLOT_METRICS[axis_name]:
            for audiogram in audiograms:
                points: dict[float, list[float]] = {}
                for row in mine:
                    if row["audiogram"] == audiogram and row[fixed_name] == 1.0 and row.get(metric) is not None:
                        points.setdefault(row[axis_name], []).append(row[metric])
                if len(points) >= 2:
                    xs = sorted(points)
                    curves.setdefault((axis_name, metric), {})[audiogram] = (xs, [float(np.mean(points[x])) for x in xs])
    if not curves:
        return False
    plt = _pyplot()
    columns = max(len(names) for names in SWEEP_PLOT_METRICS.values())
    figure, axes = plt.subplots(2, columns, figsize=(3.4 * columns, 6.0), squeeze=False)
    for line, (axis_name, fixed_name) in enumerate((("alpha", "beta"), ("beta", "alpha"))):
        for column in range(columns):
            axis = axes[line, column]
            metrics = SWEEP_PLOT_METRICS[axis_name]
            if column >= len(metrics) or (axis_name, metrics[column]) not in curves:
                axis.axis("off")
                continue
            for audiogram, (xs, ys) in curves[(axis_name, metrics[column])].items():
                axis.plot(xs, ys, marker="o", label=audiogram)
            axis.set_xlabel(f"{'α (NR)' if axis_name == 'alpha' else 'β (HLC)'} at {fixed_name}=1")
            axis.set_title(METRIC_INFO[metrics[column]]["title"], fontsize=10)
            axis.grid(alpha=0.3)
            if column == 0:
                axis.legend(fontsize=8)
    figure.suptitle(f"{model}: metric vs strength (mean over SNRs)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _safe(name: str) -> str:
    return "".join(character if character.isalnum() or character in "-_" else "_" for character in name)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_reports(report_dir: Path, rows: Sequence[dict[str, Any]], conditions: dict[str, Any],
                  example: dict[str, Any] | None, timing: dict[str, Any]) -> tuple[dict[str, str], list[dict]]:
    """Write report.json, results.csv, results.md and the plots; return ``(files, summary)``."""
    summary = summarize(rows)
    files = {}
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "conditions": conditions, "timing": timing,
              "metrics": {name: METRIC_INFO[name]["definition"] for name in METRIC_NAMES},
              "summary": summary, "paired_vs_nalr": paired_comparisons(rows, list(conditions["audiograms"]), "haspi"),
              "rows": list(rows)}
    files["report"] = str(report_dir / "report.json")
    _write_text_atomic(report_dir / "report.json", json.dumps(report, indent=1, default=_json_default) + "\n")
    files["csv"] = str(report_dir / "results.csv")
    write_csv(report_dir / "results.csv", rows)
    files["markdown"] = str(report_dir / "results.md")
    _write_text_atomic(report_dir / "results.md", markdown_report(rows, conditions, summary))
    sweep_audiograms = conditions.get("sweep_audiograms") or []
    for model, record in conditions.get("models", {}).items():
        path = report_dir / f"sweep_{_safe(model)}.png"
        if record["variant"] == "joint" and sweep_audiograms and plot_sweep(rows, model, sweep_audiograms, path):
            files[f"sweep_{model}"] = str(path)
    if example is not None:
        files["masks"] = str(report_dir / "masks.png")
        plot_masks(example, report_dir / "masks.png")
    return files, summary
