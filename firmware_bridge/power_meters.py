"""External power meters: Nordic Power Profiler Kit II (``ppk2-api``) and Joulescope (``joulescope``).

Both are :class:`hearmask.firmware_bridge.plugins.PowerBackend` s (``read()`` -> one
:class:`PowerReading`, the mean over ``read_window_s``) and also record a
:class:`~hearmask.firmware_bridge.power_energy.PowerTrace` between ``start()`` and
``stop()`` on the host's ``time.monotonic`` clock, so the profiler can mark its BENCH
window and compute energy per inference (:func:`~hearmask.firmware_bridge.power_energy.energy_per_inference`).

The vendor packages are optional (``pip install ppk2-api joulescope``) and imported only
when a meter backend is built: the agent and the host work without them.

Labels: readings are ``external-meter`` (source :attr:`PowerSource.EXTERNAL_METER`, label
``hardware``) only when the vendor package talks to a real meter. Tests pass a stand-in for
the vendor API (``api=`` / ``module=``); every reading and trace from a stand-in is
:attr:`PowerSource.SYNTHETIC` and its detail says ``stand-in ... not a measurement``.

- PPK2 (ppk2-api 0.9): ``PPK2_API(port)``, ``get_modifiers()`` (calibration from the
  meter), ``use_source_meter()`` (the PPK2 powers the device at ``set_source_voltage(mV)``)
  or ``use_ampere_meter()`` (in series with the device's own supply; ``set_source_voltage``
  then states that supply's voltage, which the PPK2 does not measure), ``toggle_DUT_power("ON")``
  in source mode, ``start_measuring()``, ``get_data()`` (raw bytes) and ``get_samples(bytes)``
  (currents in µA, 100 kS/s; 0.9 returns ``(samples, digital_bits)``, earlier versions a list),
  ``stop_measuring()``. Power = current × the stated voltage.
- Joulescope (joulescope 1.x, JS110/JS220): ``joulescope.scan_require_one(config="auto")``,
  ``device.open()``, ``device.read(contiguous_duration=s)`` -> (N, 2) float32 columns current
  (A) and voltage (V), both measured; ``device.statistics_callback_register(callback, "sensor")``
  delivers ``stats["signals"]["power"]["avg"]["value"]`` (W) over ``stats["time"]["range"]["value"]``
  (s) a few times per second; ``device.close()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource
from hearmask.firmware_bridge.plugins import PowerReading
from hearmask.firmware_bridge.power_energy import PowerTrace

PPK2_SAMPLE_RATE_HZ = 100_000  # the PPK2 streams 100 kS/s
PPK2_MIN_MV, PPK2_MAX_MV = 800, 5000  # its regulator's range
PPK2_MODES = ("source", "ampere")
DEFAULT_READ_WINDOW_S = 0.1
POLL_INTERVAL_S = 0.005
STAND_IN_NOTE = "stand-in for the vendor API (tests), not a measurement"


def _import_ppk2_api():
    try:
        from ppk2_api.ppk2_api import PPK2_API
    except ImportError:
        raise BridgeError("the PPK2 backend needs the ppk2-api package (pip install ppk2-api)") from None
    return PPK2_API


def _import_joulescope():
    try:
        import joulescope
    except ImportError:
        raise BridgeError("the Joulescope backend needs the joulescope package (pip install joulescope)") from None
    return joulescope


class _Recorder:
    """Polls ``poll() -> list of float`` on a thread between start() and stop(); keeps the values."""

    def __init__(self, poll: Callable[[], list[float]], interval_s: float = POLL_INTERVAL_S):
        self._poll = poll
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.values: list[float] = []
        self.error: BaseException | None = None

    def start(self) -> None:
        self._stop.clear()
        self.values = []
        self.error = None
        self._thread = threading.Thread(target=self._run, name="hearmask-power-meter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.values.extend(self._poll())
                self._stop.wait(self._interval_s)
            self.values.extend(self._poll())  # what arrived since the last poll
        except BaseException as error:  # reported by stop(), never lost in the thread
            self.error = error

    def stop(self) -> list[float]:
        if self._thread is None:
            raise BridgeError("the power meter is not recording (call start() first)")
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self.error is not None:
            raise BridgeError(f"the power meter failed while recording: {type(self.error).__name__}: {self.error}")
        return self.values


class Ppk2Backend:
    """Nordic Power Profiler Kit II through ``ppk2-api``.

    Args:
        port: the PPK2's serial port; None -> the one PPK2 that ``PPK2_API.list_devices()`` finds.
        supply_mv: source mode: the voltage the PPK2 supplies; ampere mode: the device's supply
            voltage (stated, not measured), 800..5000 mV.
        mode: ``"source"`` (the PPK2 powers the device) or ``"ampere"`` (in series with its supply).
        read_window_s: how long :meth:`read` records before averaging.
        api: a stand-in for ``PPK2_API`` (tests); its readings are labelled synthetic.
        clock: the clock trace times are on (the host's monotonic clock).
    """

    def __init__(self, port: str | None = None, supply_mv: int = 3300, mode: str = "source",
                 read_window_s: float = DEFAULT_READ_WINDOW_S, api: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        if mode not in PPK2_MODES:
            raise BridgeError(f"PPK2 mode {mode!r} is unknown; accepted: {', '.join(PPK2_MODES)}")
        if not PPK2_MIN_MV <= supply_mv <= PPK2_MAX_MV:
            raise BridgeError(f"PPK2 supply {supply_mv} mV is outside the accepted {PPK2_MIN_MV}..{PPK2_MAX_MV} mV")
        if not read_window_s > 0:
            raise BridgeError(f"read_window_s must be > 0 s, got {read_window_s}")
        self.is_stand_in = api is not None
        api_class = api if api is not None else _import_ppk2_api()
        if port is None:
            found = list(api_class.list_devices())
            if len(found) != 1:
                raise BridgeError(f"found {len(found)} PPK2 meters ({found}); give the port, e.g. ppk2:/dev/ttyACM1")
            port = found[0]
        self.port = port
        self.supply_mv = int(supply_mv)
        self.mode = mode
        self.read_window_s = read_window_s
        self._clock = clock
        try:
            self.ppk2 = api_class(port)
        except Exception as error:
            raise BridgeError(f"cannot open the PPK2 on {port!r}: {type(error).__name__}: {error}") from None
        self.ppk2.get_modifiers()  # the meter's calibration, needed for correct currents
        if mode == "source":
            self.ppk2.use_source_meter()
        else:
            self.ppk2.use_ampere_meter()
        self.ppk2.set_source_voltage(self.supply_mv)
        if mode == "source":
            self.ppk2.toggle_DUT_power("ON")
        self._recorder = _Recorder(self._poll_ua)
        self._start_s: float | None = None

    @property
    def source(self) -> PowerSource:
        return PowerSource.SYNTHETIC if self.is_stand_in else PowerSource.EXTERNAL_METER

    @property
    def detail(self) -> str:
        what = (f"ppk2 source meter at {self.supply_mv} mV" if self.mode == "source"
                else f"ppk2 ampere meter, supply stated as {self.supply_mv} mV")
        return f"{what}; {STAND_IN_NOTE}" if self.is_stand_in else f"{what} on {self.port}"

    def _poll_ua(self) -> list[float]:
        data = self.ppk2.get_data()
        if not data:
            return []
        samples = self.ppk2.get_samples(data)
        if isinstance(samples, tuple):  # ppk2-api 0.9: (currents in µA, digital channel bits)
            samples = samples[0]
        return [float(s) for s in samples]

    def start(self) -> None:
        """Start recording (the trace's time 0 is now on ``clock``)."""
        self.ppk2.start_measuring()
        self._start_s = self._clock()
        self._recorder.start()

    def stop(self) -> PowerTrace:
        """Stop recording -> the trace since :meth:`start`, sample ``k`` at ``start + k / 100 kHz``."""
        try:
            current_ua = np.asarray(self._recorder.stop(), dtype=np.float64)
        finally:
            self.ppk2.stop_measuring()
        if current_ua.size < 2:
            raise BridgeError(f"the PPK2 sent {current_ua.size} samples; record for longer")
        times_s = self._start_s + np.arange(current_ua.size) / PPK2_SAMPLE_RATE_HZ
        return PowerTrace(times_s, current_ua * self.supply_mv / 1e6, self.source, self.detail)  # µA·mV = nW

    def read(self) -> PowerReading:
        """Mean power over ``read_window_s``."""
        self.start()
        time.sleep(self.read_window_s)
        trace = self.stop()
        power_mw = float(np.mean(trace.power_mw))
        window_us = int(round(trace.power_mw.size / PPK2_SAMPLE_RATE_HZ * 1e6))
        return PowerReading(power_mw, self.source, self.supply_mv / 1000.0, power_mw / (self.supply_mv / 1000.0),
                            window_us, self.detail)

    def close(self) -> None:
        if self.mode == "source":
            self.ppk2.toggle_DUT_power("OFF")


class JoulescopeBackend:
    """A Joulescope (JS110 / JS220) through the ``joulescope`` package.

    Args:
        read_window_s: how long :meth:`read` captures (contiguous samples) before averaging.
        module: a stand-in for the ``joulescope`` module (tests); its readings are labelled synthetic.
        clock: the clock trace times are on (the host's monotonic clock).
    """

    def __init__(self, read_window_s: float = DEFAULT_READ_WINDOW_S, module: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        if not read_window_s > 0:
            raise BridgeError(f"read_window_s must be > 0 s, got {read_window_s}")
        self.is_stand_in = module is not None
        joulescope = module if module is not None else _import_joulescope()
        try:
            self.device = joulescope.scan_require_one(config="auto")
        except RuntimeError as error:  # "no devices found" / "multiple devices found"
            raise BridgeError(f"Joulescope: {error}; connect exactly one") from None
        self.device.open()
        self.read_window_s = read_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._intervals: list[tuple[float, float]] | None = None  # (host time at the interval's middle, W)

    @property
    def source(self) -> PowerSource:
        return PowerSource.SYNTHETIC if self.is_stand_in else PowerSource.EXTERNAL_METER

    @property
    def detail(self) -> str:
        name = f"joulescope {self.device}"
        return f"{name}; {STAND_IN_NOTE}" if self.is_stand_in else name

    def read(self) -> PowerReading:
        """Mean of current × voltage over ``read_window_s`` of contiguous samples."""
        samples = np.asarray(self.device.read(contiguous_duration=self.read_window_s), dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != 2 or samples.shape[0] == 0:
            raise BridgeError(f"Joulescope read returned shape {samples.shape}; expected (N, 2) current, voltage")
        samples = samples[np.all(np.isfinite(samples), axis=1)]  # NaN marks samples the USB link dropped
        if samples.shape[0] == 0:
            raise BridgeError("Joulescope read returned no valid samples")
        current_a, voltage_v = samples[:, 0], samples[:, 1]
        return PowerReading(float(np.mean(current_a * voltage_v)) * 1000.0, self.source, float(np.mean(voltage_v)),
                            float(np.mean(current_a)) * 1000.0, int(round(self.read_window_s * 1e6)), self.detail)

    def _on_statistics(self, stats: dict) -> None:
        """Called on the driver's thread: one interval's mean power (W) over ``time.range`` (s)."""
        arrived_s = self._clock()
        start_s, stop_s = stats["time"]["range"]["value"]
        power_w = float(stats["signals"]["power"]["avg"]["value"])
        with self._lock:
            if self._intervals is not None:
                # The interval ended just before it arrived: place its mean at its middle, on the host clock.
                self._intervals.append((arrived_s - (stop_s - start_s) / 2.0, power_w))

    def start(self) -> None:
        """Start recording the meter's statistics intervals (each a mean power; host-clock times)."""
        with self._lock:
            self._intervals = []
        self.device.statistics_callback_register(self._on_statistics, "sensor")

    def stop(self) -> PowerTrace:
        """Stop recording -> one sample per statistics interval at its middle (resolution: the interval)."""
        self.device.statistics_callback_unregister(self._on_statistics, "sensor")
        with self._lock:
            intervals, self._intervals = self._intervals, None
        if intervals is None:
            raise BridgeError("the Joulescope is not recording (call start() first)")
        if len(intervals) < 2:
            raise BridgeError(f"the Joulescope sent {len(intervals)} statistics intervals; record for longer")
        times_s, power_w = np.array(intervals).T
        return PowerTrace(times_s, power_w * 1000.0, self.source, f"{self.detail}, statistics intervals")

    def close(self) -> None:
        self.device.close()


def make_meter_backend(spec: str):
    """``ppk2[:PORT[:SUPPLY_MV[:source|ampere]]]`` or ``joulescope`` -> a meter backend (needs its package)."""
    name, _, rest = spec.partition(":")
    if name == "joulescope" and not rest:
        return JoulescopeBackend()
    if name == "ppk2":
        fields = rest.split(":") if rest else []
        if len(fields) > 3:
            raise BridgeError(f"power meter {spec!r}: expected ppk2[:PORT[:SUPPLY_MV[:source|ampere]]]")
        try:
            supply_mv = int(fields[1]) if len(fields) > 1 and fields[1] else 3300
        except ValueError:
            raise BridgeError(f"power meter {spec!r}: SUPPLY_MV must be an integer in mV, e.g. ppk2:/dev/ttyACM1:3300") from None
        return Ppk2Backend(fields[0] or None if fields else None, supply_mv, fields[2] if len(fields) > 2 else "source")
    raise BridgeError(f"power meter {spec!r} is unknown; accepted: ppk2[:PORT[:SUPPLY_MV[:source|ampere]]], joulescope")
