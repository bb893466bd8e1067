"""`hearmask evaluate`: a small run end to end, and clear errors for bad models."""

import json

import pytest
import torch

from hearmask import cli
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs
from hearmask.model.system_io import save_system

FAST = ["--utterances", "1", "--max-seconds", "1", "--snrs", "20", "--audiograms", "NH", "N3",
        "--metrics", "si_sdr", "estoi", "--workers", "1", "--no-progress"]


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    stft_config = shipped_stft_config("default")
    system = HearingAidSystem("nr", stft_config, build_masknet_configs("nr", stft_config, "default",
                                                                        {"hidden_size": 16, "encoder_size": 16}))
    return save_system(tmp_path / "run" / "checkpoint.json", system)


def test_small_evaluation_writes_the_report(tmp_path, capsys, checkpoint):
    report_dir = tmp_path / "report"
    status = cli.main(["evaluate", "--model", str(checkpoint.parent), "--report", str(report_dir), "--json", *FAST])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 3 * 2 and summary["computed_rows"] == 6
    # A bare PATH is named after the checkpoint's variant; an NR-only model is scored at (1, 0).
    assert [entry["system"] for entry in summary["summary"]] == ["unprocessed", "nalr", "nr (alpha=1, beta=0)"]
    report = json.loads((report_dir / "report.json").read_text())
    assert {(row["system"], row["audiogram"], row["snr_db"]) for row in report["rows"]} == {
        (system, audiogram, 20.0) for system in ("unprocessed", "nalr", "nr (alpha=1, beta=0)")
        for audiogram in ("NH", "N3")}
    # A second run into the same folder needs --resume, which then computes nothing.
    assert cli.main(["evaluate", "--model", f"nr={checkpoint}", "--report", str(report_dir), *FAST]) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", f"nr={checkpoint}", "--report", str(report_dir), "--resume", *FAST]) == 0
    assert "(0 computed, 6 resumed)" in capsys.readouterr().out


@pytest.mark.parametrize("model_argument, message", [
    ("joint=/nonexistent/run", "model 'joint': no checkpoint at '/nonexistent/run'"),
    ("=/some/path", "expected NAME=PATH"),
])
def test_bad_model_argument_gives_a_clear_error(tmp_path, capsys, model_argument, message):
    status = cli.main(["evaluate", "--model", model_argument, "--report", str(tmp_path / "r"), *FAST])
    error = capsys.readouterr().err
    assert status == 1 and message in error and "Traceback" not in error
    assert not (tmp_path / "r" / "rows.jsonl").exists()


def test_a_file_that_is_not_a_checkpoint_is_named_in_the_error(tmp_path, capsys):
    fake = tmp_path / "notes.json"
    fake.write_text('{"hello": 1}')
    status = cli.main(["evaluate", "--model", f"mine={fake}", "--report", str(tmp_path / "r"), *FAST])
    assert status == 1 and "is not a hearmask checkpoint" in capsys.readouterr().err


def test_missing_model_without_a_shipped_default_says_how_to_pass_one(tmp_path, capsys, monkeypatch):
    from hearmask.model import default_model

    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "no_default_model")
    status = cli.main(["evaluate", "--report", str(tmp_path / "r"), *FAST])
    error = capsys.readouterr().err
    assert status == 1 and "no default model shipped" in error and "--model NAME=PATH" in error


def test_bad_strength_point_is_rejected(tmp_path, capsys, checkpoint):
    status = cli.main(["evaluate", "--model", str(checkpoint), "--report", str(tmp_path / "r"),
                       "--strengths", "1;1", *FAST])
    assert status == 1 and "ALPHA,BETA" in capsys.readouterr().err
