"""The compact causal mask network: log band features + audiogram -> NR mask and HLC gain in dB.

Data flow per frame (shapes for one frame; the sequence form adds a time axis K)::

    features (F = num_bands) ─┐
                              ├─ encoder: tanh(W·x + b), audiogram by FiLM (pre-activation
    audiogram (8, dB HL/100) ─┘  scale and shift) or by concatenation to x   -> (E)
    GRU layer 1 .. L (primitive ops, :mod:`hearmask.model.recurrent`)        -> (H)
    heads on [h_L, encoder output] -> per-band logits (num_bands)
    bands -> bins linear interpolation (fixed matrix, rows sum to 1)         -> (num_bins)
    NR:  nr_db  = nr_floor_db · σ(logit)                        in [nr_floor_db, 0]
    HLC: hlc_db = hlc_min_db + (ceiling_db − hlc_min_db)·σ(logit) in [hlc_min_db, ceiling_db]
         ceiling_db per bin = min(hlc_max_db, hlc_ceiling_offset_db + hlc_ceiling_loss_fraction · HL)
         with HL the audiogram (dB HL, negatives as 0) interpolated to the bin

The ceiling is a prescriptive prior, not learned: the auditory-model HLC objective is
minimised by full-gain compensation of the IHC loss (in the compressive region each dB of
IHC loss needs several dB of gain), so unbounded training drives the gain to +G, which HASPI
v2 penalises (measured in benchmarks/RESULTS.md: beta = 0.5 beat beta = 1 for N3). The
default fraction 0.5 is the classic half-gain rule (Lybarger); the network chooses below it.
It lives outside the int8 graph: the graph emits the sigmoid fraction and the per-bin span
is computed once per audiogram on the host or device (:func:`mask_db_from_fractions`).
Measured (session 8, ``benchmarks/measure_hlc_ceiling.py``): the shipped models' HLC head sits
at the ceiling (sigmoid > 0.99 in 98–100 % of frames and bins for NH to N7), so their HLC gain
is the ceiling rule itself and the head's gradient has vanished; a head that chooses below the
ceiling needs an HLC objective closer to what HASPI rewards, not more training.

The bounded activation comes after the interpolation, so the ranges hold exactly per bin.
Every op is FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH, CONCATENATION or
STRIDED_SLICE in TFLite terms (DESIGN.md "Quantization and conversion"); every
activation is a named sub-module so QAT can wrap it. The FiLM/concat encoder output is
a tanh, so the recurrent input has the fixed int8 tanh range.

Two forms agree (tested to <= 1e-5): :meth:`MaskNet.forward` over a sequence (training) and
:meth:`MaskNet.step` with one flat state tensor (streaming, export, devices).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from hearmask.dataclass_dict import dataclass_from_dict
from hearmask.errors import HearmaskError
from hearmask.model.features import BandLayout
from hearmask.model.recurrent import PrimitiveGruCell
from hearmask.model.stft_config import StftConfig
from hearmask.profiles.audiogram import MODEL_AUDIOGRAM_FREQUENCIES_HZ
from hearmask.profiles.interpolate import interpolate_db_hl

CONDITIONING_MODES = ("film", "concat")

# Initial gains of an untrained net (head biases; weights start small): near identity, so
# training starts from "pass the input through" rather than a random 12 dB cut.
INITIAL_NR_DB = -1.0
INITIAL_HLC_DB = 0.0  # the HLC range must contain it
# The HLC span is per bin and audiogram (the ceiling), so the HLC head starts at a fraction
# of it: -1 dB at 0 dB HL with the default [-10, 0] dB span there, some gain where a loss is.
INITIAL_HLC_FRACTION = 0.9


# MaskNetConfig fields that set the heads' output ranges in dB; they scale sigmoids and own no
# weights, so a trained network can be fine-tuned to other values (Trainer's warm start).
OUTPUT_RANGE_FIELDS = ("nr_floor_db", "hlc_min_db", "hlc_max_db", "hlc_ceiling_loss_fraction", "hlc_ceiling_offset_db")


@dataclass(frozen=True)
class MaskNetConfig:
    """Architecture of :class:`MaskNet`; with the weights it rebuilds the model."""

    num_bins: int = 129  # one-sided STFT bins the masks are produced for (fft_size // 2 + 1, even FFT)
    num_bands: int = 32  # ERB bands: feature size and resolution of the heads
    sample_rate_hz: int = 16000  # places the bands on the bins (band -> bin interpolation)
    encoder_size: int = 64  # E: per-frame encoder width (tanh)
    hidden_size: int = 64  # H: GRU state size per layer
    num_layers: int = 2  # L: stacked GRU layers; state is (B, L·H)
    audiogram_size: int = 8  # thresholds at profiles.audiogram.MODEL_AUDIOGRAM_FREQUENCIES_HZ, dB HL / 100
    # "film": the audiogram scales and shifts the encoder pre-activations; "concat": it is
    # appended to the features before the encoder.
    conditioning: str = "film"
    nr_floor_db: float = -25.0  # strongest noise-reduction attenuation, dB (< 0); NR mask in [nr_floor_db, 0]
    hlc_min_db: float = -10.0  # -a: most attenuation the HLC head may apply, dB (<= 0)
    hlc_max_db: float = 50.0  # +G: most amplification, dB (> 0); enough for severe loss
    # Per-bin gain ceiling: min(hlc_max_db, offset + fraction · loss in dB HL). An offset
    # >= hlc_max_db disables it (the ceiling is then hlc_max_db everywhere).
    hlc_ceiling_loss_fraction: float = 0.5  # dB of gain allowed per dB HL (0.5 = half-gain rule)
    hlc_ceiling_offset_db: float = 0.0  # ceiling at 0 dB HL, dB (> hlc_min_db)

    def __post_init__(self) -> None:
        validate_masknet_config(self)

    @classmethod
    def for_stft(cls, stft_config: StftConfig, **fields) -> "MaskNetConfig":
        """A config whose bins and sample rate match ``stft_config``; other fields as given."""
        if stft_config.fft_size % 2:
            raise HearmaskError(f"the mask network needs an even FFT size, got {stft_config.fft_size}")
        return cls(num_bins=stft_config.num_bins, sample_rate_hz=stft_config.sample_rate_hz, **fields)

    @property
    def num_features(self) -> int:
        """Input feature size per frame (log band powers): ``num_bands``."""
        return self.num_bands

    @property
    def state_size(self) -> int:
        """S: size of the flat recurrent state, ``num_layers · hidden_size``."""
        return self.num_layers * self.hidden_size

    def band_layout(self) -> BandLayout:
        return BandLayout(self.sample_rate_hz, self.num_bins, self.num_bands)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MaskNetConfig":
        return dataclass_from_dict(cls, values, "mask network config")


def validate_masknet_config(config: MaskNetConfig) -> None:
    """Raise :class:`HearmaskError` naming the field, its value and what is accepted."""
    sizes = ("num_bins", "num_bands", "sample_rate_hz", "encoder_size", "hidden_size", "num_layers", "audiogram_size")
    for field in sizes:
        value = getattr(config, field)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise HearmaskError(f"mask network {field} must be a positive integer, got {value!r}")
    if config.conditioning not in CONDITIONING_MODES:
        raise HearmaskError(
            f"unknown audiogram conditioning {config.conditioning!r}; accepted: {', '.join(CONDITIONING_MODES)}"
        )
    for field in ("nr_floor_db", "hlc_min_db", "hlc_max_db", "hlc_ceiling_loss_fraction", "hlc_ceiling_offset_db"):
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise HearmaskError(f"mask network {field} must be a finite number of dB, got {value!r}")
    if config.nr_floor_db >= INITIAL_NR_DB:
        raise HearmaskError(f"nr_floor_db must be below {INITIAL_NR_DB} dB (e.g. -25), got {config.nr_floor_db}")
    if config.hlc_min_db > INITIAL_HLC_DB:
        raise HearmaskError(f"hlc_min_db must be <= 0 dB (e.g. -10), got {config.hlc_min_db}")
    if config.hlc_max_db <= INITIAL_HLC_DB:
        raise HearmaskError(f"hlc_max_db must be > 0 dB (e.g. +50), got {config.hlc_max_db}")
    if config.hlc_ceiling_loss_fraction < 0:
        raise HearmaskError(
            f"hlc_ceiling_loss_fraction must be >= 0 (dB gain per dB HL, e.g. 0.5), got {config.hlc_ceiling_loss_fraction}"
        )
    if config.hlc_ceiling_offset_db <= config.hlc_min_db:
        raise HearmaskError(
            f"hlc_ceiling_offset_db must be above hlc_min_db ({config.hlc_min_db} dB), got {config.hlc_ceiling_offset_db}"
        )
    config.band_layout()  # validates num_bands against num_bins


def audiogram_to_bin_matrix(config: MaskNetConfig) -> np.ndarray:
    """(num_bins, audiogram_size): thresholds at the model's audiogram frequencies -> per bin.

    Linear in log-frequency, flat outside the audiogram (:func:`interpolate_db_hl`, the one
    audiogram interpolation); the interpolation is linear in the thresholds, so it is a matrix.
    """
    frequencies_hz = np.asarray(MODEL_AUDIOGRAM_FREQUENCIES_HZ, dtype=np.float64)
    if len(frequencies_hz) != config.audiogram_size:
        raise HearmaskError(
            f"audiogram_size {config.audiogram_size} does not match the {len(frequencies_hz)} model audiogram frequencies"
        )
    # Bin 0 (0 Hz) has no log-frequency; the interpolation is flat below the audiogram anyway.
    bins_hz = np.maximum(config.band_layout().bin_frequencies_hz, frequencies_hz[0])
    eye = np.eye(len(frequencies_hz))
    return np.stack([interpolate_db_hl(frequencies_hz, eye[i], bins_hz) for i in range(len(frequencies_hz))], axis=1)


def hlc_span_db(config: MaskNetConfig, audiogram, audiogram_to_bin) -> "np.ndarray | torch.Tensor":
    """Per-bin HLC span ``ceiling_db - hlc_min_db`` (> 0) for ``audiogram`` (..., 8) in dB HL / 100.

    ``audiogram_to_bin`` is :func:`audiogram_to_bin_matrix` (as a tensor for torch input).
    Works on torch tensors and numpy arrays alike; result (..., num_bins).
    """
    if isinstance(audiogram, torch.Tensor):
        loss_db = torch.clamp(100.0 * audiogram, min=0.0) @ audiogram_to_bin.T.to(audiogram.dtype)
        ceiling_db = torch.clamp(config.hlc_ceiling_offset_db + config.hlc_ceiling_loss_fraction * loss_db,
                                 max=config.hlc_max_db)
    else:
        loss_db = np.maximum(100.0 * np.asarray(audiogram, dtype=np.float64), 0.0) @ np.asarray(audiogram_to_bin).T
        ceiling_db = np.minimum(config.hlc_ceiling_offset_db + config.hlc_ceiling_loss_fraction * loss_db,
                                config.hlc_max_db)
    return ceiling_db - config.hlc_min_db


def _span_like(span, fraction):
    """Insert the time axis into ``span`` (B, bins) when ``fraction`` is a sequence (B, K, bins)."""
    if fraction.ndim == span.ndim + 1:
        return span[..., None, :]
    return span


def mask_db_from_fractions(config: MaskNetConfig, nr_fraction, hlc_fraction, span_db):
    """The sigmoid outputs to dB: ``nr_db = nr_floor_db·p_nr``, ``hlc_db = hlc_min_db + span_db·p_hlc``.

    ``span_db`` from :func:`hlc_span_db` for the listener's audiogram, (B, bins); the fractions
    are (B, bins) or (B, K, bins). Torch or numpy. Exact; the int8 graph ends at the fractions.
    """
    return config.nr_floor_db * nr_fraction, config.hlc_min_db + _span_like(span_db, hlc_fraction) * hlc_fraction


def mask_fractions_from_db(config: MaskNetConfig, nr_db, hlc_db, span_db):
    """Inverse of :func:`mask_db_from_fractions`."""
    return nr_db / config.nr_floor_db, (hlc_db - config.hlc_min_db) / _span_like(span_db, hlc_db)


# Named sizes. "default" meets the DESIGN.md budgets (<= 100 k parameters, <= 25 M MAC/s at
# 250 frames/s); "large" is an option for hosts and Raspberry Pi.
MASKNET_SIZES: dict[str, MaskNetConfig] = {
    "default": MaskNetConfig(),
    "large": MaskNetConfig(encoder_size=128, hidden_size=160),
}


def masknet_config(size: str, **fields) -> MaskNetConfig:
    """The named size (``MASKNET_SIZES``) with ``fields`` overriding it."""
    if size not in MASKNET_SIZES:
        raise HearmaskError(f"unknown mask network size {size!r}; accepted: {', '.join(MASKNET_SIZES)}")
    return MaskNetConfig(**{**MASKNET_SIZES[size].to_dict(), **fields})


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


class MaskNet(nn.Module):
    """Causal NR + HLC mask network (see the module docstring for the data flow)."""

    def __init__(self, config: MaskNetConfig = MaskNetConfig()):
        super().__init__()
        self.config = config
        encoder_inputs = config.num_features + (config.audiogram_size if config.conditioning == "concat" else 0)
        self.encoder = nn.Linear(encoder_inputs, config.encoder_size)
        # FiLM (Perez et al., AAAI 2018): [scale | shift] of the encoder pre-activations.
        self.film = None
        if config.conditioning == "film":
            self.film = nn.Linear(config.audiogram_size, 2 * config.encoder_size)
        self.encoder_activation = nn.Tanh()
        self.recurrent_layers = nn.ModuleList(
            PrimitiveGruCell(config.encoder_size if layer == 0 else config.hidden_size, config.hidden_size)
            for layer in range(config.num_layers)
        )
        head_inputs = config.hidden_size + config.encoder_size  # skip connection from the encoder
        self.nr_head = nn.Linear(head_inputs, config.num_bands)
        self.hlc_head = nn.Linear(head_inputs, config.num_bands)
        self.nr_activation = nn.Sigmoid()
        self.hlc_activation = nn.Sigmoid()
        interpolation = config.band_layout().interpolation_matrix  # (num_bins, num_bands)
        self.register_buffer("band_to_bin", torch.as_tensor(interpolation, dtype=torch.float32))
        # Derived from the config, so not saved with the weights (persistent=False).
        self.register_buffer("audiogram_to_bin", torch.as_tensor(audiogram_to_bin_matrix(config), dtype=torch.float32),
                             persistent=False)
        self._initialise_near_identity()

    def _initialise_near_identity(self) -> None:
        config = self.config
        with torch.no_grad():
            if self.film is not None:
                # Scale starts at 1 and shift at 0 (plus the audiogram-dependent weights).
                self.film.bias[: config.encoder_size].fill_(1.0)
                self.film.bias[config.encoder_size :].fill_(0.0)
            # Interpolation rows sum to 1, so a constant band logit is the bin logit.
            self.nr_head.bias.fill_(_logit(INITIAL_NR_DB / config.nr_floor_db))
            self.hlc_head.bias.fill_(_logit(INITIAL_HLC_FRACTION))
            # Small head weights: the initial gains stay near the values above.
            self.nr_head.weight.mul_(0.1)
            self.hlc_head.weight.mul_(0.1)

    # ----- shared pieces (any leading dims) -----

    def _encode(self, features: torch.Tensor, audiogram: torch.Tensor) -> torch.Tensor:
        """``features`` (..., F), ``audiogram`` (..., A) broadcastable to it -> (..., E) in [-1, 1]."""
        if self.film is None:
            if audiogram.shape[:-1] != features.shape[:-1]:  # sequence form: one audiogram for all frames
                audiogram = audiogram.expand(*features.shape[:-1], audiogram.shape[-1])
            return self.encoder_activation(self.encoder(torch.cat([features, audiogram], dim=-1)))
        size = self.config.encoder_size
        film = self.film(audiogram)
        return self.encoder_activation(self.encoder(features) * film[..., :size] + film[..., size:])

    def hlc_span_db(self, audiogram: torch.Tensor) -> torch.Tensor:
        """``audiogram`` (B, 8) in dB HL / 100 -> per-bin HLC span (B, num_bins), dB (see :func:`hlc_span_db`)."""
        return hlc_span_db(self.config, audiogram, self.audiogram_to_bin)

    def _head_fractions(self, recurrent_out: torch.Tensor, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., H) and (..., E) -> ``nr_fraction``, ``hlc_fraction`` (..., num_bins), sigmoid values."""
        head_input = torch.cat([recurrent_out, encoded], dim=-1)
        nr_logits = nn.functional.linear(self.nr_head(head_input), self.band_to_bin)
        hlc_logits = nn.functional.linear(self.hlc_head(head_input), self.band_to_bin)
        return self.nr_activation(nr_logits), self.hlc_activation(hlc_logits)

    def fractions_to_db(self, nr_fraction, hlc_fraction, audiogram: torch.Tensor):
        """Sigmoid outputs (B, [K,] bins) and the audiogram (B, 8) -> ``nr_db``, ``hlc_db`` (exact)."""
        return mask_db_from_fractions(self.config, nr_fraction, hlc_fraction, self.hlc_span_db(audiogram))

    # ----- the two forms -----

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state ``(batch, S)``, ``S = num_layers · hidden_size``, on the model's device and dtype."""
        reference = self.band_to_bin
        return torch.zeros(batch, self.config.state_size, dtype=reference.dtype, device=reference.device)

    def forward(
        self,
        features: torch.Tensor,
        audiogram: torch.Tensor,
        state: torch.Tensor | None = None,
        fused_recurrence: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence form. ``features`` (B, K, F), ``audiogram`` (B, 8) -> ``nr_db``, ``hlc_db`` (B, K, num_bins).

        ``state`` (B, S) continues from a previous chunk (default: :meth:`initial_state`).
        Output frame k depends on input frames <= k only. ``fused_recurrence=True`` runs the
        GRU layers through PyTorch's fused kernel (same result, ~5x faster float training
        on CPU; see :meth:`PrimitiveGruCell.forward`); keep it False under QAT.
        """
        config = self.config
        if features.dim() != 3 or features.shape[-1] != config.num_features:
            raise HearmaskError(
                f"features must have shape (B, K, {config.num_features}), got {tuple(features.shape)}"
            )
        if audiogram.shape != (features.shape[0], config.audiogram_size):
            raise HearmaskError(
                f"audiogram must have shape ({features.shape[0]}, {config.audiogram_size}) "
                f"(dB HL / 100 per frequency), got {tuple(audiogram.shape)}"
            )
        if state is None:
            state = self.initial_state(features.shape[0])
        encoded = self._encode(features, audiogram.unsqueeze(1))
        layer_output = encoded
        for layer, cell in enumerate(self.recurrent_layers):
            hidden = state[:, layer * config.hidden_size : (layer + 1) * config.hidden_size]
            layer_output = cell(layer_output, hidden, fused=fused_recurrence)
        return self.fractions_to_db(*self._head_fractions(layer_output, encoded), audiogram)

    def step_fractions(
        self, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One hop as the exported graph computes it. ``features`` (B, F), ``audiogram`` (B, 8),
        ``state`` (B, S) -> ``nr_fraction``, ``hlc_fraction`` (B, num_bins), ``new_state`` (B, S).

        No shape checks or data-dependent branches, so it traces and exports as is; only the
        int8 op set (see the module docstring).
        """
        size = self.config.hidden_size
        encoded = self._encode(features, audiogram)
        layer_output = encoded
        new_states = []
        for layer, cell in enumerate(self.recurrent_layers):
            layer_output = cell.step(layer_output, state[:, layer * size : (layer + 1) * size])
            new_states.append(layer_output)
        nr_fraction, hlc_fraction = self._head_fractions(layer_output, encoded)
        return nr_fraction, hlc_fraction, torch.cat(new_states, dim=1)

    def step(
        self, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One hop in dB: :meth:`step_fractions` then :meth:`fractions_to_db` ->
        ``nr_db`` (B, num_bins), ``hlc_db`` (B, num_bins), ``new_state`` (B, S)."""
        nr_fraction, hlc_fraction, new_state = self.step_fractions(features, audiogram, state)
        nr_db, hlc_db = self.fractions_to_db(nr_fraction, hlc_fraction, audiogram)
        return nr_db, hlc_db, new_state

    # ----- size and compute -----

    def count_parameters(self) -> int:
        """Trainable parameters (the fixed interpolation matrix is a buffer, not counted)."""
        return sum(parameter.numel() for parameter in self.parameters())

    def macs_per_frame(self) -> int:
        """Multiply-accumulates of one :meth:`step`, counted from the layer shapes.

        Counts the matmuls (every FULLY_CONNECTED, including the FiLM projection, which
        the step form recomputes per hop, and the two band -> bin interpolations).
        Element-wise ops (bias adds, gating, FiLM, output scaling: about 10·(E + L·H + bins)
        per frame) are not MACs and are not counted.
        """
        config = self.config
        encoder_inputs = self.encoder.in_features
        macs = encoder_inputs * config.encoder_size
        if self.film is not None:
            macs += config.audiogram_size * 2 * config.encoder_size
        macs += sum(cell.macs_per_step() for cell in self.recurrent_layers)
        macs += 2 * (config.hidden_size + config.encoder_size) * config.num_bands  # heads
        macs += 2 * config.num_bands * config.num_bins  # band -> bin interpolation
        return macs

    def macs_per_second(self, frames_per_second: float = 250.0) -> float:
        """MAC per second of audio at ``frames_per_second`` (default: 16 kHz, hop 64)."""
        return self.macs_per_frame() * float(frames_per_second)
