"""The trainable hearing-aid system: STFT + features + mask network(s), per task variant.

Variants (issue 4, "Losses and variants"), all built from :class:`MaskNet`:

- ``joint``: one network emits both the NR mask and the HLC gain.
- ``nr``: one network, only its NR mask is used (HLC gain fixed at 0 dB).
- ``hlc``: one network, only its HLC gain is used (NR mask fixed at 0 dB).
- ``cascade``: an NR network, then an HLC network that sees the features of the
  NR-processed spectrum. Each is sized so the two together are no larger than the joint
  network (:data:`CASCADE_STAGE_OVERRIDES`). Per frame, so it streams like the others.

Shapes: signals ``(B, T)`` at the STFT rate; spectra ``(B, K, bins)``; masks in dB
``(B, K, bins)``; audiogram input ``(B, 8)`` = dB HL / 100 on
:data:`hearmask.profiles.audiogram.MODEL_AUDIOGRAM_FREQUENCIES_HZ`.
"""

from __future__ import annotations

import torch
from torch import nn

from hearmask.model.features import FeatureConfig
from hearmask.model.features_torch import TorchBandFeatures
from hearmask.model.gains import combine_gains_db
from hearmask.model.network import MaskNet, MaskNetConfig, masknet_config
from hearmask.model.stft_config import StftConfig
from hearmask.model.stft_torch import TorchStft

VARIANTS = ("joint", "nr", "hlc", "cascade")

# Each cascade stage is a smaller MaskNet: two of these hold fewer parameters than one
# default network (checked in tests/model/test_system.py).
CASCADE_STAGE_OVERRIDES = {"encoder_size": 36, "hidden_size": 36}


def build_masknet_configs(variant: str, stft_config: StftConfig, size: str, overrides: dict) -> list[MaskNetConfig]:
    """The network configuration(s) of a variant: one, or two for the cascade."""
    if variant not in VARIANTS:
        from hearmask.errors import HearmaskError

        raise HearmaskError(f"unknown task variant {variant!r}; accepted: {', '.join(VARIANTS)}")
    base = {"num_bins": stft_config.num_bins, "sample_rate_hz": stft_config.sample_rate_hz}
    if variant == "cascade":
        return [masknet_config(size, **{**base, **CASCADE_STAGE_OVERRIDES, **overrides})] * 2
    return [masknet_config(size, **{**base, **overrides})]


class HearingAidSystem(nn.Module):
    """Masks from a noisy signal and an audiogram, and the processed signals."""

    def __init__(self, variant: str, stft_config: StftConfig, network_configs: list[MaskNetConfig]):
        super().__init__()
        self.variant = variant
        self.stft_config = stft_config
        self.stft = TorchStft(stft_config)
        self.feature_config = FeatureConfig(num_bands=network_configs[0].num_bands)
        self.features = TorchBandFeatures(stft_config, self.feature_config)
        self.networks = nn.ModuleList(MaskNet(config) for config in network_configs)

    def count_parameters(self) -> int:
        return sum(network.count_parameters() for network in self.networks)

    def macs_per_second(self) -> float:
        return sum(network.macs_per_second(self.stft_config.frames_per_second) for network in self.networks)

    def masks_db(
        self, spectrum: torch.Tensor, audiogram: torch.Tensor, fused_recurrence: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``spectrum`` (B, K, bins) complex, ``audiogram`` (B, 8) -> ``nr_db``, ``hlc_db`` (B, K, bins)."""
        first = self.networks[0]
        nr_db, hlc_db = first(self.features(spectrum), audiogram, fused_recurrence=fused_recurrence)
        if self.variant == "nr":
            return nr_db, torch.zeros_like(hlc_db)
        if self.variant == "hlc":
            return torch.zeros_like(nr_db), hlc_db
        if self.variant == "cascade":
            denoised = spectrum * torch.pow(10.0, nr_db / 20.0)
            _, hlc_db = self.networks[1](self.features(denoised), audiogram, fused_recurrence=fused_recurrence)
        return nr_db, hlc_db

    def synthesize(self, spectrum: torch.Tensor, gain_db: torch.Tensor, length: int) -> torch.Tensor:
        """Apply a gain in dB per bin and frame; return the signal (B, length) on the real-time timeline."""
        return self.stft.istft(spectrum * torch.pow(10.0, gain_db / 20.0), length)

    def enhance(self, noisy: torch.Tensor, audiogram: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
        """Full processing with strengths ``alpha`` (NR) and ``beta`` (HLC): (B, T) -> (B, T)."""
        spectrum = self.stft.stft(noisy)
        nr_db, hlc_db = self.masks_db(spectrum, audiogram)
        return self.synthesize(spectrum, combine_gains_db(nr_db, hlc_db, alpha, beta), noisy.shape[-1])
