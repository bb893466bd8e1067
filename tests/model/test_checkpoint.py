"""Checkpoint contract: round trip, atomic pair, tamper and bad-input detection."""

import json

import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.checkpoint import load_checkpoint, resolve_checkpoint_path, save_checkpoint


def test_round_trip_preserves_tensors_and_metadata(tmp_path):
    tensors = {"model/w": torch.randn(3, 4), "rng/torch": torch.randint(0, 255, (16,), dtype=torch.uint8)}
    path = save_checkpoint(tmp_path / "run" / "checkpoint.json", tensors, {"step": 7, "model_args": {"hidden": 8}})
    loaded, metadata = load_checkpoint(tmp_path / "run")
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor)
    assert metadata["step"] == 7 and metadata["model_args"] == {"hidden": 8}
    assert len(metadata["weights_sha256"]) == 64
    assert resolve_checkpoint_path(path.with_suffix(".safetensors")) == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.json", "checkpoint.safetensors"]


def test_mixed_pair_is_detected(tmp_path):
    first = save_checkpoint(tmp_path / "a.json", {"w": torch.zeros(2)}, {})
    second = save_checkpoint(tmp_path / "b.json", {"w": torch.ones(2)}, {})
    second.with_suffix(".safetensors").replace(first.with_suffix(".safetensors"))
    with pytest.raises(HearmaskError, match="torn or mixed"):
        load_checkpoint(first)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "something-else"}', "is not a hearmask checkpoint"),
        ('{"format": "hearmask-checkpoint", "version": 99}', "format version 99"),
        ('{"format": "hearmask-checkpoint", "version": 1, "weights_file": "gone.safetensors"}', "which is missing"),
    ],
)
def test_bad_json_gives_clear_errors(tmp_path, text, message):
    path = tmp_path / "checkpoint.json"
    path.write_text(text)
    with pytest.raises(HearmaskError, match=message):
        load_checkpoint(path)


def test_corrupt_weights_with_matching_hash_are_reported(tmp_path):
    weights = tmp_path / "c.safetensors"
    weights.write_bytes(b"\x00" * 64)
    import hashlib

    (tmp_path / "c.json").write_text(json.dumps({
        "format": "hearmask-checkpoint", "version": 1, "weights_file": "c.safetensors",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }))
    with pytest.raises(HearmaskError, match="cannot read weights"):
        load_checkpoint(tmp_path / "c.json")


def test_missing_checkpoint_and_bad_suffix(tmp_path):
    with pytest.raises(HearmaskError, match="no checkpoint at"):
        load_checkpoint(tmp_path)
    with pytest.raises(HearmaskError, match="must end in .json"):
        save_checkpoint(tmp_path / "x.pt", {}, {})


def test_checkpoints_with_or_without_derived_buffers_load_the_same(tmp_path):
    import torch

    from hearmask.model.stft_config import shipped_stft_config
    from hearmask.model.system import HearingAidSystem, build_masknet_configs
    from hearmask.model.system_io import MODEL_PREFIX, load_system, model_tensors, save_system

    stft = shipped_stft_config("default")
    system = HearingAidSystem("joint", stft, build_masknet_configs("joint", stft, "default",
                                                                   {"hidden_size": 8, "encoder_size": 8}))
    assert not any(name.endswith("audiogram_to_bin") for name in model_tensors(system))  # derived: not saved
    plain = save_system(tmp_path / "plain.json", system)
    # As written while the buffer was persistent: the extra tensor is ignored, not an error.
    stored = {MODEL_PREFIX + "networks.0.audiogram_to_bin": torch.zeros(129, 8)}
    with_buffer = save_system(tmp_path / "with_buffer.json", system, extra_tensors=stored)
    loaded = [load_system(path)[0] for path in (plain, with_buffer)]
    for network in (*loaded[0].networks, *loaded[1].networks):
        torch.testing.assert_close(network.audiogram_to_bin, system.networks[0].audiogram_to_bin)
