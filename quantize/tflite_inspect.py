"""Open any ``.tflite`` (bytes), list its ops and tensors, and check it for an int8 target.

Every hearmask command that is given a ``.tflite`` reads it through :func:`read_tflite`,
so a truncated or foreign file, float or unsupported ops, or inputs that do not match
the manifest give one clear :class:`HearmaskError` instead of a crash deep inside an
interpreter. Parsing uses the flatbuffer schema shipped with LiteRT
(``ai_edge_litert.schema_py_generated``, no TensorFlow import); the LiteRT
interpreter's flatbuffer verifier is the final structural check.

An int8 target accepts (DESIGN.md "Quantization and conversion"):

- ops: :data:`INT8_TARGET_OPS`, each with int8 kernels in LiteRT and TFLM;
- activations (every non-constant tensor, model inputs and outputs included): int8 with
  per-tensor quantization parameters;
- constants: int8 weights, int32 biases and int32 index/shape operands.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.quantize.quant_spec import QuantSpec

INT8_TARGET_OPS = ("FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "CONCATENATION", "STRIDED_SLICE",
                   "RESHAPE", "SPLIT")
_FILE_IDENTIFIER = b"TFL3"
# Tensor type names (schema enum TensorType) hearmask reports; others print as their number.
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
               10: "float64"}


@dataclass(frozen=True)
class TensorSummary:
    index: int
    name: str
    dtype: str  # "int8", "int32", "float32", ...
    shape: tuple[int, ...]
    quantization: QuantSpec | None  # per-tensor parameters; None when absent or per-channel
    per_channel: bool  # more than one scale (per-axis quantization)
    is_constant: bool  # backed by a non-empty buffer (weights, biases, indices)


@dataclass(frozen=True)
class OpSummary:
    name: str  # builtin operator name, or "CUSTOM(<code>)"
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class IoTensor:
    """A model input or output: its signature name, its position in the subgraph's list
    (the index TFLM's ``set_input``/``get_output`` take) and its tensor."""

    name: str
    position: int
    tensor: TensorSummary


@dataclass(frozen=True)
class TfliteSummary:
    model_bytes: int
    ops: tuple[OpSummary, ...]
    tensors: tuple[TensorSummary, ...]
    inputs: tuple[IoTensor, ...]
    outputs: tuple[IoTensor, ...]

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.name for op in self.ops).items()))

    def input(self, name: str) -> IoTensor:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> IoTensor:
        return _by_name(self.outputs, name, "output")


def _by_name(entries: tuple[IoTensor, ...], name: str, kind: str) -> IoTensor:
    for entry in entries:
        if entry.name == name:
            return entry
    raise HearmaskError(f"the model has no {kind} named {name!r}; its {kind}s: {[e.name for e in entries]}")


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _operator_names() -> dict[int, str]:
    operators = _schema().BuiltinOperator
    return {value: name for name, value in vars(operators).items() if not name.startswith("_") and isinstance(value, int)}


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _tensor_summary(index: int, tensor, buffers) -> TensorSummary:
    quantization, per_channel = None, False
    parameters = tensor.quantization
    if parameters is not None and parameters.scale is not None and len(parameters.scale) > 0:
        scales = np.asarray(parameters.scale, dtype=np.float64)
        zero_points = np.asarray(parameters.zeroPoint if parameters.zeroPoint is not None else [0], dtype=np.int64)
        per_channel = len(scales) > 1
        if not per_channel and np.isfinite(scales[0]) and scales[0] > 0 and -128 <= zero_points[0] <= 127:
            quantization = QuantSpec(float(scales[0]), int(zero_points[0]))
    buffer = buffers[tensor.buffer] if 0 <= tensor.buffer < len(buffers) else None
    is_constant = buffer is not None and ((buffer.data is not None and len(buffer.data) > 0) or (buffer.size or 0) > 0)
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    return TensorSummary(index, _decode(tensor.name), _TYPE_NAMES.get(tensor.type, f"type{tensor.type}"), shape,
                         quantization, per_channel, is_constant)


def inspect_tflite(model_bytes: bytes, source: str = "model") -> TfliteSummary:
    """Parse a ``.tflite`` flatbuffer. Raises :class:`HearmaskError` for anything that is not a
    complete single-subgraph TFLite model (wrong identifier, truncated, garbage)."""
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise HearmaskError(
            f"{source} is not a TFLite model: {len(data)} bytes without the 'TFL3' flatbuffer identifier "
            "(expected a .tflite written by hearmask quantize or the TFLite converter)"
        )
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        subgraphs = model.subgraphs or []
        if len(subgraphs) != 1:
            raise HearmaskError(f"{source} has {len(subgraphs)} subgraphs; hearmask models have exactly one "
                                "(control flow such as WHILE is not supported on the targets)")
        buffers = model.buffers or []
        for buffer in buffers:
            end = (buffer.offset or 0) + (buffer.size or 0)
            if (buffer.offset or 0) > 1 and end > len(data):
                raise HearmaskError(f"{source} is truncated: a weight buffer ends at byte {end}, the file has {len(data)}")
        graph = subgraphs[0]
        tensors = tuple(_tensor_summary(i, tensor, buffers) for i, tensor in enumerate(graph.tensors or []))
        names = _operator_names()
        codes = model.operatorCodes or []
        ops = []
        for operator in graph.operators or []:
            code = codes[operator.opcodeIndex]
            builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
            name = names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = f"CUSTOM({_decode(code.customCode)})"
            ops.append(OpSummary(name, tuple(int(i) for i in (operator.inputs if operator.inputs is not None else ())),
                                 tuple(int(i) for i in (operator.outputs if operator.outputs is not None else ()))))
        inputs = _io_tensors(graph.inputs, model.signatureDefs, "inputs", tensors)
        outputs = _io_tensors(graph.outputs, model.signatureDefs, "outputs", tensors)
    except HearmaskError:
        raise
    except Exception as error:  # the flatbuffer reader raises many types on corrupt data
        raise HearmaskError(
            f"{source} is not a readable TFLite model ({len(data)} bytes; the file looks truncated or corrupt: "
            f"{type(error).__name__}: {error})"
        ) from None
    _verify_with_litert(data, source)
    return TfliteSummary(len(data), tuple(ops), tensors, inputs, outputs)


def _io_tensors(indices, signature_defs, kind: str, tensors: tuple[TensorSummary, ...]) -> tuple[IoTensor, ...]:
    indices = [int(i) for i in (indices if indices is not None else ())]
    signature_names = {}
    for signature in signature_defs or []:
        for entry in getattr(signature, kind) or []:
            signature_names[int(entry.tensorIndex)] = _decode(entry.name)
    return tuple(IoTensor(signature_names.get(index, tensors[index].name), position, tensors[index])
                 for position, index in enumerate(indices))


def _verify_with_litert(data: bytes, source: str) -> None:
    """The LiteRT interpreter runs the flatbuffer verifier on load; corrupt offsets fail here."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_content=data)
    except (ValueError, RuntimeError) as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise HearmaskError(f"{source} is not a valid TFLite model (LiteRT refused it: {message})") from None


def check_int8_target(summary: TfliteSummary, source: str = "model") -> None:
    """Raise :class:`HearmaskError` listing every unsupported op and every op touching a
    float (or other non-int8) tensor, unless the model is fully int8 (module docstring)."""
    tensors = summary.tensors
    unsupported: Counter = Counter()
    float_ops: Counter = Counter()
    for op in summary.ops:
        if op.name not in INT8_TARGET_OPS:
            unsupported[op.name] += 1
        touched = [tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]
        if any(_is_float_or_wrong(t) for t in touched):
            bad = sorted({t.dtype for t in touched if _is_float_or_wrong(t)})
            float_ops[f"{op.name} ({'/'.join(bad)})"] += 1
    io_problems = [f"{kind} {entry.name!r} is {entry.tensor.dtype}"
                   for kind, entries in (("input", summary.inputs), ("output", summary.outputs))
                   for entry in entries if entry.tensor.dtype != "int8"]
    unquantized = sorted(t.name for t in tensors if t.dtype == "int8" and not t.is_constant and t.quantization is None)
    problems = []
    if unsupported:
        listed = ", ".join(f"{name}×{count}" for name, count in sorted(unsupported.items()))
        problems.append(f"unsupported ops: {listed}")
    if float_ops:
        listed = ", ".join(f"{name}×{count}" for name, count in sorted(float_ops.items()))
        problems.append(f"float or non-int8 ops: {listed}")
    if io_problems:
        problems.append("; ".join(io_problems))
    if unquantized:
        problems.append(f"int8 tensors without per-tensor quantization: {unquantized[:5]}")
    if problems:
        raise HearmaskError(
            f"{source} is not a fully int8 model for an int8 target: {'; '.join(problems)}. Accepted: ops "
            f"{', '.join(INT8_TARGET_OPS)} on int8 tensors (int32 only for biases and indices)"
        )


def _is_float_or_wrong(tensor: TensorSummary) -> bool:
    if tensor.is_constant:
        return tensor.dtype not in ("int8", "int32")
    return tensor.dtype != "int8"


def check_io_against_manifest(summary: TfliteSummary, manifest: dict, source: str = "model") -> None:
    """Raise :class:`HearmaskError` when the model's inputs/outputs differ from the manifest's
    (names, shapes, types, scales and zero points; see :mod:`hearmask.quantize.manifest`)."""
    problems = []
    for kind, entries in (("inputs", summary.inputs), ("outputs", summary.outputs)):
        expected = {entry["name"]: entry for entry in manifest.get(kind, [])}
        actual = {entry.name: entry for entry in entries}
        if set(expected) != set(actual):
            problems.append(f"{kind} {sorted(actual)} but the manifest lists {sorted(expected)}")
            continue
        for name, entry in expected.items():
            tensor = actual[name].tensor
            if tuple(entry["shape"]) != tensor.shape:
                problems.append(f"{kind[:-1]} {name!r} has shape {list(tensor.shape)}, the manifest says {entry['shape']}")
            if entry["dtype"] != tensor.dtype:
                problems.append(f"{kind[:-1]} {name!r} is {tensor.dtype}, the manifest says {entry['dtype']}")
            if entry.get("scale") is not None:
                spec = QuantSpec(entry["scale"], entry["zero_point"])
                if tensor.quantization is None or not spec.matches(tensor.quantization):
                    problems.append(f"{kind[:-1]} {name!r} is quantized as {tensor.quantization}, the manifest says {spec}")
            if entry.get("position") is not None and entry["position"] != actual[name].position:
                problems.append(f"{kind[:-1]} {name!r} is at position {actual[name].position}, the manifest says "
                                f"{entry['position']}")
    if problems:
        raise HearmaskError(f"{source} does not match its manifest: {'; '.join(problems)}")


def read_tflite(path: str | Path, *, int8_target: bool = True, manifest: dict | None = None) -> tuple[bytes, TfliteSummary]:
    """Read and check a ``.tflite`` file: parse it, check it for an int8 target (unless
    ``int8_target`` is False) and against ``manifest`` when given."""
    path = Path(path)
    if not path.is_file():
        raise HearmaskError(f"no .tflite file at {str(path)!r}")
    data = path.read_bytes()
    summary = inspect_tflite(data, str(path))
    if int8_target:
        check_int8_target(summary, str(path))
    if manifest is not None:
        check_io_against_manifest(summary, manifest, str(path))
    return data, summary
