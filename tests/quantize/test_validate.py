"""Golden-reference validation: every stage and output reported, kernels within 1 LSB, a broken model fails."""

import json
import shutil

import numpy as np
import pytest

from hearmask.quantize.quantize_model import quantize_model
from hearmask.quantize.validate import OUTPUTS, STAGES, Thresholds, validate_model_dir, write_report


@pytest.fixture(scope="module")
def quantized_dir(trained_run, tmp_path_factory, helpers):
    out = tmp_path_factory.mktemp("validate") / "int8"
    quantize_model(trained_run, out, helpers.fast_qat_config(steps=0), progress=False)
    return out


SMALL = {"utterances": 1, "seconds": 0.4, "layer_hops": 12}


def test_report_covers_every_stage_and_output_and_single_ops_agree(quantized_dir, tmp_path):
    report = validate_model_dir(quantized_dir, **SMALL, thresholds=Thresholds(litert_snr_db=30, tflm_snr_db=30))
    for stage in STAGES:
        for output in OUTPUTS:
            values = report[stage][output]
            assert set(values) == {"reference", "snr_db", "max_abs_lsb", "mean_abs_lsb", "cosine"}
            assert values["reference"] == ("float" if stage == "fake_quant" else "fake_quant")
            assert values["cosine"] > (0.95 if stage == "fake_quant" else 0.999), (stage, output, values)
    # Per op with identical inputs, TFLM equals LiteRT's reference kernels except FULLY_CONNECTED (<= 1 LSB).
    per_op = report["per_op"]["tflm_vs_litert_ref"]
    assert {"FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH"} <= set(per_op)
    assert all(entry["max_abs_lsb"] <= (1 if op == "FULLY_CONNECTED" else 0) for op, entry in per_op.items())
    # Against fake-quant, each int8 op is within 1 LSB when its inputs agree: nothing diverges.
    layers = report["layers"]["layers"]
    assert report["first_diverging_layer"] == {"layers": None}
    assert all(layer["same_inputs_max_abs_lsb"] <= 1 for layer in layers)
    assert len(layers) == 34 and report["passed"] and report["failures"] == []
    assert report["inputs"] == {"utterances": 1, "hops": 100, "source": "validation split of the model's training data"}
    assert report["thresholds"]["litert_snr_db"] == 30 and report["audio"]["computed"] is False

    path = write_report(report, tmp_path / "report")
    assert json.loads(path.read_text())["passed"] is True
    assert "| litert_ref | nr_fraction | fake_quant |" in (tmp_path / "report" / "report.md").read_text()


def test_a_broken_model_fails_and_the_broken_layer_is_named(quantized_dir, tmp_path, corrupt_tflite_weights):
    broken = tmp_path / "broken"
    shutil.copytree(quantized_dir, broken)
    path = broken / "model_int8.tflite"
    path.write_bytes(corrupt_tflite_weights(path.read_bytes(), "nr_head"))
    report = validate_model_dir(broken, **SMALL)
    assert not report["passed"]
    assert any(failure.startswith("litert nr_fraction: SNR") for failure in report["failures"])
    assert report["first_diverging_layer"] == {"layers": "nr_head"}
    assert report["litert"]["hlc_fraction"]["snr_db"] > report["litert"]["nr_fraction"]["snr_db"] + 10
