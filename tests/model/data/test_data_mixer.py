"""The mixer: SNR and level measured back, looping, and no silent clipping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.model.data.mixer import PEAK_LIMIT, fit_noise_length, mix, mix_random_snr, speech_activity_mask

SAMPLE_RATE_HZ = 16000


def _measured_snr_db(mixture):
    """SNR by the documented definition, computed here from the returned signals."""
    active = speech_activity_mask(mixture.clean)
    speech_power = np.mean(mixture.clean[active].astype(np.float64) ** 2)
    noise_power = np.mean(mixture.noise.astype(np.float64) ** 2)
    return 10 * np.log10(speech_power / noise_power)


def test_snr_over_active_speech_of_a_known_burst():
    # 0.5 s of a sine then 0.5 s of silence: the active speech power is the sine's, A^2 / 2.
    time_s = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    speech = np.where(time_s < 0.5, 0.2 * np.sin(2 * np.pi * 300 * time_s), 0.0).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE_HZ).astype(np.float32)
    mixture = mix(speech, noise, snr_db=0.0)
    noise_power = np.mean(mixture.noise.astype(np.float64) ** 2)
    assert 10 * np.log10(0.2**2 / 2 / noise_power) == pytest.approx(0.0, abs=0.1)
    assert speech_activity_mask(speech).mean() == pytest.approx(0.5, abs=0.02)


@settings(max_examples=25, deadline=None)
@given(snr_db=st.floats(-10, 30), level_dbfs=st.floats(-50, -20), noise_seconds=st.sampled_from([0.3, 1.0, 3.0]),
       seed=st.integers(0, 2**16))
def test_snr_and_level_are_measured_back_within_0_1_db(snr_db, level_dbfs, noise_seconds, seed):
    rng = np.random.default_rng(seed)
    time_s = np.arange(int(1.5 * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    speech = (0.3 * np.sin(2 * np.pi * 150 * time_s) * (np.sin(2 * np.pi * 3 * time_s) > 0)).astype(np.float32)
    noise = rng.standard_normal(int(noise_seconds * SAMPLE_RATE_HZ)).astype(np.float32)
    mixture = mix(speech, noise, snr_db, level_dbfs, rng)
    assert mixture.noisy.shape == speech.shape
    np.testing.assert_allclose(mixture.noisy, mixture.clean + mixture.noise, atol=1e-6)
    assert _measured_snr_db(mixture) == pytest.approx(snr_db, abs=0.1)
    active = speech_activity_mask(mixture.clean)
    measured_level = 10 * np.log10(np.mean(mixture.clean[active].astype(np.float64) ** 2))
    assert measured_level == pytest.approx(mixture.level_dbfs, abs=0.1)
    if not mixture.clipping_avoided:
        assert mixture.level_dbfs == pytest.approx(level_dbfs, abs=0.1)


def test_loud_mixture_is_scaled_down_and_says_so(fake_speech):
    speech = fake_speech.load(fake_speech.utterance_ids()[0])
    noise = np.random.default_rng(1).standard_normal(speech.size).astype(np.float32)
    mixture = mix(speech, noise, snr_db=-5.0, level_dbfs=-3.0)
    assert mixture.clipping_avoided and mixture.peak_gain_db < 0
    assert np.max(np.abs(mixture.noisy)) <= PEAK_LIMIT + 1e-6
    assert mixture.level_dbfs == pytest.approx(-3.0 + mixture.peak_gain_db, abs=0.01)
    assert _measured_snr_db(mixture) == pytest.approx(-5.0, abs=0.1)
    with pytest.raises(HearmaskError, match="would clip"):
        mix(speech, noise, snr_db=-5.0, level_dbfs=-3.0, on_clip="raise")


def test_short_noise_is_looped_without_a_level_jump():
    noise = np.random.default_rng(2).standard_normal(SAMPLE_RATE_HZ // 4).astype(np.float32)
    looped = fit_noise_length(noise, 3 * SAMPLE_RATE_HZ, np.random.default_rng(3))
    assert looped.shape == (3 * SAMPLE_RATE_HZ,)
    block_rms = np.sqrt(np.mean(looped.reshape(-1, 800).astype(np.float64) ** 2, axis=1))
    assert np.all(np.abs(20 * np.log10(block_rms)) < 1.0)  # unit-variance noise stays at 0 dB
    cropped = fit_noise_length(np.arange(100, dtype=np.float32), 10)
    np.testing.assert_array_equal(cropped, np.arange(10))


def test_silent_speech_or_noise_is_refused():
    noise = np.ones(1000, dtype=np.float32)
    with pytest.raises(HearmaskError, match="no active frame"):
        mix(np.zeros(1000, dtype=np.float32), noise, 0.0)
    with pytest.raises(HearmaskError, match="digital silence"):
        mix(np.full(1000, 0.1, dtype=np.float32), np.zeros(500, dtype=np.float32), 0.0)


def test_random_snr_is_seeded_and_in_range(fake_speech):
    speech = fake_speech.load(fake_speech.utterance_ids()[1])
    noise = np.random.default_rng(4).standard_normal(SAMPLE_RATE_HZ).astype(np.float32)
    snrs = [mix_random_snr(speech, noise, np.random.default_rng(seed)).snr_db for seed in range(20)]
    assert all(-5.0 <= snr <= 20.0 for snr in snrs) and max(snrs) - min(snrs) > 5.0
    again = mix_random_snr(speech, noise, np.random.default_rng(3))
    np.testing.assert_array_equal(again.noisy, mix_random_snr(speech, noise, np.random.default_rng(3)).noisy)
