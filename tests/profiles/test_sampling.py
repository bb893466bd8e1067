"""AudiogramSampler: seeded reproducibility, uniform profile choice, jitter bounds, clipping."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.profiles.sampling import AudiogramSampler
from hearmask.profiles.standard import STANDARD_FREQUENCIES_HZ, STANDARD_PROFILE_NAMES, standard_audiogram


def test_same_seed_same_audiograms_and_different_seed_different():
    first = AudiogramSampler(seed=7)
    second = AudiogramSampler(seed=7)
    assert [first.sample() for _ in range(5)] == [second.sample() for _ in range(5)]
    assert np.array_equal(first.sample_batch(64), second.sample_batch(64))
    assert not np.array_equal(AudiogramSampler(seed=7).sample_batch(64), AudiogramSampler(seed=8).sample_batch(64))


def test_sample_and_sample_batch_share_one_stream():
    single = AudiogramSampler(seed=3).sample()
    batch_row = AudiogramSampler(seed=3).sample_batch(1)[0]
    assert single.thresholds_db_hl == tuple(batch_row.tolist())
    assert single.frequencies_hz == STANDARD_FREQUENCIES_HZ


def test_batch_shape_and_clip_range_0_to_105_db():
    thresholds_db_hl = AudiogramSampler(seed=0).sample_batch(4000)
    assert thresholds_db_hl.shape == (4000, len(STANDARD_FREQUENCIES_HZ))
    assert thresholds_db_hl.min() == 0.0  # NH and mild profiles hit the floor
    assert thresholds_db_hl.max() == 105.0  # N7 hits the ceiling
    assert np.all((thresholds_db_hl >= 0.0) & (thresholds_db_hl <= 105.0))


def test_jitter_is_uniform_within_plus_minus_10_db_per_frequency():
    base_db_hl = np.array(standard_audiogram("N3").thresholds_db_hl)  # 35..65: never clipped
    jitter_db = AudiogramSampler(seed=1, names=["N3"]).sample_batch(5000) - base_db_hl
    assert np.all(np.abs(jitter_db) <= 10.0)
    assert jitter_db.min() < -9.9 and jitter_db.max() > 9.9
    assert abs(jitter_db.mean()) < 0.2  # mean of U(-10, 10) over 55000 draws: sd 0.025
    assert np.std(jitter_db) == pytest.approx(20 / np.sqrt(12), rel=0.02)
    # Independent per frequency: neighbouring columns are uncorrelated.
    assert abs(np.corrcoef(jitter_db[:, 4], jitter_db[:, 5])[0, 1]) < 0.05


def test_profiles_are_drawn_uniformly():
    sampler = AudiogramSampler(seed=11, jitter_db=0.0)
    drawn = [sampler.sample().name.split("~")[0] for _ in range(2200)]
    counts = np.array([drawn.count(name) for name in STANDARD_PROFILE_NAMES])
    assert counts.sum() == 2200
    assert np.all(np.abs(counts - 200) < 60)  # binomial sd about 13.5


def test_zero_jitter_gives_the_clipped_standard_profiles():
    thresholds_db_hl = AudiogramSampler(seed=5, jitter_db=0.0).sample_batch(300)
    standard_rows = {standard_audiogram(name).thresholds_db_hl for name in STANDARD_PROFILE_NAMES}
    assert {tuple(row.tolist()) for row in thresholds_db_hl} == standard_rows


def test_custom_grid_interpolates_the_profiles_first():
    sampler = AudiogramSampler(seed=2, jitter_db=0.0, names=["s2"], frequencies_hz=[250, 8000, 12000])
    assert sampler.names == ("S2",)
    assert sampler.sample_batch(1).tolist() == [[20.0, 95.0, 95.0]]


@pytest.mark.parametrize(
    "arguments, expected_text",
    [
        ({"seed": -1}, "non-negative integer"),
        ({"seed": 1.5}, "non-negative integer"),
        ({"seed": 0, "jitter_db": -1.0}, ">= 0 dB"),
        ({"seed": 0, "jitter_db": float("nan")}, ">= 0 dB"),
        ({"seed": 0, "names": []}, "non-empty list"),
        ({"seed": 0, "names": ["N9"]}, "did you mean 'N7'"),
        ({"seed": 0, "frequencies_hz": [8000, 250]}, "increasing order"),
    ],
)
def test_bad_arguments_raise(arguments, expected_text):
    with pytest.raises(HearmaskError, match=expected_text):
        AudiogramSampler(**arguments)


def test_negative_batch_size_raises():
    with pytest.raises(HearmaskError, match="n >= 0"):
        AudiogramSampler(seed=0).sample_batch(-1)
