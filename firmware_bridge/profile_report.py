"""The profile report, computed from the records alone (``records.jsonl``, see :mod:`profile`).

``report.json`` (the interface other tools rely on, issue 6): ``device`` (``name``, ``runtime``,
``kind``: hardware | emulated), ``latency_us`` (``median``, ``p90``, ``p99``, ``max``: device-measured
INFER time per hop) and ``stream_hop_us`` likewise (null without STREAM), ``validation``
(``bit_exact``, ``max_abs_lsb``, ``frames``...), ``power`` (null without a backend) and
``labels`` (hardware / emulated / estimate for every figure, and the rule that decides it).
Devices that count instructions (QEMU) report ``instructions_per_hop`` instead of times.
``report.md`` shows the same in ms; ``latency_histogram.png`` plots the per-hop times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

REPORT_FORMAT = "hearmask-profile-report"
REPORT_VERSION = 1
HISTOGRAM_FILE = "latency_histogram.png"


def summary_stats(values) -> dict[str, float] | None:
    """median, p90, p99, max, min, mean and count of ``values`` (None when there are none)."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if array.size == 0:
        return None
    return {"median": float(np.median(array)), "p90": float(np.percentile(array, 90)),
            "p99": float(np.percentile(array, 99)), "max": float(array.max()), "min": float(array.min()),
            "mean": float(array.mean()), "count": int(array.size)}


def _in_ms(stats: dict[str, float] | None) -> dict[str, float] | None:
    if stats is None:
        return None
    return {key: (value if key == "count" else value / 1000.0) for key, value in stats.items()}


def build_report(records: list[dict[str, Any]], model) -> dict[str, Any]:
    """The report dictionary (module docstring) from the records of one profile."""
    of = {kind: [r for r in records if r.get("record") == kind] for kind in
          ("conditions", "session", "ready", "load", "golden", "infer", "bench", "bench_ops", "stream", "power")}
    session = of["session"][-1]
    ready = of["ready"][-1]  # INFO after the model was loaded
    kind = session["kind"]
    infers = sorted(of["infer"], key=lambda r: (r["utterance"], r["hop"]))
    units = sorted({r["unit"] for r in infers})
    latency_us = summary_stats(r["device_time_us"] for r in infers)
    instructions = (summary_stats(r["device_time"] for r in infers if r["unit"] == "instructions")
                    if "instructions" in units else None)
    round_trip_us = summary_stats(r["round_trip_us"] for r in infers)
    stream = of["stream"][-1] if of["stream"] else None
    stream_hop_us = summary_stats(t["device_time_us"] for t in stream["times"]) if stream else None
    bench = of["bench"][-1] if of["bench"] else None
    bench_us = summary_stats(bench["samples_us"]) if bench and bench["samples_us"] is not None else None
    hop_us = model.hop_us
    validation = _validation(infers, of["golden"][-1] if of["golden"] else None)
    power = _power(of["power"][-1], bench_us or latency_us, kind) if of["power"] else None
    labels = {
        "device": kind,
        "latency_us": kind,
        "latency_ms": kind,
        "instructions_per_hop": "emulated (QEMU instruction counts, not time)" if instructions else None,
        "round_trip_us": f"{kind} (host-measured round trip over the link)",
        "bench_us": kind,
        "stream_hop_us": kind if stream_hop_us else None,
        "real_time": kind,
        "validation": f"{kind} device outputs vs the host golden",
        "power": power["label"] if power else None,
        "energy_per_inference_uj": "estimate" if power else None,
        "per_op": _per_op_label(kind, of["bench_ops"][-1]) if of["bench_ops"] else None,
    }
    labels = {key: value for key, value in labels.items() if value is not None}
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "device": {"name": session["target_name"], "runtime": ready["runtime_name"], "kind": kind,
                   "clock_hz": session["clock_hz"], "arena_bytes": ready["arena_bytes"],
                   "capabilities": session["capabilities"],
                   "url": of["conditions"][0]["url"]},
        "model": {"dir": str(model.model_dir), "file": model.file_name, "sha256": model.sha256.hex(),
                  "variant": model.manifest.get("variant"), "hop_us": hop_us},
        "labels": labels,
        "label_rule": _label_rule(),
        "latency_us": latency_us,
        "latency_ms": _in_ms(latency_us),
        "instructions_per_hop": instructions,
        "time_units": units,
        "round_trip_us": round_trip_us,
        "bench_us": bench_us,
        "bench": ({key: bench[key] for key in ("runs", "unit", "min", "median", "mean", "max")} if bench else None),
        "per_op": _per_op(of["bench_ops"][-1]) if of["bench_ops"] else None,
        "stream_hop_us": stream_hop_us,
        "stream": ({"hops": stream["hops"], "audio_check": stream["audio_check"]} if stream else None),
        "real_time": _real_time(latency_us, hop_us),
        "validation": validation,
        "power": power,
        "load": of["load"][-1] if of["load"] else None,
        "sessions": len(of["session"]),
        "inputs": {"utterances": sorted({r["utterance_id"] for r in infers}),
                   "config": of["conditions"][0]["config"]},
        "plots": [HISTOGRAM_FILE] if latency_us or instructions else [],
    }


def _per_op_label(kind: str, record: dict[str, Any]) -> str:
    unit = "QEMU instruction counts, not time" if record["unit"] == "instructions" else record["unit"]
    return f"{kind} ({unit}; mean per run of the per-op profiling build)"


def _per_op(record: dict[str, Any]) -> dict[str, Any]:
    """Per-op counts of a profiling build: each op in graph order, totals per op type, and the build's
    per-run median (its hooks add instructions, so it exceeds the plain build's count per hop)."""
    by_type: dict[str, int] = {}
    for name, value in record["op_counts"]:
        by_type[name] = by_type.get(name, 0) + value
    return {"unit": record["unit"], "runtime": record["runtime_name"], "runs": record["runs"],
            "profiling_build_median": record["median"], "sum_of_ops": sum(by_type.values()),
            "ops": [{"index": i, "op": name, "value": value} for i, (name, value) in enumerate(record["op_counts"])],
            "by_op_type": dict(sorted(by_type.items(), key=lambda item: -item[1]))}


def _label_rule() -> str:
    from hearmask.firmware_bridge.profile import LABEL_RULE

    return LABEL_RULE


def _validation(infers: list[dict[str, Any]], golden: dict[str, Any] | None) -> dict[str, Any]:
    per_output: dict[str, dict[str, int]] = {}
    mismatched_frames = 0
    for record in infers:
        differs = False
        for name, values in record["outputs"].items():
            entry = per_output.setdefault(name, {"max_abs_lsb": 0, "mismatched": 0, "values": 0})
            entry["max_abs_lsb"] = max(entry["max_abs_lsb"], values["max_abs_lsb"])
            entry["mismatched"] += values["mismatched"]
            entry["values"] += values["values"]
            differs |= values["mismatched"] > 0
        mismatched_frames += differs
    max_abs_lsb = max((entry["max_abs_lsb"] for entry in per_output.values()), default=0)
    mismatched = sum(entry["mismatched"] for entry in per_output.values())
    expected_exact = bool(golden and golden["bit_exact_expected"])
    tolerance = 0 if expected_exact else (golden["tolerance_lsb"] if golden else 0)
    return {"bit_exact": bool(infers) and mismatched == 0, "max_abs_lsb": max_abs_lsb, "frames": len(infers),
            "mismatched_frames": mismatched_frames, "mismatched_values": mismatched,
            "values_compared": sum(entry["values"] for entry in per_output.values()), "per_output": per_output,
            "golden": golden["description"] if golden else None,
            "expectation": "bit-exact" if expected_exact else f"within {tolerance} LSB",
            "tolerance_lsb": tolerance, "passed": bool(infers) and max_abs_lsb <= tolerance,
            "state_feedback": "each side feeds back its own new_state, hop by hop over whole utterances"}


def _real_time(latency_us: dict[str, float] | None, hop_us: float) -> dict[str, float] | None:
    if latency_us is None:
        return None
    return {"hop_us": hop_us, "margin_us_p99": hop_us - latency_us["p99"],
            "fraction_of_hop_p99": latency_us["p99"] / hop_us, "fraction_of_hop_median": latency_us["median"] / hop_us}


def _power(record: dict[str, Any], inference_us: dict[str, float] | None, kind: str) -> dict[str, Any]:
    idle_mw = float(np.mean([r["power_mw"] for r in record["idle"]]))
    loaded_mw = float(np.mean([r["power_mw"] for r in record["loaded"]]))
    sources = sorted({r["source"] for r in record["idle"] + record["loaded"]})
    live = kind == "hardware" and not set(sources) & {"replay", "synthetic"}
    energy_uj = (loaded_mw - idle_mw) * inference_us["median"] / 1000.0 if inference_us else None
    played_back = sorted(set(sources) & {"replay", "synthetic"})
    if live:
        label = "hardware"
    elif played_back:
        label = f"emulated ({', '.join(played_back)} readings, not a live measurement)"
    else:
        label = "emulated"
    return {"idle_mw": idle_mw, "loaded_mw": loaded_mw, "delta_mw": loaded_mw - idle_mw,
            "energy_per_inference_uj": energy_uj, "readings": len(record["idle"]) + len(record["loaded"]),
            "sources": sources, "detail": record["idle"][0]["detail"], "method": record["method"],
            "energy_method": "(loaded - idle mean power) x median device time per inference",
            "label": label}


# --------------------------------------------------------------------------- files


def write_report(report: dict[str, Any], report_dir: str | Path, records: list[dict[str, Any]]) -> Path:
    """``report.json``, ``report.md`` and the latency histogram in ``report_dir``; returns the JSON path."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    (report_dir / "report.md").write_text(markdown(report))
    if report["plots"]:
        _plot_histogram(report, records, report_dir / HISTOGRAM_FILE)
    return path


def _ms_row(name: str, stats: dict[str, float] | None, label: str) -> str:
    if stats is None:
        return f"| {name} | – | – | – | – | – | {label} |"
    ms = _in_ms(stats)
    return (f"| {name} | {ms['median']:.3f} | {ms['p90']:.3f} | {ms['p99']:.3f} | {ms['max']:.3f} | {stats['count']} "
            f"| {label} |")


def markdown(report: dict[str, Any]) -> str:
    device = report["device"]
    labels = report["labels"]
    validation = report["validation"]
    lines = [f"# Profile of {report['model']['file']} on {device['name']} ({device['kind']})", "",
             f"Runtime: {device['runtime']}. Link: `{device['url']}`. Model SHA-256 {report['model']['sha256'][:16]}..., "
             f"hop {report['model']['hop_us'] / 1000:.3f} ms.", "",
             f"Labels: {report['label_rule']}.", "",
             "| figure | median ms | p90 ms | p99 ms | max ms | count | label |", "|---|---:|---:|---:|---:|---:|---|",
             _ms_row("INFER, device time per hop", report["latency_us"], labels["latency_us"]),
             _ms_row("INFER, host round trip", report["round_trip_us"], labels["round_trip_us"]),
             _ms_row("BENCH, device time per invoke", report["bench_us"], labels["bench_us"]),
             _ms_row("STREAM, device time per hop", report["stream_hop_us"], labels.get("stream_hop_us", "–"))]
    if report["instructions_per_hop"]:
        stats = report["instructions_per_hop"]
        lines += ["", f"QEMU instruction counts per hop ({labels['instructions_per_hop']}): median {stats['median']:.0f}, "
                      f"min {stats['min']:.0f}, max {stats['max']:.0f}."]
    if report.get("per_op"):
        per_op = report["per_op"]
        lines += ["", f"Per op type ({labels['per_op']}; {per_op['sum_of_ops']} in all ops, "
                      f"{per_op['profiling_build_median']} per run of that build with its hooks):", "",
                  "| op type | count per hop | share |", "|---|---:|---:|"]
        lines += [f"| {name} | {value} | {100 * value / max(per_op['sum_of_ops'], 1):.1f} % |"
                  for name, value in per_op["by_op_type"].items()]
    if report["real_time"]:
        real_time = report["real_time"]
        lines += ["", f"Real time ({labels['real_time']}): p99 device time is {100 * real_time['fraction_of_hop_p99']:.1f} % "
                      f"of the {real_time['hop_us'] / 1000:.3f} ms hop (margin {real_time['margin_us_p99'] / 1000:.3f} ms)."]
    lines += ["", f"## Correctness ({labels['validation']})", "",
              f"**{'PASSED' if validation['passed'] else 'FAILED'}** ({validation['expectation']} against "
              f"{validation['golden']}): {validation['frames']} hops, {validation['mismatched_frames']} with a difference, "
              f"{validation['mismatched_values']} of {validation['values_compared']} values differ, max "
              f"{validation['max_abs_lsb']} LSB; {validation['state_feedback']}.", "",
              "| output | max LSB | values differing |", "|---|---:|---:|"]
    lines += [f"| {name} | {entry['max_abs_lsb']} | {entry['mismatched']} of {entry['values']} |"
              for name, entry in validation["per_output"].items()]
    power = report["power"]
    lines += ["", "## Power", ""]
    if power is None:
        lines.append("Not measured (no power backend).")
    else:
        energy = power["energy_per_inference_uj"]
        lines.append(f"Idle {power['idle_mw']:.1f} mW, under load {power['loaded_mw']:.1f} mW ({power['label']}; "
                     f"{power['detail']}). Energy per inference: "
                     f"{'–' if energy is None else f'{energy:.3f} µJ'} (estimate: {power['energy_method']}).")
    if report["stream"]:
        lines += ["", f"STREAM audio: {report['stream']['audio_check']}."]
    return "\n".join(lines) + "\n"


def _plot_histogram(report: dict[str, Any], records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    infers = [r for r in records if r.get("record") == "infer"]
    kind = report["device"]["kind"]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    if report["latency_us"]:
        values = [r["device_time_us"] / 1000.0 for r in infers if r["device_time_us"] is not None]
        axis.set_xlabel("device time per INFER hop (ms)")
        title = f"{report['device']['name']}: INFER latency [{kind}]"
    else:
        values = [r["device_time"] for r in infers if r["unit"] == "instructions"]
        axis.set_xlabel("QEMU instruction counts per hop (not time)")
        title = f"{report['device']['name']}: instructions per hop [{kind}]"
    axis.hist(values, bins=40, color="tab:blue")
    axis.set_ylabel("hops")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
