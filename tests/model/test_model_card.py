"""The model card states the checkpoint's own figures."""

import torch

from hearmask.model.model_card import model_card_markdown
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs
from hearmask.model.system_io import save_system


def test_card_lists_size_training_and_evaluation(tmp_path):
    torch.manual_seed(0)
    config = shipped_stft_config("default")
    system = HearingAidSystem("joint", config, build_masknet_configs("joint", config, "default", {}))
    metadata = {"progress": {"step": 300, "elapsed_s": 600, "world_size": 1},
                "train_config": {"train": {"batch_size": 8}, "data": {"segment_seconds": 3.0}, "task": {}}}
    path = save_system(tmp_path / "best.json", system, metadata)
    (tmp_path / "log.csv").write_text(
        "step,epoch,train_loss,train_nr_loss,train_hlc_loss,val_loss,val_nr_loss,val_hlc_loss,elapsed_s,audio_s_per_s\n"
        "300,3,1.5,0.5,1.0,1.75,0.6,1.15,600,12\n")
    card = model_card_markdown(path, "| system | estoi |\n|---|---|\n| joint | 0.7 |")
    assert "**61,440**" in card and "**17.17 M MAC/s**" in card and "**8 ms**" in card
    assert "**300** x batch 8" in card and "2.0 h of audio" in card  # 300 · 8 · 3 s
    assert "| 300 | 1.5000 | 1.7500 | 0.6000 | 1.1500 |" in card
    assert "| joint | 0.7 |" in card
