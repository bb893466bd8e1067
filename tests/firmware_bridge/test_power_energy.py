"""Energy per inference from a timed window against an idle baseline, on synthetic traces with analytic answers."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.messages import PowerSource
from hearmask.firmware_bridge.power_energy import PowerTrace, energy_per_inference, source_label


def synthetic_trace(times_s, power_mw) -> PowerTrace:
    return PowerTrace(times_s, power_mw, PowerSource.SYNTHETIC, "synthetic test trace")


def test_triangular_bursts_give_their_analytic_energy():
    # Idle 120 mW; from 2 s on, 25 inferences each a triangle of height 80 mW over 40 ms,
    # one every 50 ms. Each triangle holds 0.5 * 0.040 s * 80 mW = 1.6 mJ = 1600 µJ above idle.
    # Sampled at 1 kHz, every vertex is a sample, so trapezoids integrate it exactly.
    times_s = np.arange(0, 4001) / 1000.0
    power_mw = np.full(times_s.size, 120.0)
    for burst in range(25):
        start_s = 2.0 + 0.050 * burst
        phase_s = times_s - start_s
        power_mw += np.where((phase_s >= 0) & (phase_s <= 0.040), 80.0 * (1 - np.abs(phase_s - 0.020) / 0.020), 0.0)
    estimate = energy_per_inference(synthetic_trace(times_s, power_mw), (0.5, 1.5), (2.0, 3.25), 25)
    assert estimate.energy_per_inference_uj == pytest.approx(1600.0, rel=1e-9)
    assert estimate.idle_power_mw == pytest.approx(120.0)
    assert estimate.active_power_mw == pytest.approx(120.0 + 25 * 1.6 / 1.25)  # 40 mJ over 1.25 s
    assert estimate.window_s == pytest.approx(1.25) and estimate.inferences == 25
    assert estimate.label == "estimate from a synthetic trace"


def test_raised_cosine_load_over_whole_periods_with_a_sloped_window_edge():
    # P(t) = 300 + A (1 - cos 2π f t) mW inside the window: the excess over idle integrates to
    # A * T exactly over whole periods (trapezoids are exact for whole periods of a sampled cosine).
    # The window edges fall between samples (interpolated linearly): the trace is idle there.
    amplitude_mw, frequency_hz, window_s, inferences = 45.0, 20.0, 2.0, 40
    times_s = np.arange(0, 5.0, 1 / 997.0)
    load = (times_s >= 2.0) & (times_s <= 2.0 + window_s)
    power_mw = 300.0 + np.where(load, amplitude_mw * (1 - np.cos(2 * np.pi * frequency_hz * (times_s - 2.0))), 0.0)
    estimate = energy_per_inference(synthetic_trace(times_s, power_mw), (0.2, 1.8), (1.9, 4.1), inferences)
    expected_uj = amplitude_mw * window_s * 1000.0 / inferences
    assert estimate.energy_per_inference_uj == pytest.approx(expected_uj, rel=2e-3)  # 2250 µJ


def test_noisy_idle_baseline_averages_out():
    rng = np.random.default_rng(3)
    times_s = np.arange(0, 20001) / 10000.0  # 10 kHz for 2 s
    power_mw = 50.0 + rng.normal(0, 2.0, times_s.size) + np.where(times_s >= 1.0, 10.0, 0.0)
    estimate = energy_per_inference(synthetic_trace(times_s, power_mw), (0.0, 1.0), (1.0, 2.0), 100)
    # 10 mW for 1 s over 100 inferences = 100 µJ each; the noise's mean over 10^4 samples is ~0.02 mW.
    assert estimate.energy_per_inference_uj == pytest.approx(100.0, abs=2.0)


def test_energy_of_a_window_between_samples_is_interpolated():
    trace = synthetic_trace([0.0, 1.0, 2.0], [0.0, 100.0, 100.0])
    assert trace.energy_uj(0.5, 1.5) == pytest.approx((0.5 * (50 + 100) / 2 + 0.5 * 100) * 1000.0)
    assert trace.mean_power_mw(1.0, 2.0) == pytest.approx(100.0)


def test_labels_say_what_the_trace_is():
    assert source_label(PowerSource.EXTERNAL_METER) == "hardware"
    assert source_label(PowerSource.INA219) == "hardware"
    assert source_label(PowerSource.REPLAY) == "replay"
    assert source_label(PowerSource.SYNTHETIC) == "synthetic"


def test_recorded_csv_trace_is_labelled_replay(tmp_path):
    path = tmp_path / "recorded.csv"
    path.write_text("time_s,power_mw\n0,10\n1,10\n2,30\n3,30\n")
    trace = PowerTrace.from_csv(path)
    estimate = energy_per_inference(trace, (0.0, 1.0), (2.0, 3.0), 4)
    assert trace.source == PowerSource.REPLAY and "not live" in trace.detail
    assert estimate.energy_per_inference_uj == pytest.approx(20.0 * 1.0 * 1000.0 / 4)
    assert estimate.label == "estimate from a replay trace"


@pytest.mark.parametrize(("idle", "window", "inferences", "match"), [
    ((0.0, 1.0), (1.0, 5.0), 1, r"inference window \[1.000000, 5.000000\] s is not inside the trace"),
    ((-1.0, 1.0), (1.0, 2.0), 1, "idle window"),
    ((1.0, 1.0), (1.0, 2.0), 1, "start < stop"),
    ((0.0, 1.0), (1.0, 2.0), 0, "inferences must be an integer >= 1, got 0"),
])
def test_bad_windows_are_clear_errors(idle, window, inferences, match):
    trace = synthetic_trace([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 2.0, 2.0])
    with pytest.raises(BridgeError, match=match):
        energy_per_inference(trace, idle, window, inferences)


def test_malformed_traces_are_rejected():
    with pytest.raises(BridgeError, match="strictly increasing"):
        synthetic_trace([0.0, 0.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(BridgeError, match=">= 2 samples"):
        synthetic_trace([0.0], [1.0])
