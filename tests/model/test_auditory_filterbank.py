"""Gammatone filterbank and IHC low-pass: ERB spacing and bandwidths, gains, convolution."""

import numpy as np
import pytest
import scipy.signal
import torch

from hearmask.model.auditory import AuditoryModelConfig
from hearmask.model.auditory_filterbank import (
    butterworth_lowpass_impulse_response,
    erb_bandwidth_hz,
    erb_number,
    erb_number_to_hz,
    erb_spaced_frequencies_hz,
    fft_convolve_causal,
    gammatone_impulse_responses,
    next_fast_fft_size,
)

SAMPLE_RATE_HZ = 16000
# Zero-padded FFT length for measuring responses: 16000/65536 = 0.24 Hz per bin.
ANALYSIS_FFT_SIZE = 1 << 16


def _power_responses(config: AuditoryModelConfig) -> tuple[np.ndarray, np.ndarray]:
    responses = gammatone_impulse_responses(
        config.center_frequencies_hz, config.sample_rate_hz, config.filter_length_samples
    )
    power = np.abs(np.fft.rfft(responses, ANALYSIS_FFT_SIZE)) ** 2
    return np.fft.rfftfreq(ANALYSIS_FFT_SIZE, 1 / config.sample_rate_hz), power


def test_erb_formula_values():
    # Glasberg & Moore (1990): ERB(1 kHz) = 24.7 * 5.37 Hz; ERB-number(1 kHz) = 21.4 log10(5.37).
    assert erb_bandwidth_hz(1000.0) == pytest.approx(132.639)
    assert erb_number(1000.0) == pytest.approx(15.6214, abs=1e-4)
    frequencies_hz = np.array([50.0, 80.0, 1000.0, 7500.0])
    np.testing.assert_allclose(erb_number_to_hz(erb_number(frequencies_hz)), frequencies_hz, rtol=1e-12)


@pytest.mark.parametrize("num_channels", [32, 48])
def test_center_frequencies_are_equally_spaced_in_erb_number(num_channels):
    config = AuditoryModelConfig(num_channels=num_channels)
    center_hz = config.center_frequencies_hz
    assert center_hz.shape == (num_channels,)
    assert center_hz[0] == pytest.approx(80.0) and center_hz[-1] == pytest.approx(7500.0)
    spacing = np.diff(erb_number(center_hz))
    np.testing.assert_allclose(spacing, spacing[0], rtol=1e-9)
    # 80 Hz..7.5 kHz is 29.7 ERB-numbers: 32 channels sit ~0.96 ERB apart.
    assert spacing[0] == pytest.approx((erb_number(7500.0) - erb_number(80.0)) / (num_channels - 1))


def test_single_channel_sits_at_low_hz():
    np.testing.assert_allclose(erb_spaced_frequencies_hz(1000.0, 1000.0, 1), [1000.0])


def test_equivalent_rectangular_bandwidth_matches_erb_formula():
    config = AuditoryModelConfig()
    frequencies_hz, power = _power_responses(config)
    bin_hz = frequencies_hz[1]
    # Responses are 0 dB at fc, so the ERB is the integral of |H|^2 over 0..Nyquist.
    measured_erb_hz = power.sum(axis=1) * bin_hz
    expected_erb_hz = erb_bandwidth_hz(config.center_frequencies_hz)
    np.testing.assert_allclose(measured_erb_hz, expected_erb_hz, rtol=0.02)


def test_minus_3db_bandwidth_is_that_of_a_4th_order_gammatone():
    # |G|^2 = (1 + (df/b)^2)^-4 is -3 dB at df = b sqrt(2^(1/4) - 1): 3 dB width = 0.887 ERB.
    config = AuditoryModelConfig()
    frequencies_hz, power = _power_responses(config)
    expected_hz = 2 * 1.019 * np.sqrt(2 ** 0.25 - 1) * erb_bandwidth_hz(config.center_frequencies_hz)
    # Channels below 7 kHz: the top one's upper half folds at Nyquist.
    for channel, center_hz in enumerate(config.center_frequencies_hz[:-1]):
        above_half_power = frequencies_hz[power[channel] >= 0.5]
        width_hz = above_half_power.max() - above_half_power.min()
        assert width_hz == pytest.approx(expected_hz[channel], rel=0.02), center_hz


def test_each_filter_has_unit_gain_and_peaks_at_its_center_frequency():
    config = AuditoryModelConfig()
    frequencies_hz, power = _power_responses(config)
    center_hz = config.center_frequencies_hz
    responses = gammatone_impulse_responses(center_hz, SAMPLE_RATE_HZ, config.filter_length_samples)
    time_s = np.arange(config.filter_length_samples) / SAMPLE_RATE_HZ
    gain_at_center = np.abs(np.sum(responses * np.exp(-2j * np.pi * center_hz[:, None] * time_s), axis=1))
    np.testing.assert_allclose(gain_at_center, 1.0, rtol=1e-12)
    peak_hz = frequencies_hz[np.argmax(power, axis=1)]
    # Within 6 % of an ERB of fc (the image at -fc and the fold at Nyquist pull it a little).
    np.testing.assert_array_less(np.abs(peak_hz - center_hz), 0.06 * erb_bandwidth_hz(center_hz))


def test_fft_convolution_equals_direct_causal_convolution():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((3, 300))
    responses = rng.standard_normal((4, 50))
    fft_size = next_fast_fft_size(300 + 50 - 1)
    spectrum = torch.fft.rfft(torch.tensor(responses), n=fft_size)
    output = fft_convolve_causal(torch.tensor(signal), spectrum, fft_size).numpy()
    assert output.shape == (3, 4, 300)
    for batch in range(3):
        for channel in range(4):
            expected = np.convolve(signal[batch], responses[channel])[:300]
            np.testing.assert_allclose(output[batch, channel], expected, atol=1e-10)


def test_ihc_lowpass_is_unit_dc_and_minus_3db_at_1khz():
    response = butterworth_lowpass_impulse_response(1000.0, SAMPLE_RATE_HZ, 64)
    assert response.sum() == pytest.approx(1.0, abs=1e-12)
    _, gain = scipy.signal.freqz(response, worN=[1000.0, 4000.0], fs=SAMPLE_RATE_HZ)
    gain_db = 20 * np.log10(np.abs(gain))
    assert gain_db[0] == pytest.approx(-3.01, abs=0.05)
    # 2nd order: 12 dB/octave, plus the bilinear warp: below -24 dB two octaves up.
    assert gain_db[1] < -24.0


def test_next_fast_fft_size_is_smallest_5_smooth_size():
    def is_5_smooth(size: int) -> bool:
        for factor in (2, 3, 5):
            while size % factor == 0:
                size //= factor
        return size == 1

    for minimum_size in range(1, 3000, 7):
        size = next_fast_fft_size(minimum_size)
        assert size >= minimum_size and is_5_smooth(size)
        assert not any(is_5_smooth(smaller) for smaller in range(minimum_size, size))
