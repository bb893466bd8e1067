"""The QAT form of :class:`~hearmask.model.network.MaskNet`: Brevitas fake quantization at every int8 op boundary.

:class:`QuantMaskNet` computes exactly the step form of the float network, with a
quantizer wherever the int8 TFLite graph has a tensor (DESIGN.md "Quantization and
conversion"). Names are the quant points the TensorFlow mirror reproduces
(:mod:`hearmask.quantize.tf_mirror`):

=============================================  ===========================  ===================
quant point (module)                           TFLite op producing it       quantizer
=============================================  ===========================  ===================
``features_input``                             model input (B, F)           calibrated
``audiogram_input``                            model input (B, 8)           fixed 0.01
``state_input``                                model input (B, L·H)         fixed 1/128 (state)
``encoder``, ``film``                          FULLY_CONNECTED              calibrated
``film_product``, ``film_sum``                 MUL, ADD (FiLM)              calibrated
``encoder_activation``                         TANH                         fixed 1/128
``recurrent_layers.i.input_linear``            FULLY_CONNECTED (W_i x + b)  calibrated
``recurrent_layers.i.hidden_linear``           FULLY_CONNECTED (W_h h + b)  calibrated
``recurrent_layers.i.gate_sum``                ADD (r, z pre-activation)    calibrated
``recurrent_layers.i.gate_activation``         LOGISTIC                     fixed 1/256
``recurrent_layers.i.reset_product``           MUL r ⊙ (W_hn h + b_hn)      calibrated
``recurrent_layers.i.candidate_sum``           ADD                          calibrated
``recurrent_layers.i.candidate_activation``    TANH                         fixed 1/128
``recurrent_layers.i.state_difference``        SUB h − n                    calibrated
``recurrent_layers.i.update_product``          MUL z ⊙ (h − n)              calibrated
``recurrent_layers.i.new_state``               ADD n + z ⊙ (h − n)          fixed 1/128 (state)
``nr_head``, ``hlc_head``                      FULLY_CONNECTED (per band)   calibrated
``nr_band_to_bin``, ``hlc_band_to_bin``        FULLY_CONNECTED, no bias     calibrated
``nr_activation``, ``hlc_activation``          LOGISTIC (model outputs)     fixed 1/256
=============================================  ===========================  ===================

Slices (gates, layer states) and concatenations (new state, head input) keep their
input's quantization, as TFLite's STRIDED_SLICE and CONCATENATION require.

**Outputs are the sigmoid values** (``nr_fraction``, ``hlc_fraction`` in [0, 255/256]),
not dB: the dB map is affine (``nr_db = nr_floor_db·p``,
``hlc_db = hlc_min_db + span_db·p`` with the per-bin span fixed by the audiogram,
:func:`hearmask.model.network.hlc_span_db`), so applying it after
dequantization on the host or device is exact, whereas an in-graph MUL/ADD would
requantize the same 256 levels once more and cost two ops per bin.

**The band → bin interpolation stays in the graph** (a FULLY_CONNECTED without bias,
weights fixed at the network's interpolation matrix, int8 per-tensor). The sigmoid
follows the interpolation (so the dB ranges hold per bin), so moving the interpolation
to the device would also move both sigmoids out of the int8 graph onto float code.
Cost in the default model (E = H = 64, 32 bands, 129 bins): 2·32·129 = 8256 MAC per hop
(12 % of the step) and 8.3 KB of int8 weights, well inside the DESIGN.md budgets.

**Concatenation conditioning:** ``encoder([f; a])`` is computed as
``W_f f + b + W_a a`` (two FULLY_CONNECTED and an ADD): identical in float, and it
avoids a CONCATENATION of the features and the audiogram, which have different scales.

Sequence form (:meth:`QuantMaskNet.forward`, used by QAT): everything outside the
recurrence runs on all frames at once (per-tensor quantization is element-wise, so this
equals the step form exactly); the GRU steps run frame by frame.

**Integer requantization (validation only).** Brevitas computes each FULLY_CONNECTED and
MUL in float and rounds once; the int8 kernels compute an int32 accumulator and rescale it
with a 31-bit multiplier, rounding once (``single``) or twice (``double``, gemmlowp), or in
float32 (``fp32``, XNNPACK), which moves a few outputs in a thousand by one LSB. Brevitas
computes each ADD / SUB in float32 too, while the kernels rescale both inputs to a common
integer grid (TFLite/TFLM: left shift 20 and per-input multipliers; XNNPACK: 21-bit
multipliers), which differs where the sum lies within about 1e-6 LSB of a half
(:mod:`hearmask.quantize.int8_reference`).
:func:`integer_requantization` makes the fake-quant model compute those four op types exactly
as a given runtime does (same integers, same multipliers, same rounding; no gradient), and
quantize the model inputs as the host does for the runtimes (:meth:`QuantSpec.quantize`), so
the golden chain can compare a runtime with the QAT model *in that runtime's arithmetic*
(:mod:`hearmask.quantize.validate`). Training always uses the Brevitas form.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantSigmoid, QuantTanh
from brevitas.quant_tensor import IntQuantTensor
from torch import nn

from hearmask.model.network import MaskNet, MaskNetConfig, hlc_span_db, mask_db_from_fractions
from hearmask.model.recurrent import PrimitiveGruCell
from hearmask.quantize.int8_reference import OP_ROUNDINGS, add_requantize, requantize
from hearmask.quantize.quant_spec import QuantSpec
from hearmask.quantize.quantizers import (
    AudiogramInputQuant,
    BiasQuant,
    CalibratedActQuant,
    SigmoidOutputQuant,
    TanhOutputQuant,
    WeightQuant,
)


def _activation(quant) -> QuantIdentity:
    return QuantIdentity(act_quant=quant, return_quant_tensor=True)


def _quant_linear(weight: torch.Tensor, bias: torch.Tensor | None, trainable: bool = True) -> QuantLinear:
    """A QuantLinear holding copies of ``weight`` (out, in) and ``bias`` (out,) or no bias."""
    out_features, in_features = weight.shape
    linear = QuantLinear(in_features, out_features, bias=bias is not None, weight_quant=WeightQuant,
                         bias_quant=BiasQuant, output_quant=CalibratedActQuant, return_quant_tensor=True)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    linear.weight.requires_grad_(trainable)
    return linear


def _value(tensor: IntQuantTensor | torch.Tensor) -> torch.Tensor:
    """The (dequantized) values. Quantizers return plain tensors while Brevitas's calibration
    mode has quantization switched off, so every helper accepts both."""
    return tensor.value if isinstance(tensor, IntQuantTensor) else tensor


def _with_value(reference: IntQuantTensor | torch.Tensor, value: torch.Tensor) -> IntQuantTensor | torch.Tensor:
    """``value`` (a slice/stack of tensors quantized like ``reference``) with ``reference``'s quantization."""
    if not isinstance(reference, IntQuantTensor):
        return value
    return IntQuantTensor(value, reference.scale, reference.zero_point, reference.bit_width, reference.signed,
                          reference.training)


def _concatenate(parts: list[IntQuantTensor | torch.Tensor]) -> IntQuantTensor | torch.Tensor:
    """Concatenate on the last axis tensors that share one quantization (TFLite CONCATENATION's rule)."""
    first = parts[0]
    for part in parts[1:]:
        if isinstance(first, IntQuantTensor) and not (
                torch.equal(part.scale, first.scale) and torch.equal(part.zero_point, first.zero_point)
                and part.signed == first.signed):
            raise RuntimeError("concatenated tensors must share one scale and zero point")
    return _with_value(first, torch.cat([_value(part) for part in parts], dim=-1))


def encoder_split(network: MaskNet) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """The float encoder as the QAT model's linears: ``encoder`` (features, with bias) and,
    for concatenation conditioning, ``encoder_audiogram`` (audiogram columns, no bias)."""
    weight, bias = network.encoder.weight.detach(), network.encoder.bias.detach()
    if network.config.conditioning == "film":
        return {"encoder": (weight, bias)}
    features = network.config.num_features
    return {"encoder": (weight[:, :features], bias), "encoder_audiogram": (weight[:, features:], None)}


def float_linear_parameters(network: MaskNet) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Float ``(weight (out, in), bias or None)`` of every linear of ``network``, named as in :class:`QuantMaskNet`."""
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = dict(encoder_split(network))
    if network.film is not None:
        tensors["film"] = (network.film.weight, network.film.bias)
    for layer, cell in enumerate(network.recurrent_layers):
        for part in ("input_linear", "hidden_linear"):
            linear = getattr(cell, part)
            tensors[f"recurrent_layers.{layer}.{part}"] = (linear.weight, linear.bias)
    for head in ("nr", "hlc"):
        linear = getattr(network, f"{head}_head")
        tensors[f"{head}_head"] = (linear.weight, linear.bias)
        tensors[f"{head}_band_to_bin"] = (network.band_to_bin, None)

    def to_numpy(tensor):
        return None if tensor is None else tensor.detach().cpu().numpy().astype(np.float32)

    return {name: (to_numpy(weight), to_numpy(bias)) for name, (weight, bias) in tensors.items()}


# ----- integer requantization of FULLY_CONNECTED, MUL, ADD and SUB (validation only) -----

REQUANTIZED_OPS = tuple(OP_ROUNDINGS)


def _centred_codes(tensor: IntQuantTensor) -> torch.Tensor:
    """``q − zero_point`` as int64 (``value = (q − zero_point)·scale``, so ``value/scale`` is an integer)."""
    return torch.round(tensor.value / tensor.scale).to(torch.int64)


def _scale_value(scale: torch.Tensor) -> float:
    return float(scale.reshape(-1)[0])


def _on_grid(reference: IntQuantTensor, centred: np.ndarray) -> IntQuantTensor:
    """Centred output codes (int64, before the zero point) on ``reference``'s grid (saturating)."""
    zero_point = int(round(float(reference.zero_point.reshape(-1)[0])))
    low, high = (-128, 127) if reference.signed else (0, 255)  # Brevitas unsigned codes = int8 codes + 128
    codes = np.clip(centred + zero_point, low, high)
    value = torch.as_tensor(codes - zero_point, dtype=reference.value.dtype) * reference.scale
    return _with_value(reference, value)


def _requantized(reference: IntQuantTensor, accumulator: torch.Tensor, scales: tuple[float, float, float],
                 rounding: str) -> IntQuantTensor:
    """``accumulator`` (int64) rescaled and rounded as a kernel does, on ``reference``'s grid (saturating)."""
    return _on_grid(reference, requantize(accumulator.cpu().numpy(), scales, rounding))


def _linear(linear: QuantLinear, inputs: IntQuantTensor, rounding: str | None) -> IntQuantTensor:
    """``linear(inputs)``; with ``rounding`` set, its output recomputed from the int32 accumulator."""
    output = linear(inputs)
    if rounding is None or not isinstance(output, IntQuantTensor):
        return output
    weight = linear.quant_weight()
    accumulator = _centred_codes(inputs) @ _centred_codes(weight).T
    if linear.bias is not None:
        accumulator = accumulator + _centred_codes(linear.bias_quant(linear.bias, inputs, weight))
    return _requantized(output, accumulator, tuple(_scale_value(t.scale) for t in (inputs, weight, output)),
                        rounding)


def _product(quantizer: QuantIdentity, first, second, rounding: str | None):
    """``quantizer(first · second)`` (an int8 MUL); with ``rounding`` set, recomputed in integers."""
    output = quantizer(_value(first) * _value(second))
    if rounding is None or not isinstance(output, IntQuantTensor):
        return output
    accumulator = _centred_codes(first) * _centred_codes(second)
    return _requantized(output, accumulator, tuple(_scale_value(t.scale) for t in (first, second, output)),
                        rounding)


def _sum(quantizer: QuantIdentity, first, second, rounding: str | None, subtract: bool = False):
    """``quantizer(first ± second)`` (an int8 ADD / SUB of two quantized tensors); with ``rounding`` set,
    recomputed from the input codes as the runtime's kernel does
    (:func:`~hearmask.quantize.int8_reference.add_requantize`)."""
    output = quantizer(_value(first) - _value(second) if subtract else _value(first) + _value(second))
    if rounding is None or not isinstance(output, IntQuantTensor):
        return output
    centred = add_requantize(_centred_codes(first).cpu().numpy(), _centred_codes(second).cpu().numpy(),
                             tuple(_scale_value(t.scale) for t in (first, second, output)), rounding, subtract)
    return _on_grid(output, centred)


@contextmanager
def integer_requantization(network: nn.Module, arithmetic: dict[str, str] | None) -> Iterator[nn.Module]:
    """Within the block, ``network``'s FULLY_CONNECTED, MUL, ADD and SUB outputs follow ``arithmetic``
    (``{"FULLY_CONNECTED": rounding, "MUL": rounding, "ADD": rounding, "SUB": rounding}``: FC and MUL a
    rounding of :data:`~hearmask.quantize.int8_reference.ROUNDINGS`, ADD and SUB one of
    :data:`~hearmask.quantize.int8_reference.ADD_ROUNDINGS`; None: Brevitas's float form), and its model
    inputs are quantized as the runtimes' inputs are (:meth:`QuantMaskNet._model_input`)."""
    if arithmetic is not None:
        unknown = {op: rounding for op, rounding in arithmetic.items()
                   if op not in OP_ROUNDINGS or rounding not in OP_ROUNDINGS[op]}
        if unknown or set(arithmetic) != set(REQUANTIZED_OPS):
            accepted = "; ".join(f"{op}: {', '.join(roundings)}" for op, roundings in OP_ROUNDINGS.items())
            raise ValueError(f"requantization arithmetic {arithmetic!r}; accepted: a rounding in each of "
                             f"{accepted}")
    modules = [module for module in network.modules() if hasattr(module, "requantization")]
    previous = [module.requantization for module in modules]
    for module in modules:
        module.requantization = None if arithmetic is None else dict(arithmetic)
    try:
        yield network
    finally:
        for module, value in zip(modules, previous):
            module.requantization = value


def _rounding(module: nn.Module, op: str) -> str | None:
    return None if module.requantization is None else module.requantization[op]


class QuantGruCell(nn.Module):
    """:class:`~hearmask.model.recurrent.PrimitiveGruCell` with a quantizer after every op."""

    def __init__(self, cell: PrimitiveGruCell):
        super().__init__()
        self.hidden_size = cell.hidden_size
        self.requantization: dict[str, str] | None = None  # see integer_requantization
        self.input_linear = _quant_linear(cell.input_linear.weight.detach(), cell.input_linear.bias.detach())
        self.hidden_linear = _quant_linear(cell.hidden_linear.weight.detach(), cell.hidden_linear.bias.detach())
        self.gate_sum = _activation(CalibratedActQuant)
        self.gate_activation = QuantSigmoid(act_quant=SigmoidOutputQuant, return_quant_tensor=True)
        self.reset_product = _activation(CalibratedActQuant)
        self.candidate_sum = _activation(CalibratedActQuant)
        self.candidate_activation = QuantTanh(act_quant=TanhOutputQuant, return_quant_tensor=True)
        self.state_difference = _activation(CalibratedActQuant)
        self.update_product = _activation(CalibratedActQuant)
        self.new_state = _activation(TanhOutputQuant)

    def step_from_projection(self, input_projection: IntQuantTensor, hidden: IntQuantTensor) -> IntQuantTensor:
        """``W_i x + b_i`` (B, 3H) and ``h`` (B, H), both quantized -> ``h'`` (B, H) on the state grid."""
        size = self.hidden_size
        fc_rounding, mul_rounding = _rounding(self, "FULLY_CONNECTED"), _rounding(self, "MUL")
        add_rounding, sub_rounding = _rounding(self, "ADD"), _rounding(self, "SUB")
        projected_input = _value(input_projection)
        hidden_projection = _linear(self.hidden_linear, hidden, fc_rounding)
        projected_hidden = _value(hidden_projection)
        gates = self.gate_activation(_sum(self.gate_sum, _with_value(input_projection, projected_input[:, : 2 * size]),
                                          _with_value(hidden_projection, projected_hidden[:, : 2 * size]),
                                          add_rounding))
        gate_values = _value(gates)
        reset_gate, update_gate = _with_value(gates, gate_values[:, :size]), _with_value(gates, gate_values[:, size:])
        reset_hidden = _product(self.reset_product, reset_gate,
                                _with_value(hidden_projection, projected_hidden[:, 2 * size :]), mul_rounding)
        candidate = self.candidate_activation(_sum(
            self.candidate_sum, _with_value(input_projection, projected_input[:, 2 * size :]), reset_hidden,
            add_rounding))
        difference = _sum(self.state_difference, hidden, candidate, sub_rounding, subtract=True)
        update = _product(self.update_product, update_gate, difference, mul_rounding)
        return _sum(self.new_state, candidate, update, add_rounding)

    def step(self, inputs: IntQuantTensor, hidden: IntQuantTensor) -> IntQuantTensor:
        return self.step_from_projection(_linear(self.input_linear, inputs, _rounding(self, "FULLY_CONNECTED")),
                                         hidden)

    def forward(self, inputs: IntQuantTensor, hidden: IntQuantTensor) -> IntQuantTensor:
        """Sequence form: ``inputs`` (B, K, in), ``hidden`` (B, H) -> (B, K, H)."""
        projections = _linear(self.input_linear, inputs, _rounding(self, "FULLY_CONNECTED"))
        outputs = []
        for frame in range(_value(inputs).shape[1]):
            hidden = self.step_from_projection(_with_value(projections, _value(projections)[:, frame]), hidden)
            outputs.append(_value(hidden))
        return _with_value(hidden, torch.stack(outputs, dim=1))


@dataclass(frozen=True)
class QuantizedLinear:
    """One FULLY_CONNECTED as the int8 graph holds it."""

    weight_int8: np.ndarray  # (out, in) int8, symmetric on [-127, 127]
    weight_scale: float
    bias_int32: np.ndarray | None  # (out,) int32 at scale input_scale · weight_scale
    bias_scale: float | None
    input: QuantSpec
    output: QuantSpec

    @property
    def weight(self) -> np.ndarray:
        """Dequantized weight (out, in) float32."""
        return (self.weight_int8.astype(np.float32) * np.float32(self.weight_scale)).astype(np.float32)

    @property
    def bias(self) -> np.ndarray | None:
        if self.bias_int32 is None:
            return None
        return (self.bias_int32.astype(np.float64) * self.bias_scale).astype(np.float32)


class QuantMaskNet(nn.Module):
    """Fake-quantized :class:`MaskNet` (see the module docstring); same interface as the float one."""

    def __init__(self, network: MaskNet):
        super().__init__()
        config = network.config
        self.config = config
        self.requantization: dict[str, str] | None = None  # see integer_requantization
        # Host-side dB map only (not part of the int8 graph): the audiogram -> per-bin span.
        self.register_buffer("audiogram_to_bin", network.audiogram_to_bin.detach().clone(), persistent=False)
        self.features_input = _activation(CalibratedActQuant)
        self.audiogram_input = _activation(AudiogramInputQuant)
        self.state_input = _activation(TanhOutputQuant)
        encoder = encoder_split(network)
        self.encoder = _quant_linear(*encoder["encoder"])
        if config.conditioning == "film":
            self.film = _quant_linear(network.film.weight.detach(), network.film.bias.detach())
            self.film_product = _activation(CalibratedActQuant)
            self.film_sum = _activation(CalibratedActQuant)
        else:
            self.encoder_audiogram = _quant_linear(*encoder["encoder_audiogram"])
            self.encoder_sum = _activation(CalibratedActQuant)
        self.encoder_activation = QuantTanh(act_quant=TanhOutputQuant, return_quant_tensor=True)
        self.recurrent_layers = nn.ModuleList(QuantGruCell(cell) for cell in network.recurrent_layers)
        for head in ("nr", "hlc"):
            linear = getattr(network, f"{head}_head")
            setattr(self, f"{head}_head", _quant_linear(linear.weight.detach(), linear.bias.detach()))
            # The interpolation matrix is fixed (a buffer in the float model): quantized, never trained.
            setattr(self, f"{head}_band_to_bin", _quant_linear(network.band_to_bin, None, trainable=False))
            setattr(self, f"{head}_activation", QuantSigmoid(act_quant=SigmoidOutputQuant, return_quant_tensor=True))

    # ----- shared pieces (any leading dims) -----

    def _model_input(self, quantizer: QuantIdentity, values: torch.Tensor) -> IntQuantTensor | torch.Tensor:
        """``quantizer(values)`` for a model input; under :func:`integer_requantization`, the codes the int8
        runtimes are given instead (:meth:`QuantSpec.quantize`: ``values/scale`` in float64, rounded half away
        from zero as TFLite's reference QUANTIZE). Brevitas adds the zero point in float32 and rounds half to
        even, which picks the other code where ``values/scale`` lies within about 1e-5 of a half (one feature
        value of 128 000 in the session-7 model's validation inputs)."""
        output = quantizer(values)
        if self.requantization is None or not isinstance(output, IntQuantTensor):
            return output
        spec = tensor_spec(output)
        codes = spec.quantize(values.detach().cpu().numpy()).astype(np.int64) - spec.zero_point
        return _on_grid(output, codes)

    def _encode(self, features: IntQuantTensor, audiogram: IntQuantTensor) -> IntQuantTensor:
        """(..., F) features and (B, A) audiogram, quantized -> (..., E) on the tanh grid."""
        sequence = _value(features).dim() == 3
        fc_rounding = _rounding(self, "FULLY_CONNECTED")
        if self.config.conditioning == "film":
            size = self.config.encoder_size
            encoded = _linear(self.encoder, features, fc_rounding)
            film_output = _linear(self.film, audiogram, fc_rounding)
            film = _value(film_output)
            film = film.unsqueeze(1) if sequence else film
            product = _product(self.film_product, encoded, _with_value(film_output, film[..., :size]),
                               _rounding(self, "MUL"))
            return self.encoder_activation(_sum(self.film_sum, product, _with_value(film_output, film[..., size:]),
                                                _rounding(self, "ADD")))
        from_features = _linear(self.encoder, features, fc_rounding)
        audiogram_output = _linear(self.encoder_audiogram, audiogram, fc_rounding)
        from_audiogram = _value(audiogram_output)
        from_audiogram = from_audiogram.unsqueeze(1) if sequence else from_audiogram
        return self.encoder_activation(_sum(self.encoder_sum, from_features,
                                            _with_value(audiogram_output, from_audiogram), _rounding(self, "ADD")))

    def _heads(self, recurrent_out: IntQuantTensor, encoded: IntQuantTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``nr_fraction``, ``hlc_fraction`` (..., num_bins), sigmoid values on the 1/256 grid."""
        head_input = _concatenate([recurrent_out, encoded])
        rounding = _rounding(self, "FULLY_CONNECTED")
        nr_fraction = self.nr_activation(_linear(self.nr_band_to_bin, _linear(self.nr_head, head_input, rounding),
                                                 rounding))
        hlc_fraction = self.hlc_activation(_linear(self.hlc_band_to_bin, _linear(self.hlc_head, head_input, rounding),
                                                   rounding))
        return _value(nr_fraction), _value(hlc_fraction)

    def fractions_to_db(self, nr_fraction, hlc_fraction, audiogram):
        """The exact affine map of the sigmoid outputs to dB for ``audiogram`` (B, 8) (torch)."""
        span_db = hlc_span_db(self.config, audiogram, self.audiogram_to_bin)
        return mask_db_from_fractions(self.config, nr_fraction, hlc_fraction, span_db)

    # ----- the two forms -----

    def initial_state(self, batch: int) -> torch.Tensor:
        reference = self.encoder.weight
        return torch.zeros(batch, self.config.state_size, dtype=reference.dtype, device=reference.device)

    def step_fractions(
        self, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One hop as the int8 graph computes it. ``features`` (B, F), ``audiogram`` (B, 8),
        ``state`` (B, S) -> ``nr_fraction``, ``hlc_fraction`` (B, num_bins), ``new_state`` (B, S);
        every output is a dequantized int8 value."""
        size = self.config.hidden_size
        state = self._model_input(self.state_input, state)
        layer_output = encoded = self._encode(self._model_input(self.features_input, features),
                                              self._model_input(self.audiogram_input, audiogram))
        new_states = []
        for layer, cell in enumerate(self.recurrent_layers):
            hidden = _with_value(state, _value(state)[:, layer * size : (layer + 1) * size])
            layer_output = cell.step(layer_output, hidden)
            new_states.append(layer_output)
        nr_fraction, hlc_fraction = self._heads(layer_output, encoded)
        return nr_fraction, hlc_fraction, _value(_concatenate(new_states))

    def step(
        self, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`MaskNet.step`'s interface: -> ``nr_db``, ``hlc_db`` (B, num_bins), ``new_state`` (B, S)."""
        nr_fraction, hlc_fraction, new_state = self.step_fractions(features, audiogram, state)
        nr_db, hlc_db = self.fractions_to_db(nr_fraction, hlc_fraction, audiogram)
        return nr_db, hlc_db, new_state

    def sequence_fractions(
        self, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sequence form of :meth:`step_fractions`: ``features`` (B, K, F), ``audiogram`` (B, 8),
        initial ``state`` (B, S) -> ``nr_fraction``, ``hlc_fraction`` (B, K, num_bins) and the
        state after each frame (B, K, S); equal to K calls of :meth:`step_fractions`."""
        size = self.config.hidden_size
        if state is None:
            state = self.initial_state(features.shape[0])
        state = self._model_input(self.state_input, state)
        layer_output = encoded = self._encode(self._model_input(self.features_input, features),
                                              self._model_input(self.audiogram_input, audiogram))
        new_states = []
        for layer, cell in enumerate(self.recurrent_layers):
            hidden = _with_value(state, _value(state)[:, layer * size : (layer + 1) * size])
            layer_output = cell(layer_output, hidden)
            new_states.append(layer_output)
        nr_fraction, hlc_fraction = self._heads(layer_output, encoded)
        return nr_fraction, hlc_fraction, _value(_concatenate(new_states))

    def forward(
        self,
        features: torch.Tensor,
        audiogram: torch.Tensor,
        state: torch.Tensor | None = None,
        fused_recurrence: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence form for QAT: ``features`` (B, K, F), ``audiogram`` (B, 8) -> ``nr_db``,
        ``hlc_db`` (B, K, num_bins). ``fused_recurrence`` is accepted for interface parity
        with :meth:`MaskNet.forward` and ignored (the fused kernel would bypass the quantizers)."""
        del fused_recurrence
        nr_fraction, hlc_fraction, _ = self.sequence_fractions(features, audiogram, state)
        return self.fractions_to_db(nr_fraction, hlc_fraction, audiogram)

    # ----- size and compute (as the float network) -----

    def count_parameters(self) -> int:
        """Trainable weights and biases, as :meth:`MaskNet.count_parameters` counts them (Brevitas's
        learned scales and zero points and the fixed interpolation matrices are not counted)."""
        return sum(parameter.numel() for name, parameter in self.named_parameters()
                   if parameter.requires_grad and name.rsplit(".", 1)[-1] in ("weight", "bias"))

    def macs_per_frame(self) -> int:
        return MaskNet(self.config).macs_per_frame()

    def macs_per_second(self, frames_per_second: float = 250.0) -> float:
        return self.macs_per_frame() * float(frames_per_second)

    # ----- what the int8 graph holds -----

    def activation_specs(self) -> dict[str, QuantSpec]:
        """int8 quantization of every quant point, by name (see the module docstring)."""
        specs = {}
        for name, module in self.named_modules():
            if isinstance(module, QuantLinear):
                specs[name] = proxy_spec(module.output_quant)
            elif isinstance(module, (QuantIdentity, QuantSigmoid, QuantTanh)):
                specs[name] = proxy_spec(module.act_quant)
        return specs

    @torch.no_grad()
    def quantized_linears(self) -> dict[str, QuantizedLinear]:
        """Every FULLY_CONNECTED with its int8 weights, int32 bias and input/output quantization.

        The input quantization of each linear is read from the tensor that reaches it in
        one step, so the int32 bias is Brevitas's own (scale = input scale · weight scale).
        """
        inputs: dict[str, IntQuantTensor] = {}
        hooks = [module.register_forward_pre_hook(lambda module, args, name=name: inputs.__setitem__(name, args[0]))
                 for name, module in self.named_modules() if isinstance(module, QuantLinear)]
        was_training = self.training
        self.eval()
        try:
            state = self.initial_state(1)
            config = self.config
            self.step_fractions(state.new_zeros(1, config.num_features), state.new_zeros(1, config.audiogram_size), state)
        finally:
            for hook in hooks:
                hook.remove()
            self.train(was_training)
        linears = {}
        for name, module in self.named_modules():
            if not isinstance(module, QuantLinear):
                continue
            weight = module.quant_weight()
            input_tensor = inputs[name]
            bias_int32 = bias_scale = None
            if module.bias is not None:
                bias = module.bias_quant(module.bias, input_tensor, weight)
                bias_int32 = bias.int().cpu().numpy().astype(np.int32)
                bias_scale = float(bias.scale.reshape(-1)[0])
            linears[name] = QuantizedLinear(
                weight_int8=weight.int().cpu().numpy().astype(np.int8),
                weight_scale=float(weight.scale.reshape(-1)[0]),
                bias_int32=bias_int32,
                bias_scale=bias_scale,
                input=tensor_spec(input_tensor),
                output=proxy_spec(module.output_quant),
            )
        return linears


def _int8_spec(scale: float, zero_point: float, signed: bool, bit_width: float) -> QuantSpec:
    if int(bit_width) != 8:
        raise RuntimeError(f"expected an 8-bit quantizer, got {bit_width} bits")
    # Brevitas unsigned codes u in [0, 255] are int8 codes u - 128 (zero point too).
    return QuantSpec(float(scale), int(round(float(zero_point))) - (0 if signed else 128))


def proxy_spec(proxy) -> QuantSpec:
    """int8 :class:`QuantSpec` of a Brevitas activation quant proxy (its current scale and zero point)."""
    with torch.no_grad():
        scale, zero_point, bit_width = proxy.scale(), proxy.zero_point(), proxy.bit_width()
    return _int8_spec(float(scale), float(zero_point), bool(proxy.is_signed), float(bit_width))


def tensor_spec(tensor: IntQuantTensor) -> QuantSpec:
    return _int8_spec(float(tensor.scale.reshape(-1)[0]), float(tensor.zero_point.reshape(-1)[0]), bool(tensor.signed),
                      float(tensor.bit_width))
