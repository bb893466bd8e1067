"""Per-hop streaming STFT with explicit state (numpy only: runs on a device agent).

One call per hop of ``R`` new samples: :meth:`StreamingStft.analyze_hop` returns the
spectrum of the frame that ends with those samples, and
:meth:`StreamingStft.synthesize_hop` overlap-adds a (masked) spectrum and returns the
next ``R`` finished output samples. All state lives in :class:`StftState`, so a caller
can snapshot, restore or move it, as a device does.

Timeline: ``synthesize_hop`` returns samples delayed by ``N_s − R``; the remaining hop of
the algorithmic latency is the time the hop took to arrive. :func:`process_signal` puts
that hop in explicitly, so its output satisfies ``y[n] = x[n − N_s]`` for identity gains,
exactly like :func:`hearmask.model.stft_torch.istft`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.model.stft_config import StftConfig


@dataclass
class StftState:
    """Explicit state of the streaming STFT.

    ``input_frame``: the last ``N_a`` input samples, float64, shape ``(N_a,)``.
    ``overlap``: partial overlap-add sums, float64, shape ``(N_a,)``; index 0 is the oldest
    sample still being accumulated.
    """

    input_frame: np.ndarray
    overlap: np.ndarray

    def copy(self) -> "StftState":
        return StftState(self.input_frame.copy(), self.overlap.copy())


class StreamingStft:
    """Causal WOLA analysis/synthesis, one hop at a time."""

    def __init__(self, config: StftConfig):
        self.config = config
        self.analysis_window, self.synthesis_window = config.windows()
        self.state = self.initial_state()

    def initial_state(self) -> StftState:
        length = self.config.analysis_window_samples
        return StftState(np.zeros(length), np.zeros(length))

    def reset(self) -> None:
        self.state = self.initial_state()

    def analyze_hop(self, hop: np.ndarray) -> np.ndarray:
        """Take ``R`` new samples (shape ``(R,)``), return the frame's spectrum ``(num_bins,)`` complex128."""
        hop = np.asarray(hop, dtype=np.float64)
        hop_samples = self.config.hop_samples
        if hop.shape != (hop_samples,):
            raise HearmaskError(f"a hop must have shape ({hop_samples},), got {hop.shape}")
        frame = self.state.input_frame
        frame[:-hop_samples] = frame[hop_samples:]
        frame[-hop_samples:] = hop
        return np.fft.rfft(frame * self.analysis_window, n=self.config.fft_size)

    def synthesize_hop(self, spectrum: np.ndarray) -> np.ndarray:
        """Overlap-add one frame's spectrum ``(num_bins,)``; return the next ``R`` output samples."""
        spectrum = np.asarray(spectrum)
        if spectrum.shape != (self.config.num_bins,):
            raise HearmaskError(f"a spectrum must have shape ({self.config.num_bins},), got {spectrum.shape}")
        analysis_len = self.config.analysis_window_samples
        hop_samples = self.config.hop_samples
        frame = np.fft.irfft(spectrum, n=self.config.fft_size)[:analysis_len]
        overlap = self.state.overlap
        overlap += frame * self.synthesis_window
        # The R samples starting N_s before the frame end are now complete: no later frame's
        # synthesis window reaches them.
        start = analysis_len - self.config.synthesis_window_samples
        finished = overlap[start : start + hop_samples].copy()
        # Shift the accumulator by one hop; the tail becomes empty for the next frame.
        overlap[:-hop_samples] = overlap[hop_samples:]
        overlap[-hop_samples:] = 0.0
        return finished


GainFunction = Callable[[int, np.ndarray], np.ndarray]


def process_signal(signal: np.ndarray, config: StftConfig, gain_for_frame: GainFunction | None = None) -> np.ndarray:
    """Run a whole mono signal through the streaming engine, hop by hop.

    ``signal``: shape ``(T,)``, any length (zero-padded to whole hops internally).
    ``gain_for_frame(frame_index, spectrum) -> gain``: linear gain per bin, shape
    ``(num_bins,)`` (real or complex); ``None`` means identity.
    Returns float64 ``(T,)`` on the real-time timeline: identity gives ``y[n] = x[n − N_s]``.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise HearmaskError(f"process_signal takes a mono signal of shape (T,), got {signal.shape}")
    engine = StreamingStft(config)
    hop_samples = config.hop_samples
    num_frames = config.num_frames(len(signal))
    padded = np.zeros(num_frames * hop_samples)
    padded[: len(signal)] = signal
    # One hop of silence first: the hop of buffering before the first frame can be processed.
    output = np.zeros((num_frames + 1) * hop_samples)
    for frame_index in range(num_frames):
        spectrum = engine.analyze_hop(padded[frame_index * hop_samples : (frame_index + 1) * hop_samples])
        if gain_for_frame is not None:
            spectrum = spectrum * gain_for_frame(frame_index, spectrum)
        start = (frame_index + 1) * hop_samples
        output[start : start + hop_samples] = engine.synthesize_hop(spectrum)
    return output[: len(signal)]
