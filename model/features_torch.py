"""Torch twin of :class:`hearmask.model.features.BandFeatures` (training path).

Same matrices and constants as the numpy extractor; the two agree to float32 rounding
(tested).
"""

from __future__ import annotations

import math

import torch

from hearmask.errors import HearmaskError
from hearmask.model.features import BandFeatures, FeatureConfig
from hearmask.model.stft_config import StftConfig


class TorchBandFeatures(torch.nn.Module):
    """``forward(spectrum (B, K, num_bins) complex) -> features (B, K, num_bands)`` (any leading dims)."""

    def __init__(self, stft_config: StftConfig, feature_config: FeatureConfig = FeatureConfig()):
        super().__init__()
        reference = BandFeatures(stft_config, feature_config)
        self.stft_config = stft_config
        self.feature_config = feature_config
        self.register_buffer(
            "pooling_matrix", torch.as_tensor(reference.pooling_matrix.T, dtype=torch.float32), persistent=False
        )
        self.floor_power = reference.floor_power

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        if spectrum.shape[-1] != self.stft_config.num_bins:
            raise HearmaskError(
                f"features take spectra of shape (..., {self.stft_config.num_bins}), got {tuple(spectrum.shape)}"
            )
        power = spectrum.real**2 + spectrum.imag**2
        band_power = power @ self.pooling_matrix.to(power.dtype)
        config = self.feature_config
        level_db = (10.0 / math.log(10.0)) * torch.log(band_power + self.floor_power)
        return (level_db - config.offset_db) / config.scale_db
