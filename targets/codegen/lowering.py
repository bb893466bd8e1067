"""Turn each TFLite op into calls of the hand-written kernels in ``c/hm_kernels.c``.

A :class:`LoweredOp` lists the kernel calls of one TFLite op, the parameter structs they
take (all integers computed at generation time by :mod:`.tflm_arithmetic`, as TFLM's
Prepare computes them) and any op-specific constant arrays. Tensors stay symbolic
(:class:`TensorRef`); :mod:`.emit` maps them to graph inputs, constants or the arena.

Supported: the int8 ops of :data:`hearmask.quantize.tflite_inspect.INT8_TARGET_OPS`
(FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH, CONCATENATION, STRIDED_SLICE, RESHAPE,
SPLIT) with per-tensor quantization, symmetric int8 weights and int32 biases. ADD/SUB/MUL
take equal shapes or a single-element operand; data movement ops become copy runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.targets.codegen import tflm_arithmetic as arithmetic
from hearmask.targets.codegen.activation_tables import activation_table
from hearmask.targets.codegen.graph import Graph, Op, Tensor

LOGISTIC_OUTPUT = (1.0 / 256.0, -128)  # (scale, zero point) TFLM's int8 LOGISTIC writes
TANH_OUTPUT = (1.0 / 128.0, 0)


@dataclass(frozen=True)
class TensorRef:
    index: int


@dataclass(frozen=True)
class ConstArray:
    """An op-specific constant (fused biases, copy runs): ``name`` is unique within the model."""

    name: str
    c_type: str  # "int8_t", "int32_t" or "hm_copy_run_t"
    values: tuple  # flat ints, or (source_offset, target_offset, length) triples

    @property
    def nbytes(self) -> int:
        return len(self.values) * {"hm_copy_run_t": 12, "int32_t": 4, "int8_t": 1}[self.c_type]


@dataclass(frozen=True)
class KernelCall:
    """``function(&params, *args)`` (``params`` omitted when None). Arguments and parameter
    fields are ints, :class:`TensorRef` (a pointer to that tensor's data) or a ConstArray name (str)."""

    function: str
    params_type: str | None
    params: tuple
    args: tuple


@dataclass(frozen=True)
class LoweredOp:
    op: Op
    consts: tuple[ConstArray, ...]
    calls: tuple[KernelCall, ...]

    @property
    def reads(self) -> tuple[int, ...]:
        return tuple(i for i in self.op.inputs if i >= 0)

    @property
    def writes(self) -> tuple[int, ...]:
        return self.op.outputs


def lower_graph(graph: Graph, activation_tables: bool = True) -> tuple[LoweredOp, ...]:
    """One :class:`LoweredOp` per op, in graph order. ``activation_tables``: LOGISTIC/TANH as
    256-entry lookup tables (fast) instead of per-element fixed-point evaluation; same results."""
    lowered = []
    for op in graph.ops:
        lowering = _LOWERINGS.get(op.name)
        if lowering is None:
            raise HearmaskError(f"{graph.source}: {op.describe()} is not supported by the C generator; supported ops: "
                                f"{', '.join(sorted(_LOWERINGS))}")
        if op.name in ("LOGISTIC", "TANH"):
            lowered.append(_fixed_activation(graph, op, activation_tables))
        else:
            lowered.append(lowering(graph, op))
    return tuple(lowered)


# ---- helpers


def _tensor(graph: Graph, op: Op, position: int, role: str) -> Tensor:
    if position >= len(op.inputs) or op.inputs[position] < 0:
        raise HearmaskError(f"{graph.source}: {op.describe()} has no {role} (input {position})")
    return graph.tensors[op.inputs[position]]


def _output(graph: Graph, op: Op, position: int = 0) -> Tensor:
    return graph.tensors[op.outputs[position]]


def _activation(graph: Graph, op: Op, output: Tensor) -> tuple[int, int]:
    fused = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    return arithmetic.activation_range(fused, output.scale, output.zero_point, f"{graph.source}: {op.describe()}")


def _require_quantized(graph: Graph, op: Op, *tensors: Tensor) -> None:
    for tensor in tensors:
        if tensor.summary.per_channel:
            raise HearmaskError(
                f"{graph.source}: {op.describe()} uses tensor {tensor.name!r} with per-channel quantization "
                f"({tensor.summary.dtype}, shape {list(tensor.shape)}); the C generator accepts per-tensor int8 only "
                "(convert with _experimental_disable_per_channel_quantization_for_dense_layers = True)")
        if tensor.summary.dtype != "int8" or tensor.summary.quantization is None:
            raise HearmaskError(f"{graph.source}: {op.describe()} uses tensor {tensor.name!r} of type "
                                f"{tensor.summary.dtype} without per-tensor int8 quantization; accepted: int8 tensors "
                                "with one scale and zero point")


def _constant_ints(graph: Graph, op: Op, position: int, role: str) -> np.ndarray:
    tensor = _tensor(graph, op, position, role)
    if tensor.data is None or tensor.summary.dtype != "int32":
        raise HearmaskError(f"{graph.source}: {op.describe()} needs a constant int32 {role}; tensor {tensor.name!r} is "
                            f"{'computed at run time' if tensor.data is None else tensor.summary.dtype}")
    return tensor.data.reshape(-1).astype(np.int64)


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    return ((np.asarray(values, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def _runs_from_indices(source_indices: np.ndarray) -> tuple[tuple[int, int, int], ...]:
    """Copy runs that write ``target[i] = source[source_indices[i]]`` for consecutive i."""
    indices = np.asarray(source_indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        return ()
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [indices.size]])
    return tuple((int(indices[s]), int(s), int(e - s)) for s, e in zip(starts, ends))


def _copy_call(name: str, runs: tuple, source: Tensor, target: Tensor) -> tuple[ConstArray, KernelCall]:
    array = ConstArray(name, "hm_copy_run_t", runs)
    return array, KernelCall("hm_copy_runs", None, (), (name, len(runs), TensorRef(source.index),
                                                         TensorRef(target.index)))


def _elementwise_strides(graph: Graph, op: Op, first: Tensor, second: Tensor, output: Tensor) -> tuple[int, int]:
    """1 for an operand of the output's size, 0 for a broadcast single element."""
    try:
        broadcast = tuple(np.broadcast_shapes(first.shape, second.shape))
    except ValueError:
        broadcast = None
    strides = []
    for operand in (first, second):
        if operand.size == output.size and broadcast == tuple(output.shape):
            strides.append(1)
        elif operand.size == 1:
            strides.append(0)
        else:
            raise HearmaskError(
                f"{graph.source}: {op.describe()} broadcasts shapes {list(first.shape)} and {list(second.shape)} to "
                f"{list(output.shape)}; the C generator accepts equal shapes or a single-element operand")
    return strides[0], strides[1]


# ---- ops


def _fully_connected(graph: Graph, op: Op) -> LoweredOp:
    source = f"{graph.source}: {op.describe()}"
    inputs = _tensor(graph, op, 0, "input")
    weights = _tensor(graph, op, 1, "weights")
    output = _output(graph, op)
    _require_quantized(graph, op, inputs, weights, output)
    if weights.data is None or len(weights.shape) != 2:
        raise HearmaskError(f"{source}: weights {weights.name!r} must be a constant 2-D int8 tensor")
    if weights.zero_point != 0:
        raise HearmaskError(f"{source}: weights {weights.name!r} have zero point {weights.zero_point}; TFLite int8 "
                            "weights are symmetric (zero point 0)")
    if int(getattr(op.options, "weightsFormat", 0) or 0) != 0:
        raise HearmaskError(f"{source}: only the default weights format is supported")
    output_depth, accum_depth = weights.shape
    batches = output.size // output_depth if output_depth else 0
    if inputs.size != batches * accum_depth or output.size != batches * output_depth:
        raise HearmaskError(f"{source}: input {list(inputs.shape)}, weights {list(weights.shape)} and output "
                            f"{list(output.shape)} do not form a matrix product")
    row_sums = weights.data.astype(np.int64).sum(axis=1)
    bias = np.zeros(output_depth, np.int64)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias_tensor = graph.tensors[op.inputs[2]]
        if bias_tensor.data is None or bias_tensor.summary.dtype != "int32" or bias_tensor.size != output_depth:
            raise HearmaskError(f"{source}: bias {bias_tensor.name!r} must be a constant int32 vector of "
                                f"{output_depth} values (got {bias_tensor.summary.dtype} {list(bias_tensor.shape)})")
        bias = bias_tensor.data.reshape(-1).astype(np.int64)
    # TFLM: acc = sum w*(x - zp_in) + bias; here acc = (bias - zp_in*sum w) + sum w*x, equal modulo 2^32.
    fused_bias = _wrap_int32(bias - inputs.zero_point * row_sums)
    multiplier, shift = arithmetic.fully_connected_multiplier(inputs.scale, weights.scale, output.scale)
    low, high = _activation(graph, op, output)
    bias_array = ConstArray(f"op{op.index}_fused_bias", "int32_t", tuple(int(v) for v in fused_bias))
    call = KernelCall("hm_fully_connected", "hm_fully_connected_params_t",
                      (batches, accum_depth, output_depth, TensorRef(weights.index), bias_array.name, multiplier, shift,
                       output.zero_point, low, high),
                      (TensorRef(inputs.index), TensorRef(output.index)))
    return LoweredOp(op, (bias_array,), (call,))


def _add_or_sub(graph: Graph, op: Op) -> LoweredOp:
    first, second = _tensor(graph, op, 0, "first input"), _tensor(graph, op, 1, "second input")
    output = _output(graph, op)
    _require_quantized(graph, op, first, second, output)
    stride1, stride2 = _elementwise_strides(graph, op, first, second, output)
    compute = arithmetic.add_multipliers if op.name == "ADD" else arithmetic.sub_multipliers
    multipliers = compute(first.scale, second.scale, output.scale, f"{graph.source}: {op.describe()}")
    low, high = _activation(graph, op, output)
    call = KernelCall("hm_add" if op.name == "ADD" else "hm_sub", "hm_add_params_t",
                      (output.size, arithmetic.ADD_SUB_LEFT_SHIFT,
                       -first.zero_point, *multipliers.input1, stride1,
                       -second.zero_point, *multipliers.input2, stride2,
                       *multipliers.output, output.zero_point, low, high),
                      (TensorRef(first.index), TensorRef(second.index), TensorRef(output.index)))
    return LoweredOp(op, (), (call,))


def _mul(graph: Graph, op: Op) -> LoweredOp:
    first, second = _tensor(graph, op, 0, "first input"), _tensor(graph, op, 1, "second input")
    output = _output(graph, op)
    _require_quantized(graph, op, first, second, output)
    stride1, stride2 = _elementwise_strides(graph, op, first, second, output)
    multiplier, shift = arithmetic.mul_multiplier(first.scale, second.scale, output.scale)
    low, high = _activation(graph, op, output)
    call = KernelCall("hm_mul", "hm_mul_params_t",
                      (output.size, -first.zero_point, stride1, -second.zero_point, stride2, multiplier, shift,
                       output.zero_point, low, high),
                      (TensorRef(first.index), TensorRef(second.index), TensorRef(output.index)))
    return LoweredOp(op, (), (call,))


def _fixed_activation(graph: Graph, op: Op, as_table: bool = True) -> LoweredOp:
    inputs, output = _tensor(graph, op, 0, "input"), _output(graph, op)
    _require_quantized(graph, op, inputs, output)
    expected = LOGISTIC_OUTPUT if op.name == "LOGISTIC" else TANH_OUTPUT
    if not np.isclose(output.scale, expected[0], rtol=1e-6) or output.zero_point != expected[1]:
        raise HearmaskError(f"{graph.source}: {op.describe()} output {output.name!r} is quantized with scale "
                            f"{output.scale!r}, zero point {output.zero_point}; int8 {op.name} writes scale "
                            f"{expected[0]}, zero point {expected[1]}")
    params = arithmetic.fixed_activation_params(inputs.scale, f"{graph.source}: {op.describe()}")
    if as_table:
        table = activation_table(op.name, inputs.zero_point, inputs.scale)
        # Named by content: ops with the same input quantization share one table.
        array = ConstArray(f"{op.name.lower()}_table_{hashlib.sha256(table.tobytes()).hexdigest()[:12]}", "int8_t",
                           tuple(int(v) for v in table))
        call = KernelCall("hm_lookup", "hm_lookup_params_t", (output.size, array.name),
                          (TensorRef(inputs.index), TensorRef(output.index)))
        return LoweredOp(op, (array,), (call,))
    call = KernelCall("hm_logistic" if op.name == "LOGISTIC" else "hm_tanh", "hm_fixed_activation_params_t",
                      (output.size, inputs.zero_point, params.range_radius, params.multiplier, params.left_shift),
                      (TensorRef(inputs.index), TensorRef(output.index)))
    return LoweredOp(op, (), (call,))


def _require_same_quantization(graph: Graph, op: Op, tensors: list[Tensor], output: Tensor) -> None:
    for tensor in tensors:
        _require_quantized(graph, op, tensor)
        if (np.float32(tensor.scale), tensor.zero_point) != (np.float32(output.scale), output.zero_point):
            raise HearmaskError(
                f"{graph.source}: {op.describe()} input {tensor.name!r} is quantized as ({tensor.scale!r}, "
                f"{tensor.zero_point}) but its output as ({output.scale!r}, {output.zero_point}); TFLite Micro's int8 "
                f"{op.name} requires equal scales and zero points")


def _concatenation(graph: Graph, op: Op) -> LoweredOp:
    output = _output(graph, op)
    inputs = [graph.tensors[i] for i in op.inputs]
    _require_quantized(graph, op, output)
    _require_same_quantization(graph, op, inputs, output)
    if int(getattr(op.options, "fusedActivationFunction", 0) or 0) != 0:
        raise HearmaskError(f"{graph.source}: {op.describe()} has a fused activation; int8 CONCATENATION takes none")
    rank = len(output.shape)
    axis = int(op.options.axis)
    axis = axis + rank if axis < 0 else axis
    outer = int(np.prod(output.shape[:axis], dtype=np.int64))
    output_inner = int(np.prod(output.shape[axis:], dtype=np.int64))
    consts, calls, offset = [], [], 0
    for position, tensor in enumerate(inputs):
        inner = int(np.prod(tensor.shape[axis:], dtype=np.int64)) if len(tensor.shape) == rank else tensor.size
        runs = tuple((o * inner, o * output_inner + offset, inner) for o in range(outer) if inner)
        offset += inner
        if runs:
            array, call = _copy_call(f"op{op.index}_runs{position}", runs, tensor, output)
            consts.append(array)
            calls.append(call)
    if offset != output_inner:
        raise HearmaskError(f"{graph.source}: {op.describe()} inputs do not fill its output {list(output.shape)}")
    return LoweredOp(op, tuple(consts), tuple(calls))


def _slice_bounds(size: int, begin: int, end: int, stride: int, begin_masked: bool, end_masked: bool,
                  shrink: bool) -> list[int]:
    """Indices one axis keeps (TFLite reference StridedSlice: offset negative indices, clamp, then masks)."""
    def clamp(value: int, low: int, high: int) -> int:
        return max(low, min(high, value))

    start = begin + size if begin < 0 else begin
    start = clamp(start, 0, size) if stride > 0 else clamp(start, -1, size - 1)
    if begin_masked:
        start = 0 if stride > 0 else size - 1
    if shrink:
        return [start] if start < size else []
    stop = end + size if end < 0 else end
    stop = clamp(stop, 0, size) if stride > 0 else clamp(stop, -1, size - 1)
    if end_masked:
        stop = size if stride > 0 else -1
    return list(range(start, stop, stride))


def _strided_slice(graph: Graph, op: Op) -> LoweredOp:
    source = f"{graph.source}: {op.describe()}"
    inputs, output = _tensor(graph, op, 0, "input"), _output(graph, op)
    _require_same_quantization(graph, op, [inputs], output)
    begin = _constant_ints(graph, op, 1, "begin")
    end = _constant_ints(graph, op, 2, "end")
    strides = _constant_ints(graph, op, 3, "strides")
    options = op.options
    if int(options.ellipsisMask or 0) or int(options.newAxisMask or 0) or bool(getattr(options, "offset", False)):
        raise HearmaskError(f"{source}: ellipsis, new-axis and offset slicing are not supported (TFLite Micro ignores "
                            "them); use plain begin/end/stride slices")
    rank = len(inputs.shape)
    if not len(begin) == len(end) == len(strides) == rank or np.any(strides == 0):
        raise HearmaskError(f"{source}: begin/end/strides must have {rank} entries and non-zero strides")
    axes = []
    for axis in range(rank):
        bit = 1 << axis
        axes.append(_slice_bounds(inputs.shape[axis], int(begin[axis]), int(end[axis]), int(strides[axis]),
                                  bool(options.beginMask & bit), bool(options.endMask & bit),
                                  bool(options.shrinkAxisMask & bit)))
    indices = np.arange(inputs.size).reshape(inputs.shape)[np.ix_(*axes)].reshape(-1)
    if indices.size != output.size:
        raise HearmaskError(f"{source}: the slice selects {indices.size} values but the output has {output.size}")
    array, call = _copy_call(f"op{op.index}_runs", _runs_from_indices(indices), inputs, output)
    return LoweredOp(op, (array,), (call,))


def _reshape(graph: Graph, op: Op) -> LoweredOp:
    inputs, output = _tensor(graph, op, 0, "input"), _output(graph, op)
    _require_same_quantization(graph, op, [inputs], output)
    if inputs.size != output.size:
        raise HearmaskError(f"{graph.source}: {op.describe()} reshapes {inputs.size} values into {output.size}")
    array, call = _copy_call(f"op{op.index}_runs", ((0, 0, output.size),), inputs, output)
    return LoweredOp(op, (array,), (call,))


def _split(graph: Graph, op: Op) -> LoweredOp:
    axis_values = _constant_ints(graph, op, 0, "axis")
    inputs = _tensor(graph, op, 1, "input")
    outputs = [graph.tensors[i] for i in op.outputs]
    rank = len(inputs.shape)
    axis = int(axis_values[0])
    axis = axis + rank if axis < 0 else axis
    for output in outputs:
        _require_same_quantization(graph, op, [inputs], output)
    parts = np.split(np.arange(inputs.size).reshape(inputs.shape), len(outputs), axis=axis)
    consts, calls = [], []
    for position, (part, output) in enumerate(zip(parts, outputs)):
        if part.size != output.size:
            raise HearmaskError(f"{graph.source}: {op.describe()} output {position} has {output.size} values, the "
                                f"split gives {part.size}")
        array, call = _copy_call(f"op{op.index}_runs{position}", _runs_from_indices(part), inputs, output)
        consts.append(array)
        calls.append(call)
    return LoweredOp(op, tuple(consts), tuple(calls))


_LOWERINGS = {
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add_or_sub,
    "SUB": _add_or_sub,
    "MUL": _mul,
    "LOGISTIC": _fixed_activation,
    "TANH": _fixed_activation,
    "CONCATENATION": _concatenation,
    "STRIDED_SLICE": _strided_slice,
    "RESHAPE": _reshape,
    "SPLIT": _split,
}
