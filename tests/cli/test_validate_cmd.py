"""`hearmask validate`: report files, exit status from the thresholds, one-line errors.

The audio check is skipped here (``--audio-utterances 0``, which the output says); it is tested
through the Python API in tests/quantize/test_validate.py."""

import json
import shutil

import pytest

from hearmask import cli

FAST = ["--utterances", "1", "--seconds", "0.3", "--layer-hops", "8", "--audio-utterances", "0"]


def test_validate_writes_the_report_and_its_exit_status_follows_the_thresholds(quantized_dir, tmp_path, capsys,
                                                                               corrupt_tflite_weights):
    report_dir = tmp_path / "report"
    assert cli.main(["validate", str(quantized_dir), "--report", str(report_dir), *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("passed; lowest SNR per step: fake_quant")
    assert "audio int8 - float: skipped, not checked" in out
    report = json.loads((report_dir / "report.json").read_text())
    assert report["passed"] is True and report["thresholds"]["litert_snr_db"] == 45
    assert report["thresholds_apply_to"] == "per_step" and report["checks_skipped"] == ["audio"]
    assert set(report["tflm"]) == {"nr_fraction", "hlc_fraction", "new_state"}
    lowest_tflm = min(values["snr_db"] for values in report["stages"]["per_step"]["tflm"].values())
    assert f"tflm {lowest_tflm:.1f} dB; free-running:" in out
    assert (report_dir / "report.md").read_text().startswith("# Validation of")
    assert all((report_dir / name).stat().st_size > 10_000 for name in report["plots"].values())

    broken = tmp_path / "broken"  # the same model with the NR head's int8 weights negated
    shutil.copytree(quantized_dir, broken)
    model_path = broken / "model_int8.tflite"
    model_path.write_bytes(corrupt_tflite_weights(model_path.read_bytes(), "nr_head"))
    assert cli.main(["validate", str(broken), "--report", str(report_dir), *FAST]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask validate: thresholds failed: litert nr_fraction: SNR")
    failed, *why = error.rstrip().splitlines()
    assert failed.endswith("(first diverging layer litert: nr_head, litert_ref: nr_head, tflm: nr_head)")
    assert why == [f"hearmask validate: why: {runtime}: layer nr_head diverges from fake-quant with identical inputs "
                   "(wrong weights or ranges there)" for runtime in ("litert", "litert_ref", "tflm")]
    assert json.loads((report_dir / "report.json").read_text())["passed"] is False


@pytest.mark.parametrize("flags, message", [
    (["--audio-seconds", "0.5"], "--audio-seconds must be at least 1 s, got 0.5"),
    (["--audio-utterances", "-1"], "--audio-utterances must be >= 0 (0 skips the audio check), got -1"),
])
def test_bad_audio_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    assert cli.main(["validate", str(tmp_path), "--report", str(tmp_path / "r"), *flags]) == 1
    assert capsys.readouterr().err.strip() == f"hearmask validate: error: {message}"


def test_a_folder_without_a_manifest_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path), "--report", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.startswith("hearmask validate: error: no model manifest at")


def test_help_states_the_audio_check_default_the_library_uses(capsys):
    """The CLI keeps torch out of its import path, so its help repeats the library's default: keep them equal."""
    from hearmask.quantize.validate import AUDIO_UTTERANCES

    with pytest.raises(SystemExit):
        cli.main(["validate", "--help"])
    assert f"(default {AUDIO_UTTERANCES}: fewer leave the mean" in " ".join(capsys.readouterr().out.split())
