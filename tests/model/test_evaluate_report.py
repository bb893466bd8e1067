"""Report writers: averages over rows, the paper-style Markdown table, CSV."""

import csv

import pytest

from hearmask.model import evaluate_report as report


def make_row(system, audiogram, snr_db, haspi, estoi, model=None, alpha=None, beta=None, sweep=False):
    return {"system": system, "model": model, "variant": "joint" if model else None, "alpha": alpha, "beta": beta,
            "sweep": sweep, "audiogram": audiogram, "snr_db": snr_db, "utterances": 2, "pesq": None, "estoi": estoi,
            "si_sdr": None, "haspi": haspi, "hasqi": None, "auditory_loss": None, "errors": [], "cpu_s": 1.0}


ROWS = [
    make_row("unprocessed", "NH", 0.0, 0.5, 0.40), make_row("unprocessed", "NH", 5.0, 0.7, 0.60),
    make_row("unprocessed", "N3", 0.0, 0.3, 0.40), make_row("unprocessed", "N3", 5.0, 0.5, 0.60),
    make_row("j (alpha=1, beta=1)", "NH", 0.0, 0.6, 0.45, "j", 1.0, 1.0),
    make_row("j (alpha=1, beta=1)", "NH", 5.0, 0.8, 0.65, "j", 1.0, 1.0),
    make_row("j (alpha=1, beta=1)", "N3", 0.0, 0.6, 0.45, "j", 1.0, 1.0),
    make_row("j (alpha=1, beta=1)", "N3", 5.0, 0.8, 0.65, "j", 1.0, 1.0),
    make_row("j (alpha=0.5, beta=1)", "N3", 0.0, 0.55, 0.42, "j", 0.5, 1.0, sweep=True),
    make_row("j (alpha=0.5, beta=1)", "N3", 5.0, 0.75, 0.62, "j", 0.5, 1.0, sweep=True),
]
CONDITIONS = {
    "config": {"snrs_db": [0.0, 5.0], "seed": 1}, "audiograms": {"NH": {}, "N3": {}}, "sweep_audiograms": ["N3"],
    "presentation_level_db_spl": 65.0, "speech_level_dbfs": -35.0,
    "utterances": [{"utterance_id": "a", "source": "pocketsphinx", "duration_s": 2.0, "noise_kind": "pink"}],
    "models": {"j": {"variant": "joint", "parameters": 10, "step": 5, "path": "x", "weights_sha256": "ab"}},
    "versions": {"hearmask": "0"},
}


def test_summary_averages_over_audiograms_and_snrs_main_systems_first():
    summary = report.summarize(ROWS)
    assert [entry["system"] for entry in summary] == ["unprocessed", "j (alpha=1, beta=1)", "j (alpha=0.5, beta=1)"]
    assert summary[0]["haspi"] == pytest.approx(0.5) and summary[0]["estoi"] == pytest.approx(0.5)
    assert summary[1]["haspi"] == pytest.approx(0.7) and summary[1]["pesq"] is None
    assert summary[2]["audiograms"] == ["N3"] and summary[2]["rows"] == 2


def test_markdown_has_the_main_per_snr_per_audiogram_and_sweep_tables():
    text = report.markdown_report(ROWS, CONDITIONS, report.summarize(ROWS))
    assert "| System | α (NR) | β (HLC) | ESTOI | HASPI v2 |" in text  # only metrics that were computed
    assert "| Unprocessed | – | – | 0.500 | 0.500 |" in text
    assert "| j | 1 | 1 | **0.550** | **0.700** |" in text  # the best value per column is bold
    assert "| System | α | β | ESTOI @ 0 dB | ESTOI @ 5 dB | HASPI v2 @ 0 dB | HASPI v2 @ 5 dB |" in text
    assert "| Unprocessed | – | – | 0.400 | 0.600 | 0.400 | 0.600 |" in text  # by SNR, mean over audiograms
    assert "| Unprocessed | – | – | 0.600 | 0.400 | 0.500 |" in text  # HASPI per audiogram: NH, N3, mean
    assert "## Strength sweep" in text and "| j | 0.5 | 1 | 0.520 | 0.650 |" in text


def test_csv_has_one_line_per_row_and_empty_cells_for_missing_metrics(tmp_path):
    report.write_csv(tmp_path / "results.csv", ROWS)
    with open(tmp_path / "results.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(ROWS) and list(lines[0]) == list(report.CSV_COLUMNS)
    assert lines[0]["haspi"] == "0.5" and lines[0]["pesq"] == "" and lines[0]["alpha"] == ""


def test_sweep_plot_needs_at_least_two_strengths(tmp_path):
    assert not report.plot_sweep(ROWS[:4], "j", ["N3"], tmp_path / "none.png")
    assert report.plot_sweep(ROWS, "j", ["N3"], tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
