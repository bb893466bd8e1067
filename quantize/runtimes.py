"""Run a converted step model for one hop in LiteRT or the TFLM host interpreter, by tensor name.

Both runtimes take and return named tensors (``features``, ``audiogram``, ``state`` ->
``nr_fraction``, ``hlc_fraction``, ``new_state``). :meth:`StepRuntime.invoke_codes`
passes the raw tensors (int8 codes for the int8 model); :meth:`StepRuntime.step`
quantizes float inputs and dequantizes the outputs with each tensor's own parameters.

- :class:`LiteRtRuntime`: ``ai_edge_litert`` with its default optimised kernels, or the
  reference kernels (``OpResolverType.BUILTIN_REF``), the Raspberry Pi golden.
- :class:`TflmRuntime`: the ``tflite-micro`` Python interpreter, the same kernels as a
  Cortex-M build (reference kernels; not CMSIS-NN), the Cortex-M golden.

TFLM arena size (:func:`tflm_arena_bytes`): the interpreter reports what its
RecordingMicroAllocator holds after allocation (``PrintAllocations``, written by C++ to
stderr); allocation also needs temporary planning memory, so the smallest arena that
allocates and invokes is found by bisection. Both are host (64-bit) figures: on a 32-bit
Cortex-M the bookkeeping structures are smaller, so they are upper bounds there.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.quantize.tflite_inspect import IoTensor, TfliteSummary, inspect_tflite

_NUMPY_TYPES = {"int8": np.int8, "int32": np.int32, "float32": np.float32, "uint8": np.uint8, "int16": np.int16}


class StepRuntime:
    """Common part: named I/O, quantization of inputs and dequantization of outputs."""

    name = "runtime"

    def __init__(self, model_bytes: bytes, summary: TfliteSummary | None = None):
        self.model_bytes = bytes(model_bytes)
        self.summary = summary or inspect_tflite(self.model_bytes)

    @property
    def inputs(self) -> tuple[IoTensor, ...]:
        return self.summary.inputs

    @property
    def outputs(self) -> tuple[IoTensor, ...]:
        return self.summary.outputs

    def _checked_input(self, entry: IoTensor, values: np.ndarray) -> np.ndarray:
        tensor = entry.tensor
        values = np.asarray(values)
        if values.shape != tensor.shape:
            raise HearmaskError(f"input {entry.name!r} must have shape {list(tensor.shape)}, got {list(values.shape)}")
        return values.astype(_NUMPY_TYPES[tensor.dtype], copy=False)

    def invoke_codes(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw tensors in (each input's own dtype: int8 codes for the int8 model), raw tensors out."""
        missing = sorted({entry.name for entry in self.inputs} - set(inputs))
        if missing:
            raise HearmaskError(f"missing model input(s) {missing}; the model takes {[e.name for e in self.inputs]}")
        checked = {entry.name: self._checked_input(entry, inputs[entry.name]) for entry in self.inputs}
        return self.invoke_unchecked(checked)

    def step(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float inputs in (quantized with each input's parameters), float outputs out (dequantized)."""
        codes = {}
        for entry in self.inputs:
            spec = entry.tensor.quantization
            values = np.asarray(inputs[entry.name], dtype=np.float32)
            codes[entry.name] = spec.quantize(values) if entry.tensor.dtype == "int8" else values
        raw = self.invoke_codes(codes)
        outputs = {}
        for entry in self.outputs:
            spec = entry.tensor.quantization
            outputs[entry.name] = spec.dequantize(raw[entry.name]) if entry.tensor.dtype == "int8" else raw[entry.name]
        return outputs

    def invoke_unchecked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`invoke_codes` without the name/shape/dtype checks (hot loops, benchmarks)."""
        raise NotImplementedError


class LiteRtRuntime(StepRuntime):
    """LiteRT interpreter, one thread; ``reference_kernels=True`` selects the builtin reference kernels."""

    def __init__(self, model_bytes: bytes, reference_kernels: bool = False, summary: TfliteSummary | None = None,
                 preserve_all_tensors: bool = False):
        super().__init__(model_bytes, summary)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
        self.name = "litert_ref" if reference_kernels else "litert"
        self.interpreter = Interpreter(model_content=self.model_bytes, num_threads=1,
                                       experimental_op_resolver_type=resolver,
                                       experimental_preserve_all_tensors=preserve_all_tensors)
        self.interpreter.allocate_tensors()

    def tensor(self, index: int) -> np.ndarray:
        """Any tensor after the last invoke (intermediates need ``preserve_all_tensors=True``)."""
        return self.interpreter.get_tensor(index).copy()

    def invoke_unchecked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for entry in self.inputs:
            self.interpreter.set_tensor(entry.tensor.index, inputs[entry.name])
        self.interpreter.invoke()
        return {entry.name: self.interpreter.get_tensor(entry.tensor.index).copy() for entry in self.outputs}


class TflmRuntime(StepRuntime):
    """The TFLM host interpreter (``tflite_micro.runtime``); inputs/outputs by position."""

    name = "tflm"

    def __init__(self, model_bytes: bytes, arena_bytes: int | None = None, summary: TfliteSummary | None = None,
                 preserve_all_tensors: bool = False):
        super().__init__(model_bytes, summary)
        from tflite_micro import runtime

        size = arena_bytes if arena_bytes is not None else _generous_arena_bytes(self.model_bytes)
        # Preserving every tensor disables the arena planner's reuse, so it needs a larger arena.
        mode = runtime.InterpreterConfig.kAllocationRecording
        if preserve_all_tensors:
            mode = runtime.InterpreterConfig.kPreserveAllTensors
            size = max(int(size), 4 * _generous_arena_bytes(model_bytes))
        try:
            with _silenced_stderr():
                self.interpreter = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=int(size),
                                                                  intrepreter_config=mode)
        except RuntimeError as error:
            raise HearmaskError(
                f"the TFLM interpreter cannot allocate this model in a {size}-byte arena ({error})") from None

    def tensor(self, index: int) -> np.ndarray:
        """Any tensor after the last invoke (needs ``preserve_all_tensors=True``)."""
        details = self.interpreter.GetTensor(index, 0)
        return np.array(details["tensor_data"]).reshape(details["shape"])

    def invoke_unchecked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for entry in self.inputs:
            self.interpreter.set_input(inputs[entry.name], entry.position)
        self.interpreter.invoke()
        return {entry.name: np.array(self.interpreter.get_output(entry.position)) for entry in self.outputs}

    def arena_used_bytes(self) -> int:
        """Bytes the RecordingMicroAllocator reports in use ("Arena allocation total")."""
        with _captured_stderr() as captured:
            self.interpreter.print_allocations()
        match = re.search(r"Arena allocation total (\d+) bytes", captured())
        if not match:
            raise RuntimeError("the TFLM interpreter did not report its arena usage")
        return int(match.group(1))


def _generous_arena_bytes(model_bytes: bytes) -> int:
    return max(64 * 1024, 10 * len(model_bytes))


def _zero_inputs(runtime: StepRuntime) -> dict[str, np.ndarray]:
    return {entry.name: np.zeros(entry.tensor.shape, _NUMPY_TYPES[entry.tensor.dtype]) for entry in runtime.inputs}


def tflm_arena_bytes(model_bytes: bytes, resolution_bytes: int = 16) -> dict[str, int]:
    """``{"used": ..., "minimum": ...}``: the TFLM allocator's reported use after allocation and
    the smallest arena (to ``resolution_bytes``) with which the model allocates and invokes."""
    summary = inspect_tflite(model_bytes)
    generous = _generous_arena_bytes(model_bytes)
    reference = TflmRuntime(model_bytes, generous, summary)
    reference.invoke_codes(_zero_inputs(reference))
    used = reference.arena_used_bytes()

    def works(size: int) -> bool:
        try:
            runtime = TflmRuntime(model_bytes, size, summary)
            with _silenced_stderr():
                runtime.invoke_codes(_zero_inputs(runtime))
            return True
        except (HearmaskError, RuntimeError):
            return False

    low, high = used // 2, generous  # low fails (below what the allocator holds), high works
    while high - low > resolution_bytes:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle
    return {"used": used, "minimum": high}


@contextmanager
def _captured_stderr():
    """Capture what C/C++ code writes to file descriptor 2 (the TFLM allocator report)."""
    sys.stderr.flush()
    descriptor = 2  # the C-level stderr, whatever Python's sys.stderr has been replaced with
    saved = os.dup(descriptor)
    with tempfile.TemporaryFile() as temporary:
        os.dup2(temporary.fileno(), descriptor)
        text = {"value": ""}
        try:
            yield lambda: text["value"]
        finally:
            os.dup2(saved, descriptor)
            os.close(saved)
            temporary.seek(0)
            text["value"] = temporary.read().decode("utf-8", "replace")


@contextmanager
def _silenced_stderr():
    """TFLM prints allocation failures to fd 2; they are expected while bisecting."""
    with _captured_stderr():
        yield
