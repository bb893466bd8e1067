"""The training stream: a pure function of (seed, index), fixed length, no evaluation data."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from hearmask.errors import HearmaskError
from hearmask.model.data.corpora import WavFolder
from hearmask.model.data.mixer import speech_activity_mask
from hearmask.model.data.speech import AsteriskSpeech, PocketsphinxSpeech, SplitSpeech
from hearmask.model.data.stream import TrainingMixtureStream

SAMPLE_RATE_HZ = 16000


def _stream(make_fake_speech, seed=11, **options):
    sources = [make_fake_speech(60, name="a"), make_fake_speech(60, name="b")]
    return TrainingMixtureStream(sources, seed=seed, segment_seconds=1.0, **options)


def test_examples_are_a_pure_function_of_seed_and_index(make_fake_speech):
    stream = _stream(make_fake_speech)
    later_first = [stream.at(index) for index in (7, 3)]
    fresh = _stream(make_fake_speech)
    for example in later_first:
        again = fresh.at(example.index)
        np.testing.assert_array_equal(again.noisy, example.noisy)
        np.testing.assert_array_equal(again.clean, example.clean)
        assert again.describe() == example.describe()
    resumed_clean, resumed_noisy = next(fresh.iterate(start_index=3))
    np.testing.assert_array_equal(resumed_noisy, later_first[1].noisy)
    other_seed = _stream(make_fake_speech, seed=12)
    assert not np.array_equal(other_seed.at(3).noisy, later_first[1].noisy)


def test_examples_have_fixed_length_and_the_drawn_snr(make_fake_speech):
    stream = _stream(make_fake_speech, snr_range_db=(0.0, 10.0))
    kinds = set()
    for clean, noisy in stream.iterate(0, 12):
        assert clean.dtype == noisy.dtype == np.float32 and clean.shape == noisy.shape == (SAMPLE_RATE_HZ,)
    for index in range(12):
        example = stream.at(index)
        kinds.add(example.noise_kind)
        np.testing.assert_allclose(example.noisy, example.clean + example.noise, atol=1e-6)
        active = speech_activity_mask(example.clean)
        measured = 10 * np.log10(np.mean(example.clean[active].astype(np.float64) ** 2)
                                 / np.mean(example.noise.astype(np.float64) ** 2))
        assert measured == pytest.approx(example.snr_db, abs=0.1)
        assert 0.0 <= example.snr_db <= 10.0
    assert len(kinds) >= 4  # noise kinds really vary


def test_train_and_validation_streams_use_disjoint_utterances(make_fake_speech):
    train = _stream(make_fake_speech, noise_kinds=("white",))
    validation = _stream(make_fake_speech, noise_kinds=("white",), split="validation")
    used_train = {u for i in range(40) for u in train.at(i).utterance_ids}
    used_validation = {u for i in range(40) for u in validation.at(i).utterance_ids}
    assert used_train and used_validation and used_train.isdisjoint(used_validation)
    allowed = set(SplitSpeech(make_fake_speech(60, name="a"), "validation").utterance_ids()) | set(
        SplitSpeech(make_fake_speech(60, name="b"), "validation").utterance_ids())
    assert used_validation <= allowed


def test_evaluation_only_sources_are_refused(make_fake_speech, tmp_path):
    for reserved in (PocketsphinxSpeech(), AsteriskSpeech(("en",), evaluation_only=True, cache_dir=tmp_path),
                     make_fake_speech(10, evaluation_only=True)):
        with pytest.raises(HearmaskError, match="reserved for independent evaluation"):
            TrainingMixtureStream([make_fake_speech(10), reserved], seed=0)
    with pytest.raises(HearmaskError, match="not a training split"):
        TrainingMixtureStream([make_fake_speech(10)], seed=0, split="test")


def test_recorded_noise_comes_from_the_given_folder(make_fake_speech, tmp_path):
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    sf.write(noise_dir / "fan.wav", np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1, 8000)
    stream = _stream(make_fake_speech, noise_kinds=("recorded",), noise_recordings=WavFolder(noise_dir))
    example = stream.at(0)
    assert example.noise_kind == "recorded" and example.noise_id == "folder-noise/fan.wav"
    with pytest.raises(HearmaskError, match="needs noise_recordings"):
        _stream(make_fake_speech, noise_kinds=("recorded",))


def test_bad_parameters_are_refused(make_fake_speech):
    with pytest.raises(HearmaskError, match="seed"):
        _stream(make_fake_speech, seed=-1)
    with pytest.raises(HearmaskError, match="SNR range"):
        _stream(make_fake_speech, snr_range_db=(10.0, 0.0))
    with pytest.raises(HearmaskError, match="noise kinds"):
        _stream(make_fake_speech, noise_kinds=("rain",))
    with pytest.raises(HearmaskError, match="index"):
        _stream(make_fake_speech).at(-1)
