"""Power backends the device agent can read itself (POWER message; PROTOCOL.md 4.7).

- :class:`Rpi5PmicBackend`: the Raspberry Pi 5 PMIC's rail ADCs via ``vcgencmd pmic_read_adc``.
  Power = Σ V·I over the rails that report both (``NAME_V volt(n)=…V`` and
  ``NAME_A current(n)=…A``). That is the power delivered by the PMIC's regulators: it
  excludes regulator losses and whatever the 5 V input feeds directly (USB, fan), so it is
  below wall power. The detail string says so.
- :class:`Ina219Backend`: a TI INA219 current/power monitor on I2C (``smbus2``). Current
  = shunt voltage / shunt resistance (no calibration register needed; datasheet SBOS448,
  registers 0x01 shunt voltage, 10 µV/LSB, signed, and 0x02 bus voltage, bits 15..3,
  4 mV/LSB; big-endian on the bus).
- :class:`ReplayPowerBackend`: plays back a recorded trace (CSV ``time_s,power_mw``),
  labelled ``replay`` — never a live measurement.

External meters (Nordic PPK2, Joulescope) are in :mod:`~hearmask.firmware_bridge.power_meters`
(their vendor packages are optional and imported only when such a backend is built); traces
and energy per inference are in :mod:`~hearmask.firmware_bridge.power_energy`.

Use with the agent: ``--power-backend rpi5-pmic`` (see :func:`make_power_backend`).
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource
from hearmask.firmware_bridge.plugins import PowerReading

_PMIC_LINE = re.compile(r"^\s*(?P<rail>\S+)_(?P<kind>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-+0-9.eE]+)[AV]\s*$")


def parse_pmic_read_adc(text: str) -> dict[str, tuple[float, float]]:
    """``vcgencmd pmic_read_adc`` output -> {rail: (volts, amps)} for rails reporting both."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        match = _PMIC_LINE.match(line)
        if match:
            (amps if match["kind"] == "A" else volts)[match["rail"]] = float(match["value"])
    return {rail: (volts[rail], amps[rail]) for rail in sorted(volts.keys() & amps.keys())}


class Rpi5PmicBackend:
    """Raspberry Pi 5 PMIC rails. ``run`` returns the command's stdout (injectable for tests)."""

    COMMAND = ("vcgencmd", "pmic_read_adc")

    def __init__(self, run: Callable[[], str] | None = None):
        self._run = run or self._run_vcgencmd

    def _run_vcgencmd(self) -> str:
        try:
            return subprocess.run(self.COMMAND, capture_output=True, text=True, timeout=5, check=True).stdout
        except (OSError, subprocess.SubprocessError) as error:
            raise BridgeError(f"cannot read the Raspberry Pi 5 PMIC with `{' '.join(self.COMMAND)}`: {error}") from None

    def read(self) -> PowerReading:
        rails = parse_pmic_read_adc(self._run())
        if not rails:
            raise BridgeError("`vcgencmd pmic_read_adc` reported no rail with both voltage and current (not a Pi 5?)")
        power_mw = sum(volts * amps for volts, amps in rails.values()) * 1000.0
        return PowerReading(power_mw, PowerSource.RPI5_PMIC, detail=f"sum of {len(rails)} PMIC rails, excl. losses")


INA219_SHUNT_REGISTER = 0x01
INA219_BUS_REGISTER = 0x02
INA219_SHUNT_LSB_V = 10e-6
INA219_BUS_LSB_V = 4e-3


class Ina219Backend:
    """INA219 at ``address`` on I2C bus ``bus_number``, with a ``shunt_ohms`` shunt (0.1 Ω on common boards).

    ``bus`` may be any object with ``read_word_data(address, register)`` (smbus2's API), for tests.
    """

    def __init__(self, bus_number: int = 1, address: int = 0x40, shunt_ohms: float = 0.1, bus=None):
        if not shunt_ohms > 0:
            raise BridgeError(f"INA219 shunt resistance must be > 0 ohm, got {shunt_ohms}")
        if bus is None:
            try:
                from smbus2 import SMBus
            except ImportError:
                raise BridgeError("the INA219 backend needs smbus2 (pip install smbus2) and I2C enabled") from None
            bus = SMBus(bus_number)
        self.bus = bus
        self.address = address
        self.shunt_ohms = shunt_ohms

    def _register(self, register: int) -> int:
        word = self.bus.read_word_data(self.address, register)
        return ((word & 0xFF) << 8) | (word >> 8)  # SMBus words are little-endian, the INA219 sends MSB first

    def read(self) -> PowerReading:
        raw_shunt = self._register(INA219_SHUNT_REGISTER)
        shunt_v = (raw_shunt - 0x10000 if raw_shunt & 0x8000 else raw_shunt) * INA219_SHUNT_LSB_V
        bus_v = (self._register(INA219_BUS_REGISTER) >> 3) * INA219_BUS_LSB_V
        current_ma = shunt_v / self.shunt_ohms * 1000.0
        return PowerReading(bus_v * current_ma, PowerSource.INA219, bus_v, current_ma,
                            detail=f"ina219 @0x{self.address:02x}, shunt {self.shunt_ohms:g} ohm")


class ReplayPowerBackend:
    """Plays a recorded trace back in real time from the first read, looping; each reading is
    the trace's power at that moment (linear interpolation). Labelled ``replay``."""

    def __init__(self, trace_path: str | Path, clock: Callable[[], float] = time.monotonic):
        self.trace_path = Path(trace_path)
        self.times_s, self.power_mw = load_power_trace(self.trace_path)
        self._clock = clock
        self._start: float | None = None

    def read(self) -> PowerReading:
        now = self._clock()
        if self._start is None:
            self._start = now
        span_s = self.times_s[-1] - self.times_s[0]
        elapsed_s = (now - self._start) % span_s if span_s > 0 else 0.0
        power_mw = float(np.interp(self.times_s[0] + elapsed_s, self.times_s, self.power_mw))
        return PowerReading(power_mw, PowerSource.REPLAY, detail=f"replay of {self.trace_path.name}, not live")


def load_power_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """CSV with a header ``time_s,power_mw`` -> (times in s, increasing; power in mW)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise BridgeError(f"cannot read power trace {str(path)!r}: {error}") from None
    try:
        times_s = np.array([float(row["time_s"]) for row in rows])
        power_mw = np.array([float(row["power_mw"]) for row in rows])
    except (KeyError, ValueError, TypeError):
        raise BridgeError(f"power trace {str(path)!r} must be CSV with columns time_s,power_mw (numbers)") from None
    if len(times_s) < 2 or not np.all(np.diff(times_s) > 0) or not all(math.isfinite(p) for p in power_mw):
        raise BridgeError(f"power trace {str(path)!r} needs >= 2 rows with strictly increasing time_s and finite power")
    return times_s, power_mw


def make_power_backend(spec: str):
    """The agent's ``--power-backend``: ``rpi5-pmic``, ``ina219[:ADDRESS[:SHUNT_OHMS]]``,
    ``replay:TRACE.csv``, an external meter (``ppk2[:PORT[:SUPPLY_MV[:source|ampere]]]``,
    ``joulescope``; :func:`~hearmask.firmware_bridge.power_meters.make_meter_backend`), or
    ``package.module:factory`` (called without arguments)."""
    from hearmask.firmware_bridge.plugins import load_plugin

    name, _, rest = spec.partition(":")
    if spec == "rpi5-pmic":
        return Rpi5PmicBackend()
    if name == "ina219":
        fields = rest.split(":") if rest else []
        try:
            address = int(fields[0], 0) if fields else 0x40
            shunt_ohms = float(fields[1]) if len(fields) > 1 else 0.1
        except ValueError:
            raise BridgeError(f"power backend {spec!r}: expected ina219[:ADDRESS[:SHUNT_OHMS]], e.g. ina219:0x40:0.1") from None
        return Ina219Backend(address=address, shunt_ohms=shunt_ohms)
    if name == "replay":
        return ReplayPowerBackend(rest)
    if name in ("ppk2", "joulescope"):
        from hearmask.firmware_bridge.power_meters import make_meter_backend

        return make_meter_backend(spec)
    return load_plugin(spec, "--power-backend")()
