"""`hearmask profile` on emulate://rpi with an exported bundle: the report, a kill mid-run then --resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hearmask import cli

ARGS = ["--port", "emulate://rpi", "--utterances", "1", "--hops", "250", "--bench-runs", "10", "--warmup", "1",
        "--stream-hops", "0", "--no-progress"]


@pytest.fixture(scope="module")
def bundle(quantized_dir, tmp_path_factory):
    """A Raspberry Pi bundle of the shared tiny int8 folder (tests/conftest.py)."""
    from hearmask.targets.bundle_rpi import export_rpi_bundle
    from hearmask.targets.descriptors import load_target

    return export_rpi_bundle(quantized_dir, load_target("rpi4"), tmp_path_factory.mktemp("profile_cli") / "bundle")


@pytest.fixture(scope="module")
def uninterrupted(bundle, tmp_path_factory):
    report_dir = tmp_path_factory.mktemp("uninterrupted")
    assert cli.main(["profile", "--bundle", str(bundle), "--report", str(report_dir), *ARGS]) == 0
    return json.loads((report_dir / "report.json").read_text())


def test_profile_prints_a_summary_and_writes_the_report(bundle, tmp_path, capsys):
    assert cli.main(["profile", "--bundle", str(bundle), "--report", str(tmp_path), *ARGS, "--hops", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("emulated-rpi (host CPU) (emulated): INFER median ") and "bit-exact over 20 hops" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["device"]["kind"] == "emulated" and report["validation"]["frames"] == 20
    assert set(report["latency_us"]) >= {"median", "p90", "p99", "max"}
    assert report["model"]["dir"] == str(bundle) and (tmp_path / "report.md").is_file()


@pytest.mark.slow  # a second interpreter importing torch and TensorFlow; test_profile.py resumes in-process
def test_a_profile_killed_mid_run_resumes_to_the_same_report(bundle, uninterrupted, tmp_path):
    records = tmp_path / "records.jsonl"
    command = [sys.executable, "-m", "hearmask.cli", "profile", "--bundle", str(bundle), "--report", str(tmp_path), *ARGS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if records.exists() and records.read_text().count('"record": "infer"') >= 30:
                break
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        process.stderr.close()
    done_before = records.read_text().count('"record": "infer"')
    assert 30 <= done_before < 250 and not (tmp_path / "report.json").exists()
    assert cli.main(["profile", "--bundle", str(bundle), "--report", str(tmp_path), *ARGS, "--resume"]) == 0
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["hop"] for r in lines if r["record"] == "infer"] == list(range(250))
    resumed = json.loads((tmp_path / "report.json").read_text())
    assert resumed["sessions"] == 2
    for key in ("validation", "inputs", "labels", "model", "time_units"):
        assert resumed[key] == uninterrupted[key], key
    assert resumed["latency_us"]["count"] == uninterrupted["latency_us"]["count"] == 250


def test_existing_records_without_resume_and_bad_options_are_one_line_errors(bundle, tmp_path, capsys):
    assert cli.main(["profile", "--bundle", str(bundle), "--report", str(tmp_path), *ARGS, "--hops", "20"]) == 0
    capsys.readouterr()
    assert cli.main(["profile", "--bundle", str(bundle), "--report", str(tmp_path), *ARGS, "--hops", "20"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask profile: error: ") and "pass --resume to continue it" in error
    assert cli.main(["profile", "--bundle", str(bundle), "--report", str(tmp_path / "b"), *ARGS, "--hops", "0"]) == 1
    assert "profile hops must be an integer >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["profile", "--bundle", str(tmp_path / "nothing"), "--report", str(tmp_path / "c"), *ARGS]) == 1
    assert "no model manifest at" in capsys.readouterr().err
