"""Interfaces of the device agent's pluggable parts: the STREAM pipeline and the power sensor.

The agent keeps the listener's settings (SET_AUDIOGRAM, SET_STRENGTHS) in a
:class:`ListenerSettings` and hands them to the :class:`StreamProcessor` with every
hop; ``hearmask live`` (issue 8) and the STFT + model pipeline plug in here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource

DEFAULT_ALPHA = 1.0
DEFAULT_BETA = 1.0


@dataclass(frozen=True)
class ListenerSettings:
    """What the listener controls, as last set over the protocol.

    Attributes:
        audiogram_db_hl: 8 thresholds at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz, or None before SET_AUDIOGRAM.
        alpha: noise-reduction strength (gain dB = alpha·NR_dB + beta·HLC_dB).
        beta: hearing-loss-compensation strength.
    """

    audiogram_db_hl: tuple[float, ...] | None = None
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA


@runtime_checkable
class StreamProcessor(Protocol):
    """The full per-hop pipeline on the device (STFT, model, gains, ISTFT), stateful across hops."""

    def process_hop(self, hop: np.ndarray, settings: ListenerSettings) -> np.ndarray:
        """One hop of float32 mono samples in [-1, 1], shape (hop_samples,) -> processed hop, same shape."""

    def reset(self) -> None:
        """Forget all streaming state (RESET, or a new model)."""


@dataclass(frozen=True)
class PowerReading:
    """One power reading. ``voltage_v``/``current_ma`` are NaN when the sensor does not give them."""

    power_mw: float
    source: PowerSource
    voltage_v: float = float("nan")
    current_ma: float = float("nan")
    window_us: int = 0
    detail: str = ""


@runtime_checkable
class PowerBackend(Protocol):
    """A power sensor the device reads itself (Raspberry Pi 5 PMIC, INA219 on I2C...)."""

    def read(self) -> PowerReading: ...


def load_plugin(spec: str, what: str) -> Any:
    """Import ``"package.module:attribute"`` (used by the agent's command line)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise BridgeError(f"{what} {spec!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BridgeError(f"{what} {spec!r}: cannot import {module_name!r} ({error})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise BridgeError(f"{what} {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
