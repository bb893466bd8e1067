"""`hearmask pipeline`: the main job writes every promised file, and its figures are consistent."""

import json

import numpy as np
import soundfile

from hearmask.cli import main
from hearmask.model.baselines.nalr import nalr_gains_db
from hearmask.profiles.standard import standard_audiogram


def test_pipeline_writes_files_and_consistent_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pipeline", "--out", str(out), "--audiogram", "N2", "--snr", "3", "--skip-deploy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "report.json").read_text())
    for path in report["files"].values():
        assert (out / path.split("/")[-1]).stat().st_size > 0
    assert (out / "audiogram_gain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    clean, rate = soundfile.read(out / "clean.wav")
    noisy, _ = soundfile.read(out / "noisy.wav")
    compensated, _ = soundfile.read(out / "nalr.wav")
    assert rate == 16000 and len(clean) == len(noisy) == len(compensated)
    noise = noisy - clean
    assert report["sample"]["snr_db"] == 3.0
    # The recorded prescription is the NAL-R formula's, within the interpolation to bins.
    expected_1k = float(nalr_gains_db(standard_audiogram("N2"), np.array([1000.0]))[0])
    assert abs(report["nalr"]["gain_db_at_hz"]["1000"] - expected_1k) < 0.5
    # Compensation made the output louder than the input by a plausible broadband amount.
    gain_db = 10 * np.log10(np.mean(compensated**2) / np.mean(noisy**2))
    assert 3.0 < gain_db < max(report["nalr"]["gain_db_at_hz"].values())
    assert np.mean(noise**2) > 0


def test_pipeline_model_stage_scores_and_plots_the_given_model(trained_run, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pipeline", "--out", str(out), "--model", str(trained_run), "--seed", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages"] == ["sample", "nalr", "model", "plot", "report"]
    model = report["model"]
    assert model["model"] == str(trained_run) and model["parameters"] > 0
    clean, _ = soundfile.read(out / "clean.wav")
    nr_only, _ = soundfile.read(out / "model_nr_only.wav")
    noisy, _ = soundfile.read(out / "noisy.wav")
    assert len(nr_only) == len(clean)
    # The recorded scores are those of the written (latency-removed) files.
    from hearmask.model.metrics import estoi

    assert abs(model["noise_reduction"]["estoi"]["model"] - estoi(clean, nr_only, 16000)) < 2e-3
    assert abs(model["noise_reduction"]["estoi"]["unprocessed"] - estoi(clean, noisy, 16000)) < 2e-3
    assert all(0.0 <= value <= 1.0 for value in model["haspi_v2"].values())
    assert (out / "masks.png").read_bytes()[:4] == b"\x89PNG"
    assert "| HASPI v2 |" in (out / "report.md").read_text()


def test_pipeline_with_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["pipeline", "--out", str(tmp_path / "run"), "--model", str(tmp_path / "nope")]) != 0
    assert "nope" in capsys.readouterr().err


def test_pipeline_deploy_stages_validate_fit_export_and_profile(trained_run, quantized_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pipeline", "--out", str(out), "--model", str(trained_run), "--int8-dir", str(quantized_dir),
                 "--audio-utterances", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages"][-6:] == ["validate", "fit", "export", "profile", "cortex-m55", "report"]
    deploy = report["deploy"]
    validation = json.loads((out / "validation" / "report.json").read_text())
    assert deploy["validation"]["passed"] == validation["passed"]
    assert deploy["validation"]["audio_utterances"] == validation["audio"]["conditions"]["utterances"] == 1
    profile = json.loads((out / "profile" / "report.json").read_text())
    assert profile["device"]["kind"] == "emulated" and deploy["profile"]["device"] == profile["device"]
    assert profile["validation"]["bit_exact"] is True  # the bundle's agent runs the golden's kernels
    assert (out / "pi-bundle" / "hearmask-agent.service").is_file()
    assert set(deploy["fit"]) == {"rpi4", "cortex-m7-stm32f746"}
    assert "emulated" in (out / "report.md").read_text()
    m55 = deploy["cortex_m55"]  # the toolchain and QEMU are installed by scripts/setup.sh
    m55_report = json.loads((out / "profile-m55" / "report.json").read_text())
    assert m55_report["validation"]["bit_exact"] is True and m55_report["device"]["kind"] == "emulated"
    assert m55["instructions_per_hop"] == m55_report["instructions_per_hop"]
    assert "QEMU instruction counts" in (out / "report.md").read_text()
