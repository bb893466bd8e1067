"""Hop-by-hop enhancement through the network's step form: the device path on the host.

Per hop of ``R`` samples: numpy STFT analysis → numpy band features → ``MaskNet.step``
(explicit state) → gain ``alpha·nr_db + beta·hlc_db`` → numpy synthesis. For the cascade,
the second network sees the features of the NR-masked spectrum. The output is on the
real-time timeline (delayed by the STFT's algorithmic latency), like every other path.

The step form here runs in torch; the quantized export replaces exactly this call.
"""

from __future__ import annotations

import numpy as np
import torch

from hearmask.model.features import BandFeatures
from hearmask.model.gains import combine_gains_db
from hearmask.model.stft_stream import StreamingStft, process_signal
from hearmask.model.system import HearingAidSystem
from hearmask.profiles.audiogram import Audiogram


class StreamingEnhancer:
    """Stateful per-hop processor for one listener and one pair of strengths."""

    def __init__(self, system: HearingAidSystem, audiogram: Audiogram, alpha: float, beta: float,
                 allow_exaggeration: bool = False):
        combine_gains_db(0.0, 0.0, alpha, beta, allow_exaggeration)  # validates the strengths early
        self.system = system.eval()
        self.alpha, self.beta, self.allow_exaggeration = alpha, beta, allow_exaggeration
        self.stft = StreamingStft(system.stft_config)
        self.features = BandFeatures(system.stft_config, system.feature_config)
        self.audiogram_input = torch.as_tensor(audiogram.model_input(), dtype=torch.float32)[None]
        self.states = [network.initial_state(1) for network in system.networks]

    @property
    def hop_samples(self) -> int:
        return self.system.stft_config.hop_samples

    def masks_db(self, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame's ``(num_bins,)`` spectrum -> ``nr_db``, ``hlc_db`` ``(num_bins,)``; advances the state."""
        variant = self.system.variant
        with torch.no_grad():
            features = torch.as_tensor(self.features(spectrum))[None]
            nr_db, hlc_db, self.states[0] = self.system.networks[0].step(features, self.audiogram_input, self.states[0])
            nr_db, hlc_db = nr_db[0].numpy(), hlc_db[0].numpy()
            if variant == "cascade":
                denoised = spectrum * 10.0 ** (nr_db / 20.0)
                features = torch.as_tensor(self.features(denoised))[None]
                _, second_hlc_db, self.states[1] = self.system.networks[1].step(
                    features, self.audiogram_input, self.states[1])
                hlc_db = second_hlc_db[0].numpy()
        if variant == "nr":
            hlc_db = np.zeros_like(hlc_db)
        elif variant == "hlc":
            nr_db = np.zeros_like(nr_db)
        return nr_db, hlc_db

    def gain_for_frame(self, frame_index: int, spectrum: np.ndarray) -> np.ndarray:
        """Linear gain per bin for this frame (advances the network state)."""
        nr_db, hlc_db = self.masks_db(spectrum)
        return 10.0 ** (combine_gains_db(nr_db, hlc_db, self.alpha, self.beta, self.allow_exaggeration) / 20.0)

    def process_hop(self, hop: np.ndarray) -> np.ndarray:
        """``R`` input samples -> ``R`` output samples (delayed by ``N_s − R``; see stft_stream)."""
        spectrum = self.stft.analyze_hop(hop)
        return self.stft.synthesize_hop(spectrum * self.gain_for_frame(0, spectrum))

    def process_signal(self, signal: np.ndarray) -> np.ndarray:
        """A whole mono signal ``(T,)`` hop by hop; returns ``(T,)`` on the real-time timeline."""
        return process_signal(signal, self.system.stft_config, self.gain_for_frame)
