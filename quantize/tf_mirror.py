"""TensorFlow mirror of the mask network's step form, for conversion to TFLite.

The mirror computes exactly :meth:`hearmask.quantize.qat_model.QuantMaskNet.step_fractions`
(same op order and the same quant point names), with
``tf.quantization.fake_quant_with_min_max_vars`` wherever Brevitas quantizes:

- activations: ``min = (−128 − zero_point)·scale``, ``max = (127 − zero_point)·scale``,
  8 bits, full range (TF's codes 0..255 are the int8 codes + 128);
- weights: the Brevitas int8 weights dequantized, with ``min/max = ∓127·scale`` and
  ``narrow_range=True`` (codes 1..255, i.e. −127..127: symmetric, zero point 0);
- biases: the Brevitas int32 biases dequantized; the converter quantizes them back at
  input scale · weight scale, which recovers the same integers.

Both ends of every range are exact multiples of the scale, so TF's zero-point "nudging"
changes nothing and the converter's scales are Brevitas's (checked in the tests). The
same function without fake-quant nodes, fed the float network's weights, is the float
model (DESIGN.md "Quantization and conversion").

Batch size is fixed at 1 (one hop per invoke, as devices run it). Inputs and outputs
are named ``features``, ``audiogram``, ``state`` and ``nr_fraction``, ``hlc_fraction``,
``new_state`` (see :mod:`hearmask.quantize.qat_model` for their meaning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from hearmask.model.network import MaskNet, MaskNetConfig
from hearmask.quantize.qat_model import QuantizedLinear, QuantMaskNet, float_linear_parameters
from hearmask.quantize.quant_spec import QuantSpec

INPUT_NAMES = ("features", "audiogram", "state")
OUTPUT_NAMES = ("nr_fraction", "hlc_fraction", "new_state")


@dataclass(frozen=True)
class MirrorLinear:
    """One linear layer of the mirror: float weight (out, in), bias or None, and the
    weight quantization (None in the float model)."""

    weight: np.ndarray
    bias: np.ndarray | None
    weight_scale: float | None = None


@dataclass(frozen=True)
class MirrorParameters:
    """Everything the mirror needs: the network config, its linears by name, and the
    activation quantization by quant point name (None: the float model)."""

    config: MaskNetConfig
    linears: dict[str, MirrorLinear]
    activations: dict[str, QuantSpec] | None

    @property
    def quantized(self) -> bool:
        return self.activations is not None


def float_parameters(network: MaskNet) -> MirrorParameters:
    """The float network as mirror parameters (no fake quantization)."""
    linears = {name: MirrorLinear(weight, bias) for name, (weight, bias) in float_linear_parameters(network).items()}
    return MirrorParameters(network.config, linears, None)


def quantized_parameters(network: QuantMaskNet) -> MirrorParameters:
    """The QAT network's int8 weights, int32 biases and activation ranges as mirror parameters."""
    linears: dict[str, QuantizedLinear] = network.quantized_linears()
    mirrored = {name: MirrorLinear(linear.weight, linear.bias, linear.weight_scale) for name, linear in linears.items()}
    return MirrorParameters(network.config, mirrored, network.activation_specs())


class _StepGraph:
    """Builds the ops of one step from :class:`MirrorParameters` (called inside a tf.function)."""

    def __init__(self, parameters: MirrorParameters):
        self.parameters = parameters

    def quant(self, values: tf.Tensor, name: str) -> tf.Tensor:
        """Fake-quantize ``values`` at quant point ``name`` (identity in the float model)."""
        if not self.parameters.quantized:
            return tf.identity(values, name="quant")
        spec = self.parameters.activations[name]
        return tf.quantization.fake_quant_with_min_max_vars(
            values, min=np.float32(spec.min_value), max=np.float32(spec.max_value), num_bits=8, narrow_range=False)

    def linear(self, inputs: tf.Tensor, name: str) -> tf.Tensor:
        layer = self.parameters.linears[name]
        kernel = tf.constant(np.ascontiguousarray(layer.weight.T), dtype=tf.float32)  # (in, out)
        if self.parameters.quantized:
            limit = np.float32(127.0 * layer.weight_scale)
            kernel = tf.quantization.fake_quant_with_min_max_vars(kernel, min=-limit, max=limit, num_bits=8,
                                                                  narrow_range=True)
        outputs = tf.matmul(inputs, kernel)
        if layer.bias is not None:
            outputs = tf.nn.bias_add(outputs, tf.constant(layer.bias, dtype=tf.float32))
        return self.quant(outputs, name)

    def point(self, name: str, compute) -> tf.Tensor:
        """``compute()`` then quantize, all under the name scope ``name``: the converted
        tensor's name then starts with the quant point's name (:func:`quant_point_of`)."""
        with tf.name_scope(name):
            return self.quant(compute(), name)

    def dense(self, inputs: tf.Tensor, name: str) -> tf.Tensor:
        with tf.name_scope(name):
            return self.linear(inputs, name)

    def encode(self, features: tf.Tensor, audiogram: tf.Tensor) -> tf.Tensor:
        config = self.parameters.config
        if config.conditioning == "film":
            size = config.encoder_size
            encoded = self.dense(features, "encoder")
            film = self.dense(audiogram, "film")
            film_scale, film_shift = film[:, :size], film[:, size:]
            product = self.point("film_product", lambda: encoded * film_scale)
            summed = self.point("film_sum", lambda: product + film_shift)
        else:
            from_features = self.dense(features, "encoder")
            from_audiogram = self.dense(audiogram, "encoder_audiogram")
            summed = self.point("encoder_sum", lambda: from_features + from_audiogram)
        return self.point("encoder_activation", lambda: tf.tanh(summed))

    def gru_step(self, layer: int, inputs: tf.Tensor, hidden: tf.Tensor) -> tf.Tensor:
        size = self.parameters.config.hidden_size
        prefix = f"recurrent_layers.{layer}."
        projected_input = self.dense(inputs, prefix + "input_linear")
        projected_hidden = self.dense(hidden, prefix + "hidden_linear")
        # Slices stay outside the quant point scopes: they keep their input's quantization.
        input_gates, input_candidate = projected_input[:, : 2 * size], projected_input[:, 2 * size :]
        hidden_gates, hidden_candidate = projected_hidden[:, : 2 * size], projected_hidden[:, 2 * size :]
        gate_sum = self.point(prefix + "gate_sum", lambda: input_gates + hidden_gates)
        gates = self.point(prefix + "gate_activation", lambda: tf.sigmoid(gate_sum))
        reset_gate, update_gate = gates[:, :size], gates[:, size:]
        reset_hidden = self.point(prefix + "reset_product", lambda: reset_gate * hidden_candidate)
        candidate_sum = self.point(prefix + "candidate_sum", lambda: input_candidate + reset_hidden)
        candidate = self.point(prefix + "candidate_activation", lambda: tf.tanh(candidate_sum))
        difference = self.point(prefix + "state_difference", lambda: hidden - candidate)
        update = self.point(prefix + "update_product", lambda: update_gate * difference)
        return self.point(prefix + "new_state", lambda: candidate + update)

    def step(self, features: tf.Tensor, audiogram: tf.Tensor, state: tf.Tensor) -> dict[str, tf.Tensor]:
        config = self.parameters.config
        size = config.hidden_size
        features = self.point("features_input", lambda: features)
        audiogram = self.point("audiogram_input", lambda: audiogram)
        state = self.point("state_input", lambda: state)
        encoded = layer_output = self.encode(features, audiogram)
        new_states = []
        for layer in range(config.num_layers):
            layer_output = self.gru_step(layer, layer_output, state[:, layer * size : (layer + 1) * size])
            new_states.append(layer_output)
        head_input = tf.concat([layer_output, encoded], axis=1)
        outputs = {}
        for head in ("nr", "hlc"):
            logits = self.dense(self.dense(head_input, f"{head}_head"), f"{head}_band_to_bin")
            outputs[f"{head}_fraction"] = self.point(f"{head}_activation", lambda: tf.sigmoid(logits))
        outputs["new_state"] = tf.concat(new_states, axis=1) if len(new_states) > 1 else new_states[0]
        return outputs


class StepModule(tf.Module):
    """A ``tf.Module`` whose ``step`` signature is the hop: named inputs -> named outputs."""

    def __init__(self, parameters: MirrorParameters):
        super().__init__(name="hearmask_step")
        config = parameters.config
        graph = _StepGraph(parameters)
        signature = [
            tf.TensorSpec((1, config.num_features), tf.float32, name="features"),
            tf.TensorSpec((1, config.audiogram_size), tf.float32, name="audiogram"),
            tf.TensorSpec((1, config.state_size), tf.float32, name="state"),
        ]
        self.step = tf.function(graph.step, input_signature=signature, autograph=False)


def run_mirror(parameters: MirrorParameters, features: np.ndarray, audiogram: np.ndarray,
               state: np.ndarray) -> dict[str, np.ndarray]:
    """Evaluate the mirror in TensorFlow for one hop (batch 1): float arrays in, float arrays out."""
    outputs = StepModule(parameters).step(tf.constant(features, tf.float32), tf.constant(audiogram, tf.float32),
                                          tf.constant(state, tf.float32))
    return {name: value.numpy() for name, value in outputs.items()}
