"""Text and Markdown forms of a :class:`~hearmask.targets.fit.FitReport`, and ``--report DIR`` files."""

from __future__ import annotations

import json
from pathlib import Path

from hearmask.targets.fit import Budget, FitReport

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"


def format_quantity(value: float | None, unit: str) -> str:
    """``123,456 B (120.6 KiB)``, ``1,073.0 us``, ``8.07 ms``; ``-`` for None."""
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{int(round(value)):,} B ({value / 1024:,.1f} KiB)"
    if unit == "us":
        return f"{value:,.1f} us"
    if unit == "ms":
        return f"{value:,.2f} ms"
    if unit in ("Hz", "MAC", "cycles"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.6g} {unit}"


def _budget_row(budget: Budget) -> tuple[str, str, str, str, str]:
    return (budget.name, format_quantity(budget.needed, budget.unit), format_quantity(budget.available, budget.unit),
            budget.verdict, budget.label)


def format_fit_text(report: FitReport) -> str:
    """A human table: one line per budget, then the overall verdict and notes."""
    target = report.target
    rows = [("budget", "needed", "available", "verdict", "label")] + [_budget_row(b) for b in report.budgets.values()]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = [f"{report.model_dir} on {target.name} ({target.title}; {target.runtime}; {target.hardware_label})", ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines += ["", f"overall: {report.verdict.upper()}"]
    lines += [f"note: {budget.name}: {budget.note}" for budget in report.budgets.values() if budget.note]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def fit_markdown(report: FitReport) -> str:
    target = report.target
    lines = [f"# Fit of {report.model_dir} on {target.name}", "",
             f"**{report.verdict.upper()}**: {target.title}, runtime {target.runtime}, {target.hardware_label}"
             + (f" (QEMU {target.qemu_machine})" if target.emulated else ""), "",
             "| budget | needed | available | verdict | label |", "|---|---:|---:|---|---|"]
    lines += ["| " + " | ".join(_budget_row(budget)) + " |" for budget in report.budgets.values()]
    for budget in report.budgets.values():
        lines += ["", f"## {budget.name}", ""]
        if budget.note:
            lines += [budget.note, ""]
        lines += ["| term | value | label | source |", "|---|---:|---|---|"]
        lines += [f"| {item.name} | {format_quantity(item.value, item.unit)} | {item.label} | {item.source} |"
                  for item in budget.items]
    if report.ethos_u is not None:
        vela = report.ethos_u
        lines += ["", "## Ethos-U (Vela)", ""]
        if not vela["available"]:
            lines.append(vela["reason"])
        else:
            lines += [f"Vela {vela['version']}; {vela['label']}.", "",
                      "| network | accelerator | system config | NPU cycles | total cycles | time | SRAM | flash | "
                      "NPU ops | CPU ops |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {n['network']} | {n['accelerator']} | {n['system_config']} ({n['npu_clock_hz'] / 1e6:g} MHz) "
                      f"| {n['cycles_npu']:,} | {n['cycles_total']:,} | {n['inference_time_us']:,.1f} us | "
                      f"{format_quantity(n['sram_bytes'], 'bytes')} | {format_quantity(n['flash_bytes'], 'bytes')} | "
                      f"{n['npu_ops']} | {n['cpu_ops']} |" for n in vela["networks"]]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    labels = report.to_dict()["labels"]
    lines += ["", "## Labels", ""] + [f"- **{label}**: {meaning}" for label, meaning in labels.items()]
    return "\n".join(lines) + "\n"


def write_fit_report(report: FitReport, report_dir: str | Path) -> Path:
    """``report.json`` and ``report.md`` in ``report_dir``; returns the JSON path."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / REPORT_JSON
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (report_dir / REPORT_MARKDOWN).write_text(fit_markdown(report))
    return path
