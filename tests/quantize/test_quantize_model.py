"""Export of every network of a system: the cascade gets one checked int8 model per stage."""

from types import SimpleNamespace

import torch

from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs
from hearmask.quantize.calibrate import build_qat_system, calibrate
from hearmask.quantize.manifest import read_manifest
from hearmask.quantize.quantize_model import export_model_files
from hearmask.quantize.tflite_inspect import read_tflite


def test_cascade_exports_one_int8_model_per_stage_with_its_role(tmp_path, helpers):
    stft = shipped_stft_config("default")
    torch.manual_seed(0)
    float_system = HearingAidSystem("cascade", stft, build_masknet_configs("cascade", stft, "default", {
        "hidden_size": 8, "encoder_size": 8})).eval()
    qat_system = build_qat_system(float_system)
    generator = torch.Generator().manual_seed(1)
    batches = [SimpleNamespace(noisy=0.1 * torch.randn(2, 1600, generator=generator),
                               audiogram=torch.rand(2, 8, generator=generator)) for _ in range(2)]
    assert calibrate(qat_system, batches) == 2
    manifest = export_model_files(qat_system, float_system, tmp_path, {"source_checkpoint": {"path": "test"}})
    assert read_manifest(tmp_path)["networks"] == manifest["networks"]
    roles = [(entry["role"], entry["uses"], entry["files"]["int8_tflite"]) for entry in manifest["networks"]]
    assert roles == [("nr_stage", ["nr_fraction"], "model_int8_stage1.tflite"),
                     ("hlc_stage", ["hlc_fraction"], "model_int8_stage2.tflite")]
    for entry in manifest["networks"]:
        read_tflite(tmp_path / entry["files"]["int8_tflite"], manifest=entry)
        read_tflite(tmp_path / entry["files"]["float_tflite"], int8_target=False)
        assert (tmp_path / entry["files"]["onnx"]).stat().st_size == entry["onnx_bytes"]
        assert entry["macs_per_hop"] * manifest["frames_per_second"] == entry["macs_per_second"]
    assert manifest["parameters"] == float_system.count_parameters()
