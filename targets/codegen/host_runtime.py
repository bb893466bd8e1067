"""Run generated C on the host: build ``<prefix>.c`` + ``hm_kernels.c`` into a shared library
with the system C compiler and call ``<prefix>_step`` through ctypes.

:class:`GeneratedCRuntime` is a :class:`hearmask.quantize.runtimes.StepRuntime`, so the
generated C can be compared with LiteRT and the TFLM interpreter through the same named
tensor interface (``invoke_codes``). Host only: it needs ``gcc`` (or ``cc``) on PATH.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.quantize.runtimes import StepRuntime
from hearmask.targets.codegen import GeneratedModel

# The flags every generated model must compile cleanly with (issue 7).
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


def host_compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def build_shared_library(generated: GeneratedModel, library_path: str | Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the generated model and kernels into ``library_path`` (a .so)."""
    compiler = host_compiler()
    if compiler is None:
        raise HearmaskError("no host C compiler (gcc or cc) on PATH; install gcc to run generated C on the host")
    library_path = Path(library_path)
    command = [compiler, *HOST_CFLAGS, *extra_flags, "-shared", "-fPIC", "-o", str(library_path),
               *(str(path) for path in generated.c_sources)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise HearmaskError(f"the generated C did not compile ({' '.join(command)}):\n{result.stderr.strip()}")
    return library_path


class GeneratedCRuntime(StepRuntime):
    """The generated C model as a runtime (int8 codes in and out by tensor name)."""

    name = "generated_c"

    def __init__(self, model_bytes: bytes, generated: GeneratedModel, build_dir: str | Path, prefix: str = "hm_model"):
        super().__init__(model_bytes)
        build_dir = Path(build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        self.generated = generated
        self.library = ctypes.CDLL(str(build_shared_library(generated, build_dir / f"lib{prefix}.so")))
        self._step = getattr(self.library, f"{prefix}_step")
        self._step.restype = None
        self._input_buffers = [np.zeros(info.size, np.int8) for info in generated.inputs]
        self._output_buffers = [np.zeros(info.size, np.int8) for info in generated.outputs]
        self._input_pointers = (ctypes.c_void_p * len(generated.inputs))(
            *[buffer.ctypes.data for buffer in self._input_buffers])
        self._output_pointers = (ctypes.c_void_p * len(generated.outputs))(
            *[buffer.ctypes.data for buffer in self._output_buffers])

    def invoke_unchecked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for info, buffer in zip(self.generated.inputs, self._input_buffers):
            buffer[:] = np.asarray(inputs[info.name], dtype=np.int8).reshape(-1)
        self._step(self._input_pointers, self._output_pointers)
        return {entry.name: values for entry, values in zip(self.outputs, self.last_outputs())}

    def last_outputs(self) -> list[np.ndarray]:
        """The last invocation's outputs in subgraph order (names may repeat in converted models)."""
        return [buffer.copy().reshape(entry.tensor.shape) for entry, buffer in zip(self.outputs, self._output_buffers)]
