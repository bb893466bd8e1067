"""Power traces and energy per inference from a timed window against an idle baseline.

A :class:`PowerTrace` is power samples on one clock (seconds; for host-side meters the
host's ``time.monotonic``, so the host can mark when its BENCH window started and ended).
:func:`energy_per_inference` integrates the trace (trapezoids, linear interpolation at
the window edges) over the window of ``N`` inferences, subtracts the idle baseline's mean
power over the same duration, and divides by ``N``::

    E_inference = (∫_window P(t) dt − P̄_idle · T_window) / N

The result is an **estimate** (it assumes the idle power would have continued unchanged
during the window); its label also says where the trace came from (a meter, a replayed
recording, or synthetic/fake data), never more than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource

# Readings from a real sensor or meter; every other source is a replay or made up.
EDGE_SLACK_S = 1e-9  # float rounding of window edges computed from sample times
MEASURED_SOURCES = frozenset({PowerSource.RPI5_PMIC, PowerSource.INA219, PowerSource.EXTERNAL_METER})


def source_label(source: PowerSource) -> str:
    """``"hardware"`` for a live sensor or meter, else ``"replay"`` / ``"synthetic"`` (never a measurement)."""
    return "hardware" if source in MEASURED_SOURCES else source.label


@dataclass(frozen=True)
class PowerTrace:
    """Power samples over time.

    Attributes:
        times_s: (N,) strictly increasing sample times in seconds (one clock for the whole trace).
        power_mw: (N,) power in mW at those times.
        source: where the samples come from (:class:`PowerSource`).
        detail: the instrument and its settings, e.g. ``"ppk2 source meter at 3300 mV"``.
    """

    times_s: np.ndarray
    power_mw: np.ndarray
    source: PowerSource
    detail: str = ""

    def __post_init__(self):
        times_s = np.asarray(self.times_s, dtype=np.float64)
        power_mw = np.asarray(self.power_mw, dtype=np.float64)
        if times_s.ndim != 1 or times_s.shape != power_mw.shape or times_s.size < 2:
            raise BridgeError(f"a power trace needs >= 2 samples with matching times and powers, got shapes "
                              f"{times_s.shape} and {power_mw.shape}")
        if not np.all(np.diff(times_s) > 0) or not np.all(np.isfinite(power_mw)):
            raise BridgeError("a power trace needs strictly increasing times and finite powers")
        object.__setattr__(self, "times_s", times_s)
        object.__setattr__(self, "power_mw", power_mw)

    @property
    def label(self) -> str:
        return source_label(self.source)

    @classmethod
    def from_csv(cls, path: str | Path) -> "PowerTrace":
        """A recorded ``time_s,power_mw`` CSV (:func:`hearmask.firmware_bridge.power.load_power_trace`), labelled replay."""
        from hearmask.firmware_bridge.power import load_power_trace

        times_s, power_mw = load_power_trace(Path(path))
        return cls(times_s, power_mw, PowerSource.REPLAY, f"replay of {Path(path).name}, not live")

    def energy_uj(self, start_s: float, stop_s: float) -> float:
        """∫ P dt over [start_s, stop_s] in µJ (trapezoids; the edges interpolated linearly)."""
        self._check_window("window", start_s, stop_s)
        inside = (self.times_s > start_s) & (self.times_s < stop_s)
        times_s = np.concatenate(([start_s], self.times_s[inside], [stop_s]))
        power_mw = np.interp(times_s, self.times_s, self.power_mw)
        return float(np.sum((power_mw[1:] + power_mw[:-1]) * np.diff(times_s)) / 2.0 * 1000.0)  # mW·s = mJ

    def mean_power_mw(self, start_s: float, stop_s: float) -> float:
        """Time-weighted mean power over [start_s, stop_s] in mW."""
        return self.energy_uj(start_s, stop_s) / 1000.0 / (stop_s - start_s)

    def _check_window(self, name: str, start_s: float, stop_s: float) -> None:
        if not (math.isfinite(start_s) and math.isfinite(stop_s) and start_s < stop_s):
            raise BridgeError(f"{name} [{start_s}, {stop_s}] s must have start < stop")
        first, last = float(self.times_s[0]), float(self.times_s[-1])
        if start_s < first - EDGE_SLACK_S or stop_s > last + EDGE_SLACK_S:
            raise BridgeError(f"{name} [{start_s:.6f}, {stop_s:.6f}] s is not inside the trace "
                              f"[{first:.6f}, {last:.6f}] s ({self.detail or self.source.label})")


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per inference and what it was derived from.

    Attributes:
        energy_per_inference_uj: (window energy − idle mean power × window duration) / inferences, µJ.
        idle_power_mw: mean power over the idle window, mW.
        active_power_mw: mean power over the inference window, mW.
        window_s: duration of the inference window, s.
        inferences: inferences run inside the window.
        label: ``"estimate"`` plus the trace's label (``hardware`` meter, ``replay`` or ``synthetic``).
        method: the formula, for reports.
    """

    energy_per_inference_uj: float
    idle_power_mw: float
    active_power_mw: float
    window_s: float
    inferences: int
    label: str
    method: str

    def to_dict(self) -> dict:
        return {"energy_per_inference_uj": self.energy_per_inference_uj, "idle_power_mw": self.idle_power_mw,
                "active_power_mw": self.active_power_mw, "window_s": self.window_s, "inferences": self.inferences,
                "label": self.label, "method": self.method}


ENERGY_METHOD = ("(integral of power over the window of N inferences - mean idle power x window duration) / N; "
                 "assumes the idle power continues unchanged during the window")


def energy_per_inference(trace: PowerTrace, idle_window_s: tuple[float, float],
                         inference_window_s: tuple[float, float], inferences: int) -> EnergyEstimate:
    """Energy per inference from ``inferences`` inferences run inside ``inference_window_s``.

    Args:
        trace: the power trace covering both windows (same clock as the windows).
        idle_window_s: (start, stop) in s of a stretch with the device idle (the baseline).
        inference_window_s: (start, stop) in s of the stretch in which exactly ``inferences`` ran.
        inferences: how many inferences ran in the window (>= 1).
    """
    if isinstance(inferences, bool) or not isinstance(inferences, (int, np.integer)) or inferences < 1:
        raise BridgeError(f"inferences must be an integer >= 1, got {inferences!r}")
    trace._check_window("idle window", *idle_window_s)
    trace._check_window("inference window", *inference_window_s)
    idle_mw = trace.mean_power_mw(*idle_window_s)
    start_s, stop_s = inference_window_s
    window_s = stop_s - start_s
    window_uj = trace.energy_uj(start_s, stop_s)
    excess_uj = window_uj - idle_mw * window_s * 1000.0
    return EnergyEstimate(excess_uj / int(inferences), idle_mw, window_uj / 1000.0 / window_s, window_s,
                          int(inferences), f"estimate from a {trace.label} trace", ENERGY_METHOD)
