"""Configuration and windows of the causal weighted overlap-add (WOLA) STFT.

The same :class:`StftConfig` drives both implementations: the batched torch one
(:mod:`hearmask.model.stft_torch`, training) and the per-hop numpy one with explicit
state (:mod:`hearmask.model.stft_stream`, streaming and devices). This module is
numpy-only so device code can import it.

Framing and latency
-------------------
Frame ``k`` ends with the newest input sample of hop ``k`` (no lookahead): it spans input
samples ``[(k+1)·R − N_a, (k+1)·R − 1]`` for hop ``R`` and analysis window ``N_a``. The
synthesis window is non-zero only on the last ``N_s ≤ N_a`` samples of the frame, so a
processed output sample is complete ``N_s − R`` samples after the newest input sample
that touched it. Counting the time to collect one hop (``R``), the **algorithmic latency
is N_s samples**. Both implementations place their output on that real-time timeline:
with identity masks, ``y[n] = x[n − N_s]``.

Asymmetric windows (low delay with a long analysis window) follow Mauler & Martin,
"A low delay, variable resolution, perfect reconstruction spectral analysis-synthesis
system for speech enhancement", EUSIPCO 2007, and Wang et al., "STFT-domain neural
speech enhancement with very low algorithmic latency", IEEE/ACM TASLP 2023: the product
``w_a·w_s`` equals a short window of length ``N_s`` that overlap-adds to a constant at hop
``R``, while ``w_a`` itself rises slowly over the long analysis span.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hearmask.dataclass_dict import dataclass_from_dict
from hearmask.errors import HearmaskError

# Window shapes a user may choose. Each is the periodic form, which is constant
# overlap-add (COLA) at hops that divide the length as listed.
WINDOW_SHAPES = ("hann", "hamming", "blackman")

# Largest relative ripple of the OLA sum we accept as "constant" (perfect reconstruction).
_COLA_TOLERANCE = 1e-9


@dataclass(frozen=True)
class StftConfig:
    """A causal WOLA STFT. All lengths in samples at ``sample_rate_hz``."""

    sample_rate_hz: int = 16000  # model sample rate; other inputs are resampled to it
    fft_size: int = 256  # FFT length (>= analysis window); bins = fft_size // 2 + 1
    hop_samples: int = 64  # R: new samples per frame (4 ms at 16 kHz)
    analysis_window_samples: int = 256  # N_a: span of the analysis window (frequency resolution)
    synthesis_window_samples: int = 128  # N_s <= N_a: span of the synthesis window (= latency)
    window_shape: str = "hann"  # shape of the product window, one of WINDOW_SHAPES

    def __post_init__(self) -> None:
        validate_stft_config(self)
        _design_windows(self)  # raises if the windows cannot reconstruct at this hop

    @property
    def num_bins(self) -> int:
        """Number of one-sided frequency bins, ``fft_size // 2 + 1``."""
        return self.fft_size // 2 + 1

    @property
    def algorithmic_latency_samples(self) -> int:
        """Input-to-output delay of the frame engine: one hop of buffering plus the overlap."""
        return self.synthesis_window_samples

    @property
    def algorithmic_latency_ms(self) -> float:
        return 1000.0 * self.algorithmic_latency_samples / self.sample_rate_hz

    @property
    def hop_ms(self) -> float:
        return 1000.0 * self.hop_samples / self.sample_rate_hz

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate_hz / self.hop_samples

    def bin_frequencies_hz(self) -> np.ndarray:
        """Centre frequency of each bin in Hz, shape ``(num_bins,)``."""
        return np.fft.rfftfreq(self.fft_size, d=1.0 / self.sample_rate_hz)

    def num_frames(self, num_samples: int) -> int:
        """Frames (hops) needed to cover ``num_samples`` input samples (the last hop zero-padded)."""
        return max(1, -(-num_samples // self.hop_samples))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "StftConfig":
        return dataclass_from_dict(cls, values, "STFT config")

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Analysis and synthesis windows, each float64 of shape ``(analysis_window_samples,)``.

        The synthesis window is zero on the first ``N_a − N_s`` samples. Their product
        overlap-adds to exactly 1 at ``hop_samples``, so identity masks reconstruct the
        input (delayed by :attr:`algorithmic_latency_samples`).
        """
        return _design_windows(self)


def _periodic_window(shape: str, length: int) -> np.ndarray:
    n = np.arange(length)
    phase = 2.0 * np.pi * n / length
    if shape == "hann":
        return 0.5 - 0.5 * np.cos(phase)
    if shape == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    if shape == "blackman":
        return 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    raise HearmaskError(f"unknown window shape {shape!r}; accepted: {', '.join(WINDOW_SHAPES)}")


def _design_windows(config: StftConfig) -> tuple[np.ndarray, np.ndarray]:
    analysis_len = config.analysis_window_samples
    synthesis_len = config.synthesis_window_samples
    half_synthesis = synthesis_len // 2
    # Target product window: the chosen shape over the last N_s samples.
    product = np.zeros(analysis_len)
    product[analysis_len - synthesis_len :] = _periodic_window(config.window_shape, synthesis_len)
    # Analysis window: sqrt of a slow rise over the first N_a − N_s/2 samples (the rising half
    # of a window twice that long), then sqrt of the short window's falling half.
    rise_len = analysis_len - half_synthesis
    rising = _periodic_window(config.window_shape, 2 * rise_len)[:rise_len]
    falling = _periodic_window(config.window_shape, synthesis_len)[half_synthesis:]
    analysis = np.sqrt(np.concatenate([rising, falling]))
    # Synthesis window: whatever makes analysis·synthesis equal the product window.
    synthesis = np.divide(product, analysis, out=np.zeros(analysis_len), where=analysis > 1e-12)
    # Normalise so the OLA sum of the product is exactly 1, and check that it is constant.
    ola = np.zeros(config.hop_samples)
    for start in range(0, analysis_len, config.hop_samples):
        segment = (analysis * synthesis)[start : start + config.hop_samples]
        ola[: len(segment)] += segment
    ripple = (ola.max() - ola.min()) / max(ola.mean(), 1e-30)
    if ola.mean() <= 0 or ripple > _COLA_TOLERANCE:
        raise HearmaskError(
            f"{config.window_shape} windows (analysis {analysis_len}, synthesis {synthesis_len}) do not "
            f"overlap-add to a constant at hop {config.hop_samples} (relative ripple {ripple:.2e}); "
            "use a hop that divides the synthesis window by 2 or 4 (hann), 2 (hamming) or 3 (blackman)"
        )
    synthesis /= ola.mean()
    return analysis, synthesis


def validate_stft_config(config: StftConfig) -> None:
    """Raise :class:`HearmaskError` naming the field and the accepted values."""
    for field in ("sample_rate_hz", "fft_size", "hop_samples", "analysis_window_samples", "synthesis_window_samples"):
        value = getattr(config, field)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise HearmaskError(f"STFT {field} must be a positive integer, got {value!r}")
    if config.window_shape not in WINDOW_SHAPES:
        raise HearmaskError(f"unknown window shape {config.window_shape!r}; accepted: {', '.join(WINDOW_SHAPES)}")
    if config.synthesis_window_samples > config.analysis_window_samples:
        raise HearmaskError(
            f"synthesis window ({config.synthesis_window_samples}) must not be longer than the analysis "
            f"window ({config.analysis_window_samples})"
        )
    if config.analysis_window_samples > config.fft_size:
        raise HearmaskError(
            f"analysis window ({config.analysis_window_samples}) must fit in the FFT size ({config.fft_size})"
        )
    if config.synthesis_window_samples % 2:
        raise HearmaskError(f"synthesis window must have an even length, got {config.synthesis_window_samples}")
    if config.hop_samples > config.synthesis_window_samples // 2:
        raise HearmaskError(
            f"hop ({config.hop_samples}) must be at most half the synthesis window "
            f"({config.synthesis_window_samples}) for overlap-add reconstruction"
        )


# The shipped configurations (16 kHz). Latency = synthesis window.
SHIPPED_STFT_CONFIGS: dict[str, StftConfig] = {
    # 16 ms analysis window (62.5 Hz bins), 8 ms algorithmic latency, 4 ms hop.
    "default": StftConfig(),
    # 16 ms analysis window, 4 ms algorithmic latency, 2 ms hop.
    "low_latency": StftConfig(hop_samples=32, synthesis_window_samples=64),
    # Classic symmetric sqrt-Hann WOLA: 8 ms window, 8 ms latency, 4 ms hop (coarser bins).
    "symmetric_8ms": StftConfig(fft_size=128, analysis_window_samples=128, synthesis_window_samples=128),
}


def shipped_stft_config(name: str) -> StftConfig:
    """Return a shipped configuration by name."""
    try:
        return SHIPPED_STFT_CONFIGS[name]
    except KeyError:
        raise HearmaskError(
            f"unknown STFT configuration {name!r}; accepted: {', '.join(SHIPPED_STFT_CONFIGS)}"
        ) from None
