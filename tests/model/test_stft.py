"""Guarantees of the causal WOLA STFT (issue 3): identity, causality, stream == batch, any length."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.model.stft_config import SHIPPED_STFT_CONFIGS, StftConfig, shipped_stft_config
from hearmask.model.stft_stream import StreamingStft, process_signal
from hearmask.model.stft_torch import TorchStft


def reconstruction_snr_db(signal: np.ndarray, output: np.ndarray, delay_samples: int) -> float:
    reference = signal[: len(signal) - delay_samples]
    error = output[delay_samples:] - reference
    return 10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-300))


def torch_roundtrip(signal: np.ndarray, config: StftConfig, gain=None) -> np.ndarray:
    engine = TorchStft(config).double()
    spectrum = engine.stft(torch.as_tensor(signal, dtype=torch.float64)[None])
    if gain is not None:
        spectrum = spectrum * torch.as_tensor(gain)
    return engine.istft(spectrum, len(signal))[0].numpy()


@pytest.mark.parametrize("name", sorted(SHIPPED_STFT_CONFIGS))
def test_shipped_configs_meet_latency_targets(name):
    config = shipped_stft_config(name)
    limit_ms = 4.0 if name == "low_latency" else 8.0
    assert config.algorithmic_latency_ms <= limit_ms
    assert config.algorithmic_latency_samples == config.synthesis_window_samples


@pytest.mark.parametrize("name", sorted(SHIPPED_STFT_CONFIGS))
def test_identity_reconstructs_delayed_input_above_60_db(name):
    config = shipped_stft_config(name)
    signal = np.random.default_rng(1).standard_normal(4000)
    delay = config.algorithmic_latency_samples
    for output in (process_signal(signal, config), torch_roundtrip(signal, config)):
        assert reconstruction_snr_db(signal, output, delay) > 60.0
        # Nothing leaks ahead of the latency: the first N_s output samples are silence.
        assert np.max(np.abs(output[:delay])) < 1e-9


@pytest.mark.parametrize("name", sorted(SHIPPED_STFT_CONFIGS))
def test_future_input_never_changes_past_output(name):
    config = shipped_stft_config(name)
    rng = np.random.default_rng(2)
    signal = rng.standard_normal(2000)
    altered = signal.copy()
    cut = 1234
    altered[cut:] = rng.standard_normal(len(signal) - cut) * 10
    gain = rng.uniform(0.1, 2.0, config.num_bins)
    for run in (lambda x: process_signal(x, config, lambda k, s: gain), lambda x: torch_roundtrip(x, config, gain)):
        original, changed = run(signal), run(altered)
        np.testing.assert_array_equal(original[:cut], changed[:cut])
        assert not np.allclose(original[cut:], changed[cut:])


@pytest.mark.parametrize("name", sorted(SHIPPED_STFT_CONFIGS))
def test_streaming_equals_batch_with_time_varying_gains(name):
    config = shipped_stft_config(name)
    rng = np.random.default_rng(3)
    signal = rng.standard_normal(3001).astype(np.float32)
    num_frames = config.num_frames(len(signal))
    gains = rng.uniform(0.0, 3.0, (num_frames, config.num_bins))
    streamed = process_signal(signal, config, lambda k, s: gains[k])
    engine = TorchStft(config)
    spectrum = engine.stft(torch.as_tensor(signal)[None]) * torch.as_tensor(gains, dtype=torch.float32)
    batched = engine.istft(spectrum, len(signal))[0].numpy()
    assert np.max(np.abs(streamed - batched)) <= 1e-5


def test_stream_spectra_equal_batch_spectra():
    config = shipped_stft_config("default")
    signal = np.random.default_rng(4).standard_normal(640)
    stream = StreamingStft(config)
    hops = signal.reshape(-1, config.hop_samples)
    streamed = np.stack([stream.analyze_hop(hop) for hop in hops])
    batched = TorchStft(config).double().stft(torch.as_tensor(signal)[None])[0].numpy()
    np.testing.assert_allclose(streamed, batched, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    num_samples=st.integers(min_value=1, max_value=1500),
    hop_divisor=st.sampled_from([2, 4]),
    synthesis_samples=st.sampled_from([32, 64, 128]),
    extra_analysis=st.sampled_from([0, 32, 128]),
    shape=st.sampled_from(["hann", "hamming"]),
    seed=st.integers(0, 2**16),
)
def test_identity_property_over_lengths_and_configs(num_samples, hop_divisor, synthesis_samples, extra_analysis, shape, seed):
    if shape == "hamming" and hop_divisor != 2:
        hop_divisor = 2  # periodic Hamming is COLA at N/2 only
    analysis_samples = synthesis_samples + extra_analysis
    fft_size = 1 << (analysis_samples - 1).bit_length()
    config = StftConfig(
        fft_size=fft_size,
        hop_samples=synthesis_samples // hop_divisor,
        analysis_window_samples=analysis_samples,
        synthesis_window_samples=synthesis_samples,
        window_shape=shape,
    )
    signal = np.random.default_rng(seed).standard_normal(num_samples)
    delay = config.algorithmic_latency_samples
    for output in (process_signal(signal, config), torch_roundtrip(signal, config)):
        assert output.shape == signal.shape
        np.testing.assert_allclose(output[delay:], signal[: max(0, num_samples - delay)], atol=1e-9)
        np.testing.assert_allclose(output[:delay], 0.0, atol=1e-9)


def test_input_shorter_than_one_window_is_processed():
    config = shipped_stft_config("default")
    signal = np.arange(1, 10, dtype=np.float64)
    output = process_signal(signal, config)
    assert output.shape == (9,)
    np.testing.assert_allclose(output, 0.0, atol=1e-12)  # all 9 samples still inside the 128-sample latency


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"hop_samples": 0}, "hop_samples must be a positive integer"),
        ({"synthesis_window_samples": 512}, "must not be longer than the analysis"),
        ({"analysis_window_samples": 512}, "must fit in the FFT size"),
        ({"window_shape": "kaiser"}, "unknown window shape 'kaiser'"),
        ({"hop_samples": 100}, "at most half the synthesis window"),
        ({"hop_samples": 48}, "do not overlap-add to a constant"),
    ],
)
def test_bad_configs_name_the_problem(fields, message):
    with pytest.raises(HearmaskError, match=message):
        StftConfig(**fields)


def test_config_dict_round_trip_and_unknown_field():
    config = shipped_stft_config("low_latency")
    assert StftConfig.from_dict(config.to_dict()) == config
    with pytest.raises(HearmaskError, match="unknown STFT config field"):
        StftConfig.from_dict({**config.to_dict(), "hop_ms": 2})
    with pytest.raises(HearmaskError, match="accepted: default, low_latency"):
        shipped_stft_config("fast")


def test_streaming_rejects_wrong_hop_shape():
    stream = StreamingStft(shipped_stft_config("default"))
    with pytest.raises(HearmaskError, match=r"shape \(64,\)"):
        stream.analyze_hop(np.zeros(63))
