"""NAL-R baseline: the formula, parity with pyclarity's NALR, and the streaming path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.model.baselines.nalr import (
    NALR_BIAS_DB,
    NALR_FREQUENCIES_HZ,
    NalrProcessor,
    enhance_nalr,
    nalr_gains_db,
    nalr_prescription_db,
)
from hearmask.model.stft_config import SHIPPED_STFT_CONFIGS, shipped_stft_config
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.standard import standard_audiogram

# Every standard profile, spelled out so a missing one fails instead of being skipped.
ALL_STANDARD_NAMES = ("NH", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "S1", "S2", "S3")
SAMPLE_RATE_HZ = 16000

# pyclarity parity. Its linear-phase FIR (window-method design on an nfir-point grid)
# rounds the corners of the piecewise-linear gain curve over about 4 grid steps
# (sample_rate / nfir Hz each). The worst corners are at 250 Hz (flat extension meets
# the 250→500 Hz slope) and 500 Hz. Measured max |ours − pyclarity| over 250–6000 Hz at
# 16 kHz: nfir 128: 1.97 dB, 220 (Clarity recipes): 1.41 dB, 256: 0.98 dB,
# 512: 0.37 dB. Halfway between NAL-R frequencies the FIR is exact to 0.05 dB at nfir 512.
PARITY_NFIR = 512
PARITY_TOLERANCE_DB = 0.5
PARITY_MIDSEGMENT_TOLERANCE_DB = 0.1
# Halfway (in Hz) between neighbouring NAL-R frequencies: far from the FIR's rounded corners.
MIDSEGMENT_FREQUENCIES_HZ = np.array([375.0, 750.0, 1500.0, 3000.0, 5000.0])

# Streaming path. A real gain per bin acts on frames shaped by the analysis·synthesis
# product window of N_s samples, so the effective response is the gain curve smoothed
# over roughly sample_rate / N_s Hz (125 Hz at N_s = 128, 250 Hz at N_s = 64); the
# corners at 250 and 500 Hz are rounded most. Measured here (power ratio of 8 s of white
# noise, Welch 512): max error over 250–6000 Hz on all standard audiograms: default
# 0.76 dB, symmetric_8ms 0.87 dB, low_latency 1.88 dB; over 1–6 kHz: 0.36, 0.34, 0.53 dB.
# Other noise seeds move these by up to about 0.1 dB (0.25 dB with 4 s of noise).
STREAM_TOLERANCE_DB = {"default": 1.0, "symmetric_8ms": 1.1, "low_latency": 2.25}
STREAM_TOLERANCE_ABOVE_1KHZ_DB = 0.75


def _six_point_audiogram(thresholds_db_hl) -> Audiogram:
    return Audiogram("six-point", NALR_FREQUENCIES_HZ, tuple(float(v) for v in thresholds_db_hl))


def _band_frequencies_hz(step_hz: float = 25.0) -> np.ndarray:
    return np.arange(250.0, 6000.0 + step_hz / 2, step_hz)


# --- the formula -------------------------------------------------------------------


def test_formula_values_computed_by_hand():
    # N3 at 250..6000: 35 35 40 50 60 65; S = 35+40+50 = 125, X = 6.25.
    n3 = nalr_gains_db(standard_audiogram("N3"), NALR_FREQUENCIES_HZ)
    np.testing.assert_allclose(n3, [0.10, 9.10, 19.65, 20.75, 22.85, 24.40], atol=1e-9)
    # N7: 90 95 105 105 105 105; S = 305 > 180, X = 9 + 0.116·125 = 23.5 (NAL-RP branch).
    n7 = nalr_gains_db(standard_audiogram("N7"), NALR_FREQUENCIES_HZ)
    np.testing.assert_allclose(n7, [34.40, 44.95, 57.05, 55.05, 54.05, 54.05], atol=1e-9)


def test_negative_gains_are_clipped_to_zero():
    # N1: 10 10 10 15 30 40; S = 35, X = 1.75; raw 250 Hz gain -12.15, 500 Hz -3.15.
    n1 = nalr_gains_db(standard_audiogram("N1"), NALR_FREQUENCIES_HZ)
    np.testing.assert_allclose(n1, [0.0, 0.0, 5.85, 5.40, 9.05, 12.15], atol=1e-9)


def test_normal_hearing_gets_zero_gain_everywhere():
    # The formula at 0 dB HL gives the constants k_f, i.e. +1 dB at 1 kHz after clipping;
    # pyclarity (and we) return no gain at all when no threshold is above 0 dB HL.
    assert nalr_prescription_db(np.zeros(6)).tolist() == [0.0] * 6
    assert nalr_prescription_db(np.full(6, -10.0)).tolist() == [0.0] * 6
    gains_db = nalr_gains_db(standard_audiogram("NH"), np.linspace(0.0, 8000.0, 257))
    assert np.all(gains_db == 0.0)


def test_smallest_loss_switches_formula_on():
    # 1 dB HL at 1 kHz only: S = 1, X = 0.05; 1 kHz gain = 0.05 + 0.31 + 1 = 1.36 dB.
    gains_db = nalr_prescription_db(np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(gains_db, [0.0, 0.0, 1.36, 0.0, 0.0, 0.0], atol=1e-12)


def test_interpolation_is_linear_in_hz_and_flat_outside():
    audiogram = standard_audiogram("S3")
    at_nalr_db = nalr_gains_db(audiogram, NALR_FREQUENCIES_HZ)
    below_and_above_db = nalr_gains_db(audiogram, np.array([0.0, 100.0, 249.0, 6001.0, 8000.0]))
    np.testing.assert_allclose(below_and_above_db, [at_nalr_db[0]] * 3 + [at_nalr_db[-1]] * 2)
    midpoints_db = nalr_gains_db(audiogram, MIDSEGMENT_FREQUENCIES_HZ)
    np.testing.assert_allclose(midpoints_db, (at_nalr_db[:-1] + at_nalr_db[1:]) / 2, atol=1e-12)


def test_thresholds_between_audiogram_points_are_log_frequency_interpolated():
    # An audiogram without 500 Hz: 250 → 1000 Hz on log axis puts 500 Hz halfway.
    audiogram = Audiogram("gap", (250.0, 1000.0, 2000.0, 4000.0, 6000.0), (20.0, 60.0, 60.0, 60.0, 60.0))
    expected = nalr_prescription_db(np.array([20.0, 40.0, 60.0, 60.0, 60.0, 60.0]))
    np.testing.assert_allclose(nalr_gains_db(audiogram, NALR_FREQUENCIES_HZ), expected, atol=1e-9)


def test_per_ear_audiogram_uses_chosen_ear():
    audiogram = Audiogram(
        "ears", NALR_FREQUENCIES_HZ, left_db_hl=(40.0,) * 6, right_db_hl=(20.0,) * 6
    )
    left_db = nalr_gains_db(audiogram.for_ear("left"), NALR_FREQUENCIES_HZ)
    mean_db = nalr_gains_db(audiogram, NALR_FREQUENCIES_HZ)
    np.testing.assert_allclose(left_db, nalr_prescription_db(np.full(6, 40.0)))
    np.testing.assert_allclose(mean_db, nalr_prescription_db(np.full(6, 30.0)))


@given(
    low_db_hl=st.floats(0.0, 105.0),
    raise_db=st.floats(0.5, 15.0),
)
@settings(max_examples=60, deadline=None)
def test_larger_uniform_loss_gives_larger_gain(low_db_hl, raise_db):
    high_db_hl = min(low_db_hl + raise_db, 120.0)
    frequencies_hz = shipped_stft_config("default").bin_frequencies_hz()
    low_gain_db = nalr_gains_db(_six_point_audiogram([low_db_hl] * 6), frequencies_hz)
    high_gain_db = nalr_gains_db(_six_point_audiogram([high_db_hl] * 6), frequencies_hz)
    assert np.all(high_gain_db >= low_gain_db)
    # Wherever the higher loss gets any gain it is strictly more (d gain / d HL >= 0.46).
    amplified = high_gain_db > 0.0
    assert np.all(high_gain_db[amplified] > low_gain_db[amplified])


@given(
    thresholds_db_hl=st.lists(st.floats(-10.0, 110.0), min_size=6, max_size=6),
    raises_db=st.lists(st.floats(0.0, 10.0), min_size=6, max_size=6),
)
@settings(max_examples=80, deadline=None)
def test_raising_any_threshold_never_lowers_any_gain(thresholds_db_hl, raises_db):
    before_db = nalr_prescription_db(np.array(thresholds_db_hl))
    after_db = nalr_prescription_db(np.array(thresholds_db_hl) + np.array(raises_db))
    assert np.all(before_db >= 0.0)
    assert np.all(after_db >= before_db - 1e-12)


def test_bad_frequencies_and_thresholds_are_rejected():
    with pytest.raises(HearmaskError, match=">= 0 Hz"):
        nalr_gains_db(standard_audiogram("N3"), np.array([-1.0, 1000.0]))
    with pytest.raises(HearmaskError, match="finite"):
        nalr_gains_db(standard_audiogram("N3"), np.array([np.nan]))
    with pytest.raises(HearmaskError, match="6 frequencies"):
        nalr_prescription_db(np.zeros(5))


# --- parity with pyclarity ---------------------------------------------------------


def _pyclarity_response_db(audiogram: Audiogram, frequencies_hz: np.ndarray, nfir: int) -> np.ndarray:
    """Magnitude (dB) of pyclarity's NAL-R FIR for ``audiogram`` at ``frequencies_hz``."""
    nalr_module = pytest.importorskip("clarity.enhancer.nalr", reason="pyclarity is installed by scripts/setup.sh")
    from clarity.utils.audiogram import Audiogram as ClarityAudiogram

    clarity_audiogram = ClarityAudiogram(
        levels=np.array(audiogram.thresholds_db_hl), frequencies=np.array(audiogram.frequencies_hz)
    )
    fir, _ = nalr_module.NALR(nfir, SAMPLE_RATE_HZ).build(clarity_audiogram)
    _, response = scipy.signal.freqz(fir, worN=frequencies_hz, fs=SAMPLE_RATE_HZ)
    return 20.0 * np.log10(np.abs(response))


def _max_parity_error_db(name: str, frequencies_hz: np.ndarray, nfir: int) -> float:
    audiogram = standard_audiogram(name)
    ours_db = nalr_gains_db(audiogram, frequencies_hz)
    return float(np.max(np.abs(ours_db - _pyclarity_response_db(audiogram, frequencies_hz, nfir))))


@pytest.mark.parametrize("name", ALL_STANDARD_NAMES)
def test_gains_match_pyclarity_nalr_over_250_to_6000_hz(name):
    error_db = _max_parity_error_db(name, _band_frequencies_hz(), PARITY_NFIR)
    assert error_db <= PARITY_TOLERANCE_DB, f"{name}: max |ours - pyclarity| = {error_db:.3f} dB"


@pytest.mark.parametrize("name", ALL_STANDARD_NAMES)
def test_gains_match_pyclarity_nalr_between_corners(name):
    # Away from the FIR's rounded corners the two must agree closely: a formula slip
    # (a constant, the NAL-RP branch, log- instead of linear-Hz interpolation) shows here.
    error_db = _max_parity_error_db(name, MIDSEGMENT_FREQUENCIES_HZ, PARITY_NFIR)
    assert error_db <= PARITY_MIDSEGMENT_TOLERANCE_DB, f"{name}: {error_db:.3f} dB"


@pytest.mark.parametrize("name", ["N3", "S2", "S3"])
def test_pyclarity_difference_shrinks_with_fir_length(name):
    # The residual is the FIR's finite resolution, not the formula: it falls as nfir grows.
    errors_db = [_max_parity_error_db(name, _band_frequencies_hz(), nfir) for nfir in (128, 256, 512)]
    assert errors_db[0] > errors_db[1] > errors_db[2], errors_db
    assert errors_db[2] < 0.5 * errors_db[0], errors_db


# --- the streaming path ------------------------------------------------------------


def _measured_gain_db(config_name: str, audiogram: Audiogram, frequencies_hz: np.ndarray) -> np.ndarray:
    """Output/input power ratio (dB) of white noise through the streaming NAL-R, per Welch bin."""
    config = shipped_stft_config(config_name)
    noise = np.random.default_rng(1234).standard_normal(8 * SAMPLE_RATE_HZ)
    output = enhance_nalr(noise, audiogram, config)
    latency = config.algorithmic_latency_samples
    # Align output with the input that produced it, so both Welch estimates see the same noise.
    welch_frequencies_hz, input_power = scipy.signal.welch(noise[:-latency], fs=SAMPLE_RATE_HZ, nperseg=512)
    _, output_power = scipy.signal.welch(output[latency:], fs=SAMPLE_RATE_HZ, nperseg=512)
    gain_db = 10.0 * np.log10(output_power / input_power)
    return np.interp(frequencies_hz, welch_frequencies_hz, gain_db)


@pytest.mark.parametrize("config_name", sorted(SHIPPED_STFT_CONFIGS))
def test_streaming_output_has_prescribed_spectral_gain(config_name):
    assert set(STREAM_TOLERANCE_DB) == set(SHIPPED_STFT_CONFIGS)
    # Welch bins (31.25 Hz apart) inside 250–6000 Hz.
    frequencies_hz = np.arange(250.0, 6000.0 + 1.0, 31.25)
    for name in ALL_STANDARD_NAMES:
        audiogram = standard_audiogram(name)
        measured_db = _measured_gain_db(config_name, audiogram, frequencies_hz)
        error_db = np.abs(measured_db - nalr_gains_db(audiogram, frequencies_hz))
        assert error_db.max() <= STREAM_TOLERANCE_DB[config_name], f"{config_name}/{name}: {error_db.max():.2f} dB"
        above_1khz_error_db = error_db[frequencies_hz >= 1000.0].max()
        assert above_1khz_error_db <= STREAM_TOLERANCE_ABOVE_1KHZ_DB, (
            f"{config_name}/{name} above 1 kHz: {above_1khz_error_db:.2f} dB"
        )


def test_processor_gains_are_the_prescription_at_bin_centres():
    config = shipped_stft_config("default")
    processor = NalrProcessor(standard_audiogram("S2"), config)
    assert processor.gains_linear.shape == (config.num_bins,)
    np.testing.assert_allclose(
        20 * np.log10(processor.gains_linear), nalr_gains_db(standard_audiogram("S2"), config.bin_frequencies_hz())
    )
    assert processor.latency_samples == config.algorithmic_latency_samples


@pytest.mark.parametrize("num_samples", [1, 63, 64, 65, 127, 300, 4001])
def test_output_length_equals_input_length(num_samples):
    signal = np.random.default_rng(num_samples).standard_normal(num_samples)
    for config in SHIPPED_STFT_CONFIGS.values():
        assert enhance_nalr(signal, standard_audiogram("N4"), config).shape == (num_samples,)


def _flat_gain_audiogram(gain_db: float) -> Audiogram:
    """Thresholds at the six NAL-R frequencies for which NAL-R prescribes ``gain_db`` flat.

    gain_f = X + 0.31·H_f + k_f = G  ⇒  H_f = (G − X − k_f) / 0.31. Summing over 500, 1k,
    2k Hz with X = 0.05·S (S ≤ 180): S = (3G − (k_500 + k_1k + k_2k)) / 0.46.
    """
    bias_db = np.array(NALR_BIAS_DB)
    three_frequency_sum = (3 * gain_db - bias_db[1:4].sum()) / 0.46
    assert three_frequency_sum <= 180.0
    thresholds_db_hl = (gain_db - 0.05 * three_frequency_sum - bias_db) / 0.31
    return _six_point_audiogram(thresholds_db_hl)


@pytest.mark.parametrize("config_name", sorted(SHIPPED_STFT_CONFIGS))
@pytest.mark.parametrize("gain_db", [0.0, 20.0])
def test_flat_gain_output_is_input_delayed_by_algorithmic_latency(config_name, gain_db):
    audiogram = standard_audiogram("NH") if gain_db == 0.0 else _flat_gain_audiogram(gain_db)
    config = shipped_stft_config(config_name)
    np.testing.assert_allclose(nalr_gains_db(audiogram, config.bin_frequencies_hz()), gain_db, atol=1e-9)
    signal = np.random.default_rng(7).standard_normal(3000)
    output = enhance_nalr(signal, audiogram, config)
    latency = config.algorithmic_latency_samples
    expected = 10 ** (gain_db / 20) * np.concatenate([np.zeros(latency), signal[:-latency]])
    error = output - expected
    snr_db = 10 * np.log10(np.sum(expected**2) / np.sum(error**2))
    assert snr_db > 60.0
    # One sample early or late would be far off: the delay is exactly the latency.
    assert np.max(np.abs(output[:latency])) < 1e-9


def test_future_input_never_changes_past_output():
    config = shipped_stft_config("default")
    signal = np.random.default_rng(3).standard_normal(2000)
    changed = signal.copy()
    changed[1200:] = np.random.default_rng(4).standard_normal(800)
    before = enhance_nalr(signal, standard_audiogram("S3"), config)
    after = enhance_nalr(changed, standard_audiogram("S3"), config)
    np.testing.assert_array_equal(before[:1200], after[:1200])
    first_affected = 1200 + config.algorithmic_latency_samples
    assert not np.allclose(before[first_affected:], after[first_affected:])


def test_default_config_is_the_shipped_default():
    signal = np.random.default_rng(5).standard_normal(1000)
    np.testing.assert_array_equal(
        enhance_nalr(signal, standard_audiogram("N2")),
        enhance_nalr(signal, standard_audiogram("N2"), shipped_stft_config("default")),
    )


def test_stereo_signal_is_rejected():
    with pytest.raises(HearmaskError, match="mono"):
        enhance_nalr(np.zeros((100, 2)), standard_audiogram("N2"))


def test_module_imports_without_torch():
    code = "import sys, hearmask.model.baselines.nalr; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
