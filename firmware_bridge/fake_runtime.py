"""Deterministic stand-ins for tests and link benchmarks. NEVER a measurement of a model.

:class:`FakeRuntimeForTests` reports the runtime name ``"fake-test-runtime (not a
model)"`` in INFO, so a report can never mistake it for LiteRT. Its arithmetic is a
cheap elementwise int8 rule with a pure-numpy :meth:`~FakeRuntimeForTests.reference`
that tests compare against what comes back over the wire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from hearmask.firmware_bridge.messages import PowerSource
from hearmask.firmware_bridge.plugins import ListenerSettings, PowerReading
from hearmask.firmware_bridge.runtime import InferenceRuntime, TensorSpec

FAKE_RUNTIME_NAME = "fake-test-runtime (not a model)"
FAKE_STATE_SIZE = 8


class FakeRuntimeForTests(InferenceRuntime):
    """Inputs ``features`` (1, size) and ``state_in`` (1, 8) int8 -> outputs ``mask`` (1, size), ``state_out`` (1, 8).

    mask = sat8((3·features + (Σ state_in mod 7)) >> 1), state_out = sat8(state_in + (features[:8] >> 2)),
    with arithmetic right shifts in int32 and saturation to [-128, 127].
    """

    def __init__(self, size: int = 16, model_sha256: bytes | None = None):
        if size < FAKE_STATE_SIZE:
            raise ValueError(f"fake runtime size must be >= {FAKE_STATE_SIZE}, got {size}")
        self.name = FAKE_RUNTIME_NAME
        self.size = size
        self.input_specs = (
            TensorSpec("features", (1, size), np.dtype(np.int8), 1 / 128, 0),
            TensorSpec("state_in", (1, FAKE_STATE_SIZE), np.dtype(np.int8), 1 / 128, 0),
        )
        self.output_specs = (
            TensorSpec("mask", (1, size), np.dtype(np.int8), 1 / 128, 0),
            TensorSpec("state_out", (1, FAKE_STATE_SIZE), np.dtype(np.int8), 1 / 128, 0),
        )
        self.model_sha256 = model_sha256 or fake_model_sha256(size)
        self.arena_bytes = 0
        self._inputs = self.zero_inputs()
        self._outputs: dict[str, np.ndarray] = {}

    @staticmethod
    def reference(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = np.asarray(inputs["features"]).astype(np.int32)
        state = np.asarray(inputs["state_in"]).astype(np.int32)
        offset = int(state.sum()) % 7
        mask = np.clip((3 * features + offset) >> 1, -128, 127).astype(np.int8)
        state_out = np.clip(state + (features[..., :FAKE_STATE_SIZE] >> 2), -128, 127).astype(np.int8)
        return {"mask": mask, "state_out": state_out}

    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        self._inputs = {name: np.array(array, copy=True) for name, array in inputs.items()}

    def invoke(self) -> None:
        self._outputs = self.reference(self._inputs)

    def get_outputs(self) -> dict[str, np.ndarray]:
        return {spec.name: self._outputs[spec.name].copy() for spec in self.output_specs}


def fake_model_sha256(size: int) -> bytes:
    """The 'model hash' a fake runtime of this size reports (no file behind it)."""
    return hashlib.sha256(f"hearmask fake test runtime v1 size={size}".encode()).digest()


class DelayLineStreamProcessorForTests:
    """STREAM stand-in: out[t] = alpha·hop[t] + beta·previous_hop[t] (previous hop is zeros after reset)."""

    def __init__(self, runtime: InferenceRuntime | None = None):
        self._previous: np.ndarray | None = None

    def process_hop(self, hop: np.ndarray, settings: ListenerSettings) -> np.ndarray:
        previous = self._previous if self._previous is not None and len(self._previous) == len(hop) else np.zeros_like(hop)
        self._previous = hop.copy()
        return (settings.alpha * hop + settings.beta * previous).astype(np.float32)

    def reset(self) -> None:
        self._previous = None


class SyntheticPowerBackendForTests:
    """POWER stand-in: a fixed synthetic reading, labelled ``synthetic`` (never a measurement)."""

    POWER_MW = 1234.5

    def __init__(self, runtime: InferenceRuntime | None = None):
        pass

    def read(self) -> PowerReading:
        return PowerReading(self.POWER_MW, PowerSource.SYNTHETIC, 5.0, self.POWER_MW / 5.0, 0,
                            "synthetic test reading, not a measurement")
