"""Power backends: PMIC text parsing, INA219 register arithmetic, trace replay (synthetic inputs, labelled so)."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.firmware_bridge.client import DeviceClient
from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource
from hearmask.firmware_bridge.power import (
    Ina219Backend,
    ReplayPowerBackend,
    Rpi5PmicBackend,
    parse_pmic_read_adc,
)

# Synthetic text in the `vcgencmd pmic_read_adc` layout (not a recording from a board).
SYNTHETIC_PMIC_OUTPUT = """\
     3V7_WL_SW_A current(0)=0.10000000A
       VDD_CORE_A current(7)=2.00000000A
       3V7_WL_SW_V volt(8)=3.70000000V
       VDD_CORE_V volt(15)=0.80000000V
         EXT5V_V volt(24)=5.10000000V
"""


def test_pmic_rails_pair_volts_with_amps():
    rails = parse_pmic_read_adc(SYNTHETIC_PMIC_OUTPUT)
    assert rails == {"3V7_WL_SW": (3.7, 0.1), "VDD_CORE": (0.8, 2.0)}  # EXT5V has no current: left out
    reading = Rpi5PmicBackend(run=lambda: SYNTHETIC_PMIC_OUTPUT).read()
    assert reading.source == PowerSource.RPI5_PMIC
    assert reading.power_mw == pytest.approx((3.7 * 0.1 + 0.8 * 2.0) * 1000)
    assert "excl. losses" in reading.detail


def test_pmic_without_rails_is_a_clear_error():
    with pytest.raises(BridgeError, match="not a Pi 5"):
        Rpi5PmicBackend(run=lambda: "error=1 error_msg=\"Command not registered\"").read()


class FakeSmbus:
    """Register words as smbus2 returns them (byte-swapped INA219 registers)."""

    def __init__(self, registers: dict[int, int]):
        self.registers = registers

    def read_word_data(self, address: int, register: int) -> int:
        value = self.registers[register]
        return ((value & 0xFF) << 8) | (value >> 8)


def test_ina219_register_arithmetic():
    # Shunt 0x0FA0 = 4000 LSB = 40 mV over 0.1 ohm = 400 mA; bus (5000 << 3) = 5000 * 4 mV = 20 V.
    bus = FakeSmbus({0x01: 0x0FA0, 0x02: 5000 << 3})
    reading = Ina219Backend(bus=bus, shunt_ohms=0.1).read()
    assert reading.source == PowerSource.INA219
    assert reading.current_ma == pytest.approx(400.0) and reading.voltage_v == pytest.approx(20.0)
    assert reading.power_mw == pytest.approx(8000.0)
    negative = Ina219Backend(bus=FakeSmbus({0x01: 0xF060, 0x02: 1250 << 3})).read()  # -4000 LSB
    assert negative.current_ma == pytest.approx(-400.0)


def test_replay_interpolates_and_loops(tmp_path):
    trace = tmp_path / "synthetic_trace.csv"
    trace.write_text("time_s,power_mw\n0.0,100\n1.0,300\n2.0,100\n")
    clock = iter([10.0, 10.5, 11.0, 12.5])
    backend = ReplayPowerBackend(trace, clock=lambda: next(clock))
    readings = [backend.read() for _ in range(4)]
    np.testing.assert_allclose([r.power_mw for r in readings], [100, 200, 300, 200])
    assert all(r.source == PowerSource.REPLAY and "not live" in r.detail for r in readings)


@pytest.mark.parametrize("text", ["time_s,power_mw\n0,1\n", "t,p\n0,1\n1,2\n", "time_s,power_mw\n1,1\n0,2\n"])
def test_bad_traces_are_clear_errors(tmp_path, text):
    trace = tmp_path / "bad.csv"
    trace.write_text(text)
    with pytest.raises(BridgeError, match="power trace"):
        ReplayPowerBackend(trace)


def test_power_over_the_emulated_link_with_a_synthetic_backend():
    url = "emulate://rpi?power_backend=hearmask.firmware_bridge.fake_runtime:SyntheticPowerBackendForTests"
    with DeviceClient(url) as client:
        reading = client.power()
    assert reading.source == PowerSource.SYNTHETIC and reading.source.label == "synthetic"
    assert reading.power_mw == pytest.approx(1234.5) and reading.voltage_v == pytest.approx(5.0)


def test_agent_power_backend_specs(tmp_path):
    from hearmask.firmware_bridge.power import make_power_backend

    trace = tmp_path / "synthetic_trace.csv"
    trace.write_text("time_s,power_mw\n0,5\n1,5\n")
    assert isinstance(make_power_backend(f"replay:{trace}"), ReplayPowerBackend)
    assert isinstance(make_power_backend("rpi5-pmic"), Rpi5PmicBackend)
    with pytest.raises(BridgeError, match="ina219:0x40:0.1"):
        make_power_backend("ina219:forty")
    with pytest.raises(BridgeError, match="must look like 'package.module:attribute'"):
        make_power_backend("nonsense")
