"""Paired differences against NAL-R: per-utterance pairing, the Student-t interval, the report table."""

import json
import math

import numpy as np
import pytest

from hearmask.model import evaluate_paired as paired
from hearmask.model import evaluate_report as report

# Student's t, 97.5 % quantile, 2 degrees of freedom (tables; e.g. NIST e-Handbook 1.3.6.7.2).
T_975_DF2 = 4.302653


def make_row(system, audiogram, snr_db, haspi_per_utterance, model=None, alpha=None, beta=None, sweep=False):
    valid = [value for value in haspi_per_utterance if value is not None]
    return {"system": system, "model": model, "variant": "joint" if model else None, "alpha": alpha, "beta": beta,
            "sweep": sweep, "audiogram": audiogram, "snr_db": snr_db, "utterances": len(haspi_per_utterance),
            "pesq": None, "estoi": None, "si_sdr": None, "haspi": float(np.mean(valid)), "hasqi": None,
            "auditory_loss": None, "per_utterance": {"haspi": list(haspi_per_utterance)}, "errors": [], "cpu_s": 1.0}


JOINT = "j (alpha=1, beta=1)"
ROWS = [
    make_row("nalr", "N1", 0.0, [0.5, 0.6, 0.7]), make_row("nalr", "N1", 5.0, [0.7, 0.8, 0.9]),
    make_row("nalr", "N2", 0.0, [0.5, 0.5, 0.5]), make_row("nalr", "N2", 5.0, [0.5, 0.5, 0.5]),
    # N1: d_u = mean over SNRs of (joint - nalr) = +0.10, -0.05, +0.15
    make_row(JOINT, "N1", 0.0, [0.6, 0.5, 0.8], "j", 1.0, 1.0),
    make_row(JOINT, "N1", 5.0, [0.8, 0.8, 1.1], "j", 1.0, 1.0),
    # N2: d_u = -0.10, 0.00, +0.05
    make_row(JOINT, "N2", 0.0, [0.4, 0.5, 0.55], "j", 1.0, 1.0),
    make_row(JOINT, "N2", 5.0, [0.4, 0.5, 0.55], "j", 1.0, 1.0),
    make_row("j (alpha=0.5, beta=1)", "N1", 0.0, [0.0, 0.0, 0.0], "j", 0.5, 1.0, sweep=True),
]


def student_interval(values):
    values = np.asarray(values)
    half_width = T_975_DF2 * values.std(ddof=1) / math.sqrt(values.size)
    return values.mean() - half_width, values.mean() + half_width


def test_differences_pair_each_utterance_and_average_over_snrs():
    assert paired.utterance_differences(ROWS, JOINT, "N1", "haspi") == pytest.approx([0.10, -0.05, 0.15])
    assert paired.utterance_differences(ROWS, JOINT, "N2", "haspi") == pytest.approx([-0.10, 0.0, 0.05])


def test_an_utterance_with_a_failed_metric_is_left_out():
    rows = [make_row("nalr", "N1", 0.0, [0.5, None, 0.7]), make_row(JOINT, "N1", 0.0, [0.6, 0.6, 0.6], "j", 1.0, 1.0)]
    assert paired.utterance_differences(rows, JOINT, "N1", "haspi") == pytest.approx([0.1, -0.1])


def test_interval_is_student_t_over_utterances():
    entry = paired.mean_with_interval(np.array([0.10, -0.05, 0.15]))
    low, high = student_interval([0.10, -0.05, 0.15])
    assert entry["mean_difference"] == pytest.approx(0.2 / 3)
    assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((low, high), abs=1e-6)
    assert entry["utterances"] == 3 and entry["at_least_baseline"] == 2


def test_no_interval_from_one_utterance_or_identical_differences():
    assert paired.mean_with_interval(np.array([0.2]))["ci_low"] is None
    entry = paired.mean_with_interval(np.array([0.1, 0.1]))
    assert entry["mean_difference"] == pytest.approx(0.1) and entry["ci_high"] is None


def test_comparisons_cover_main_model_points_and_the_mean_over_audiograms():
    entries = paired.paired_comparisons(ROWS, ["N1", "N2"])
    assert [(e["system"], e["audiogram"]) for e in entries] == [(JOINT, "N1"), (JOINT, "N2"), (JOINT, "mean")]
    overall = entries[-1]
    # per utterance: mean of N1's and N2's d_u = 0.0, -0.025, +0.10
    assert overall["mean_difference"] == pytest.approx(0.075 / 3)
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx(student_interval([0.0, -0.025, 0.10]), abs=1e-6)
    assert paired.paired_comparisons([row for row in ROWS if row["system"] != "nalr"], ["N1"]) == []


def test_report_has_the_paired_table_and_json_entries(tmp_path):
    conditions = {
        "config": {"snrs_db": [0.0, 5.0], "seed": 1}, "audiograms": {"N1": {}, "N2": {}}, "sweep_audiograms": [],
        "presentation_level_db_spl": 65.0, "speech_level_dbfs": -35.0,
        "utterances": [{"utterance_id": f"u{i}", "source": "pocketsphinx", "duration_s": 2.0, "noise_kind": "pink"}
                       for i in range(3)],
        "models": {}, "versions": {},
    }
    text = report.markdown_report(ROWS, conditions, report.summarize(ROWS))
    low, high = student_interval([0.10, -0.05, 0.15])
    assert "## HASPI v2 minus NAL-R per audiogram" in text
    assert f"| j | 1 | 1 | +0.067 ({low:+.3f}, {high:+.3f}) | -0.017 (" in text
    files, _ = report.write_reports(tmp_path, ROWS, conditions, None, {})
    document = json.loads((tmp_path / "report.json").read_text())
    assert [e["audiogram"] for e in document["paired_vs_nalr"]] == ["N1", "N2", "mean"]
