"""`hearmask quantize`: a tiny trained run to int8/float .tflite, ONNX and manifest; resume; clean errors."""

import json

import numpy as np
import pytest
import soundfile

from hearmask import cli
from hearmask.model.checkpoint import sha256_of_file
from hearmask.quantize.manifest import read_manifest
from hearmask.quantize.tflite_inspect import read_tflite

FAST = ["--calibration-batches", "1", "--batch-size", "1", "--segment-seconds", "0.1", "--no-progress"]


def test_quantize_writes_checked_models_and_a_manifest_then_resumes(trained_run, tmp_path, capsys):
    out = tmp_path / "int8"
    assert cli.main(["quantize", str(trained_run), "--out", str(out), "--qat-steps", "1", *FAST, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 1
    assert set(summary["files"]) == {"manifest.json", "model_float.onnx", "model_float.tflite", "model_int8.tflite",
                                     "qat_checkpoint.json"}
    manifest = read_manifest(out)
    assert manifest["source_checkpoint"]["weights_sha256"] == sha256_of_file(trained_run / "best.safetensors")
    assert manifest["stft"]["hop_samples"] == 64 and manifest["variant"] == "joint"
    network = manifest["networks"][0]
    data, tflite = read_tflite(out / network["files"]["int8_tflite"], manifest=network)  # int8 + I/O as listed
    assert network["int8_model_bytes"] == len(data) and network["sha256"]["int8_tflite"] == sha256_of_file(
        out / "model_int8.tflite")
    assert network["op_resolver"] == sorted(tflite.op_counts)
    assert network["parameters"] == manifest["parameters"] > 0 and network["macs_per_hop"] > 0
    assert 0 < network["tflm_arena_used_bytes"] < network["tflm_arena_bytes"]
    state_in = next(entry for entry in network["inputs"] if entry["name"] == "state")
    state_out = next(entry for entry in network["outputs"] if entry["name"] == "new_state")
    assert (state_in["scale"], state_in["zero_point"]) == (state_out["scale"], state_out["zero_point"]) == (1 / 128, 0)
    assert network["output_db"]["nr_fraction"]["db_span"] == -25.0

    assert cli.main(["quantize", str(trained_run), "--out", str(out), "--qat-steps", "1", *FAST]) == 1
    assert "already holds a QAT run" in capsys.readouterr().err
    assert cli.main(["quantize", str(trained_run), "--out", str(out), "--qat-steps", "2", *FAST, "--resume",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert read_manifest(out)["qat_checkpoint"]["steps"] == 2


def test_bad_source_and_settings_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["quantize", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), *FAST]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask quantize: error: no checkpoint at") and error.count("\n") == 1
    assert cli.main(["quantize", str(tmp_path), "--out", str(tmp_path / "out"), "--qat-steps", "-1"]) == 1
    assert "QAT steps must be >= 0, got -1" in capsys.readouterr().err
