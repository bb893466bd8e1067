"""Streaming polyphase resampling: block boundaries leave no trace, the level and delay are as documented."""

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.resample import StreamingResampler

RATE_PAIRS = [(48000, 16000), (16000, 48000), (44100, 16000), (16000, 44100)]


@pytest.mark.parametrize("input_rate, output_rate", RATE_PAIRS)
def test_any_block_sizes_give_the_same_output_as_one_call(input_rate, output_rate):
    signal = np.random.default_rng(0).standard_normal(input_rate // 4)
    whole = StreamingResampler(input_rate, output_rate).process(signal)
    streaming = StreamingResampler(input_rate, output_rate)
    rng = np.random.default_rng(1)
    parts, start = [], 0
    while start < len(signal):
        size = int(rng.integers(0, 300))  # empty blocks too
        parts.append(streaming.process(signal[start:start + size]))
        start += size
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(whole) == streaming.output_count(len(signal))


@pytest.mark.parametrize("input_rate, output_rate", RATE_PAIRS)
def test_a_tone_comes_out_at_the_same_level_delayed_by_the_documented_delay(input_rate, output_rate):
    resampler = StreamingResampler(input_rate, output_rate)
    tone_hz = 1000.0
    output = resampler.process(np.sin(2 * np.pi * tone_hz * np.arange(input_rate) / input_rate))
    delay_s = resampler.delay_input_samples / input_rate
    assert resampler.delay_ms == pytest.approx(0.75)  # 12 samples at 16 kHz per direction
    expected = np.sin(2 * np.pi * tone_hz * (np.arange(len(output)) / output_rate - delay_s))
    settled = slice(output_rate // 100, len(output) - output_rate // 100)
    assert np.max(np.abs(output[settled] - expected[settled])) < 1e-3


def test_content_above_the_new_nyquist_is_removed_when_going_down():
    resampler = StreamingResampler(48000, 16000)
    output = resampler.process(np.sin(2 * np.pi * 12000.0 * np.arange(48000) / 48000))  # would alias to 4 kHz
    assert np.max(np.abs(output[200:-200])) < 1e-3


@pytest.mark.parametrize("rates", [(0, 16000), (16000, 16000.5), (True, 16000)])
def test_bad_rates_are_refused(rates):
    with pytest.raises(HearmaskError, match="sample rate"):
        StreamingResampler(*rates)
