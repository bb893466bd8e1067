"""`hearmask validate`: report files, exit status from the thresholds, one-line errors."""

import json
import shutil

import numpy as np
import pytest
import soundfile

from hearmask import cli

FAST = ["--utterances", "1", "--seconds", "0.3", "--layer-hops", "8"]


@pytest.fixture(scope="module")
def quantized_dir(tmp_path_factory):
    """A tiny model trained for one step, calibrated (no QAT steps) and converted."""
    from hearmask.model.train_config import train_config_from_dict
    from hearmask.model.trainer import Trainer
    from hearmask.quantize.qat_training import QatConfig
    from hearmask.quantize.quantize_model import quantize_model

    root = tmp_path_factory.mktemp("validate_cli")
    t = np.arange(16000) / 16000
    for folder in ("clean", "noise"):
        (root / folder).mkdir()
    rng = np.random.default_rng(2)
    for i in range(4):
        voiced = sum(np.sin(2 * np.pi * (120 + 25 * i) * k * t) / k for k in range(1, 10))
        soundfile.write(root / "clean" / f"s{i}.wav", (0.1 * voiced).astype(np.float32), 16000)
        soundfile.write(root / "noise" / f"n{i}.wav", (0.05 * rng.standard_normal(16000)).astype(np.float32), 16000)
    config = train_config_from_dict({
        "data": {"clean_dir": str(root / "clean"), "noise_dir": str(root / "noise"), "segment_seconds": 0.25},
        "model": {"hidden_size": 8, "encoder_size": 8},
        "train": {"steps": 1, "steps_per_epoch": 1, "batch_size": 1, "validation_batches": 1},
    })
    Trainer(config, root / "run", progress=False).run()
    quantize_model(root / "run", root / "int8", QatConfig(steps=0, calibration_batches=1, batch_size=1,
                                                          segment_seconds=0.1), progress=False)
    return root / "int8"


def test_validate_writes_the_report_and_its_exit_status_follows_the_thresholds(quantized_dir, tmp_path, capsys,
                                                                               corrupt_tflite_weights):
    report_dir = tmp_path / "report"
    assert cli.main(["validate", str(quantized_dir), "--report", str(report_dir), *FAST]) == 0
    assert capsys.readouterr().out.startswith("passed; lowest SNR per stage: fake_quant")
    report = json.loads((report_dir / "report.json").read_text())
    assert report["passed"] is True and report["thresholds"]["litert_snr_db"] == 45
    assert set(report["tflm"]) == {"nr_fraction", "hlc_fraction", "new_state"}
    assert (report_dir / "report.md").read_text().startswith("# Validation of")

    broken = tmp_path / "broken"  # the same model with the NR head's int8 weights negated
    shutil.copytree(quantized_dir, broken)
    (broken / "model_int8.tflite").write_bytes(corrupt_tflite_weights((broken / "model_int8.tflite").read_bytes(), "nr_head"))
    assert cli.main(["validate", str(broken), "--report", str(report_dir), *FAST]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask validate: thresholds failed: litert nr_fraction: SNR")
    assert error.rstrip().endswith("(first diverging layer layers: nr_head)")
    assert json.loads((report_dir / "report.json").read_text())["passed"] is False


def test_a_folder_without_a_manifest_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path), "--report", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.startswith("hearmask validate: error: no model manifest at")
