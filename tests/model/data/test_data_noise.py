"""Procedural noise: seeded, float32, normalised, and with the spectra each kind promises."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch
from scipy.stats import kurtosis

from hearmask.errors import HearmaskError
from hearmask.model.data.noise import NOISE_KINDS, NOISE_RMS_DBFS, make_noise, speech_shaped_noise

SAMPLE_RATE_HZ = 16000


def _noise(kind, seed, num_samples=2 * SAMPLE_RATE_HZ, speech_source=None):
    return make_noise(kind, num_samples, SAMPLE_RATE_HZ, np.random.default_rng(seed), speech_source=speech_source)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_kind_is_seeded_float32_and_normalised(kind, fake_speech):
    first = _noise(kind, 1, speech_source=fake_speech)
    assert first.dtype == np.float32 and first.shape == (2 * SAMPLE_RATE_HZ,)
    assert np.all(np.isfinite(first))
    assert 20 * np.log10(np.sqrt(np.mean(first.astype(np.float64) ** 2))) == pytest.approx(NOISE_RMS_DBFS, abs=0.01)
    np.testing.assert_array_equal(first, _noise(kind, 1, speech_source=fake_speech))
    assert not np.array_equal(first, _noise(kind, 2, speech_source=fake_speech))


def _slope_db_per_octave(noise):
    frequencies_hz, power = welch(noise, SAMPLE_RATE_HZ, nperseg=4096)
    band = (frequencies_hz >= 100) & (frequencies_hz <= 6000)
    # One point per 1/6 octave, so every octave weighs the same in the fit.
    edges_hz = 100 * 2.0 ** np.arange(0, np.log2(6000 / 100), 1 / 6)
    centres, levels = [], []
    for low, high in zip(edges_hz[:-1], edges_hz[1:]):
        in_band = band & (frequencies_hz >= low) & (frequencies_hz < high)
        centres.append(np.log2(np.sqrt(low * high)))
        levels.append(10 * np.log10(power[in_band].mean()))
    return np.polyfit(centres, levels, 1)[0]


@pytest.mark.parametrize("kind, expected_slope", [("white", 0.0), ("pink", -3.01), ("brown", -6.02)])
def test_coloured_noise_has_its_spectral_slope(kind, expected_slope):
    slope = _slope_db_per_octave(_noise(kind, 3, num_samples=8 * SAMPLE_RATE_HZ))
    assert slope == pytest.approx(expected_slope, abs=0.3)


def test_hum_is_mains_harmonics():
    hum = _noise("hum", 4, num_samples=4 * SAMPLE_RATE_HZ)
    spectrum = np.abs(np.fft.rfft(hum)) ** 2  # 0.25 Hz bins over 4 s: harmonics fall on bins
    frequencies_hz = np.fft.rfftfreq(hum.size, 1 / SAMPLE_RATE_HZ)
    power_at_hz = {f0: spectrum[np.argmin(abs(frequencies_hz - f0))] for f0 in (50.0, 60.0)}
    fundamental_hz = max(power_at_hz, key=power_at_hz.get)
    on_harmonic = np.isclose(frequencies_hz % fundamental_hz, 0.0) & (frequencies_hz > 0)
    assert spectrum[on_harmonic].sum() / spectrum.sum() > 0.999


def test_tones_concentrate_power_in_few_frequencies():
    for seed in range(5):
        tones = _noise("tones", seed)
        spectrum = np.abs(np.fft.rfft(tones * np.hanning(tones.size))) ** 2
        strongest = np.sort(spectrum)[::-1]
        # 3 tones (each spread over a few bins by the window and any gating) hold the power.
        assert strongest[:300].sum() / spectrum.sum() > 0.9


def test_transients_are_impulsive_and_modulated_noise_fluctuates():
    frame = SAMPLE_RATE_HZ // 50
    for seed in range(5):
        assert kurtosis(_noise("transients", seed)) > 5.0  # Gaussian noise: 0
        modulated = _noise("modulated", seed).reshape(-1, frame)
        frame_rms = np.sqrt(np.mean(modulated.astype(np.float64) ** 2, axis=1))
        assert frame_rms.std() / frame_rms.mean() > 0.2
        steady = _noise("white", seed).reshape(-1, frame)
        steady_rms = np.sqrt(np.mean(steady.astype(np.float64) ** 2, axis=1))
        assert steady_rms.std() / steady_rms.mean() < 0.1


def test_speech_shaped_noise_follows_the_long_term_speech_spectrum(fake_speech):
    speech = np.concatenate([fake_speech.load(i) for i in fake_speech.utterance_ids()[:6]])
    noise = speech_shaped_noise(8 * SAMPLE_RATE_HZ, SAMPLE_RATE_HZ, np.random.default_rng(0), speech=speech)
    frequencies_hz, speech_power = welch(speech, SAMPLE_RATE_HZ, nperseg=512)
    _, noise_power = welch(noise, SAMPLE_RATE_HZ, nperseg=512)
    band = (frequencies_hz >= 100) & (frequencies_hz <= 4000)
    speech_db = 10 * np.log10(speech_power[band] / speech_power[band].sum())
    noise_db = 10 * np.log10(noise_power[band] / noise_power[band].sum())
    # Octave-smoothed shapes agree within 2 dB.
    for low in (125, 250, 500, 1000, 2000):
        in_octave = (frequencies_hz[band] >= low) & (frequencies_hz[band] < 2 * low)
        assert 10 * np.log10(np.mean(10 ** (noise_db[in_octave] / 10)) / np.mean(10 ** (speech_db[in_octave] / 10))) \
            == pytest.approx(0.0, abs=2.0)


def test_babble_sums_several_talkers_into_a_denser_signal(fake_speech):
    def frame_rms(signal):
        frames = signal[: signal.size // 320 * 320].reshape(-1, 320).astype(np.float64)
        return np.sqrt(np.mean(frames**2, axis=1))

    babble = _noise("babble", 7, speech_source=fake_speech)
    assert fake_speech.loads >= 3 * 2  # at least 3 talkers, each longer than one utterance
    one_talker = fake_speech.load(fake_speech.utterance_ids()[0])
    # Pauses of one talker are filled by the others: the level dips far less.
    assert np.percentile(frame_rms(babble), 10) / frame_rms(babble).max() > \
        np.percentile(frame_rms(one_talker), 10) / frame_rms(one_talker).max()


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(HearmaskError, match="expected one of white, pink, brown"):
        _noise("rain", 0)
