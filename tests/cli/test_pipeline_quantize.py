"""The main job's quantize stage: the shipped int8 model rebuilt from its QAT checkpoint, byte for byte."""

import json
import shutil

import pytest

from hearmask.errors import HearmaskError
from hearmask.model.default_model import DEFAULT_MODEL_DIR
from hearmask.pipeline_quantize import run_quantize_stage


def test_the_shipped_int8_model_is_rebuilt_byte_for_byte(tmp_path):
    report = run_quantize_stage(DEFAULT_MODEL_DIR, tmp_path / "int8")
    shipped = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    assert report["reproduces_shipped"] == {name: True for name in shipped["networks"][0]["files"].values()}
    assert (tmp_path / "int8" / "model_int8.tflite").read_bytes() == (DEFAULT_MODEL_DIR / "model_int8.tflite").read_bytes()
    qat = json.loads((DEFAULT_MODEL_DIR / "qat_checkpoint.json").read_text())
    assert report["qat_steps"] == qat["progress"]["step"] == qat["qat_config"]["steps"]
    assert report["int8_model_bytes"] == [shipped["networks"][0]["int8_model_bytes"]]
    assert report["tflm_arena_bytes"] == [shipped["networks"][0]["tflm_arena_bytes"]]


def test_a_changed_qat_state_is_reported_as_not_reproducing(tmp_path):
    """A model folder whose manifest hashes do not match what its QAT checkpoint converts to says so."""
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir, ignore=shutil.ignore_patterns("evaluation", "validation", "*.png"))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["networks"][0]["sha256"]["int8_tflite"] = "0" * 64
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    report = run_quantize_stage(model_dir, tmp_path / "int8")
    assert report["reproduces_shipped"]["model_int8.tflite"] is False
    assert report["reproduces_shipped"]["model_float.tflite"] is True


def test_a_folder_without_a_qat_checkpoint_is_a_clear_error(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copyfile(DEFAULT_MODEL_DIR / "checkpoint.json", model_dir / "checkpoint.json")
    with pytest.raises(HearmaskError, match="no qat_checkpoint.json, qat_checkpoint.safetensors, manifest.json"):
        run_quantize_stage(model_dir, tmp_path / "int8")
