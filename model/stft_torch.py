"""Batched, differentiable causal WOLA STFT in torch (training path).

Framing, windows and output timeline are those of :mod:`hearmask.model.stft_config`;
the per-hop numpy engine :mod:`hearmask.model.stft_stream` gives the same result
(tested to <= 1e-5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hearmask.errors import HearmaskError
from hearmask.model.stft_config import StftConfig


class TorchStft(torch.nn.Module):
    """Analysis ``stft(signal)`` and synthesis ``istft(spectrum, length)``.

    Windows are registered buffers, so ``.to(device)`` moves them with the model.
    """

    def __init__(self, config: StftConfig):
        super().__init__()
        self.config = config
        analysis, synthesis = config.windows()
        self.register_buffer("analysis_window", torch.as_tensor(analysis, dtype=torch.float32), persistent=False)
        self.register_buffer("synthesis_window", torch.as_tensor(synthesis, dtype=torch.float32), persistent=False)

    def stft(self, signal: torch.Tensor) -> torch.Tensor:
        """``signal`` (B, T) real -> spectrum (B, K, num_bins) complex, ``K = ceil(T / R)``.

        Frame ``k`` ends with input sample ``(k+1)·R − 1`` (causal, no lookahead).
        """
        if signal.dim() != 2:
            raise HearmaskError(f"stft takes a batch of shape (B, T), got {tuple(signal.shape)}")
        config = self.config
        hop = config.hop_samples
        num_frames = config.num_frames(signal.shape[-1])
        left = config.analysis_window_samples - hop
        right = num_frames * hop - signal.shape[-1]
        padded = F.pad(signal, (left, right))
        frames = padded.unfold(-1, config.analysis_window_samples, hop)  # (B, K, N_a)
        window = self.analysis_window.to(signal.dtype)
        return torch.fft.rfft(frames * window, n=config.fft_size)

    def istft(self, spectrum: torch.Tensor, length: int) -> torch.Tensor:
        """``spectrum`` (B, K, num_bins) -> signal (B, length) on the real-time timeline.

        Identity spectra give ``y[n] = x[n − N_s]`` (``N_s`` = algorithmic latency).
        """
        config = self.config
        if spectrum.dim() != 3 or spectrum.shape[-1] != config.num_bins:
            raise HearmaskError(
                f"istft takes (B, K, {config.num_bins}) spectra, got {tuple(spectrum.shape)}"
            )
        analysis_len = config.analysis_window_samples
        hop = config.hop_samples
        batch, num_frames, _ = spectrum.shape
        frames = torch.fft.irfft(spectrum, n=config.fft_size)[..., :analysis_len]
        frames = frames * self.synthesis_window.to(frames.dtype)
        ola_length = (num_frames - 1) * hop + analysis_len
        overlap_added = F.fold(
            frames.transpose(1, 2),  # (B, N_a, K)
            output_size=(1, ola_length),
            kernel_size=(1, analysis_len),
            stride=(1, hop),
        ).reshape(batch, ola_length)
        # Padded index i holds input sample i − (N_a − R); prepend N_s zeros so that output
        # sample n reads input sample n − N_s.
        delayed = F.pad(overlap_added, (config.synthesis_window_samples, 0))
        start = analysis_len - hop
        out = delayed[:, start : start + length]
        if out.shape[-1] < length:
            out = F.pad(out, (0, length - out.shape[-1]))
        return out
