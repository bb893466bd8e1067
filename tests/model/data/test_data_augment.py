"""Augmentation: gains, tilt/EQ measured back, synthetic rooms with the RT60 asked for."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from hearmask.errors import HearmaskError
from hearmask.model.data.augment import (
    NO_AUGMENTATION,
    AugmentConfig,
    apply_eq,
    apply_gain_db,
    apply_tilt,
    augment_speech,
    measure_rt60_s,
    reverberate,
    synthetic_rir,
)

SAMPLE_RATE_HZ = 16000


def _gain_db(before, after):
    frequencies_hz, p_before = welch(before, SAMPLE_RATE_HZ, nperseg=1024)
    _, p_after = welch(after, SAMPLE_RATE_HZ, nperseg=1024)
    return frequencies_hz, 10 * np.log10(p_after / p_before)


@pytest.mark.parametrize("rt60_s", [0.3, 0.6, 1.2])
def test_synthetic_room_has_the_requested_rt60(rt60_s):
    measured = [measure_rt60_s(synthetic_rir(rt60_s, np.random.default_rng(seed))) for seed in range(3)]
    assert np.median(measured) == pytest.approx(rt60_s, rel=0.1)


def test_room_response_has_a_direct_path_and_the_requested_drr():
    response = synthetic_rir(0.5, np.random.default_rng(0), direct_to_reverberant_db=6.0)
    assert response[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(response[1:].astype(np.float64) ** 2)) == pytest.approx(6.0, abs=0.01)


def test_reverberation_keeps_length_and_alignment():
    response = synthetic_rir(0.4, np.random.default_rng(1))
    impulse = np.zeros(SAMPLE_RATE_HZ, dtype=np.float32)
    impulse[100] = 1.0
    output = reverberate(impulse, response)
    assert output.shape == impulse.shape
    np.testing.assert_allclose(output[100 : 100 + response.size], response, atol=1e-6)
    assert np.max(np.abs(output[:100])) < 1e-9  # causal: nothing before the direct path


def test_invalid_rt60_is_refused():
    with pytest.raises(HearmaskError, match="expected 0.05 to 3 s"):
        synthetic_rir(10.0, np.random.default_rng(0))


@pytest.mark.parametrize("tilt_db_per_octave", [-3.0, 1.5])
def test_tilt_has_the_requested_slope_around_1_khz(tilt_db_per_octave):
    noise = np.random.default_rng(2).standard_normal(4 * SAMPLE_RATE_HZ).astype(np.float32)
    frequencies_hz, gain_db = _gain_db(noise, apply_tilt(noise, tilt_db_per_octave))
    band = (frequencies_hz > 200) & (frequencies_hz < 6000)
    slope, gain_at_1khz = np.polyfit(np.log2(frequencies_hz[band] / 1000), gain_db[band], 1)
    assert slope == pytest.approx(tilt_db_per_octave, abs=0.1)
    assert gain_at_1khz == pytest.approx(0.0, abs=0.2)


def test_eq_gains_hold_at_breakpoints_and_gain_is_exact():
    noise = np.random.default_rng(3).standard_normal(4 * SAMPLE_RATE_HZ).astype(np.float32)
    frequencies_hz, gain_db = _gain_db(noise, apply_eq(noise, [500, 2000], [-6.0, 6.0]))
    assert np.median(gain_db[(frequencies_hz > 100) & (frequencies_hz < 400)]) == pytest.approx(-6.0, abs=0.3)
    assert np.median(gain_db[(frequencies_hz > 3000) & (frequencies_hz < 7000)]) == pytest.approx(6.0, abs=0.3)
    np.testing.assert_allclose(apply_gain_db(noise, -20.0), noise * 0.1, rtol=1e-6)
    with pytest.raises(HearmaskError, match="positive and increasing"):
        apply_eq(noise, [2000, 500], [0.0, 0.0])


def test_augmentation_is_seeded_and_reports_what_it_applied(fake_speech):
    speech = fake_speech.load(fake_speech.utterance_ids()[0])
    always = AugmentConfig(tilt_probability=1.0, eq_probability=1.0, reverb_probability=1.0)
    first, applied = augment_speech(speech, np.random.default_rng(9), always)
    second, _ = augment_speech(speech, np.random.default_rng(9), always)
    np.testing.assert_array_equal(first, second)
    assert all(value is not None for value in applied.values())
    assert 0.15 <= applied["rt60_s"] <= 0.9 and -2.0 <= applied["tilt_db_per_octave"] <= 2.0
    untouched, nothing = augment_speech(speech, np.random.default_rng(9), NO_AUGMENTATION)
    np.testing.assert_array_equal(untouched, speech)
    assert all(value is None for value in nothing.values())
