"""Card blocks <-> model hops: exact timing, the smallest safe prefill, and the latency budget."""

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live_blocks import BlockAdapter


def run_blocks(adapter: BlockAdapter, signal: np.ndarray) -> np.ndarray:
    size = adapter.block_samples
    count = len(signal) // size
    return np.concatenate([adapter.process_block(signal[k * size:(k + 1) * size]) for k in range(count)])


@pytest.mark.parametrize("block, prefill", [(64, 0), (128, 0), (256, 0), (32, 32), (100, 60), (48, 48)])
def test_at_the_model_rate_the_output_is_the_hop_output_delayed_by_the_prefill(block, prefill):
    hops = []
    adapter = BlockAdapter(lambda hop: (hops.append(len(hop)), 2.0 * hop)[1], 64, 16000, 16000, block)
    signal = np.random.default_rng(0).standard_normal(64 * 100).astype(np.float32)
    output = run_blocks(adapter, signal)
    assert adapter.prefill_samples == prefill
    assert set(hops) == {64}
    np.testing.assert_array_equal(output[prefill:], 2.0 * signal[:len(output) - prefill])
    assert adapter.underruns == 0
    assert adapter.latency_budget(64)["block_queue_ms"] == pytest.approx(1000 * prefill / 16000)


@pytest.mark.parametrize("card_rate, block", [(48000, 128), (48000, 64), (44100, 256), (32000, 96)])
def test_resampled_path_never_runs_dry_and_delays_by_the_budget(card_rate, block):
    adapter = BlockAdapter(lambda hop: hop.copy(), 64, 16000, card_rate, block)
    rng = np.random.default_rng(1)
    # Band-limited noise (below 6 kHz) so the round trip through 16 kHz keeps it.
    spectrum = np.fft.rfft(rng.standard_normal(card_rate))
    spectrum[np.fft.rfftfreq(card_rate, 1 / card_rate) > 6000] = 0
    signal = np.fft.irfft(spectrum, card_rate).astype(np.float32)
    output = run_blocks(adapter, signal)
    assert adapter.underruns == 0
    budget = adapter.latency_budget(0)
    expected = budget["total_card_samples"]
    assert budget["resample_down_ms"] == budget["resample_up_ms"] == pytest.approx(0.75)
    correlation = np.correlate(output[:card_rate // 2], signal[:card_rate // 2], "full")
    assert np.argmax(correlation) - (card_rate // 2 - 1) == round(expected)


def test_bad_block_sizes_are_refused():
    with pytest.raises(HearmaskError, match="block size"):
        BlockAdapter(lambda hop: hop, 64, 16000, 16000, 0)
