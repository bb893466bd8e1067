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
    metadata = {"progress": {"step": 300, "elapsed_s": 600, "world_size": 1,
                             "devices": ["cpu: 2 threads of 2 cores", "cuda: NVIDIA H200"]},
                "train_config": {"train": {"batch_size": 8}, "data": {"segment_seconds": 3.0, "speech_pack": ".gpu/pack"},
                                 "task": {}}}
    path = save_system(tmp_path / "best.json", system, metadata)
    (tmp_path / "log.csv").write_text(
        "step,epoch,train_loss,train_nr_loss,train_hlc_loss,val_loss,val_nr_loss,val_hlc_loss,elapsed_s,audio_s_per_s\n"
        "300,3,1.5,0.5,1.0,1.75,0.6,1.15,600,12\n")
    card = model_card_markdown(path, "| system | estoi |\n|---|---|\n| joint | 0.7 |")
    assert "**61,440**" in card and "**17.17 M MAC/s**" in card and "**8 ms**" in card
    assert "**300** x batch 8" in card and "2.0 h of audio" in card  # 300 · 8 · 3 s
    assert "wall time 10 min on cpu: 2 threads of 2 cores, then cuda: NVIDIA H200." in card
    assert "packed by `hearmask data pack` (`.gpu/pack`" in card
    assert "| 300 | 1.5000 | 1.7500 | 0.6000 | 1.1500 |" in card
    assert "| joint | 0.7 |" in card


def test_card_states_the_end_to_end_term_and_the_warm_start(tmp_path):
    config = shipped_stft_config("default")
    system = HearingAidSystem("joint", config, build_masknet_configs("joint", config, "default", {}))
    task = {"distance": "l1", "weighting": "fixed", "nr_weight": 4.0, "hlc_weight": 1.0, "combined_weight": 2.0}
    metadata = {"progress": {"step": 10, "elapsed_s": 60, "world_size": 1},
                "train_config": {"train": {"batch_size": 8, "init_from": "/runs/first"}, "data": {}, "task": task}}
    card = model_card_markdown(save_system(tmp_path / "best.json", system, metadata))
    assert "fixed weighting (NR 4 : HLC 1); plus the end-to-end term HI(x·M_NR·M_HLC; audiogram) vs NH(clean), weight 2." in card
    assert "began from the weights of `/runs/first`" in card
    plain = {**task, "combined_weight": 0.0}
    metadata["train_config"] = {"train": {"batch_size": 8}, "data": {}, "task": plain}
    card = model_card_markdown(save_system(tmp_path / "other.json", system, metadata))
    assert "end-to-end" not in card and "Warm start" not in card
    assert "on a device the checkpoint does not record." in card and "data pack" not in card
