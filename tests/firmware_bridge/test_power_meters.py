"""External meters (PPK2, Joulescope) against stand-ins of their vendor APIs; labelled synthetic, never hardware."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading

import numpy as np
import pytest

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource
from hearmask.firmware_bridge.power_energy import energy_per_inference
from hearmask.firmware_bridge.power_meters import (
    PPK2_SAMPLE_RATE_HZ,
    JoulescopeBackend,
    Ppk2Backend,
    make_meter_backend,
)


class FakePpk2Api:
    """Stand-in for ``ppk2_api.ppk2_api.PPK2_API`` (0.9): the calls hearmask makes, recorded.

    ``get_data`` hands out the queued byte chunks; ``get_samples`` decodes them as little-endian
    u32 microamps (our own test encoding, not the PPK2's) and returns ``(samples, bits)`` as 0.9 does.
    """

    queued_ua: list[np.ndarray] = []
    instances: list["FakePpk2Api"] = []

    def __init__(self, port):
        self.port = port
        self.calls: list[tuple] = []
        self.chunks = [np.asarray(chunk, "<u4").tobytes() for chunk in FakePpk2Api.queued_ua]
        self.measuring = False
        FakePpk2Api.instances.append(self)

    @staticmethod
    def list_devices():
        return ["/dev/fake-ppk2"]

    def get_modifiers(self):
        self.calls.append(("get_modifiers",))
        return True

    def use_source_meter(self):
        self.calls.append(("use_source_meter",))

    def use_ampere_meter(self):
        self.calls.append(("use_ampere_meter",))

    def set_source_voltage(self, mV):
        self.calls.append(("set_source_voltage", mV))

    def toggle_DUT_power(self, state):
        self.calls.append(("toggle_DUT_power", state))

    def start_measuring(self):
        assert any(c[0] == "set_source_voltage" for c in self.calls), "ppk2-api raises without a voltage set"
        self.calls.append(("start_measuring",))
        self.measuring = True

    def stop_measuring(self):
        self.calls.append(("stop_measuring",))
        self.measuring = False

    def get_data(self):
        return self.chunks.pop(0) if self.measuring and self.chunks else b""

    def get_samples(self, buf):
        return [float(v) for v in np.frombuffer(buf, "<u4")], []


@pytest.fixture
def ppk2_api():
    FakePpk2Api.instances = []
    FakePpk2Api.queued_ua = []
    return FakePpk2Api


def record(backend, chunks_left):
    """start(), wait until the stand-in has handed out every chunk, stop()."""
    backend.start()
    deadline = threading.Event()
    for _ in range(400):
        if not chunks_left():
            break
        deadline.wait(0.005)
    return backend.stop()


def test_ppk2_source_mode_makes_the_documented_calls_in_order(ppk2_api):
    ppk2_api.queued_ua = [np.full(500, 2000), np.full(700, 2000)]  # 2 mA
    backend = Ppk2Backend(supply_mv=1800, mode="source", api=ppk2_api, clock=lambda: 7.0)
    fake = ppk2_api.instances[0]
    assert fake.port == "/dev/fake-ppk2"  # the one device list_devices() found
    assert [c[0] for c in fake.calls] == ["get_modifiers", "use_source_meter", "set_source_voltage", "toggle_DUT_power"]
    assert fake.calls[2] == ("set_source_voltage", 1800) and fake.calls[3] == ("toggle_DUT_power", "ON")
    trace = record(backend, lambda: fake.chunks)
    assert fake.calls[-1] == ("stop_measuring",)
    assert trace.power_mw.size == 1200
    np.testing.assert_allclose(trace.power_mw, 2.0 * 1.8)  # 2 mA at 1.8 V = 3.6 mW
    np.testing.assert_allclose(np.diff(trace.times_s), 1 / PPK2_SAMPLE_RATE_HZ)
    assert trace.times_s[0] == 7.0
    # A stand-in is never a measurement: synthetic, and the detail says so.
    assert trace.source == PowerSource.SYNTHETIC and trace.label == "synthetic"
    assert "not a measurement" in trace.detail


def test_ppk2_ampere_mode_read_averages_the_window(ppk2_api):
    ppk2_api.queued_ua = [np.array([1000, 3000] * 50)]
    backend = Ppk2Backend("/dev/ttyACM7", supply_mv=5000, mode="ampere", api=ppk2_api, read_window_s=0.02)
    fake = ppk2_api.instances[0]
    assert ("use_ampere_meter",) in fake.calls and not any(c[0] == "toggle_DUT_power" for c in fake.calls)
    reading = backend.read()
    assert reading.power_mw == pytest.approx(2.0 * 5.0)  # mean 2 mA at the stated 5 V
    assert reading.current_ma == pytest.approx(2.0) and reading.voltage_v == pytest.approx(5.0)
    assert reading.window_us == 1000  # 100 samples at 100 kS/s
    assert reading.source == PowerSource.SYNTHETIC and "stated" in reading.detail and "not a measurement" in reading.detail


def test_energy_per_inference_from_a_ppk2_stand_in_trace(ppk2_api):
    # 0.3 s idle at 10 mA, 0.2 s with 16 inferences at 25 mA, 0.1 s idle; supplied at 3.3 V.
    # Excess: 15 mA * 3.3 V * 0.2 s = 9.9 mJ over 16 inferences = 618.75 µJ each.
    rate = PPK2_SAMPLE_RATE_HZ
    current_ua = np.concatenate([np.full(30000, 10000), np.full(20000, 25000), np.full(10001, 10000)])
    ppk2_api.queued_ua = np.array_split(current_ua, 12)
    backend = Ppk2Backend(supply_mv=3300, api=ppk2_api, clock=lambda: 100.0)
    trace = record(backend, lambda: ppk2_api.instances[0].chunks)
    # The window edges sit on the step edges; trapezoids add half a sample's ramp each side (1/rate s).
    estimate = energy_per_inference(trace, (100.0, 100.3 - 1 / rate), (100.3 - 1 / rate, 100.5), 16)
    assert estimate.energy_per_inference_uj == pytest.approx(618.75, rel=1e-3)
    assert estimate.label == "estimate from a synthetic trace"


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(mode="sink"), "PPK2 mode 'sink' is unknown; accepted: source, ampere"),
    (dict(supply_mv=6000), "6000 mV is outside the accepted 800..5000 mV"),
])
def test_ppk2_bad_settings_are_clear_errors(ppk2_api, kwargs, match):
    with pytest.raises(BridgeError, match=match):
        Ppk2Backend(api=ppk2_api, **kwargs)


def test_ppk2_errors_while_recording_are_reported(ppk2_api):
    backend = Ppk2Backend(api=ppk2_api)
    backend.ppk2.get_data = lambda: (_ for _ in ()).throw(OSError("device unplugged"))
    backend.start()
    with pytest.raises(BridgeError, match="device unplugged"):
        backend.stop()
    assert ppk2_api.instances[0].calls[-1] == ("stop_measuring",)


class FakeJoulescopeDevice:
    """Stand-in for a ``joulescope.v1.Device``: ``read`` returns (N, 2) current A / voltage V; the test
    delivers statistics as the driver thread would."""

    def __init__(self, samples: np.ndarray):
        self.samples = samples
        self.opened = False
        self.read_calls = []
        self.callbacks = []

    def __str__(self):
        return "JS220-FAKE"

    def open(self, event_callback_fn=None, mode=None, timeout=None):
        self.opened = True

    def close(self, timeout=None):
        self.opened = False

    def read(self, duration=None, contiguous_duration=None, out_format=None, fields=None):
        assert self.opened
        self.read_calls.append(contiguous_duration)
        return self.samples

    def statistics_callback_register(self, cbk, source=None):
        self.callbacks.append(cbk)

    def statistics_callback_unregister(self, cbk, source=None):
        self.callbacks.remove(cbk)

    def emit(self, start_s, stop_s, power_w):
        stats = {"time": {"range": {"value": [start_s, stop_s], "units": "s"}},
                 "signals": {"power": {"avg": {"value": power_w, "units": "W"}}}}
        for callback in list(self.callbacks):
            callback(stats)


class FakeJoulescopeModule:
    def __init__(self, devices):
        self.devices = devices
        self.scans = []

    def scan_require_one(self, name=None, config=None):
        self.scans.append(config)
        if len(self.devices) != 1:
            raise RuntimeError("no devices found" if not self.devices else "multiple devices found")
        return self.devices[0]


def test_joulescope_read_is_the_mean_of_current_times_voltage():
    samples = np.array([[0.010, 5.0], [0.030, 5.0], [np.nan, np.nan], [0.020, 4.0]], np.float32)
    device = FakeJoulescopeDevice(samples)
    module = FakeJoulescopeModule([device])
    backend = JoulescopeBackend(read_window_s=0.25, module=module)
    assert device.opened and module.scans == ["auto"]
    reading = backend.read()
    assert device.read_calls == [0.25]
    assert reading.power_mw == pytest.approx((50 + 150 + 80) / 3.0, rel=1e-5)  # NaN row (dropped samples) left out
    assert reading.voltage_v == pytest.approx(14 / 3, rel=1e-6) and reading.current_ma == pytest.approx(20.0, rel=1e-5)
    assert reading.window_us == 250_000
    assert reading.source == PowerSource.SYNTHETIC and "JS220-FAKE" in reading.detail and "not a measurement" in reading.detail
    backend.close()
    assert not device.opened


def test_joulescope_statistics_trace_and_energy():
    device = FakeJoulescopeDevice(np.zeros((1, 2)))
    clock_s = iter(np.arange(1, 41) * 0.1 + 50.0)  # each interval arrives at its end on the host clock
    backend = JoulescopeBackend(module=FakeJoulescopeModule([device]), clock=lambda: next(clock_s))
    device.emit(0.0, 0.1, 9.0)  # before start(): not recorded
    backend.start()
    for index in range(40):  # 10 intervals idle at 0.2 W, 20 at 0.5 W (the window), 10 idle
        device.emit(index * 0.1, (index + 1) * 0.1, 0.5 if 10 <= index < 30 else 0.2)
    trace = backend.stop()
    assert device.callbacks == []
    np.testing.assert_allclose(trace.times_s[:3], [50.05, 50.15, 50.25])
    assert trace.power_mw.max() == pytest.approx(500.0) and trace.source == PowerSource.SYNTHETIC
    estimate = energy_per_inference(trace, (50.05, 50.95), (51.05, 52.95), 50)
    # Excess 300 mW over the 1.9 s between the first and last loaded interval middles, over 50 inferences.
    assert estimate.energy_per_inference_uj == pytest.approx(300.0 * 1.9 * 1000.0 / 50, rel=1e-9)


@pytest.mark.parametrize(("devices", "text"), [([], "no devices found"), ([1, 2], "multiple devices found")])
def test_joulescope_needs_exactly_one_meter(devices, text):
    with pytest.raises(BridgeError, match=f"Joulescope: {text}; connect exactly one"):
        JoulescopeBackend(module=FakeJoulescopeModule(devices))


def test_meter_specs_and_missing_packages(monkeypatch):
    from hearmask.firmware_bridge.power import make_power_backend

    with pytest.raises(BridgeError, match="SUPPLY_MV must be an integer"):
        make_meter_backend("ppk2:/dev/ttyACM1:3.3V")
    with pytest.raises(BridgeError, match="accepted: ppk2"):
        make_meter_backend("keithley")
    monkeypatch.setitem(sys.modules, "ppk2_api", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "joulescope", None)
    with pytest.raises(BridgeError, match=r"pip install ppk2-api"):
        make_power_backend("ppk2:/dev/ttyACM1")
    with pytest.raises(BridgeError, match=r"pip install joulescope"):
        make_power_backend("joulescope")


def test_power_modules_do_not_import_the_vendor_packages():
    code = ("import sys, hearmask.firmware_bridge.power, hearmask.firmware_bridge.power_meters, "
            "hearmask.firmware_bridge.power_energy; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ppk2_api', 'joulescope')); "
            "print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_stand_ins_match_the_installed_vendor_apis():
    """The calls the stand-ins accept exist with these parameters in the real packages (when installed)."""
    ppk2 = pytest.importorskip("ppk2_api.ppk2_api")
    real = ppk2.PPK2_API
    for name in ("get_modifiers", "use_source_meter", "use_ampere_meter", "set_source_voltage", "toggle_DUT_power",
                 "start_measuring", "stop_measuring", "get_data", "get_samples", "list_devices"):
        assert _parameters(getattr(real, name)) == _parameters(getattr(FakePpk2Api, name)), name
    assert _parameters(real.__init__)[0] == "port"
    joulescope = pytest.importorskip("joulescope")
    assert _parameters(joulescope.scan_require_one) == ["name", "config"]
    from joulescope.v1.device import Device

    for name in ("open", "close", "read", "statistics_callback_register", "statistics_callback_unregister"):
        assert _parameters(getattr(Device, name)) == _parameters(getattr(FakeJoulescopeDevice, name)), name
