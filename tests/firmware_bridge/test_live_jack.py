"""``hearmask live`` against a real JACK server with its dummy backend (no sound card), in real time.

Each test starts its own ``jackd -n NAME -R -d dummy -r RATE -p PERIOD`` (a unique server
name, killed on every exit path). ``-R`` asks for real-time scheduling, as on a hearing-aid
prototype; where the system refuses it jackd runs without it (more xruns under load).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile

from hearmask.cli import main as cli_main
from hearmask.firmware_bridge.live import LiveOptions, build_processor, run_live
from hearmask.firmware_bridge.live_blocks import BlockAdapter
from hearmask.firmware_bridge.live_jack import JackLiveLoop, open_jack_client
from hearmask.firmware_bridge.live_processor import LiveProcessor

EMULATED = "emulated (JACK dummy backend)"
N3_DB_HL = (35.0, 35.0, 40.0, 50.0, 55.0, 60.0, 65.0, 65.0)
_names = itertools.count()


@pytest.fixture(scope="module")
def model_dir(quantized_dir):
    return quantized_dir  # the shared tiny int8 folder (tests/conftest.py)


@pytest.fixture
def jack_server():
    """Factory ``jack_server(rate_hz=16000, period=64) -> server name``; every server is killed at teardown."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    pytest.importorskip("jack", reason="the JACK-Client package is not installed")
    processes = []

    def start(rate_hz: int = 16000, period: int = 64) -> str:
        name = f"hearmask-test-{os.getpid()}-{next(_names)}"
        process = subprocess.Popen(["jackd", "-n", name, "-R", "-d", "dummy", "-r", str(rate_hz), "-p", str(period)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        probe = open_jack_client("probe", name)  # waits until the server accepts clients
        probe.close()
        return name

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def noise_file(path, seconds: float, level: float, rate_hz: int = 16000, seed: int = 0) -> np.ndarray:
    signal = (level * np.random.default_rng(seed).standard_normal(int(rate_hz * seconds))).astype(np.float32)
    soundfile.write(path, signal, rate_hz, subtype="FLOAT")
    return signal


def test_cli_plays_a_file_through_jack_and_the_output_equals_the_offline_int8_path(model_dir, jack_server, tmp_path):
    server = jack_server(16000, 64)
    signal = noise_file(tmp_path / "in.wav", 1.0, 0.1)
    status = cli_main(["live", "--model", str(model_dir), "--audiogram", "N3", "--nr", "0.8", "--hlc", "1.0",
                       "--jack-server", server, "--in-file", str(tmp_path / "in.wav"), "--out-file",
                       str(tmp_path / "out.wav"), "--label", EMULATED, "--report", str(tmp_path / "summary.json"),
                       "--json"])
    assert status == 0
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())
    recorded, rate = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 16000 and len(recorded) == len(signal)
    # The same int8 processor offline, hop by hop: with a 64-frame period (one hop per callback)
    # the loop adds nothing to the processor's own N_s - R delay, so the two agree bit for bit.
    offline = LiveProcessor.from_model_dir(model_dir, summary["listener"]["audiogram_db_hl"], 0.8, 1.0)
    np.testing.assert_array_equal(recorded, offline.process_signal(signal))
    assert np.max(np.abs(recorded)) > 0.01
    assert summary["hops_processed"] >= 250  # the loop runs on for a cycle or two until it is stopped
    assert summary["latency_budget"]["total_ms"] == 4.0 and summary["latency_budget"]["block_queue_ms"] == 0.0
    assert summary["conditions"]["audio"] == EMULATED
    assert summary["callbacks"] == summary["hops_processed"] and summary["callback_us"]["median"] > 0
    assert summary["callback_us"]["max"] >= summary["callback_us"]["p99"] >= summary["callback_us"]["median"]


def test_measure_latency_detects_the_clicks_after_the_loop_latency(model_dir, jack_server):
    server = jack_server(16000, 64)
    options = LiveOptions(model_dir=model_dir, audiogram_db_hl=N3_DB_HL, server_name=server, measure_latency=True,
                          audio_label=EMULATED)
    latency = run_live(options)["latency"]
    assert latency["clicks_detected"] == latency["clicks_played"]
    assert latency["measured_samples"] == latency["min_samples"] == latency["max_samples"] == 64
    assert latency["measured_ms"] == pytest.approx(latency["predicted_loop_ms"]) == pytest.approx(4.0)
    assert "inside the JACK graph" in latency["method"]


@pytest.mark.slow
def test_at_48_khz_the_resampled_loop_equals_the_offline_block_path(model_dir, jack_server, tmp_path):
    server = jack_server(48000, 128)
    signal = noise_file(tmp_path / "in.wav", 1.0, 0.1, rate_hz=48000)
    options = LiveOptions(model_dir=model_dir, audiogram_db_hl=N3_DB_HL, alpha=0.5, beta=0.5, server_name=server,
                          in_file=tmp_path / "in.wav", out_file=tmp_path / "out.wav", audio_label=EMULATED)
    summary = run_live(options)
    recorded, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    processor = build_processor(options)
    adapter = BlockAdapter(processor.process_hop, 64, 16000, 48000, 128)
    padded = np.concatenate([signal, np.zeros(-len(signal) % 128, np.float32)])
    offline = np.concatenate([adapter.process_block(padded[k:k + 128]) for k in range(0, len(padded), 128)])
    np.testing.assert_array_equal(recorded, offline[:len(signal)])
    budget = summary["latency_budget"]
    assert budget["resample_down_ms"] == budget["resample_up_ms"] == pytest.approx(0.75)
    assert summary["output_underruns"] == 0


@pytest.mark.slow
def test_the_limiter_holds_its_ceiling_on_a_loud_file_through_jack(model_dir, jack_server, tmp_path):
    server = jack_server(16000, 64)
    t = np.arange(16000) / 16000
    soundfile.write(tmp_path / "loud.wav", (0.99 * np.sign(np.sin(2 * np.pi * 300 * t))).astype(np.float32), 16000,
                    subtype="FLOAT")
    status = cli_main(["live", "--model", str(model_dir), "--audiogram", "N5", "--hlc", "1.0", "--nr", "0.0",
                       "--max-output-dbfs", "-10", "--jack-server", server, "--in-file", str(tmp_path / "loud.wav"),
                       "--out-file", str(tmp_path / "out.wav"), "--json"])
    assert status == 0
    recorded, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    ceiling = 10 ** (-10 / 20)
    assert np.max(np.abs(recorded)) <= ceiling
    assert np.max(np.abs(recorded)) > 0.8 * ceiling


@pytest.mark.slow
def test_strength_changes_while_running_ramp_one_step_per_hop(model_dir, jack_server):
    server = jack_server(16000, 64)

    class RecordingProcessor(LiveProcessor):
        def process_hop(self, hop, settings=None):
            output = super().process_hop(hop, settings)
            self.alphas.append(self.trace.alpha)
            return output

    processor = RecordingProcessor.from_model_dir(model_dir, N3_DB_HL, 0.0, 1.0, ramp_hops=10)
    processor.alphas = []
    with JackLiveLoop(processor, server_name=server, capture_ports=(), playback_ports=()):
        time.sleep(0.3)
        processor.set_strengths(1.0, 1.0)  # from the main thread, as the keyboard and serial controls do
        time.sleep(0.3)
    steps = np.diff(processor.alphas)
    assert np.max(steps) == pytest.approx(0.1) and np.min(steps) >= 0.0
    assert np.count_nonzero(steps) == 10
    assert processor.alphas[-1] == 1.0


@pytest.mark.slow
def test_serial_set_messages_reach_the_running_loop(model_dir, jack_server):
    from hearmask.firmware_bridge.client import DeviceClient
    from hearmask.firmware_bridge.transport import FdTransport

    server = jack_server(16000, 64)
    master_fd, slave_fd = os.openpty()
    import tty

    tty.setraw(slave_fd)
    options = LiveOptions(model_dir=model_dir, audiogram_db_hl=N3_DB_HL, alpha=1.0, beta=1.0, server_name=server,
                          capture_ports=(), playback_ports=(), duration_s=3.0, serial_url=os.ttyname(slave_fd),
                          audio_label=EMULATED)
    summary = {}
    thread = threading.Thread(target=lambda: summary.update(run_live(options)))
    thread.start()
    try:
        with DeviceClient("pty", transport=FdTransport(os.dup(master_fd), timeout=0.02), timeout_s=2.0) as device:
            device.set_strengths(0.25, 0.5)
            device.set_audiogram((20.0,) * 8)
    finally:
        thread.join(timeout=10)
        os.close(master_fd)
        os.close(slave_fd)
    assert summary["listener"] == {"audiogram_name": "custom", "audiogram_db_hl": [20.0] * 8, "alpha": 0.25,
                                   "beta": 0.5}


@pytest.mark.slow
def test_a_slow_callback_is_counted_as_xruns(model_dir, jack_server):
    server = jack_server(16000, 64)
    options = LiveOptions(model_dir=model_dir, audiogram_db_hl=N3_DB_HL, server_name=server, capture_ports=(),
                          playback_ports=(), duration_s=1.0, callback_delay_s=0.006, audio_label=EMULATED)
    summary = run_live(options)
    # Every callback sleeps 6 ms of a 4 ms period: the server reports xruns and cycles are lost.
    assert summary["late_callbacks"] == summary["callbacks"] > 0
    assert summary["xruns"] >= 1
    assert summary["skipped_cycles"] >= 1
    assert summary["callbacks"] < 240  # fewer than the 250 periods of a second


def test_accounting_reports_the_callback_times_it_recorded_and_counts_late_ones():
    from hearmask.firmware_bridge.live_jack import CallbackAccounting

    accounting = CallbackAccounting(capacity=1000)
    times_ns = np.arange(1, 201) * 25_000  # 25 us .. 5 ms
    for elapsed_ns in times_ns:
        accounting.record(int(elapsed_ns), period_ns=4_000_000, start_delay_frames=2)
    summary = accounting.summary(period_s=0.004, hops_per_callback=1.0, frames_per_period=64)
    assert summary["callbacks"] == 200
    assert summary["callback_us"]["median"] == pytest.approx(np.median(times_ns) / 1000)
    assert summary["callback_us"]["p99"] == pytest.approx(np.percentile(times_ns, 99) / 1000)
    assert summary["callback_us"]["max"] == 5000.0
    assert summary["late_callbacks"] == np.count_nonzero(times_ns > 4_000_000) == 40
    assert summary["callback_start_delay_us"]["max"] == pytest.approx(125.0)  # 2 frames of a 64-frame, 4 ms period
    np.testing.assert_allclose(accounting.recent_us(3), [4950.0, 4975.0, 5000.0])
