"""Bad ``.tflite`` input gives one clear error: truncated, garbage, float-only, (de)quantize ops, wrong shapes."""

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.quantize.manifest import io_entries
from hearmask.quantize.tflite_inspect import check_int8_target, check_io_against_manifest, inspect_tflite, read_tflite


def test_lists_ops_and_tensor_types(int8_model):
    summary = inspect_tflite(int8_model)
    assert summary.model_bytes == len(int8_model)
    assert summary.op_counts["FULLY_CONNECTED"] == 10 and sum(summary.op_counts.values()) == len(summary.ops)
    assert {t.dtype for t in summary.tensors} == {"int8", "int32"}
    assert sorted(entry.position for entry in summary.inputs) == [0, 1, 2]
    assert summary.input("audiogram").tensor.shape == (1, 8)


@pytest.mark.parametrize("keep", [7, 100, 0.5, -16])
def test_truncated_files_are_rejected(int8_model, keep):
    length = int(len(int8_model) * keep) if isinstance(keep, float) else (keep if keep > 0 else len(int8_model) + keep)
    with pytest.raises(HearmaskError, match="not a TFLite model|truncated|corrupt|not a valid TFLite"):
        inspect_tflite(int8_model[:length], "cut.tflite")


def test_garbage_is_rejected_with_and_without_the_identifier():
    garbage = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    with pytest.raises(HearmaskError, match="not a TFLite model: 4000 bytes without the 'TFL3'"):
        inspect_tflite(garbage, "noise.bin")
    with pytest.raises(HearmaskError, match="noise.tflite"):
        inspect_tflite(garbage[:4] + b"TFL3" + garbage[8:], "noise.tflite")


def test_float_model_is_refused_for_an_int8_target_naming_the_float_ops(float_model):
    summary = inspect_tflite(float_model)  # a valid model: listing works
    with pytest.raises(HearmaskError) as error:
        check_int8_target(summary, "model_float.tflite")
    message = str(error.value)
    assert "model_float.tflite is not a fully int8 model" in message
    assert "FULLY_CONNECTED (float32)×10" in message and "LOGISTIC (float32)×4" in message
    assert "input 'features' is float32" in message


def test_quantize_and_dequantize_ops_are_named(tiny_networks):
    """The same int8 graph converted with float inputs/outputs gains QUANTIZE/DEQUANTIZE at its edges."""
    import tensorflow as tf

    from hearmask.quantize.tf_mirror import StepModule, quantized_parameters

    module = StepModule(quantized_parameters(tiny_networks[1]))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.step.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with pytest.raises(HearmaskError, match=r"unsupported ops: DEQUANTIZE×\d, QUANTIZE×\d"):
        check_int8_target(inspect_tflite(converter.convert()))


def test_inputs_are_checked_against_the_manifest(int8_model, tmp_path):
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(int8_model)
    manifest = io_entries(inspect_tflite(int8_model))
    read_tflite(path, manifest=manifest)  # matches its own description
    wrong_shape = {**manifest, "inputs": [dict(entry, shape=[1, 24]) if entry["name"] == "features" else entry
                                          for entry in manifest["inputs"]]}
    with pytest.raises(HearmaskError, match=r"input 'features' has shape \[1, 32\], the manifest says \[1, 24\]"):
        read_tflite(path, manifest=wrong_shape)
    wrong_scale = {**manifest, "outputs": [dict(entry, scale=entry["scale"] * 2) if entry["name"] == "new_state"
                                           else entry for entry in manifest["outputs"]]}
    with pytest.raises(HearmaskError, match="output 'new_state' is quantized as"):
        check_io_against_manifest(inspect_tflite(int8_model), wrong_scale)
    renamed = {**manifest, "inputs": [dict(entry, name="spectrum") if entry["name"] == "features" else entry
                                      for entry in manifest["inputs"]]}
    with pytest.raises(HearmaskError, match="the manifest lists"):
        check_io_against_manifest(inspect_tflite(int8_model), renamed)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(HearmaskError, match="no .tflite file at"):
        read_tflite(tmp_path / "absent.tflite")
