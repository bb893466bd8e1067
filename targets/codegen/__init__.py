"""C code generation: an int8 ``.tflite`` -> dependency-free C99 bit-exact with TFLite Micro.

:func:`generate_c_model` writes ``<prefix>.h``, ``<prefix>.c`` (weights, parameters, call
sequence) and copies the hand-written kernels ``hm_kernels.h``/``hm_kernels.c`` beside
them. The generated code has no allocation and no floating point at run time (only the
I/O scales in metadata); weights and parameters are ``const`` (flash), activations live
in one static arena sized at generation time with lifetime reuse.

Arithmetic: the TFLite int8 quantization spec as the TFLM reference kernels implement it
(double-rounding requantization, gemmlowp fixed-point LOGISTIC/TANH). Parameters are
computed in Python exactly as TFLM's Prepare does (:mod:`.tflm_arithmetic`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hearmask.errors import HearmaskError

KERNEL_FILES = ("hm_kernels.h", "hm_kernels.c")


@dataclass(frozen=True)
class CTensorInfo:
    name: str
    position: int
    size: int
    scale: float
    zero_point: int


@dataclass(frozen=True)
class GeneratedModel:
    """What :func:`generate_c_model` wrote and the sizes it planned (bytes on a 32-bit target)."""

    out_dir: Path
    header_path: Path
    source_path: Path
    kernels_header_path: Path
    kernels_source_path: Path
    op_names: tuple[str, ...]
    inputs: tuple[CTensorInfo, ...]
    outputs: tuple[CTensorInfo, ...]
    weight_bytes: int  # int8 weight tensors
    const_bytes: int  # weights + fused biases + copy tables + parameter structs (flash, excluding code)
    arena_bytes: int  # static activation buffer (RAM) after lifetime reuse
    unplanned_arena_bytes: int  # the same without reuse
    model_sha256: str

    @property
    def c_sources(self) -> tuple[Path, Path]:
        return self.source_path, self.kernels_source_path


def generate_c_model(tflite: str | Path | bytes, out_dir: str | Path, prefix: str = "hm_model",
                     activation_tables: bool = True) -> GeneratedModel:
    """Generate C for an int8 ``.tflite`` (path or bytes) into ``out_dir`` (created if needed).

    ``activation_tables``: LOGISTIC/TANH as 256-byte lookup tables in flash (default; about
    twice as fast on the tiny model) or evaluated per element with the fixed-point kernels.
    Both give TFLM's exact results.

    Raises :class:`HearmaskError` for a model it cannot reproduce exactly: ops outside the
    supported set, float tensors, per-channel weights, broadcasting beyond a single element.
    """
    from hearmask.targets.codegen.emit import emit_model
    from hearmask.targets.codegen.graph import read_graph
    from hearmask.targets.codegen.lowering import lower_graph
    from hearmask.targets.codegen.planner import plan_arena

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", prefix) or prefix.lower().startswith("hm_kernels"):
        raise HearmaskError(f"C prefix {prefix!r} is not usable; accepted: a C identifier of up to 41 characters "
                            "(letters, digits, underscores) other than hm_kernels")
    if isinstance(tflite, (bytes, bytearray)):
        model_bytes, description = bytes(tflite), "a .tflite"
    else:
        path = Path(tflite)
        if not path.is_file():
            raise HearmaskError(f"no .tflite file at {str(path)!r}")
        model_bytes, description = path.read_bytes(), path.name
    digest = hashlib.sha256(model_bytes).hexdigest()
    graph = read_graph(model_bytes, description)
    lowered = lower_graph(graph, activation_tables)
    plan = plan_arena(graph, lowered)
    emitted = emit_model(graph, lowered, plan, prefix, f"{description} (sha256 {digest[:16]})")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header_path, source_path = out / f"{prefix}.h", out / f"{prefix}.c"
    header_path.write_text(emitted.header)
    source_path.write_text(emitted.source)
    kernel_root = resources.files("hearmask.targets.codegen") / "c"
    for name in KERNEL_FILES:
        with resources.as_file(kernel_root / name) as kernel_path:
            shutil.copyfile(kernel_path, out / name)

    def infos(entries) -> tuple[CTensorInfo, ...]:
        return tuple(CTensorInfo(entry.name, entry.position, graph.tensors[entry.tensor.index].size,
                                 graph.tensors[entry.tensor.index].scale, graph.tensors[entry.tensor.index].zero_point)
                     for entry in entries)

    return GeneratedModel(
        out_dir=out, header_path=header_path, source_path=source_path,
        kernels_header_path=out / KERNEL_FILES[0], kernels_source_path=out / KERNEL_FILES[1],
        op_names=tuple(op.op.name for op in lowered), inputs=infos(graph.inputs), outputs=infos(graph.outputs),
        weight_bytes=emitted.weight_bytes,
        const_bytes=emitted.weight_bytes + emitted.table_bytes + emitted.params_bytes,
        arena_bytes=plan.arena_bytes, unplanned_arena_bytes=plan.tensor_bytes, model_sha256=digest)
