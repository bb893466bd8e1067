"""The pluggable inference runtime the device agent serves: interface plus the LiteRT implementation.

An :class:`InferenceRuntime` takes named int8 numpy tensors and returns named outputs;
the agent times :meth:`InferenceRuntime.invoke` itself. :class:`LiteRTRuntime` runs a
``.tflite`` with LiteRT (``ai_edge_litert``), falling back to ``tflite_runtime`` on older
Raspberry Pi images (DESIGN.md, "Deployment targets"). The LiteRT module is imported
when a runtime is built, never at import time, and neither is torch nor tensorflow.
"""

from __future__ import annotations

import abc
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearmask.firmware_bridge.errors import BridgeError, TensorMismatch


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    Attributes:
        name: the signature name where the model has one (e.g. ``"features"``), else the tensor name.
        shape: the fixed shape, e.g. ``(1, 257)``.
        dtype: numpy dtype, ``int8`` for a fully quantized model.
        scale: quantization scale (real = scale · (q − zero_point)); 0 when not quantized.
        zero_point: quantization zero point.
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=self.dtype)


@dataclass(frozen=True)
class RunResult:
    """Outputs of one inference (name -> array, in output order) and the invoke time in ns."""

    outputs: dict[str, np.ndarray]
    device_time_ns: int


class InferenceRuntime(abc.ABC):
    """What the device agent needs from an inference engine.

    Subclasses set ``name`` (runtime and version, shown in INFO), ``input_specs``,
    ``output_specs``, ``model_sha256`` (32 bytes) and ``arena_bytes`` (0 = unknown).
    """

    name: str
    input_specs: tuple[TensorSpec, ...]
    output_specs: tuple[TensorSpec, ...]
    model_sha256: bytes
    arena_bytes: int = 0

    @abc.abstractmethod
    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Copy inputs (keyed by spec name, already checked by :meth:`match_inputs`) into the engine."""

    @abc.abstractmethod
    def invoke(self) -> None:
        """Run the model once on the current inputs."""

    @abc.abstractmethod
    def get_outputs(self) -> dict[str, np.ndarray]:
        """Copies of the outputs of the last invoke, keyed by spec name, in output order."""

    def run(self, inputs: Mapping[str, np.ndarray]) -> RunResult:
        """set_inputs + timed invoke (``time.perf_counter_ns``) + get_outputs."""
        self.set_inputs(inputs)
        start_ns = time.perf_counter_ns()
        self.invoke()
        elapsed_ns = time.perf_counter_ns() - start_ns
        return RunResult(self.get_outputs(), elapsed_ns)

    def zero_inputs(self) -> dict[str, np.ndarray]:
        return {spec.name: spec.zeros() for spec in self.input_specs}

    def match_inputs(self, tensors: Sequence[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Map (name, array) pairs onto the input specs: all named (any order) or all unnamed (by position).

        Raises :class:`TensorMismatch` naming the expected and received names, shapes and dtypes.
        """
        expected = ", ".join(f"{s.name} {s.shape} {np.dtype(s.dtype)}" for s in self.input_specs)
        names = [name for name, _ in tensors]
        if len(tensors) != len(self.input_specs):
            raise TensorMismatch(f"model takes {len(self.input_specs)} input tensors ({expected}), got {len(tensors)}")
        if all(names):
            by_name = dict(tensors)
            missing = [s.name for s in self.input_specs if s.name not in by_name]
            if missing or len(by_name) != len(tensors):
                raise TensorMismatch(f"input names {names} do not match the model's inputs ({expected})")
            ordered = [(spec, by_name[spec.name]) for spec in self.input_specs]
        elif not any(names):
            ordered = list(zip(self.input_specs, (array for _, array in tensors)))
        else:
            raise TensorMismatch(f"name every input tensor or none of them (matched by position), got names {names}")
        matched = {}
        for spec, array in ordered:
            array = np.asarray(array)
            if tuple(array.shape) != tuple(spec.shape) or array.dtype != np.dtype(spec.dtype):
                raise TensorMismatch(
                    f"input {spec.name!r} must be {tuple(spec.shape)} {np.dtype(spec.dtype)}, "
                    f"got {tuple(array.shape)} {array.dtype}"
                )
            matched[spec.name] = array
        return matched


def file_sha256(path: str | Path) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


def _import_litert_interpreter():
    """(Interpreter class, OpResolverType enum, label): ai_edge_litert, else tflite_runtime."""
    try:
        from ai_edge_litert import interpreter as litert
        from importlib.metadata import version

        return litert.Interpreter, litert.OpResolverType, f"litert {version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite
        from importlib.metadata import version

        return tflite.Interpreter, tflite.OpResolverType, f"tflite-runtime {version('tflite-runtime')}"
    except ImportError:
        raise BridgeError(
            "no LiteRT interpreter: install `ai-edge-litert` (pip install ai-edge-litert) "
            "or, on older Raspberry Pi OS images, `tflite-runtime`"
        ) from None


class LiteRTRuntime(InferenceRuntime):
    """A ``.tflite`` model in the LiteRT interpreter.

    Args:
        model_path: the ``.tflite`` file.
        num_threads: interpreter threads (1 gives the steadiest per-hop timing).
        reference_kernels: use LiteRT's reference kernels (``BUILTIN_REF``), the golden
            for bit-exact comparisons (DESIGN.md), instead of the optimised ones.

    Tensor names are the model's signature names when it has exactly one signature
    (``features``, ``state_in``...), else the tensor names.
    """

    def __init__(self, model_path: str | Path, num_threads: int = 1, reference_kernels: bool = False):
        path = Path(model_path)
        if not path.is_file():
            raise BridgeError(f"model file {str(path)!r} does not exist; expected a .tflite file")
        interpreter_class, resolver_types, label = _import_litert_interpreter()
        resolver = resolver_types.BUILTIN_REF if reference_kernels else resolver_types.AUTO
        try:
            self._interpreter = interpreter_class(
                model_path=str(path), num_threads=num_threads, experimental_op_resolver_type=resolver
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BridgeError(f"LiteRT cannot load {str(path)!r}: {error}") from None
        self.name = f"{label} ({'reference' if reference_kernels else 'builtin'} kernels)"
        self.model_sha256 = file_sha256(path)
        self.model_path = path
        signatures = self._interpreter.get_signature_list()
        if len(signatures) == 1:
            runner = self._interpreter.get_signature_runner(next(iter(signatures)))
            inputs = list(runner.get_input_details().items())
            outputs = list(runner.get_output_details().items())
        else:
            inputs = [(d["name"], d) for d in self._interpreter.get_input_details()]
            outputs = [(d["name"], d) for d in self._interpreter.get_output_details()]
        self.input_specs = tuple(_spec(name, detail) for name, detail in inputs)
        self.output_specs = tuple(_spec(name, detail) for name, detail in outputs)
        self._input_index = {name: detail["index"] for name, detail in inputs}
        self._output_index = {name: detail["index"] for name, detail in outputs}

    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        for name, array in inputs.items():
            self._interpreter.set_tensor(self._input_index[name], array)

    def invoke(self) -> None:
        self._interpreter.invoke()

    def get_outputs(self) -> dict[str, np.ndarray]:
        return {spec.name: self._interpreter.get_tensor(self._output_index[spec.name]).copy() for spec in self.output_specs}


def _spec(name: str, detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(name, tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]), float(scale), int(zero_point))
