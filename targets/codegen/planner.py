"""Static activation buffer: every tensor an op writes gets an offset in one arena, reusing
bytes between tensors whose lifetimes do not overlap (greedy by size, as TFLM's greedy
memory planner does; lifetimes are op indices)."""

from __future__ import annotations

from dataclasses import dataclass

from hearmask.targets.codegen.graph import Graph
from hearmask.targets.codegen.lowering import LoweredOp

ALIGNMENT_BYTES = 4


@dataclass(frozen=True)
class ArenaPlan:
    offsets: dict[int, int]  # tensor index -> byte offset in the arena
    arena_bytes: int
    tensor_bytes: int  # sum of all planned tensors (the arena without reuse)


def _aligned(value: int) -> int:
    return (value + ALIGNMENT_BYTES - 1) // ALIGNMENT_BYTES * ALIGNMENT_BYTES


def plan_arena(graph: Graph, lowered: tuple[LoweredOp, ...]) -> ArenaPlan:
    first_write: dict[int, int] = {}
    last_use: dict[int, int] = {}
    for position, op in enumerate(lowered):
        for index in op.writes:
            first_write.setdefault(index, position)
            last_use[index] = max(last_use.get(index, position), position)
        for index in op.reads:
            if index in first_write:
                last_use[index] = position
    end = len(lowered)  # graph outputs are copied out after the last op
    for entry in graph.outputs:
        if entry.tensor.index in last_use:
            last_use[entry.tensor.index] = end
    sizes = {index: graph.tensors[index].size for index in first_write}
    order = sorted(first_write, key=lambda index: (-sizes[index], first_write[index], index))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    offsets: dict[int, int] = {}
    for index in order:
        first, last, size = first_write[index], last_use[index], sizes[index]
        conflicts = sorted((offset, extent) for offset, extent, other_first, other_last in placed
                           if other_first <= last and first <= other_last)
        candidate = 0
        for offset, extent in conflicts:
            if candidate + size <= offset:
                break
            candidate = max(candidate, _aligned(offset + extent))
        offsets[index] = candidate
        placed.append((candidate, size, first, last))
    arena_bytes = max((offset + extent for offset, extent, _, _ in placed), default=0)
    return ArenaPlan(offsets, arena_bytes, sum(sizes.values()))
