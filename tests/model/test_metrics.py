"""Metric wrappers: perfect scores for identical signals, monotonic in noise, clear errors."""

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.model import metrics
from hearmask.model.data.mixer import mix
from hearmask.model.data.noise import make_noise
from hearmask.profiles.standard import standard_audiogram

SAMPLE_RATE_HZ = 16000


@pytest.fixture(scope="module")
def speech():
    """1.5 s of real recorded speech (pocketsphinx-testdata) at -35 dBFS active level."""
    from hearmask.model.data.speech import PocketsphinxSpeech

    source = PocketsphinxSpeech()
    clip = next(source.load(i) for i in source.utterance_ids() if "librivox" in i)[: int(1.5 * SAMPLE_RATE_HZ)]
    return mix(clip, np.ones(clip.size, dtype=np.float32), 100.0, -35.0).clean.astype(np.float64)


@pytest.fixture(scope="module")
def noisy_versions(speech):
    """The speech in pink noise at 20, 5 and -5 dB SNR (decreasing quality)."""
    noise = make_noise("pink", speech.size, SAMPLE_RATE_HZ, np.random.default_rng(3))
    return [mix(speech.astype(np.float32), noise, snr_db).noisy.astype(np.float64) for snr_db in (20.0, 5.0, -5.0)]


def test_identical_signals_get_the_maximum_scores(speech):
    assert metrics.pesq_wb(speech, speech) > 4.5
    assert metrics.estoi(speech, speech, SAMPLE_RATE_HZ) == pytest.approx(1.0, abs=1e-6)
    assert metrics.si_sdr_db(speech, speech) == metrics.SI_SDR_CAP_DB
    assert metrics.haspi_v2(speech, speech, SAMPLE_RATE_HZ, standard_audiogram("NH")) > 0.99


@pytest.mark.parametrize("metric", [
    lambda ref, deg: metrics.pesq_wb(ref, deg),
    lambda ref, deg: metrics.estoi(ref, deg, SAMPLE_RATE_HZ),
    lambda ref, deg: metrics.si_sdr_db(ref, deg),
    lambda ref, deg: metrics.haspi_v2(ref, deg, SAMPLE_RATE_HZ, standard_audiogram("N2")),
    lambda ref, deg: metrics.hasqi_v2(ref, deg, SAMPLE_RATE_HZ, standard_audiogram("N2")),
], ids=["pesq", "estoi", "si_sdr", "haspi", "hasqi"])
def test_scores_fall_as_noise_is_added(speech, noisy_versions, metric):
    scores = [metric(speech, noisy) for noisy in noisy_versions]
    assert scores[0] > scores[1] > scores[2], scores


def test_si_sdr_is_scale_invariant_and_matches_the_definition(speech):
    rng = np.random.default_rng(0)
    error = rng.standard_normal(speech.size)
    centred = speech - speech.mean()
    error -= error.mean()
    error -= centred * np.dot(error, centred) / np.dot(centred, centred)  # orthogonal to the target
    error *= np.sqrt(np.dot(centred, centred) / np.dot(error, error)) * 10 ** (-12.0 / 20)  # 12 dB below
    estimate = speech + error
    assert metrics.si_sdr_db(speech, estimate) == pytest.approx(12.0, abs=1e-6)
    for scale in (1e-3, 0.5, 7.0, -2.0):
        assert metrics.si_sdr_db(speech, scale * estimate) == pytest.approx(12.0, abs=1e-6)


def test_haspi_keeps_the_gain_of_the_processed_signal(speech):
    """An impaired listener understands amplified speech better: the calibration must not undo gain."""
    listener = standard_audiogram("N4")
    unamplified = metrics.haspi_v2(speech, speech, SAMPLE_RATE_HZ, listener)
    amplified = metrics.haspi_v2(speech, speech * 10 ** (30 / 20), SAMPLE_RATE_HZ, listener)
    assert amplified > unamplified + 0.2


def test_audiogram_conversion_to_pyclarity_frequencies():
    converted = metrics.clarity_audiogram(standard_audiogram("N3"))
    np.testing.assert_allclose(converted.frequencies, [250, 500, 1000, 2000, 4000, 6000])
    np.testing.assert_allclose(converted.levels, [35, 35, 40, 50, 60, 65])


def test_presentation_level_sets_pyclarity_calibration(speech):
    # The speech's active level is -35 dBFS: presenting it at 65 dB SPL means RMS 1 = 100 dB SPL.
    assert metrics.full_scale_db_spl(speech, SAMPLE_RATE_HZ, 65.0) == pytest.approx(100.0, abs=0.01)
    with pytest.raises(HearmaskError, match="dB SPL"):
        metrics.full_scale_db_spl(speech, SAMPLE_RATE_HZ, 200.0)


@pytest.mark.parametrize("reference, processed, match", [
    (np.ones(4000), np.ones(4000), "long"),
    (np.ones(16000), np.ones(15000), "equal lengths"),
    (np.ones((2, 16000)), np.ones((2, 16000)), "mono"),
    (np.full(16000, np.nan), np.ones(16000), "NaN"),
    (np.zeros(16000), np.ones(16000), "silence"),
])
def test_bad_input_gives_a_clear_error(reference, processed, match):
    for call in (lambda: metrics.pesq_wb(reference, processed),
                 lambda: metrics.estoi(reference, processed, SAMPLE_RATE_HZ),
                 lambda: metrics.haspi_v2(reference, processed, SAMPLE_RATE_HZ, standard_audiogram("NH"))):
        with pytest.raises(HearmaskError, match=match):
            call()


def test_si_sdr_rejects_mismatched_or_silent_input():
    with pytest.raises(HearmaskError, match="equal length"):
        metrics.si_sdr_db(np.ones(10), np.ones(9))
    with pytest.raises(HearmaskError, match="constant"):
        metrics.si_sdr_db(np.ones(10), np.arange(10.0))


def test_estoi_without_enough_speech_is_an_error():
    burst = np.zeros(SAMPLE_RATE_HZ)
    burst[:800] = np.sin(np.arange(800) * 0.3)  # 50 ms of sound, then silence
    with pytest.raises(HearmaskError, match="ESTOI"):
        metrics.estoi(burst, burst, SAMPLE_RATE_HZ)


def test_pesq_resamples_other_rates(speech):
    from scipy.signal import resample_poly

    at_48k = resample_poly(speech, 3, 1)
    assert metrics.pesq_wb(at_48k, at_48k, 48000) > 4.5
