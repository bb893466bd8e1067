"""Model files for the runtimes: int8 ``.tflite`` (from the QAT network), float ``.tflite`` and ONNX (float network).

- :func:`convert_int8`: the TF mirror with fake-quant nodes, converted with int8 inputs
  and outputs and per-tensor dense weights
  (``_experimental_disable_per_channel_quantization_for_dense_layers``: per-channel
  requantization would replace the QAT weight scales; DESIGN.md measured ~16 dB lost).
  No representative dataset: every range comes from the fake-quant nodes.
- :func:`convert_float`: the same mirror without fake-quant nodes, fed the float weights.
- :func:`export_onnx`: the float step form through ``torch.onnx`` (TorchScript exporter;
  the dynamo exporter needs ``onnxscript``, which is not installed), batch axis dynamic.

All three take ``features`` (B, F), ``audiogram`` (B, 8), ``state`` (B, S) and return
``nr_fraction``, ``hlc_fraction`` (B, bins) and ``new_state`` (B, S): the sigmoid values,
which the manifest maps to dB (see :mod:`hearmask.quantize.qat_model`).
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from hearmask.model.network import MaskNet
from hearmask.quantize.qat_model import QuantMaskNet
from hearmask.quantize.tf_mirror import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    MirrorParameters,
    StepModule,
    float_parameters,
    quantized_parameters,
)


def _convert(parameters: MirrorParameters) -> bytes:
    import tensorflow as tf

    module = StepModule(parameters)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.step.get_concrete_function()], module)
    if parameters.quantized:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return bytes(converter.convert())


def convert_int8(network: QuantMaskNet) -> bytes:
    """The fully int8 ``.tflite`` of a (calibrated or trained) QAT network."""
    was_training = network.training
    network.eval()
    try:
        return _convert(quantized_parameters(network))
    finally:
        network.train(was_training)


def convert_float(network: MaskNet) -> bytes:
    """The float32 ``.tflite`` of the float network's step form."""
    return _convert(float_parameters(network))


class _FloatStepFractions(nn.Module):
    """:meth:`MaskNet.step_fractions` as a module, so ONNX sees the same outputs as the ``.tflite``."""

    def __init__(self, network: MaskNet):
        super().__init__()
        self.network = network

    def forward(self, features, audiogram, state):
        return self.network.step_fractions(features, audiogram, state)


def export_onnx(network: MaskNet) -> bytes:
    """ONNX bytes of the float step (opset 17), dynamic batch axis."""
    config = network.config
    example = (torch.zeros(1, config.num_features), torch.zeros(1, config.audiogram_size),
               torch.zeros(1, config.state_size))
    buffer = io.BytesIO()
    dynamic_axes = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    was_training = network.training
    network.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(_FloatStepFractions(network), example, buffer, input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes, opset_version=17,
                              dynamo=False)
    finally:
        network.train(was_training)
    return buffer.getvalue()
