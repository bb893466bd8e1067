"""`hearmask info`: the figures users ask for, and clean errors."""

import json

import torch

from hearmask.cli import main
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs
from hearmask.model.system_io import save_system


def test_info_reports_budget_figures(tmp_path, capsys):
    config = shipped_stft_config("low_latency")
    system = HearingAidSystem("cascade", config, build_masknet_configs("cascade", config, "default", {}))
    path = save_system(tmp_path / "run" / "checkpoint.json", system, {"progress": {"step": 42}})
    assert main(["info", str(tmp_path / "run"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == sum(p.numel() for p in system.parameters())
    assert info["macs_per_second"] == system.macs_per_second()
    assert info["macs_per_second"] == info["macs_per_frame"] * 500  # 2 ms hop
    assert (info["algorithmic_latency_ms"], info["sample_rate"], info["training_steps"]) == (4.0, 16000, 42)
    assert info["files"]["checkpoint"] == str(path)
    assert "tflite_int8" not in info["files"]


def test_info_on_a_non_model_is_one_line_error(tmp_path, capsys):
    (tmp_path / "checkpoint.json").write_text(json.dumps({"format": "other"}))
    assert main(["info", str(tmp_path)]) == 1
    assert "is not a hearmask checkpoint" in capsys.readouterr().err
