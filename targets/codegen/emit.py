"""Write ``<prefix>.h`` / ``<prefix>.c`` for a lowered graph (C99, no allocation, const weights).

The generated source holds the constants (int8 weights, fused int32 biases, copy runs,
one ``static const`` parameter struct per kernel call: all in flash), one static arena
for activations, the I/O metadata, and ``<prefix>_step`` that calls the kernels of
``hm_kernels.c`` in graph order. Inputs are read in place; outputs are computed in the
arena and copied out at the end, so an output may share memory with an input (state
feedback in place).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.targets.codegen.graph import Graph
from hearmask.targets.codegen.lowering import ConstArray, LoweredOp, TensorRef
from hearmask.targets.codegen.planner import ArenaPlan

POINTER_BYTES = 4  # on the 32-bit targets; used for the flash estimate of parameter structs


@dataclass(frozen=True)
class EmittedModel:
    header: str
    source: str
    weight_bytes: int  # int8 constant tensors
    table_bytes: int  # fused biases and copy runs
    params_bytes: int  # parameter structs (32-bit layout)


def c_int(value: int) -> str:
    value = int(value)
    if value == -(2**31):
        return "(-2147483647 - 1)"
    return str(value)


def c_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if 32 <= ord(ch) < 127 else f"\\{ord(ch):03o}" for ch in escaped) + '"'


def c_float(value: float) -> str:
    """A float32 literal that reads back as the same float32."""
    return f"{float(np.float32(value)):.9g}f"


def identifier(text: str) -> str:
    cleaned = re.sub(r"[^0-9A-Za-z_]", "_", text).strip("_").upper()
    return cleaned if cleaned and not cleaned[0].isdigit() else f"T_{cleaned}"


def _array_lines(values, per_line: int) -> str:
    items = [c_int(v) for v in values]
    return "\n".join("    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line))


class _Emitter:
    def __init__(self, graph: Graph, plan: ArenaPlan, prefix: str):
        self.graph, self.plan, self.prefix = graph, plan, prefix
        self.input_positions = {entry.tensor.index: entry.position for entry in graph.inputs}
        self.constants: dict[int, str] = {}
        self.emitted_arrays: set[str] = set()
        self.definitions: list[str] = []
        self.weight_bytes = self.table_bytes = self.params_bytes = 0

    def pointer(self, ref: TensorRef) -> str:
        index = ref.index
        if index in self.input_positions:
            return f"inputs[{self.input_positions[index]}]"
        tensor = self.graph.tensors[index]
        if tensor.data is not None:
            if tensor.summary.dtype != "int8":  # int32 constants (biases, indices) are folded into parameters
                raise HearmaskError(f"{self.graph.source}: constant {tensor.name!r} ({tensor.summary.dtype}) is used "
                                    "as an int8 operand; only int8 constants can be")
            if index not in self.constants:
                name = f"{self.prefix}_t{index}"
                self.constants[index] = name
                values = tensor.data.reshape(-1)
                self.definitions.append(f"/* {tensor.name} {list(tensor.shape)} */\n"
                                        f"static const int8_t {name}[{values.size}] = {{\n{_array_lines(values, 16)}\n}};")
                self.weight_bytes += values.size
            return self.constants[index]
        return f"(arena + {self.plan.offsets[index]})"

    def field(self, value) -> str:
        if isinstance(value, TensorRef):
            return self.pointer(value)
        if isinstance(value, str):
            return f"{self.prefix}_{value}"
        return c_int(value)

    def const_array(self, array: ConstArray) -> None:
        name = f"{self.prefix}_{array.name}"
        if name in self.emitted_arrays:  # shared by content (activation tables)
            return
        self.emitted_arrays.add(name)
        if array.c_type == "hm_copy_run_t":
            body = "\n".join(f"    {{{s}, {t}, {n}}}," for s, t, n in array.values)
        else:
            body = _array_lines(array.values, 16 if array.c_type == "int8_t" else 8)
        self.definitions.append(f"static const {array.c_type} {name}[{len(array.values)}] = {{\n{body}\n}};")
        self.table_bytes += array.nbytes

    def op_calls(self, lowered: LoweredOp) -> list[str]:
        lines = []
        for array in lowered.consts:
            self.const_array(array)
        for number, call in enumerate(lowered.calls):
            args = [self.field(arg) for arg in call.args]
            if call.params_type is not None:
                name = f"{self.prefix}_op{lowered.op.index}_params{number}"
                fields = ", ".join(self.field(value) for value in call.params)
                self.definitions.append(f"static const {call.params_type} {name} = {{{fields}}};")
                self.params_bytes += POINTER_BYTES * len(call.params)
                args.insert(0, f"&{name}")
            lines.append(f"    {call.function}({', '.join(args)});")
        return lines


def emit_model(graph: Graph, lowered: tuple[LoweredOp, ...], plan: ArenaPlan, prefix: str,
               description: str) -> EmittedModel:
    macro = prefix.upper()
    emitter = _Emitter(graph, plan, prefix)
    body = []
    for lowered_op in lowered:
        index = lowered_op.op.index
        body.append(f"    {macro}_OP_BEGIN({index}); /* {lowered_op.op.name} */")
        body.extend(emitter.op_calls(lowered_op))
        body.append(f"    {macro}_OP_END({index});")
    for entry in graph.outputs:
        pointer = emitter.pointer(TensorRef(entry.tensor.index))
        size = graph.tensors[entry.tensor.index].size
        body.append(f"    hm_copy_runs({prefix}_output_run{entry.position}, 1, {pointer}, outputs[{entry.position}]);")
        emitter.definitions.append(f"static const hm_copy_run_t {prefix}_output_run{entry.position}[1] = "
                                   f"{{{{0, 0, {size}}}}};")
        emitter.table_bytes += 12

    def infos(entries) -> str:
        rows = []
        for entry in entries:
            tensor = graph.tensors[entry.tensor.index]
            rows.append(f"    {{{c_string(entry.name)}, {tensor.size}, {c_float(tensor.scale)}, {tensor.zero_point}}},")
        return "\n".join(rows)

    op_names = "\n".join(f"    {c_string(lowered_op.op.name)}," for lowered_op in lowered)
    arena_bytes = max(plan.arena_bytes, 4)
    source = f"""/* {prefix}.c: generated by hearmask from {description}; do not edit.
 * Bit-exact with the TensorFlow Lite Micro reference kernels (see hm_kernels.h). */
#include <stdint.h>

#include "hm_kernels.h"
#include "{prefix}.h"

#ifdef {macro}_PROFILE
#define {macro}_OP_BEGIN(index) hm_profile_op_begin(index)
#define {macro}_OP_END(index) hm_profile_op_end(index)
#else
#define {macro}_OP_BEGIN(index) ((void)0)
#define {macro}_OP_END(index) ((void)0)
#endif

{chr(10).join(emitter.definitions)}

/* Activations ({plan.arena_bytes} bytes after lifetime reuse; {plan.tensor_bytes} without). */
static union {{
    int32_t alignment;
    int8_t bytes[{arena_bytes}];
}} {prefix}_arena;

const hm_tensor_info_t {prefix}_inputs[{macro}_NUM_INPUTS] = {{
{infos(graph.inputs)}
}};

const hm_tensor_info_t {prefix}_outputs[{macro}_NUM_OUTPUTS] = {{
{infos(graph.outputs)}
}};

const char *const {prefix}_op_names[{macro}_NUM_OPS] = {{
{op_names}
}};

void {prefix}_step(const int8_t *const inputs[], int8_t *const outputs[])
{{
    int8_t *const arena = {prefix}_arena.bytes;
    (void)inputs;
    (void)arena;
{chr(10).join(body)}
}}
"""
    positions = []
    for kind, entries in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)):
        used: set[str] = set()
        for entry in entries:
            name = identifier(entry.name)
            if name in used:  # names that differ only in punctuation
                name = f"{name}_{entry.position}"
            used.add(name)
            positions.append(f"#define {macro}_{kind}_{name} {entry.position}")
    header = f"""/* {prefix}.h: generated by hearmask from {description}; do not edit. */
#ifndef {macro}_H
#define {macro}_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {macro}_NUM_INPUTS  {len(graph.inputs)}
#define {macro}_NUM_OUTPUTS {len(graph.outputs)}
#define {macro}_NUM_OPS     {len(lowered)}
#define {macro}_ARENA_BYTES {plan.arena_bytes}
{chr(10).join(positions)}

#ifndef HM_TENSOR_INFO_T_DEFINED
#define HM_TENSOR_INFO_T_DEFINED
/* One model input or output: int8 codes; real value = (code - zero_point) * scale. */
typedef struct {{
    const char *name;
    int32_t size;
    float scale;
    int32_t zero_point;
}} hm_tensor_info_t;
#endif

extern const hm_tensor_info_t {prefix}_inputs[{macro}_NUM_INPUTS];   /* subgraph input order */
extern const hm_tensor_info_t {prefix}_outputs[{macro}_NUM_OUTPUTS]; /* subgraph output order */
extern const char *const {prefix}_op_names[{macro}_NUM_OPS];

/* One inference: inputs[i] points to {prefix}_inputs[i].size int8 codes, outputs[i] to
 * {prefix}_outputs[i].size. Outputs are written last, so they may alias inputs. */
void {prefix}_step(const int8_t *const inputs[], int8_t *const outputs[]);

#ifdef {macro}_PROFILE  /* the firmware provides these; called around each op */
void hm_profile_op_begin(int op_index);
void hm_profile_op_end(int op_index);
#endif

#ifdef __cplusplus
}}
#endif

#endif /* {macro}_H */
"""
    return EmittedModel(header, source, emitter.weight_bytes, emitter.table_bytes, emitter.params_bytes)
