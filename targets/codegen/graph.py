"""Read a ``.tflite`` into what the C generator needs: tensors with their constant data, ops
with their builtin options, and the subgraph's inputs and outputs.

Structure and int8 checks come from :mod:`hearmask.quantize.tflite_inspect` (one reader for
every command); this module adds what the generator needs beyond the summary: constant
buffer contents and each op's options (fused activation, slice masks, axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.quantize.tflite_inspect import IoTensor, TensorSummary, check_int8_target, inspect_tflite

_NUMPY_TYPES = {"int8": np.int8, "int32": np.int32}


@dataclass(frozen=True)
class Tensor:
    summary: TensorSummary
    data: np.ndarray | None  # constant contents (shape ``summary.shape``), None for activations

    @property
    def index(self) -> int:
        return self.summary.index

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.summary.shape

    @property
    def size(self) -> int:
        return int(np.prod(self.summary.shape, dtype=np.int64))

    @property
    def scale(self) -> float:
        return self.summary.quantization.scale

    @property
    def zero_point(self) -> int:
        return self.summary.quantization.zero_point


@dataclass(frozen=True)
class Op:
    index: int
    name: str  # builtin operator name
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: object | None  # the schema's *OptionsT object

    def describe(self) -> str:
        return f"op {self.index} ({self.name})"


@dataclass(frozen=True)
class Graph:
    source: str
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[IoTensor, ...]  # subgraph input order
    outputs: tuple[IoTensor, ...]


def read_graph(model_bytes: bytes, source: str = "model") -> Graph:
    """Parse and check a fully int8 ``.tflite`` (:class:`HearmaskError` for anything else)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytes(model_bytes)
    summary = inspect_tflite(data, source)
    check_int8_target(summary, source)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = []
    for tensor_summary, tensor in zip(summary.tensors, graph.tensors or []):
        contents = None
        if tensor_summary.is_constant:
            contents = _buffer_array(data, buffers[tensor.buffer], tensor_summary, source)
        tensors.append(Tensor(tensor_summary, contents))
    ops = tuple(Op(index, op_summary.name, op_summary.inputs, op_summary.outputs, operator.builtinOptions)
                for index, (op_summary, operator) in enumerate(zip(summary.ops, graph.operators or [])))
    return Graph(source, tuple(tensors), ops, summary.inputs, summary.outputs)


def _buffer_array(data: bytes, buffer, tensor: TensorSummary, source: str) -> np.ndarray:
    if tensor.dtype not in _NUMPY_TYPES:
        raise HearmaskError(f"{source}: constant tensor {tensor.name!r} is {tensor.dtype}; the C generator accepts "
                            "int8 and int32 constants")
    if buffer.data is not None and len(buffer.data) > 0:
        raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    else:  # large models keep buffers outside the flatbuffer (offset/size)
        raw = data[buffer.offset: buffer.offset + buffer.size]
    values = np.frombuffer(raw, dtype=np.dtype(_NUMPY_TYPES[tensor.dtype]).newbyteorder("<"))
    expected = int(np.prod(tensor.shape, dtype=np.int64))
    if values.size != expected:
        raise HearmaskError(f"{source}: constant tensor {tensor.name!r} holds {values.size} values for shape "
                            f"{list(tensor.shape)} ({expected} expected)")
    return values.astype(_NUMPY_TYPES[tensor.dtype]).reshape(tensor.shape)
