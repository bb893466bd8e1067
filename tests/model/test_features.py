"""Log band features: band layout invariants, numpy/torch agreement, calibration."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.features import (
    BandFeatures,
    BandLayout,
    FeatureConfig,
    erb_number_to_hz,
    erb_number,
)
from hearmask.model.features_torch import TorchBandFeatures
from hearmask.model.stft_config import SHIPPED_STFT_CONFIGS, StftConfig
from hearmask.model.stft_stream import StreamingStft
from hearmask.model.stft_torch import TorchStft

LAYOUTS = [
    BandLayout(16000, 129, 32),
    BandLayout(16000, 65, 32),
    BandLayout(16000, 129, 20),
    BandLayout(48000, 257, 40),
]


def test_erb_number_matches_glasberg_moore_and_inverts():
    # E(1000 Hz) = 21.4·log10(5.37) = 15.62 Cams (Glasberg & Moore 1990).
    assert erb_number(1000.0) == pytest.approx(15.62, abs=0.01)
    frequencies_hz = np.array([0.0, 50.0, 1000.0, 7999.0])
    np.testing.assert_allclose(erb_number_to_hz(erb_number(frequencies_hz)), frequencies_hz, atol=1e-9)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_band_centres_increase_at_least_one_bin_apart_and_span_the_spectrum(layout):
    centres_hz = layout.centres_hz
    bin_spacing_hz = layout.bin_frequencies_hz[1]
    assert centres_hz.shape == (layout.num_bands,)
    assert np.all(np.diff(centres_hz) >= bin_spacing_hz - 1e-9)
    assert centres_hz[0] == pytest.approx(bin_spacing_hz)
    assert centres_hz[-1] == pytest.approx(layout.sample_rate_hz / 2)


def test_default_bands_are_about_one_erb_apart_above_the_one_bin_region():
    centres_hz = BandLayout(16000, 129, 32).centres_hz
    upper = centres_hz[centres_hz > 500.0]
    spacing_erb = np.diff(erb_number(upper))
    assert np.ptp(spacing_erb) < 1e-9  # equally spaced on the ERB scale
    assert 0.9 < spacing_erb[0] < 1.2


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_analysis_matrix_is_a_nonnegative_weighted_mean_with_no_empty_band(layout):
    matrix = layout.analysis_matrix
    assert matrix.shape == (layout.num_bands, layout.num_bins)
    assert np.all(matrix >= 0)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    # Every band has a bin within half a bin of its centre (at least half way up its hat).
    hats = layout.interpolation_matrix.T
    assert np.all(hats.max(axis=1) >= 0.5)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_interpolation_is_linear_between_band_centres_and_exact_at_them(layout):
    matrix = layout.interpolation_matrix
    assert matrix.shape == (layout.num_bins, layout.num_bands)
    assert np.all(matrix >= 0)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    # A gain that is linear in frequency over the band centres is reproduced at every bin
    # between the first and last centre, and held flat outside.
    band_gain_db = 0.01 * layout.centres_hz - 3.0
    bin_gain_db = matrix @ band_gain_db
    frequencies_hz = layout.bin_frequencies_hz
    inside = (frequencies_hz >= layout.centres_hz[0]) & (frequencies_hz <= layout.centres_hz[-1])
    np.testing.assert_allclose(bin_gain_db[inside], 0.01 * frequencies_hz[inside] - 3.0, atol=1e-9)
    assert bin_gain_db[0] == pytest.approx(band_gain_db[0])


def test_layout_rejects_more_bands_than_bins():
    with pytest.raises(HearmaskError, match="num_bands must be between 2 and"):
        BandLayout(16000, 33, 40)
    with pytest.raises(HearmaskError, match="even FFT size"):
        BandLayout.for_stft(StftConfig(fft_size=257), 32)


def test_feature_config_rejects_bad_values_and_round_trips():
    with pytest.raises(HearmaskError, match="scale_db must be > 0"):
        FeatureConfig(scale_db=0.0)
    with pytest.raises(HearmaskError, match="floor_db must be a finite number of dB, got 'low'"):
        FeatureConfig(floor_db="low")
    with pytest.raises(HearmaskError, match="unknown feature config field"):
        FeatureConfig.from_dict({"num_bands": 32, "bands": 3})
    config = FeatureConfig(num_bands=24, offset_db=-30.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("stft_name", sorted(SHIPPED_STFT_CONFIGS))
def test_numpy_per_hop_features_equal_torch_batch_features(stft_name):
    stft_config = SHIPPED_STFT_CONFIGS[stft_name]
    rng = np.random.default_rng(1)
    # Level changes: a burst at -20 dB re full scale, silence, a quiet tail; 64 whole hops.
    signal = np.concatenate([0.1 * rng.standard_normal(1600), np.zeros(896), 1e-4 * rng.standard_normal(1600)])
    batch_spectrum = TorchStft(stft_config).stft(torch.as_tensor(signal, dtype=torch.float32)[None])
    torch_features = TorchBandFeatures(stft_config)(batch_spectrum)[0].numpy()
    numpy_extractor = BandFeatures(stft_config)
    engine = StreamingStft(stft_config)
    hop = stft_config.hop_samples
    numpy_features = np.stack(
        [numpy_extractor(engine.analyze_hop(signal[k * hop : (k + 1) * hop])) for k in range(len(signal) // hop)]
    )
    assert numpy_features.dtype == np.float32
    assert numpy_features.shape == torch_features.shape == (len(signal) // hop, 32)
    np.testing.assert_allclose(numpy_features, torch_features, atol=2e-4)


def test_white_noise_reads_its_variance_in_every_band():
    stft_config = StftConfig()
    rng = np.random.default_rng(2)
    variance_db = -26.0
    signal = 10 ** (variance_db / 20) * rng.standard_normal(16000 * 4)
    spectrum = TorchStft(stft_config).stft(torch.as_tensor(signal)[None])[0, 10:]  # skip the fade-in frames
    band_power = torch.as_tensor(BandFeatures(stft_config).pooling_matrix) @ (spectrum.abs() ** 2).mean(0)
    band_level_db = 10 * np.log10(band_power.numpy())
    # The DC and Nyquist bins are real, so they carry twice the power of the others;
    # only the top band is pooled with a large weight on one of them.
    np.testing.assert_allclose(band_level_db[:-1], variance_db, atol=0.6)
    assert abs(band_level_db[-1] - variance_db) < 2.0


def test_features_follow_level_with_the_fixed_affine_map():
    extractor = BandFeatures(StftConfig())
    config = extractor.feature_config
    rng = np.random.default_rng(3)
    spectrum = 0.3 * (rng.standard_normal((5, 129)) + 1j * rng.standard_normal((5, 129)))
    louder = extractor(10 ** (20 / 20) * spectrum) - extractor(spectrum)
    np.testing.assert_allclose(louder, 20.0 / config.scale_db, atol=1e-5)
    silence = extractor(np.zeros((2, 129), dtype=np.complex128))
    np.testing.assert_allclose(silence, (config.floor_db - config.offset_db) / config.scale_db, atol=1e-6)


def test_numpy_features_module_does_not_import_torch():
    code = "import sys, hearmask.model.features; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
