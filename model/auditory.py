"""Differentiable auditory model: the training objective's normal and impaired ear.

Chain (DESIGN.md, "Auditory model"), all in torch, batched, causal:

1. **Filterbank** - ``num_channels`` 4th-order gammatone FIRs, ERB-spaced, 0 dB at their
   centre frequency, applied by FFT convolution (:mod:`hearmask.model.auditory_filterbank`).
   With ``filterbank = "drnl"`` the DRNL of Lopez-Poveda & Meddis (2001) replaces steps 1
   and 2 (:mod:`hearmask.model.auditory_drnl`: its own compression and OHC-loss mapping);
   the IHC stage, IHC loss and adaptation are the same.
2. **Cochlear (OHC) compression** - an instantaneous, odd-symmetric broken-stick gain on
   the basilar-membrane waveform, computed on its positive half after rectification (the
   two commute for an odd compressor). In dB of instantaneous level ``L`` (the SPL of a
   sine whose peak is the sample's amplitude): gain ``G(f)`` below the knee
   (``compression_knee_db_spl``, 30 dB SPL), falling linearly in dB to 0 at
   ``compression_upper_db_spl`` (100 dB SPL), linear again above. The compressive slope
   is ``1 - G / (upper - knee)``. This is the I/O shape of Kates's HASPI/HASQI ear
   model (Kates & Arehart 2014/2021; pyclarity ``evaluator/haspi/eb.py``, ``loss_parameters``:
   linear below 30 and above 100 dB SPL). The normal gain ``G(f)`` equals the largest
   OHC loss at ``f``, so a complete OHC loss leaves a linear ear with no cochlear gain.
3. **Inner hair cell** - half-wave rectification (step 2 works on it) and a 2nd-order
   Butterworth low-pass at 1 kHz (truncated FIR), then average-pooled to frames of
   ``output_hop_samples`` (default 16 = 1 ms: envelope modulations up to ~500 Hz survive,
   the loss sees 16x fewer values). Low-pass and pooling run as one strided FIR.
4. **IHC loss** - a plain attenuation of the IHC output.
5. **Adaptation** - ``log(1 + x / eps)``: linear near threshold, logarithmic above.

Hearing loss (per channel, dB, from the audiogram by :meth:`AuditoryModel.channel_loss_db`)
is split as in DESIGN.md: ``OHC = min(ohc_loss_fraction * loss, OHC_max(f))`` lowers the
cochlear gain ``G(f)`` (so low levels lose gain, high levels little: loss of compression,
recruitment); ``IHC = loss - OHC`` attenuates step 4. The 2/3 fraction is DESIGN.md's;
Kates's ear model uses 0.8 (after Moore et al. 1999, JASA 106, 2761-2778). ``OHC_max``
defaults to 35 dB at <= 250 Hz rising, linear in log-frequency, to 60 dB at >= 4 kHz. That
is the order of the largest OHC loss (= low-level cochlear gain) in Moore & Glasberg's
loudness model for cochlear loss (Hear. Res. 188, 2004: roughly 55-65 dB at high
frequencies, less at low ones; quoted from memory, not re-checked here). For comparison,
Kates's formula ``70 (1 - 1/CR)`` (checked in pyclarity) gives 14 dB at 80 Hz rising to
50 dB at 8 kHz. Chosen, not fitted.

Level calibration: a signal with RMS 1.0 is ``full_scale_db_spl`` (100 dB SPL). With the
default ``eps`` the model's normal threshold for a tone at a channel's centre frequency is
about ``53 - G(f)`` dB SPL: 18 dB SPL at 250 Hz, 5 dB at 1 kHz, -7 dB at >= 4 kHz (within ~7 dB of
the free-field minimum audible field, ISO 389-7, between 125 Hz and 4 kHz). The data mixer's
default active speech levels, -40 to -20 dBFS, are then 60 to 80 dB SPL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from hearmask.errors import HearmaskError
from hearmask.model.auditory_drnl import DrnlFilterbank, drnl_highest_center_frequency_hz
from hearmask.model.auditory_filterbank import (
    butterworth_lowpass_impulse_response,
    erb_spaced_frequencies_hz,
    fft_convolve_causal,
    gammatone_impulse_responses,
    next_fast_fft_size,
)
from hearmask.profiles.interpolate import interpolate_db_hl

# Amplitudes below this are treated as silence when taking their level (avoids log(0)).
_SMALLEST_AMPLITUDE = 1e-30
_DB_PER_NEPER = 20.0 / math.log(10.0)
FILTERBANKS = ("gammatone", "drnl")


@dataclass(frozen=True)
class AuditoryModelConfig:
    """Auditory model parameters. Frequencies in Hz, levels in dB SPL, lengths in samples."""

    sample_rate_hz: int = 16000  # sampling rate of the input signal
    num_channels: int = 32  # gammatone channels (~0.95 ERB apart with the defaults)
    low_hz: float = 80.0  # centre frequency of the lowest channel
    high_hz: float = 7500.0  # centre of the highest; its ERB (834 Hz) reaches 8 kHz at 16 kHz
    filter_length_samples: int = 1024  # gammatone FIR length (64 ms covers the 80 Hz ring-out)
    ihc_lowpass_cutoff_hz: float = 1000.0  # IHC 2nd-order Butterworth low-pass cutoff
    ihc_lowpass_length_samples: int = 64  # FIR truncation of that low-pass (decayed < 1e-7)
    output_hop_samples: int = 16  # output frame hop (average pooling); 1 keeps every sample
    full_scale_db_spl: float = 100.0  # SPL of a signal with RMS 1.0 (level calibration)
    compression_knee_db_spl: float = 30.0  # below: linear with the full cochlear gain
    compression_upper_db_spl: float = 100.0  # above: linear with no cochlear gain
    ohc_max_loss_frequencies_hz: tuple[float, ...] = (250.0, 4000.0)  # OHC_max breakpoints
    ohc_max_loss_db: tuple[float, ...] = (35.0, 60.0)  # OHC_max there = normal cochlear gain
    ohc_loss_fraction: float = 2.0 / 3.0  # share of a loss given to OHCs before OHC_max caps it
    eps: float = 2e-3  # log(1 + x/eps) knee; IHC envelope of a tone at the normal threshold
    filterbank: str = "gammatone"  # "gammatone" (+ broken-stick gain) or "drnl" (Lopez-Poveda & Meddis 2001)
    drnl_output_gain_db: float = -20.0  # DRNL only: BM velocity -> IHC input gain; -20 matches gammatone thresholds

    def __post_init__(self) -> None:
        # Lists from TOML become tuples so the frozen config stays hashable.
        for name in ("ohc_max_loss_frequencies_hz", "ohc_max_loss_db"):
            object.__setattr__(self, name, tuple(float(value) for value in getattr(self, name)))
        _validate_config(self)

    @property
    def center_frequencies_hz(self) -> np.ndarray:
        """Channel centre frequencies in Hz, ERB-number spaced, shape (C,)."""
        return erb_spaced_frequencies_hz(self.low_hz, self.high_hz, self.num_channels)

    def ohc_max_loss_at(self, frequencies_hz: ArrayLike) -> np.ndarray:
        """Largest OHC loss (= normal cochlear gain) in dB at ``frequencies_hz``: the
        breakpoints interpolated linearly in log-frequency, flat outside them."""
        return interpolate_db_hl(self.ohc_max_loss_frequencies_hz, self.ohc_max_loss_db, frequencies_hz)


def _validate_config(config: AuditoryModelConfig) -> None:
    nyquist_hz = config.sample_rate_hz / 2
    if config.filterbank not in FILTERBANKS:
        raise HearmaskError(
            f"filterbank must be one of {', '.join(FILTERBANKS)}, got {config.filterbank!r}"
        )
    if config.sample_rate_hz <= 0:
        raise HearmaskError(f"sample_rate_hz must be > 0, got {config.sample_rate_hz}")
    if config.num_channels < 1:
        raise HearmaskError(f"num_channels must be >= 1, got {config.num_channels}")
    if not 0 < config.low_hz <= config.high_hz < nyquist_hz or (
        config.num_channels > 1 and config.low_hz == config.high_hz
    ):
        raise HearmaskError(
            f"channel centre frequencies must satisfy 0 < low_hz < high_hz < {nyquist_hz:g} Hz "
            f"(Nyquist), got low_hz={config.low_hz}, high_hz={config.high_hz}"
        )
    if config.filterbank == "drnl" and config.high_hz >= drnl_highest_center_frequency_hz(config.sample_rate_hz):
        highest_hz = drnl_highest_center_frequency_hz(config.sample_rate_hz)
        raise HearmaskError(
            f"filterbank 'drnl' needs high_hz < {highest_hz:.0f} Hz at {config.sample_rate_hz} Hz "
            f"(its filters sit up to 3 % above the channel CF and must stay below Nyquist), "
            f"got high_hz={config.high_hz}"
        )
    if config.filter_length_samples < 16:
        raise HearmaskError(f"filter_length_samples must be >= 16, got {config.filter_length_samples}")
    if not 0 < config.ihc_lowpass_cutoff_hz < nyquist_hz:
        raise HearmaskError(
            f"ihc_lowpass_cutoff_hz must be in (0, {nyquist_hz:g}) Hz, got {config.ihc_lowpass_cutoff_hz}"
        )
    if config.ihc_lowpass_length_samples < 1:
        raise HearmaskError(
            f"ihc_lowpass_length_samples must be >= 1, got {config.ihc_lowpass_length_samples}"
        )
    if config.output_hop_samples < 1:
        raise HearmaskError(f"output_hop_samples must be >= 1, got {config.output_hop_samples}")
    compression_range_db = config.compression_upper_db_spl - config.compression_knee_db_spl
    if compression_range_db <= 0:
        raise HearmaskError(
            "compression_upper_db_spl must exceed compression_knee_db_spl, got "
            f"{config.compression_upper_db_spl} <= {config.compression_knee_db_spl}"
        )
    if len(config.ohc_max_loss_db) != len(config.ohc_max_loss_frequencies_hz) or not config.ohc_max_loss_db:
        raise HearmaskError(
            "ohc_max_loss_db needs one value per ohc_max_loss_frequencies_hz entry, got "
            f"{len(config.ohc_max_loss_db)} values for {len(config.ohc_max_loss_frequencies_hz)} frequencies"
        )
    if not all(0 <= v < compression_range_db for v in config.ohc_max_loss_db):
        raise HearmaskError(
            f"ohc_max_loss_db values must be in [0, {compression_range_db:g}) dB (the compression "
            f"range, else the compressive slope would be <= 0), got {list(config.ohc_max_loss_db)}"
        )
    config.ohc_max_loss_at(np.array([1000.0]))  # interpolate_db_hl checks the breakpoints
    if not 0 <= config.ohc_loss_fraction <= 1:
        raise HearmaskError(f"ohc_loss_fraction must be in [0, 1], got {config.ohc_loss_fraction}")
    if not config.eps > 0:
        raise HearmaskError(f"eps must be > 0, got {config.eps}")


def split_hearing_loss_db(
    loss_db: torch.Tensor, ohc_max_loss_db: torch.Tensor, ohc_loss_fraction: float = 2.0 / 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a per-channel loss into (OHC loss, IHC loss), both in dB, shape of ``loss_db``.

    ``OHC = min(ohc_loss_fraction * loss, ohc_max_loss_db)``; ``IHC = loss - OHC``. Negative
    losses (better than audiometric zero) count as 0 dB. ``ohc_max_loss_db`` broadcasts
    against ``loss_db`` (e.g. shape (C,) against (B, C)).
    """
    total_db = loss_db.clamp_min(0.0)
    ohc_db = torch.minimum(ohc_loss_fraction * total_db, ohc_max_loss_db)
    return ohc_db, total_db - ohc_db


def _polyphase_matrix(kernel: np.ndarray, hop: int) -> np.ndarray:
    """(hop, J) matrix W with W[p, j] = kernel[j·hop + hop - 1 - p] (0 past the end).

    Output frame m = sum_j sum_p W[p, j] x[(m - j)·hop + p] = sum_k kernel[k] x[(m+1)·hop - 1 - k].
    """
    num_lags = -(-len(kernel) // hop)
    padded = np.zeros(num_lags * hop)
    padded[: len(kernel)] = kernel
    # Row j of the reshaped kernel holds taps j·hop .. j·hop + hop - 1; reversed along p.
    return padded.reshape(num_lags, hop)[:, ::-1].T.copy()


class _BrokenStickCompression(torch.autograd.Function):
    """``r · exp(g · clip(intercept - slope · ln r, 0, 1))`` with ``r = max(x, 0)``, fused.

    Written as one autograd function because the autograd graph of the same expression
    keeps about ten full-size (B, C, T) intermediates; this keeps three and computes the
    derivative in closed form: d out/d x = gain · (1 - g · slope) inside the compressive
    range, gain below and above it, 0 for x <= 0. ``g`` (nepers, broadcasting to x) may
    require grad (a hearing loss being optimised): d out/d g = out · clip(...).
    """

    @staticmethod
    def forward(ctx, signal, gain_nepers, intercept, slope_per_neper):
        rectified = signal.clamp_min(0.0)
        log_amplitude = torch.log(rectified.clamp_min(_SMALLEST_AMPLITUDE))
        gain_fraction = log_amplitude.mul_(-slope_per_neper).add_(intercept).clamp_(0.0, 1.0)
        gain = torch.exp(gain_fraction * gain_nepers)
        ctx.slope_per_neper = slope_per_neper
        ctx.save_for_backward(rectified, gain_fraction, gain, gain_nepers)
        return rectified * gain

    @staticmethod
    def backward(ctx, grad_output):
        rectified, gain_fraction, gain, gain_nepers = ctx.saved_tensors
        grad_signal = grad_gain = None
        weighted = grad_output * gain
        if ctx.needs_input_grad[1]:
            grad_gain = (weighted * rectified * gain_fraction).sum_to_size(gain_nepers.shape)
        if ctx.needs_input_grad[0]:
            compressive = (gain_fraction > 0) & (gain_fraction < 1)
            compressive_slope = 1.0 - gain_nepers * ctx.slope_per_neper  # 1 - G / (upper - knee)
            grad_signal = weighted.mul_(torch.where(compressive, compressive_slope, 1.0))
            grad_signal.masked_fill_(rectified <= 0, 0.0)  # the rectifier passes nothing below 0
        return grad_signal, grad_gain, None, None


class AuditoryModel(nn.Module):
    """Normal-hearing (``hearing_loss_db=None``) or impaired auditory model.

    Input: ``signal`` (B, T) float, at ``config.sample_rate_hz``, RMS 1 = ``full_scale_db_spl``.
    Output: (B, C, T // output_hop_samples). Frame ``m`` is ``log(1 + e/eps)`` of the IHC
    envelope ``e`` averaged over samples ``[m·hop, (m+1)·hop)``: causal, so no output frame
    depends on a sample after its own last sample.
    """

    def __init__(self, config: AuditoryModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else AuditoryModelConfig()
        cfg = self.config
        self.center_frequencies_hz: np.ndarray = cfg.center_frequencies_hz
        self.drnl: DrnlFilterbank | None = None
        if cfg.filterbank == "drnl":
            self.drnl = DrnlFilterbank(
                self.center_frequencies_hz, cfg.sample_rate_hz, cfg.filter_length_samples,
                cfg.full_scale_db_spl, cfg.drnl_output_gain_db,
            )
        lowpass = butterworth_lowpass_impulse_response(
            cfg.ihc_lowpass_cutoff_hz, cfg.sample_rate_hz, cfg.ihc_lowpass_length_samples
        )
        # Low-pass then average over a hop = one FIR, applied with stride = hop.
        pooling_kernel = np.convolve(lowpass, np.full(cfg.output_hop_samples, 1.0 / cfg.output_hop_samples))
        ohc_max_db = cfg.ohc_max_loss_at(self.center_frequencies_hz)
        buffers = {
            # conv1d correlates, so the kernel is stored time-reversed.
            "ihc_pooling_kernel": pooling_kernel[::-1].copy(),
            "ihc_polyphase_kernel": _polyphase_matrix(pooling_kernel, cfg.output_hop_samples),
            "ohc_max_loss_db": ohc_max_db,
            # The normal cochlear gain is the largest OHC loss: a full OHC loss leaves a linear ear.
            "cochlear_gain_db": ohc_max_db,
        }
        if self.drnl is None:
            buffers["impulse_responses"] = gammatone_impulse_responses(
                self.center_frequencies_hz, cfg.sample_rate_hz, cfg.filter_length_samples
            )
        # Not persistent: all of them follow from the config, which checkpoints store.
        for name, value in buffers.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.get_default_dtype()), persistent=False)

    @property
    def num_channels(self) -> int:
        return self.config.num_channels

    def channel_loss_db(self, frequencies_hz: ArrayLike, thresholds_db_hl: ArrayLike) -> torch.Tensor:
        """Audiogram(s) interpolated (log-frequency) to the channel centre frequencies.

        ``thresholds_db_hl`` has shape (F,) or (B, F); returns (C,) or (B, C), in the
        dtype and on the device of the model, ready for ``forward(..., hearing_loss_db)``.
        """
        loss_db = interpolate_db_hl(frequencies_hz, thresholds_db_hl, self.center_frequencies_hz)
        buffer = self.cochlear_gain_db
        return torch.as_tensor(loss_db, dtype=buffer.dtype, device=buffer.device)

    def forward(self, signal: torch.Tensor, hearing_loss_db: torch.Tensor | None = None) -> torch.Tensor:
        """Model output ``log(1 + e/eps)``, shape (B, C, T // hop). See the class docstring.

        ``hearing_loss_db``: per-channel loss in dB, shape (B, C) or (C,), or None for a
        normal ear. An all-zero loss gives exactly the normal output.
        """
        return torch.log1p(self.ihc_envelope(signal, hearing_loss_db) / self.config.eps)

    def ihc_envelope(self, signal: torch.Tensor, hearing_loss_db: torch.Tensor | None = None) -> torch.Tensor:
        """IHC output after the IHC loss, before adaptation: shape (B, C, T // hop), >= 0."""
        self._check_signal(signal)
        batch_size, num_samples = signal.shape
        gain_db = self.cochlear_gain_db.to(signal.dtype).view(1, -1, 1)
        ohc_db = ihc_attenuation = None
        if hearing_loss_db is not None:
            ohc_db, ihc_db = split_hearing_loss_db(
                self._check_loss(hearing_loss_db, batch_size).to(device=signal.device, dtype=signal.dtype),
                self.ohc_max_loss_db.to(signal.dtype),
                self.config.ohc_loss_fraction,
            )
            gain_db = gain_db - ohc_db.unsqueeze(-1)
            ihc_attenuation = torch.pow(10.0, -ihc_db / 20.0).unsqueeze(-1)

        if self.drnl is not None:  # compression and OHC loss happen inside the DRNL
            compressed = self.drnl(signal, ohc_db).clamp_min(0.0)
        else:
            compressed = self._compress(self.filterbank(signal), gain_db)
        envelope = self._lowpass_and_pool(compressed)
        if ihc_attenuation is not None:
            envelope = envelope * ihc_attenuation  # commutes with the linear low-pass/pooling
        # The Butterworth FIR's small negative lobe could push a frame just below 0.
        return envelope.clamp_min(0.0)

    def filterbank(self, signal: torch.Tensor) -> torch.Tensor:
        """Normal basilar-membrane waveform, (B, T) -> (B, C, T): the linear gammatone bank's
        output, or with ``filterbank = "drnl"`` the (nonlinear) DRNL's, in IHC-input units."""
        if self.drnl is not None:
            return self.drnl(signal)
        num_samples = signal.shape[-1]
        fft_size = next_fast_fft_size(num_samples + self.config.filter_length_samples - 1)
        spectrum = torch.fft.rfft(self.impulse_responses.to(signal.dtype), n=fft_size)
        return fft_convolve_causal(signal, spectrum, fft_size)

    def _compress(self, basilar_membrane: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
        """Half-wave rectification + broken-stick cochlear gain (module docstring, step 2).

        ``gain_db`` broadcasts to (B, C, 1): the low-level gain per channel. The applied gain
        is ``gain_db * clip((upper - L) / (upper - knee), 0, 1)`` for instantaneous level L.
        """
        cfg = self.config
        range_db = cfg.compression_upper_db_spl - cfg.compression_knee_db_spl
        # L = 20 log10(r / sqrt(2)) + full_scale_db_spl, so the gain fraction is an affine
        # map of ln r: (upper - L) / range = intercept - slope * ln r.
        level_offset_db = cfg.full_scale_db_spl - 10.0 * math.log10(2.0)
        intercept = (cfg.compression_upper_db_spl - level_offset_db) / range_db
        slope_per_neper = _DB_PER_NEPER / range_db
        gain_nepers = gain_db / _DB_PER_NEPER
        return _BrokenStickCompression.apply(basilar_membrane, gain_nepers, intercept, slope_per_neper)

    def _lowpass_and_pool(self, compressed: torch.Tensor) -> torch.Tensor:
        """IHC low-pass + average pooling as one causal strided FIR.

        Frame m = low-pass output averaged over samples [m·hop, (m+1)·hop); (B, C, T) ->
        (B, C, T // hop). For hop >= 4 the FIR runs polyphase: the signal reshaped to
        (frames, hop) times a (hop, J) matrix, then J shifted frame sums; a strided conv1d
        with one channel runs ~4x slower on CPU (measured, torch 2.13).
        """
        batch_size, num_channels, num_samples = compressed.shape
        hop = self.config.output_hop_samples
        num_frames = num_samples // hop
        rows = compressed.reshape(batch_size * num_channels, num_samples)
        if hop < 4:  # polyphase would expand memory by ~K/hop; plain convolution instead
            kernel = self.ihc_pooling_kernel.to(compressed.dtype).view(1, 1, -1)
            # Left padding K - hop makes output m end exactly at sample (m+1)·hop - 1.
            padded = F.pad(rows.unsqueeze(1), (kernel.shape[-1] - hop, 0))
            return F.conv1d(padded, kernel, stride=hop).view(batch_size, num_channels, num_frames)
        polyphase = self.ihc_polyphase_kernel.to(compressed.dtype)  # (hop, J)
        # per_lag[n, m, j] = contribution of frame m to output frame m + j.
        per_lag = rows[:, : num_frames * hop].reshape(-1, num_frames, hop) @ polyphase
        frames = per_lag[..., 0]
        for lag in range(1, min(polyphase.shape[1], num_frames)):
            frames = frames + F.pad(per_lag[:, : num_frames - lag, lag], (lag, 0))
        return frames.view(batch_size, num_channels, num_frames)

    def _check_signal(self, signal: torch.Tensor) -> None:
        if not isinstance(signal, torch.Tensor) or signal.ndim != 2 or not signal.is_floating_point():
            shape = tuple(signal.shape) if isinstance(signal, torch.Tensor) else type(signal).__name__
            raise HearmaskError(f"signal must be a float tensor of shape (batch, samples), got {shape}")
        if signal.shape[-1] < self.config.output_hop_samples:
            raise HearmaskError(
                f"signal must hold at least output_hop_samples={self.config.output_hop_samples} "
                f"samples, got {signal.shape[-1]}"
            )

    def _check_loss(self, hearing_loss_db: torch.Tensor, batch_size: int) -> torch.Tensor:
        hearing_loss_db = torch.as_tensor(hearing_loss_db)
        channels = self.config.num_channels
        if hearing_loss_db.shape not in ((batch_size, channels), (channels,)):
            raise HearmaskError(
                f"hearing_loss_db must have shape ({batch_size}, {channels}) or ({channels},) "
                f"(batch, channels), got {tuple(hearing_loss_db.shape)}; use channel_loss_db() "
                "to map an audiogram onto the channels"
            )
        if hearing_loss_db.ndim == 1:
            hearing_loss_db = hearing_loss_db.expand(batch_size, channels)
        return hearing_loss_db
