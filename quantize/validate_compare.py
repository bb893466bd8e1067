"""Run one utterance through each golden stage and compare: free-running, per step, per op, per layer.

Stages (:data:`STAGES`): ``float`` (the float step form, torch), ``fake_quant`` (Brevitas, torch),
``litert`` (default kernels), ``litert_ref`` (reference kernels), ``tflm`` (TFLM host
interpreter). Two ways to feed the recurrent state:

- **free-running** (:func:`run_free_running`): every stage feeds back its own state over
  the whole utterance, as a device does;
- **per step** (:func:`run_per_step`): every stage gets, at every hop, the state the
  fake-quant model produced at the previous hop (on the int8 state grid, so the int8
  runtimes see exactly the same codes), so a difference at one hop never reaches the next.

Errors are in LSBs of the output's int8 scale (:func:`compare`, :func:`error_histogram`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hearmask.model.network import mask_fractions_from_db
from hearmask.quantize.int8_reference import (
    ADD_ROUNDINGS,
    OP_ROUNDINGS,
    ROUNDINGS,
    add_requantize,
    float_rounded_table,
    logistic_table,
    requantize,
    tanh_table,
)
from hearmask.quantize.quant_spec import SIGMOID_OUTPUT, STATE, QuantSpec
from hearmask.quantize.scale_check import PASS_THROUGH_OPS, quant_point_of

STAGES = ("fake_quant", "litert", "litert_ref", "tflm")  # compared stages; float is the first reference
RUNTIME_STAGES = ("litert", "litert_ref", "tflm")
# Requantization rounding of each runtime's FULLY_CONNECTED and MUL kernels and arithmetic of its ADD and SUB
# kernels (int8_reference; checked on every output value by kernel_arithmetic): each runtime is compared with
# fake-quant computed in its own arithmetic.
RUNTIME_ARITHMETIC = {
    "litert": {"FULLY_CONNECTED": "fp32", "MUL": "fp32", "ADD": "xnnpack", "SUB": "xnnpack"},
    "litert_ref": {"FULLY_CONNECTED": "single", "MUL": "double", "ADD": "double", "SUB": "double"},
    "tflm": {"FULLY_CONNECTED": "double", "MUL": "double", "ADD": "double", "SUB": "double"},
}


def arithmetic_label(arithmetic: dict[str, str] | None) -> str:
    """``"FULLY_CONNECTED double, MUL double"``, or ``"Brevitas float (as trained)"`` for None."""
    if arithmetic is None:
        return "Brevitas float (as trained)"
    return ", ".join(f"{op} {rounding}" for op, rounding in arithmetic.items())
OUTPUTS = ("nr_fraction", "hlc_fraction", "new_state")
OUTPUT_SPECS = {"nr_fraction": SIGMOID_OUTPUT, "hlc_fraction": SIGMOID_OUTPUT, "new_state": STATE}


def compare(actual: np.ndarray, reference: np.ndarray, scale: float) -> dict[str, float]:
    """SNR (dB), max/mean |error| in LSBs of ``scale``, and cosine similarity."""
    actual = np.asarray(actual, np.float64).ravel()
    reference = np.asarray(reference, np.float64).ravel()
    error = actual - reference
    error_power = float(np.sum(error**2))
    signal_power = float(np.sum(reference**2))
    norms = float(np.linalg.norm(actual) * np.linalg.norm(reference))
    return {
        "snr_db": float("inf") if error_power == 0 else float(10 * np.log10(max(signal_power, 1e-30) / error_power)),
        "max_abs_lsb": float(np.max(np.abs(error)) / scale) if error.size else 0.0,
        "mean_abs_lsb": float(np.mean(np.abs(error)) / scale) if error.size else 0.0,
        "cosine": 1.0 if norms == 0 else float(np.dot(actual, reference) / norms),
    }


def error_histogram(actual: np.ndarray, reference: np.ndarray, scale: float) -> dict[str, list[int]]:
    """Counts of the signed error rounded to whole LSBs of ``scale``: ``{"lsb": [...], "count": [...]}``,
    every LSB value from the smallest to the largest error; the counts sum to the number of values."""
    error_lsb = np.rint((np.asarray(actual, np.float64) - np.asarray(reference, np.float64)).ravel() / scale)
    error_lsb = error_lsb.astype(np.int64)
    if error_lsb.size == 0:
        return {"lsb": [], "count": []}
    low, high = int(error_lsb.min()), int(error_lsb.max())
    counts = np.bincount(error_lsb - low, minlength=high - low + 1)
    return {"lsb": list(range(low, high + 1)), "count": [int(count) for count in counts]}


# ----- the stages over one utterance -----------------------------------------------------------


def run_fake_quant(network, features: np.ndarray, audiogram: np.ndarray, arithmetic: dict[str, str] | None = None,
                   ) -> dict[str, np.ndarray]:
    """Free-running fake-quant: ``features`` (K, F), ``audiogram`` (8,) -> outputs (K, ·) and the
    state after each hop (``new_state``, (K, S)). ``arithmetic``: FULLY_CONNECTED / MUL / ADD / SUB
    arithmetic of a runtime (:data:`RUNTIME_ARITHMETIC`; :func:`~hearmask.quantize.qat_model.integer_requantization`),
    None for Brevitas's float form (as trained)."""
    from hearmask.quantize.qat_model import integer_requantization

    with torch.no_grad(), integer_requantization(network, arithmetic):
        values = network.eval().sequence_fractions(torch.as_tensor(features)[None], torch.as_tensor(audiogram)[None])
    return {name: value[0].numpy() for name, value in zip(OUTPUTS, values)}


def states_in(new_states: np.ndarray) -> np.ndarray:
    """The state each hop starts from, given the state after each hop (K, S): zeros, then ``new_states[:-1]``."""
    return np.concatenate([np.zeros_like(new_states[:1]), new_states[:-1]], axis=0)


def run_float(network, features: np.ndarray, audiogram: np.ndarray, start_states: np.ndarray | None = None,
              ) -> dict[str, np.ndarray]:
    """The float step form. ``start_states`` None: free-running (its own state fed back); else (K, S), the
    state of every hop (per step, all hops in one batch)."""
    config = network.config
    audiogram_batch = torch.as_tensor(audiogram)[None]
    with torch.no_grad():
        if start_states is not None:
            hops = features.shape[0]
            values = network.step_fractions(torch.as_tensor(features), audiogram_batch.expand(hops, -1),
                                            torch.as_tensor(start_states, dtype=torch.float32))
            return {name: value.numpy() for name, value in zip(OUTPUTS, values)}
        nr_db, hlc_db = network(torch.as_tensor(features)[None], audiogram_batch)
        states, state = [], network.initial_state(1)
        for frame in range(features.shape[0]):  # the sequence form returns only the masks
            _, _, state = network.step(torch.as_tensor(features[frame : frame + 1]), audiogram_batch, state)
            states.append(state[0].numpy())
        nr_fraction, hlc_fraction = mask_fractions_from_db(config, nr_db, hlc_db, network.hlc_span_db(audiogram_batch))
    return {"nr_fraction": nr_fraction[0].numpy(), "hlc_fraction": hlc_fraction[0].numpy(),
            "new_state": np.stack(states)}


def run_runtime(runtime, features: np.ndarray, audiogram: np.ndarray, start_states: np.ndarray | None = None,
                ) -> dict[str, np.ndarray]:
    """One utterance hop by hop through an int8 runtime: free-running (``start_states`` None) or with the
    given state (K, S) at every hop; dequantized outputs (K, ·)."""
    specs = {entry.name: entry.tensor.quantization for entry in runtime.inputs}
    audiogram_codes = specs["audiogram"].quantize(audiogram[None])
    state = np.zeros(runtime.summary.input("state").tensor.shape, np.int8)
    outputs = {name: [] for name in OUTPUTS}
    for frame in range(features.shape[0]):
        if start_states is not None:
            state = specs["state"].quantize(start_states[frame : frame + 1])
        codes = runtime.invoke_unchecked({"features": specs["features"].quantize(features[frame : frame + 1]),
                                          "audiogram": audiogram_codes, "state": state})
        state = codes["new_state"]
        for name in OUTPUTS:
            outputs[name].append(codes[name][0])
    return {entry.name: entry.tensor.quantization.dequantize(np.stack(outputs[entry.name]))
            for entry in runtime.outputs}


# ----- runtime against runtime --------------------------------------------------------------------


def _input_codes(runtime, features: np.ndarray, audiogram: np.ndarray, frame: int, state: np.ndarray):
    specs = {entry.name: entry.tensor.quantization for entry in runtime.inputs}
    return {"features": specs["features"].quantize(features[frame : frame + 1]),
            "audiogram": specs["audiogram"].quantize(audiogram[None]), "state": state}


def per_step_lsb(reference, other, features: np.ndarray, audiogram: np.ndarray) -> dict[str, dict[str, float]]:
    """Both runtimes get identical int8 inputs every hop (state from ``reference``): per output,
    the largest difference in LSBs and the fraction of hops with any difference."""
    state = np.zeros(reference.summary.input("state").tensor.shape, np.int8)
    largest = {name: 0 for name in OUTPUTS}
    differing = {name: 0 for name in OUTPUTS}
    for frame in range(features.shape[0]):
        codes = _input_codes(reference, features, audiogram, frame, state)
        expected, actual = reference.invoke_codes(codes), other.invoke_codes(codes)
        for name in OUTPUTS:
            lsb = int(np.max(np.abs(expected[name].astype(np.int32) - actual[name].astype(np.int32))))
            largest[name] = max(largest[name], lsb)
            differing[name] += lsb > 0
        state = expected["new_state"]
    hops = max(features.shape[0], 1)
    return {name: {"max_abs_lsb": largest[name], "fraction_of_steps_differing": differing[name] / hops}
            for name in OUTPUTS}


def per_op_lsb(reference, other, features: np.ndarray, audiogram: np.ndarray) -> dict[str, dict[str, float]]:
    """Per op type: the largest output difference in LSBs between two int8 runtimes (both built with
    ``preserve_all_tensors``) over the op applications whose inputs were bit-identical in both,
    the fraction of output values that differed, and how many applications there were. Inputs and
    state as in :func:`per_step_lsb`. Single ops stay within 1 LSB; through the recurrence the
    differences compound, so whole-model outputs can differ by more."""
    summary = reference.summary
    state = np.zeros(summary.input("state").tensor.shape, np.int8)
    totals: dict[str, dict[str, float]] = {}
    for frame in range(features.shape[0]):
        codes = _input_codes(reference, features, audiogram, frame, state)
        expected = reference.invoke_codes(codes)
        other.invoke_codes(codes)
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def pair(index):
            if index not in cache:
                cache[index] = (reference.tensor(index).astype(np.int32), other.tensor(index).astype(np.int32))
            return cache[index]

        for op in summary.ops:
            inputs = [i for i in op.inputs if i >= 0 and not summary.tensors[i].is_constant]
            if not all(np.array_equal(*pair(i)) for i in inputs):
                continue
            differences = np.concatenate([np.abs(np.subtract(*pair(i))).ravel() for i in op.outputs])
            entry = totals.setdefault(op.name, {"max_abs_lsb": 0, "differing": 0, "values": 0, "cases": 0})
            entry["max_abs_lsb"] = max(entry["max_abs_lsb"], int(differences.max()))
            entry["differing"] += int(np.count_nonzero(differences))
            entry["values"] += differences.size
            entry["cases"] += 1
        state = expected["new_state"]
    return {name: {"max_abs_lsb": entry["max_abs_lsb"], "fraction_differing": entry["differing"] / entry["values"],
                   "cases": entry["cases"]} for name, entry in sorted(totals.items())}


def _requantization_inputs(summary, tensor_of, op) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The int32 accumulator (before requantization) and the scales ``(s_a, s_b, s_out)`` of a
    FULLY_CONNECTED or MUL application; ``tensor_of(index)`` gives a tensor's values after the invoke."""
    tensors = summary.tensors
    output = tensors[op.outputs[0]].quantization
    if op.name == "MUL":
        first, second = (tensors[i].quantization for i in op.inputs[:2])
        accumulator = ((tensor_of(op.inputs[0]).astype(np.int64) - first.zero_point)
                       * (tensor_of(op.inputs[1]).astype(np.int64) - second.zero_point))
        return accumulator, (first.scale, second.scale, output.scale)
    inputs, weights = op.inputs[0], op.inputs[1]  # FULLY_CONNECTED
    input_spec, weight_spec = tensors[inputs].quantization, tensors[weights].quantization
    accumulator = ((tensor_of(inputs).astype(np.int64) - input_spec.zero_point)
                   @ tensor_of(weights).astype(np.int64).T)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        accumulator = accumulator + tensor_of(op.inputs[2]).astype(np.int64)
    return accumulator, (input_spec.scale, weight_spec.scale, output.scale)


def kernel_arithmetic(runtime, constants_runtime, features: np.ndarray, audiogram: np.ndarray, hops: int,
                      ) -> dict[str, dict[str, Any]]:
    """Which integer arithmetic each op type of ``runtime`` follows, checked on every output value.

    ``runtime`` must preserve all tensors; ``constants_runtime`` (a LiteRT runtime of the same
    model) supplies the weights. Per op type: ``values`` checked and how many each model
    predicts — FULLY_CONNECTED / MUL: ``double``, ``single`` and ``fp32`` rounding
    (:func:`~hearmask.quantize.int8_reference.requantize`); ADD / SUB: ``double``, ``single`` and
    ``xnnpack`` (:func:`~hearmask.quantize.int8_reference.add_requantize`); LOGISTIC / TANH: ``fixed_point``
    (gemmlowp) and ``float_rounded`` tables. ``follows`` names the model that predicts every
    value (the first when both do, ``None`` when neither does).
    """
    summary = runtime.summary
    state = np.zeros(summary.input("state").tensor.shape, np.int8)
    models = {**OP_ROUNDINGS, "LOGISTIC": ("fixed_point", "float_rounded"), "TANH": ("fixed_point", "float_rounded")}
    totals: dict[str, dict[str, int]] = {}

    def tensor_of(index: int) -> np.ndarray:  # the runtime's activations, the constant runtime's weights
        return (constants_runtime if summary.tensors[index].is_constant else runtime).tensor(index)

    for frame in range(min(hops, features.shape[0])):
        outputs = runtime.invoke_codes(_input_codes(runtime, features, audiogram, frame, state))
        state = outputs["new_state"]
        for op in summary.ops:
            if op.name not in models:
                continue
            output_spec = summary.tensors[op.outputs[0]].quantization
            actual = runtime.tensor(op.outputs[0]).astype(np.int64)
            if op.name in ("FULLY_CONNECTED", "MUL"):
                accumulator, scales = _requantization_inputs(summary, tensor_of, op)
                predicted = {rounding: np.clip(requantize(accumulator, scales, rounding) + output_spec.zero_point,
                                               -128, 127) for rounding in ROUNDINGS}
            elif op.name in ("ADD", "SUB"):
                specs = [summary.tensors[i].quantization for i in op.inputs[:2]]
                first, second = (tensor_of(index).astype(np.int64) - spec.zero_point
                                 for index, spec in zip(op.inputs[:2], specs))
                scales = (specs[0].scale, specs[1].scale, output_spec.scale)
                predicted = {rounding: np.broadcast_to(np.clip(
                    add_requantize(first, second, scales, rounding, op.name == "SUB") + output_spec.zero_point,
                    -128, 127), actual.shape) for rounding in ADD_ROUNDINGS}
            else:
                input_spec = summary.tensors[op.inputs[0]].quantization
                codes = runtime.tensor(op.inputs[0]).astype(np.int64) + 128
                table_of = logistic_table if op.name == "LOGISTIC" else tanh_table
                table = table_of(input_spec.scale, input_spec.zero_point)
                rounded = float_rounded_table(op.name.lower(), input_spec.scale, input_spec.zero_point)
                predicted = {"fixed_point": table[codes], "float_rounded": rounded[codes]}
            entry = totals.setdefault(op.name, {"values": 0, **{model: 0 for model in models[op.name]}})
            entry["values"] += actual.size
            for model, values in predicted.items():
                entry[model] += int(np.count_nonzero(values.reshape(actual.shape) == actual))
    for name, entry in totals.items():
        entry["follows"] = next((model for model in models[name] if entry[model] == entry["values"]), None)
    return dict(sorted(totals.items()))


# ----- per layer against fake-quant --------------------------------------------------------------


def layer_comparison(runtime, network, features: np.ndarray, audiogram: np.ndarray, hops: int,
                     ) -> list[dict[str, Any]]:
    """Every quant point in graph order: an int8 runtime (built with ``preserve_all_tensors``) vs
    fake-quant, hop by hop with the fake-quant state as the int8 state input; errors in LSBs of
    the point's own scale.

    ``max_abs_lsb`` counts every hop (errors of earlier layers included); ``same_inputs_*`` only
    the hops where every input of the op equalled the fake-quant values bit for bit, i.e. the op's
    own error (slices and concatenations are traced back to the quant point they come from):
    its largest value and the fraction of its values that differ at all. A healthy layer stays
    within 1 LSB there; a layer whose weights or ranges are wrong does not (tflite-micro's
    layer-by-layer debugging idea: find the layer, then the cause).
    """
    summary = runtime.summary
    modules = dict(network.named_modules())
    producers = {index: op for op in summary.ops for index in op.outputs}
    inputs_by_name = {entry.tensor.index: entry.name + "_input" for entry in summary.inputs}

    def point_of(index: int) -> str:
        return inputs_by_name.get(index) or quant_point_of(summary.tensors[index].name)

    def source_points(index: int) -> set[str]:
        op = producers.get(index)
        if op is not None and op.name in PASS_THROUGH_OPS:
            return set().union(*(source_points(i) for i in op.inputs if i >= 0 and not summary.tensors[i].is_constant))
        return {point_of(index)}

    order: list[tuple[str, int, str, set[str]]] = [(point_of(e.tensor.index), e.tensor.index, "INPUT", set())
                                                   for e in summary.inputs]
    for op in summary.ops:
        if op.name in PASS_THROUGH_OPS:
            continue
        sources = set().union(*(source_points(i) for i in op.inputs if i >= 0 and not summary.tensors[i].is_constant))
        order += [(point_of(index), index, op.name, sources) for index in op.outputs]
    order = [entry for entry in order if entry[0] in modules]
    captured: dict[str, torch.Tensor] = {}
    hooks = [modules[point].register_forward_hook(
        lambda module, args, output, point=point: captured.__setitem__(point, getattr(output, "value", output)))
        for point, _, _, _ in order]
    stats = {point: {"errors": [], "references": [], "same_max": 0, "same_hops": 0, "same_differing": 0,
                     "same_values": 0} for point, _, _, _ in order}
    state = network.initial_state(1)
    specs = {entry.name: entry.tensor.quantization for entry in summary.inputs}
    try:
        with torch.no_grad():
            for frame in range(min(hops, features.shape[0])):
                runtime.invoke_unchecked(_input_codes(runtime, features, audiogram, frame,
                                                      specs["state"].quantize(state.numpy())))
                _, _, state = network.step_fractions(torch.as_tensor(features[frame : frame + 1]),
                                                     torch.as_tensor(audiogram)[None], state)
                exact: dict[str, bool] = {}
                for point, index, _, sources in order:
                    spec: QuantSpec = summary.tensors[index].quantization
                    actual_codes = runtime.tensor(index).astype(np.int32)
                    reference = captured[point].numpy().reshape(actual_codes.shape)
                    lsb = np.abs(actual_codes - spec.quantize(reference).astype(np.int32))
                    exact[point] = not lsb.any()
                    entry = stats[point]
                    entry["errors"].append(spec.dequantize(actual_codes) - reference)
                    entry["references"].append(reference)
                    if all(exact.get(source, False) for source in sources):
                        entry["same_max"] = max(entry["same_max"], int(lsb.max()))
                        entry["same_hops"] += 1
                        entry["same_differing"] += int(np.count_nonzero(lsb))
                        entry["same_values"] += lsb.size
    finally:
        for hook in hooks:
            hook.remove()
    layers = []
    for point, index, op, _ in order:
        entry = stats[point]
        error = np.concatenate([e.ravel() for e in entry["errors"]])
        reference = np.concatenate([r.ravel() for r in entry["references"]])
        metrics = compare(reference + error, reference, summary.tensors[index].quantization.scale)
        layers.append({"point": point, "op": op, **{k: round(v, 4) for k, v in metrics.items()},
                       "same_inputs_max_abs_lsb": entry["same_max"], "same_inputs_hops": entry["same_hops"],
                       "same_inputs_fraction_differing": entry["same_differing"] / max(entry["same_values"], 1)})
    return layers
