"""The live loop's audio I/O through a JACK server (``JACK-Client``, numpy; no torch, no tensorflow).

Why JACK: it is what the open Master Hearing Aid (openMHA) runs on its Raspberry Pi
prototypes; its process callback hands over one period of every port in a fixed graph
order, so a file player, the hearing aid and a recorder run in the same cycle, sample
aligned, and the whole path can be tested against a real server with its dummy backend
(``jackd -d dummy``), which needs no sound card. Debian package ``jackd2`` provides the
server; pip package ``JACK-Client`` the Python binding.

- :class:`JackLiveLoop`: a JACK client with one input and one output port; its process
  callback runs :class:`hearmask.firmware_bridge.live_blocks.BlockAdapter` (resampling
  when the server does not run at the model rate) and keeps :class:`CallbackAccounting`.
- :class:`FileTap`: a signal played into the loop and a recording of its output, both
  through JACK ports and connections but driven by the loop's own callback, so the
  recording lines up with the signal exactly (files in tests and ``--in-file``, clicks
  for the latency measurement).
- :func:`click_train` and :func:`detect_latency`: the loopback latency measurement.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live_blocks import BlockAdapter

ACCOUNTING_CAPACITY = 1 << 20  # callback times kept: 70 min at 250 callbacks/s
OPEN_TIMEOUT_S = 5.0


def open_jack_client(name: str, server_name: str | None = None, timeout_s: float = OPEN_TIMEOUT_S):
    """A ``jack.Client`` on a running server (never starts one), retried until ``timeout_s``."""
    try:
        import jack
    except (ImportError, OSError) as error:
        raise HearmaskError(f"the JACK backend needs the JACK-Client package and libjack (pip install JACK-Client; "
                            f"Debian: apt-get install jackd2): {error}") from None
    deadline = time.monotonic() + timeout_s
    messages: list[str] = []
    jack.set_error_function(messages.append)  # libjack's "cannot connect" lines while we retry
    try:
        while True:
            try:
                return jack.Client(name, servername=server_name, no_start_server=True)
            except jack.JackOpenError:
                if time.monotonic() >= deadline:
                    server = server_name or "default"
                    raise HearmaskError(f"cannot connect to the JACK server {server!r}; start one first, e.g. "
                                        "`jackd -R -d alsa -d hw:USB -r 48000 -p 128 -n 2` (sound card) or "
                                        "`jackd -R -d dummy -r 16000 -p 64` (no card)") from None
                time.sleep(0.05)
    finally:
        jack.set_error_function(None)


def connect_ports(client, sources, destinations) -> None:
    """Connect every pair; a missing port raises :class:`HearmaskError` listing the ports there are."""
    import jack

    for source, destination in zip(sources, destinations):
        try:
            client.connect(source, destination)
        except jack.JackError as error:
            names = ", ".join(port.name for port in client.get_ports())
            raise HearmaskError(f"cannot connect JACK port {source!r} to {destination!r} ({error}); ports on the "
                                f"server: {names}") from None


class CallbackAccounting:
    """Per-callback time, xruns and skipped cycles, written by the process callback and read by reports."""

    def __init__(self, capacity: int = ACCOUNTING_CAPACITY):
        self.times_ns = np.zeros(capacity, np.int64)
        self.start_delays_frames = np.zeros(capacity, np.int32)  # cycle start -> callback entry (wake-up, GIL)
        self.callbacks = 0
        # All counted from the first processed cycle on.
        self.xruns = 0  # server-reported xruns (JACK's xrun callback)
        self.skipped_cycles = 0  # periods the callback never saw (gaps in JACK frame time)
        self.late_callbacks = 0  # callbacks longer than one period
        self.cpu_load_percent: list[float] = []  # JACK DSP load samples
        self._process_cpu_start = time.process_time()
        self._wall_start = time.monotonic()

    def record(self, elapsed_ns: int, period_ns: int, start_delay_frames: int = 0) -> None:
        index = self.callbacks % len(self.times_ns)
        self.times_ns[index] = elapsed_ns
        self.start_delays_frames[index] = start_delay_frames
        self.callbacks += 1
        if elapsed_ns > period_ns:
            self.late_callbacks += 1

    def recent_us(self, count: int) -> np.ndarray:
        """The last ``count`` callback times in µs (cheap enough for a status line while running)."""
        end = self.callbacks
        indices = np.arange(max(0, end - min(count, len(self.times_ns))), end) % len(self.times_ns)
        return self.times_ns[indices] / 1000.0

    def summary(self, period_s: float, hops_per_callback: float, frames_per_period: int = 1) -> dict:
        times_us = self.times_ns[: min(self.callbacks, len(self.times_ns))] / 1000.0
        wall_s = max(time.monotonic() - self._wall_start, 1e-9)

        def stat(function):
            return float(function(times_us)) if len(times_us) else None

        loads = np.asarray(self.cpu_load_percent)
        delays_us = self.start_delays_frames[: len(times_us)] * (1e6 * period_s / max(frames_per_period, 1))
        return {
            "callbacks": self.callbacks,
            "period_ms": 1000.0 * period_s,
            "hops_per_callback": hops_per_callback,
            "callback_us": {"median": stat(np.median), "p99": stat(lambda t: np.percentile(t, 99)), "max": stat(np.max),
                            "mean": stat(np.mean)},
            # How late the callback began after its cycle started (thread wake-up, Python's GIL): it
            # eats into the period too, but is not part of callback_us.
            "callback_start_delay_us": {"median": float(np.median(delays_us)) if len(delays_us) else None,
                                        "p99": float(np.percentile(delays_us, 99)) if len(delays_us) else None,
                                        "max": float(np.max(delays_us)) if len(delays_us) else None},
            "callback_fraction_of_period_median": (stat(np.median) / (1e6 * period_s)) if len(times_us) else None,
            "xruns": self.xruns,
            "skipped_cycles": self.skipped_cycles,
            "late_callbacks": self.late_callbacks,
            "jack_dsp_load_percent": {"median": float(np.median(loads)), "max": float(np.max(loads))} if len(loads) else None,
            "process_cpu_percent": 100.0 * (time.process_time() - self._process_cpu_start) / wall_s,
            "wall_s": wall_s,
        }


class JackLiveLoop:
    """The hearing aid as a JACK client: ``<name>:in`` -> processor -> ``<name>:out``.

    Args:
        processor: a :class:`hearmask.firmware_bridge.live_processor.LiveProcessor` (anything with
            ``process_hop``, ``hop_samples``, ``sample_rate_hz``, ``hop_delay_samples``).
        client_name, server_name: the JACK client name and server (None: ``$JACK_DEFAULT_SERVER`` or default).
        capture_ports: ports connected to our input, e.g. ``("system:capture_1",)``; None: the first physical one.
        playback_ports: ports our output is connected to, e.g. ``("system:playback_1", "system:playback_2")``;
            None: the first two physical ones.
        file_ports: also register ``file_play`` / ``file_record`` for a :class:`FileTap`.
        callback_delay_s: TEST ONLY: sleep this long in every callback (to provoke xruns).
    """

    def __init__(self, processor, *, client_name: str = "hearmask-live", server_name: str | None = None,
                 capture_ports=(), playback_ports=(), file_ports: bool = False, callback_delay_s: float = 0.0):
        self.processor = processor
        self.client_name = client_name
        self.server_name = server_name
        self.capture_ports = None if capture_ports is None else tuple(capture_ports)
        self.playback_ports = None if playback_ports is None else tuple(playback_ports)
        self.callback_delay_s = float(callback_delay_s)
        self.file_ports = file_ports
        self.file_tap: FileTap | None = None  # set (with start_frame) once the signal is known
        self.accounting = CallbackAccounting()
        self.start_frame: int | None = None  # process only cycles starting at or after this JACK frame
        self.last_cycle_frame: int | None = None
        self.first_processed_frame: int | None = None
        self.error: BaseException | None = None
        self.stopped = threading.Event()
        self.client = None
        self.adapter: BlockAdapter | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "JackLiveLoop":
        client = open_jack_client(self.client_name, self.server_name)
        self.client = client
        self.sample_rate_hz, self.block_samples = int(client.samplerate), int(client.blocksize)
        self.period_ns = int(1e9 * self.block_samples / self.sample_rate_hz)
        self.adapter = BlockAdapter(self.processor.process_hop, self.processor.hop_samples,
                                    self.processor.sample_rate_hz, self.sample_rate_hz, self.block_samples)
        self.inport = client.inports.register("in")
        self.outport = client.outports.register("out")
        if self.file_ports:
            self.file_play_port = client.outports.register("file_play")
            self.file_record_port = client.inports.register("file_record")
        client.set_process_callback(self._process)
        client.set_xrun_callback(self._xrun)
        client.set_blocksize_callback(self._blocksize_changed)
        client.set_shutdown_callback(self._shutdown)
        client.activate()
        if self.capture_ports is None:  # default: the first physical capture port, the first two physical playback ports
            self.capture_ports = tuple(p.name for p in client.get_ports(is_audio=True, is_physical=True, is_output=True))[:1]
        if self.playback_ports is None:
            self.playback_ports = tuple(p.name for p in client.get_ports(is_audio=True, is_physical=True, is_input=True))[:2]
        connect_ports(client, self.capture_ports, [self.inport.name] * len(self.capture_ports))
        connect_ports(client, [self.outport.name] * len(self.playback_ports), self.playback_ports)
        return self

    def stop(self) -> None:
        if self.client is not None:
            try:
                self.client.deactivate()
                self.client.close()
            except Exception:  # the server may already be gone; nothing left to release
                pass
            self.client = None
        self.stopped.set()

    def __enter__(self) -> "JackLiveLoop":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------ JACK callbacks (JACK's threads)

    def _process(self, frames: int) -> None:
        start_ns = time.perf_counter_ns()
        client = self.client
        start_delay_frames = client.frames_since_cycle_start
        frame = client.last_frame_time
        previous = self.last_cycle_frame
        # Counted from the first processed cycle on: start-up (imports, file reading) is not the loop's doing.
        if previous is not None and frame - previous > frames and self._counting():
            self.accounting.skipped_cycles += (frame - previous) // frames - 1
        self.last_cycle_frame = frame
        out = self.outport.get_array()
        tap = self.file_tap
        # File mode processes (and counts) only while the tap runs: the recording starts from a fresh state.
        waiting = (self.file_ports and (tap is None or tap.done.is_set())) or \
            (self.start_frame is not None and frame < self.start_frame)
        if self.error is not None or waiting:
            out.fill(0.0)
            if self.file_ports:
                self.file_play_port.get_array().fill(0.0)
            return
        try:
            if tap is not None:
                tap.play(self.file_play_port.get_array())  # before reading "in": it may be connected to file_play
            out[:] = self.adapter.process_block(self.inport.get_array())
            if tap is not None:
                tap.record(self.file_record_port.get_array())  # after writing "out", which feeds file_record
        except Exception as error:  # mute, remember, and let the main thread stop: never raise into JACK
            out.fill(0.0)
            self.error = error
            self.stopped.set()
            return
        if self.first_processed_frame is None:
            self.first_processed_frame = frame
        if self.callback_delay_s:
            time.sleep(self.callback_delay_s)
        self.accounting.record(time.perf_counter_ns() - start_ns, self.period_ns, start_delay_frames)

    def _xrun(self, delayed_usecs: float) -> None:
        if self._counting():
            self.accounting.xruns += 1

    def _counting(self) -> bool:
        """Between the first processed cycle and, in file mode, the end of the recording."""
        tap = self.file_tap
        return self.first_processed_frame is not None and not (tap is not None and tap.done.is_set())

    def _blocksize_changed(self, blocksize: int) -> None:
        if self.adapter is not None and blocksize != self.block_samples:
            self.error = HearmaskError(f"the JACK period changed from {self.block_samples} to {blocksize} frames while "
                                       "running; restart hearmask live")
            self.stopped.set()

    def _shutdown(self, status, reason) -> None:
        self.error = HearmaskError(f"the JACK server shut down: {reason}")
        self.stopped.set()

    # ------------------------------------------------------------------ reports

    def sample_cpu_load(self) -> None:
        """Record JACK's DSP load now (call it from the main thread, e.g. once a second)."""
        if self.client is not None:
            self.accounting.cpu_load_percent.append(float(self.client.cpu_load()))

    def port_latency_frames(self) -> dict:
        """JACK's own latency figures (frames) for the ports we are connected to: the card's buffering."""
        import jack

        result = {}
        for name, mode in ((self.inport.name, jack.CAPTURE), (self.outport.name, jack.PLAYBACK)):
            low, high = self.client.get_port_by_name(name).get_latency_range(mode)
            result[name] = {"min": int(low), "max": int(high)}
        return result

    def summary(self) -> dict:
        hops = self.block_samples * self.processor.sample_rate_hz / self.sample_rate_hz / self.processor.hop_samples
        result = self.accounting.summary(self.block_samples / self.sample_rate_hz, hops, self.block_samples)
        result["output_underruns"] = self.adapter.underruns if self.adapter else 0
        result["jack"] = {"sample_rate_hz": self.sample_rate_hz, "period_frames": self.block_samples,
                          "client": self.client_name, "server": self.server_name or "default"}
        result["latency_budget"] = self.adapter.latency_budget(self.processor.hop_delay_samples) if self.adapter else None
        return result


class FileTap:
    """A signal to play into the loop and a recording of what comes out, driven by the loop's own callback.

    With a tap, :class:`JackLiveLoop` registers ``<name>:file_play`` (output) and
    ``<name>:file_record`` (input); :func:`run_file_tap` connects ``file_play`` to the loop's
    input (or to a playback port for a physical loopback) and the loop's output to
    ``file_record``. In each cycle the callback first writes the next period of the signal
    to ``file_play``, then reads ``in`` (JACK hands an input port the data its source wrote
    in this cycle), processes, writes ``out`` and reads ``file_record``. Playing, processing
    and recording happen in one callback, so they advance together even when the server
    skips cycles, and the recording lines up with the signal sample for sample.
    """

    def __init__(self, signal: np.ndarray, record_samples: int):
        self.signal = np.asarray(signal, np.float32)
        self.recording = np.zeros(int(record_samples), np.float32)
        self.play_position = 0
        self.record_position = 0
        self.done = threading.Event()

    def play(self, out: np.ndarray) -> None:
        chunk = self.signal[self.play_position:self.play_position + len(out)]
        out.fill(0.0)
        out[: len(chunk)] = chunk
        self.play_position += len(out)

    def record(self, data: np.ndarray) -> None:
        room = max(len(self.recording) - self.record_position, 0)
        taken = data[:room]
        self.recording[self.record_position:self.record_position + len(taken)] = taken
        self.record_position += len(data)
        if self.record_position >= len(self.recording):
            self.done.set()


# ---------------------------------------------------------------------- latency measurement

CLICK_SAMPLES_AT_16K = 32  # 2 ms Hann-windowed 2 kHz burst


def click_train(sample_rate_hz: int, clicks: int, interval_s: float, level: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """``(signal, onsets)``: ``clicks`` short Hann-windowed 2 kHz bursts, ``interval_s`` apart, first one at ``interval_s / 2``."""
    length = max(8, int(round(CLICK_SAMPLES_AT_16K * sample_rate_hz / 16000)))
    n = np.arange(length)
    click = level * np.hanning(length) * np.sin(2 * np.pi * 2000.0 * n / sample_rate_hz)
    interval = int(round(interval_s * sample_rate_hz))
    onsets = interval // 2 + interval * np.arange(clicks)
    signal = np.zeros(int(onsets[-1] + interval), np.float32)
    for onset in onsets:
        signal[onset:onset + length] = click
    return signal, onsets


def detect_latency(played: np.ndarray, recorded: np.ndarray, onsets: np.ndarray, interval_samples: int) -> list[int]:
    """Delay in samples of each click: the peak of the cross-correlation of the played click with the
    recording over the window that follows it; clicks whose peak is weaker than half the click's energy are dropped."""
    delays = []
    click_length = CLICK_SAMPLES_AT_16K * 4  # generous: covers the click at rates up to 64 kHz
    for onset in onsets:
        click = played[onset:onset + click_length].astype(np.float64)
        window = recorded[onset:onset + interval_samples].astype(np.float64)
        if len(window) < len(click):
            continue
        correlation = np.correlate(window, click, mode="valid")
        lag = int(np.argmax(np.abs(correlation)))
        energy = float(np.dot(click, click))
        if energy > 0 and abs(correlation[lag]) >= 0.5 * energy:
            delays.append(lag)
    return delays
