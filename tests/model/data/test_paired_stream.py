"""Paired noisy/clean folders as a training stream, and training on them."""

import math

import numpy as np
import pytest
import soundfile
import torch

from hearmask.errors import HearmaskError
from hearmask.model.data.corpora import PairedCorpus
from hearmask.model.data.mixer import active_speech_power
from hearmask.model.data.paired_stream import PairedSegmentStream
from hearmask.model.train_config import train_config_from_dict
from hearmask.model.trainer import Trainer

PAIR_SNR_DB = 5.0


@pytest.fixture(scope="module")
def paired_dirs(tmp_path_factory):
    """30 pairs of 0.75 s 'speech' + white noise at 5 dB SNR over the whole file."""
    root = tmp_path_factory.mktemp("paired")
    (root / "clean").mkdir()
    (root / "noisy").mkdir()
    rng = np.random.default_rng(3)
    t = np.arange(12000) / 16000
    for i in range(30):
        clean = 0.05 * sum(np.sin(2 * np.pi * (90 + 7 * i) * k * t) / k for k in range(1, 10))
        noise = rng.standard_normal(t.size)
        noise *= math.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (PAIR_SNR_DB / 10))
        soundfile.write(root / "clean" / f"p{i:02d}.wav", clean.astype(np.float32), 16000)
        soundfile.write(root / "noisy" / f"p{i:02d}.wav", (clean + noise).astype(np.float32), 16000)
    return root


def test_examples_are_reproducible_windows_of_one_pair(paired_dirs):
    corpus = PairedCorpus(paired_dirs / "noisy", paired_dirs / "clean")
    stream = PairedSegmentStream(corpus, seed=4, segment_seconds=0.5)
    first, again = stream.at(7), PairedSegmentStream(corpus, seed=4, segment_seconds=0.5).at(7)
    assert np.array_equal(first.noisy, again.noisy) and np.array_equal(first.clean, again.clean)
    assert not np.array_equal(first.clean, stream.at(8).clean)
    assert first.clean.shape == first.noisy.shape == (8000,)
    np.testing.assert_allclose(first.noise, first.noisy - first.clean, atol=1e-7)
    # The pair's own SNR is kept (a gain common to both); steady signals measure the same on a window.
    assert first.snr_db == pytest.approx(PAIR_SNR_DB, abs=0.5)
    active_level_dbfs = 10 * math.log10(active_speech_power(first.clean))
    assert active_level_dbfs == pytest.approx(first.level_dbfs, abs=0.05)
    assert -40.0 <= first.level_dbfs <= -20.0


def test_short_pairs_are_zero_padded(paired_dirs):
    stream = PairedSegmentStream(PairedCorpus(paired_dirs / "noisy", paired_dirs / "clean"), 0, segment_seconds=1.0)
    example = stream.at(0)
    assert example.clean.shape == (16000,)
    assert np.all(example.clean[12000:] == 0) and np.all(example.noisy[12000:] == 0)


def test_train_and_validation_pairs_do_not_overlap(paired_dirs):
    corpus = PairedCorpus(paired_dirs / "noisy", paired_dirs / "clean")
    train = PairedSegmentStream(corpus, 0, 0.5, split="train")
    validation = PairedSegmentStream(corpus, 0, 0.5, split="validation")
    assert len(train) > 0 and len(validation) > 0
    assert not set(train.positions) & set(validation.positions)
    with pytest.raises(HearmaskError, match="'test' is not a training split"):
        PairedSegmentStream(corpus, 0, 0.5, split="test")


def _config(paired_dirs, **data):
    return train_config_from_dict({
        "data": {"clean_dir": str(paired_dirs / "clean"), "noisy_dir": str(paired_dirs / "noisy"),
                 "segment_seconds": 0.5, **data},
        "model": {"hidden_size": 16, "encoder_size": 16},
        "train": {"steps": 2, "steps_per_epoch": 2, "batch_size": 2, "validation_batches": 1},
    })


def test_training_runs_on_paired_folders(paired_dirs, tmp_path):
    trainer = Trainer(_config(paired_dirs), tmp_path / "run", progress=False)
    batch = trainer.train_batch(0)
    # The noisy input is the corpus's recording, not a new mixture.
    assert torch.any(batch.noisy != batch.clean)
    initial = {k: v.clone() for k, v in trainer.system.state_dict().items()}
    trainer.run()
    assert any(not torch.equal(initial[k], v) for k, v in trainer.system.state_dict().items())
    assert (tmp_path / "run" / "checkpoint.json").is_file()


def test_noise_dir_and_noisy_dir_together_are_refused(paired_dirs):
    with pytest.raises(HearmaskError, match="not both"):
        _config(paired_dirs, noise_dir=str(paired_dirs / "clean"))
