"""``hearmask live``: the hearing aid in real time through JACK, with listener controls and accounting.

Device-side (numpy + LiteRT + JACK-Client; pyserial for ``serial_url``; no torch, no
tensorflow). Modes of :func:`run_live`:

- live: ``capture_ports`` -> model -> ``playback_ports`` until ``duration_s``, ``q`` or a signal;
- file: play ``in_file`` into the loop through JACK ports and record what comes out to
  ``out_file`` (same length as the input, delayed by the loop's latency); the real callback
  path runs in real time (:class:`hearmask.firmware_bridge.live_jack.FileTap`);
- measure latency: play clicks into the loop and detect them at its output. Without
  ``loopback`` the path is JACK-internal (file_play -> in, out -> file_record in the same cycle), so
  the figure is the loop's own latency (STFT overlap + block queue + resampling); with
  ``loopback=(PLAYBACK_PORT, CAPTURE_PORT)`` and a cable (or an acoustic path) from that
  output to that input, the clicks go out through the card and come back in, so the
  figure also holds the card's capture and playback buffering and converters: the
  end-to-end latency a listener gets. The strengths are 0 while measuring (the gain is
  then exactly 0 dB, so the model cannot change the click).

Controls while running: the keyboard when stdin is a terminal (:class:`KeyboardControls`)
and the serial protocol's SET_STRENGTHS / SET_AUDIOGRAM (``serial_url``: the device agent
serves the port with its settings wired to the processor). Everything is summarised in
one dict (and JSON file): callback time per hop, xruns, CPU load, latency budget.

On a Raspberry Pi bundle: ``python -m hearmask.firmware_bridge.live --config config.json``
(see :func:`main`; the systemd unit is :mod:`hearmask.targets.live_unit`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live_limiter import LimiterConfig
from hearmask.firmware_bridge.live_processor import DEFAULT_RAMP_HOPS, LiveProcessor, default_runtime_factory

STRENGTH_KEY_STEP = 0.1
LATENCY_CLICKS = 8
LATENCY_INTERVAL_S = 0.25
FILE_START_PERIODS = 8  # periods between arming the file clients and the first played sample
CONFIG_FORMAT = "hearmask-rpi-agent-config"  # the bundle's config.json (hearmask.targets.bundle_rpi)


@dataclass
class LiveOptions:
    """Everything :func:`run_live` needs; the CLI and the bundle's config map onto it."""

    model_dir: Path
    audiogram_db_hl: tuple[float, ...]
    audiogram_name: str = "custom"
    alpha: float = 1.0
    beta: float = 1.0
    allow_exaggeration: bool = False
    limiter: LimiterConfig = field(default_factory=LimiterConfig)
    ramp_hops: int = DEFAULT_RAMP_HOPS
    reference_kernels: bool = False
    threads: int = 1
    server_name: str | None = None
    client_name: str = "hearmask-live"
    capture_ports: tuple[str, ...] | None = None  # None: the first physical capture port
    playback_ports: tuple[str, ...] | None = None  # None: the first two physical playback ports
    in_file: Path | None = None
    out_file: Path | None = None
    duration_s: float | None = None
    measure_latency: bool = False
    loopback: tuple[str, str] | None = None
    serial_url: str | None = None
    serial_baud: int = 115200
    keyboard: bool = True  # only used when stdin is a terminal
    summary_path: Path | None = None
    audio_label: str = "JACK server (backend as started by the user)"
    callback_delay_s: float = 0.0  # TEST ONLY: slows every callback to provoke xruns


def build_processor(options: LiveOptions) -> LiveProcessor:
    alpha, beta = (0.0, 0.0) if options.measure_latency else (options.alpha, options.beta)
    return LiveProcessor.from_model_dir(
        options.model_dir, options.audiogram_db_hl, alpha, beta,
        runtime_factory=default_runtime_factory(options.reference_kernels, options.threads),
        allow_exaggeration=options.allow_exaggeration, limiter=options.limiter, ramp_hops=options.ramp_hops)


def run_live(options: LiveOptions, stop: threading.Event | None = None,
             log: Callable[[str], None] | None = None) -> dict:
    """Run one session (see the module docstring for the modes); returns the summary dict."""
    from hearmask.firmware_bridge.live_jack import JackLiveLoop

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    stop = stop or threading.Event()
    if options.duration_s is not None and options.duration_s <= 0:
        raise HearmaskError(f"duration must be > 0 seconds, got {options.duration_s}")
    if (options.in_file is None) != (options.out_file is None):
        raise HearmaskError("give both --in-file and --out-file (file mode), or neither")
    file_mode = options.in_file is not None
    processor = build_processor(options)
    # Everything slow (imports, file reading) happens before the audio starts: a Python thread
    # importing modules holds the interpreter lock long enough to make the callback miss cycles.
    source = _read_source(options.in_file) if file_mode else None
    capture, playback = options.capture_ports, options.playback_ports
    if file_mode or options.measure_latency:
        capture, playback = (), ()  # the file clients are the only source and sink
        if options.measure_latency and options.loopback:
            capture = (options.loopback[1],)
    loop = JackLiveLoop(processor, client_name=options.client_name, server_name=options.server_name,
                        capture_ports=capture, playback_ports=playback, file_ports=file_mode or options.measure_latency,
                        callback_delay_s=options.callback_delay_s)
    threads: list[threading.Thread] = []
    result: dict = {}
    loop.start()
    try:
        log(f"hearmask live: JACK at {loop.sample_rate_hz} Hz, period {loop.block_samples} frames; model "
            f"{Path(options.model_dir).name} ({processor.variant}), hop {processor.hop_samples} at "
            f"{processor.sample_rate_hz} Hz; loop latency {loop.adapter.latency_budget(processor.hop_delay_samples)['total_ms']:.2f} ms "
            f"before the card's buffering")
        if options.serial_url:
            threads.append(start_serial_control(processor, options, stop, log))
        if options.keyboard and sys.stdin is not None and sys.stdin.isatty() and not (file_mode or options.measure_latency):
            threads.append(KeyboardControls(processor, stop, log, options.allow_exaggeration).start())
        if options.measure_latency:
            result["latency"] = _measure_latency(loop, options, stop)
        elif file_mode:
            result["file"] = _run_file(loop, processor, options, stop, source)
        else:
            _run_until_stopped(loop, options, stop, log)
    finally:
        stop.set()
        loop.stop()
        for thread in threads:
            thread.join(timeout=2.0)
    if loop.error is not None:
        raise HearmaskError(f"the live loop stopped: {loop.error}")
    result = {**_summary(loop, processor, options), **result}
    if options.summary_path:
        path = Path(options.summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _run_until_stopped(loop, options: LiveOptions, stop: threading.Event, log) -> None:
    deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
    next_report = time.monotonic() + 60.0
    while not stop.is_set() and not loop.stopped.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(1.0)
        loop.sample_cpu_load()
        if time.monotonic() >= next_report:  # one journal line a minute, over the last minute's callbacks
            accounting = loop.accounting
            recent_us = accounting.recent_us(int(60 * loop.sample_rate_hz / loop.block_samples))
            if len(recent_us):
                log(f"hearmask live: last minute callback median {np.median(recent_us):.0f} us, max "
                    f"{np.max(recent_us):.0f} us; since start xruns {accounting.xruns}, skipped cycles "
                    f"{accounting.skipped_cycles}; DSP load {accounting.cpu_load_percent[-1]:.1f} %")
            next_report += 60.0


def _play_and_record(loop, signal: np.ndarray, record_samples: int, stop: threading.Event, destinations) -> np.ndarray:
    """Play ``signal`` from ``<client>:file_play`` into ``destinations`` and record ``<client>:out``, sample aligned."""
    from hearmask.firmware_bridge.live_jack import FileTap, connect_ports

    connect_ports(loop.client, [loop.file_play_port.name] * len(destinations), destinations)
    connect_ports(loop.client, [loop.outport.name], [loop.file_record_port.name])
    deadline = time.monotonic() + 5.0
    while loop.last_cycle_frame is None:
        if time.monotonic() > deadline:
            raise HearmaskError("the JACK server does not call the live loop's process callback; is it running?")
        time.sleep(0.01)
    tap = FileTap(signal, record_samples)
    # Processing, playing and recording start together, a few periods after the connections are in place.
    loop.start_frame = loop.last_cycle_frame + FILE_START_PERIODS * loop.block_samples
    loop.file_tap = tap
    timeout_s = 5.0 + 3.0 * record_samples / loop.sample_rate_hz
    deadline = time.monotonic() + timeout_s
    while not tap.done.is_set():
        if stop.is_set() or loop.stopped.is_set():
            raise HearmaskError("stopped before the file was through")
        if time.monotonic() > deadline:
            raise HearmaskError(f"the recording did not finish within {timeout_s:.1f} s: the JACK server is not "
                                "running in real time")
        tap.done.wait(1.0)
        loop.sample_cpu_load()
    return tap.recording


def _read_source(path: Path):
    """The file to play, mixed to mono (hearmask's one audio reader; needs soundfile and scipy)."""
    from hearmask.model.audio_io import channels_to_process, read_audio, resample, write_audio

    audio = read_audio(path)
    return audio, channels_to_process(audio.samples, "mix")[0], resample, write_audio


def _run_file(loop, processor, options: LiveOptions, stop: threading.Event, source) -> dict:
    from hearmask.model.audio_io import Audio

    audio, mono, resample, write_audio = source
    if audio.sample_rate_hz != loop.sample_rate_hz:  # before the tap is armed, so outside the accounting
        mono = resample(mono, audio.sample_rate_hz, loop.sample_rate_hz).astype(np.float32)
    recorded = _play_and_record(loop, mono, len(mono), stop, destinations=[loop.inport.name])
    out = recorded if audio.sample_rate_hz == loop.sample_rate_hz else \
        resample(recorded, loop.sample_rate_hz, audio.sample_rate_hz).astype(np.float32)
    write_audio(options.out_file, Audio(out[:, None], audio.sample_rate_hz, audio.subtype))
    return {"in_file": str(options.in_file), "out_file": str(options.out_file), "samples": int(len(out)),
            "sample_rate_hz": audio.sample_rate_hz,
            "delay_card_samples": loop.adapter.latency_budget(processor.hop_delay_samples)["total_card_samples"]}


def _measure_latency(loop, options: LiveOptions, stop: threading.Event) -> dict:
    from hearmask.firmware_bridge.live_jack import click_train, detect_latency

    rate = loop.sample_rate_hz
    signal, onsets = click_train(rate, LATENCY_CLICKS, LATENCY_INTERVAL_S)
    destinations = [options.loopback[0]] if options.loopback else [loop.inport.name]
    recorded = _play_and_record(loop, signal, len(signal), stop, destinations)
    interval = int(round(LATENCY_INTERVAL_S * rate))
    delays = detect_latency(signal, recorded, onsets, interval)
    budget = loop.adapter.latency_budget(loop.processor.hop_delay_samples)
    if options.loopback:
        method = (f"{len(delays)} of {LATENCY_CLICKS} clicks played on {options.loopback[0]} and detected at the "
                  f"loop's output after coming back on {options.loopback[1]} (physical loopback) and through the "
                  "hearing-aid loop at strengths 0: the card's playback and capture buffering and converters plus "
                  "the loop's own latency")
    else:
        method = (f"{len(delays)} of {LATENCY_CLICKS} clicks played into the loop's input and detected at its output "
                  "inside the JACK graph (same cycle; no sound card in the path) at strengths 0: the loop's own "
                  "latency (STFT overlap, block queue, resampling). A card adds its capture and playback buffering")
    result = {"method": method, "clicks_detected": len(delays), "clicks_played": LATENCY_CLICKS,
              "predicted_loop_ms": budget["total_ms"]}
    if delays:
        result.update({"measured_ms": 1000.0 * float(np.median(delays)) / rate,
                       "measured_samples": int(np.median(delays)),
                       "min_samples": int(min(delays)), "max_samples": int(max(delays))})
    else:
        result["measured_ms"] = None
    return result


def _summary(loop, processor, options: LiveOptions) -> dict:
    summary = loop.summary()
    target = processor.target
    return {
        "conditions": {
            "audio": options.audio_label,
            "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(),
            "model_dir": str(options.model_dir),
            "variant": processor.variant,
            "runtime": processor.models[0].runtime.name,
            "hop_samples": processor.hop_samples,
            "model_rate_hz": processor.sample_rate_hz,
            "callback_delay_s_test_only": options.callback_delay_s,
        },
        "listener": {"audiogram_name": options.audiogram_name, "audiogram_db_hl": list(target.audiogram_db_hl),
                     "alpha": target.alpha, "beta": target.beta},
        "limiter": {**options.limiter.to_dict(), "limited_hops": processor.limiter.limited_hops,
                    "muted_hops": processor.limiter.muted_hops},
        "hops_processed": processor.hops_processed,
        **summary,
    }


# ---------------------------------------------------------------------- controls


class KeyboardControls:
    """Single keys in the terminal: ``+``/``-`` NR strength, ``]``/``[`` HLC strength, ``0`` bypass, ``1`` full, ``q`` quit."""

    HELP = "keys: + / - NR strength, ] / [ HLC strength, 0 both off, 1 both full, q quit"

    def __init__(self, processor: LiveProcessor, stop: threading.Event, log, allow_exaggeration: bool = False):
        self.processor, self.stop, self.log = processor, stop, log
        self.maximum = 4.0 if allow_exaggeration else 1.0
        self.thread = threading.Thread(target=self._run, name="hearmask-live-keys", daemon=True)

    def start(self) -> threading.Thread:
        self.log(self.HELP)
        self.thread.start()
        return self.thread

    def handle_key(self, key: str) -> bool:
        """Apply one key; returns False for quit."""
        target = self.processor.target
        alpha, beta = target.alpha, target.beta
        steps = {"+": (STRENGTH_KEY_STEP, 0.0), "=": (STRENGTH_KEY_STEP, 0.0), "-": (-STRENGTH_KEY_STEP, 0.0),
                 "]": (0.0, STRENGTH_KEY_STEP), "[": (0.0, -STRENGTH_KEY_STEP)}
        if key in ("q", "Q"):
            self.stop.set()
            return False
        if key in steps:
            alpha += steps[key][0]
            beta += steps[key][1]
        elif key == "0":
            alpha = beta = 0.0
        elif key == "1":
            alpha = beta = 1.0
        else:
            return True
        alpha = round(min(max(alpha, 0.0), self.maximum), 3)
        beta = round(min(max(beta, 0.0), self.maximum), 3)
        self.processor.set_strengths(alpha, beta)
        self.log(f"NR strength {alpha:.1f}, HLC strength {beta:.1f}")
        return True

    def _run(self) -> None:
        import termios
        import tty

        descriptor = sys.stdin.fileno()
        saved = termios.tcgetattr(descriptor)
        try:
            tty.setcbreak(descriptor)
            while not self.stop.is_set():
                ready, _, _ = select.select([descriptor], [], [], 0.2)
                if ready and not self.handle_key(os.read(descriptor, 1).decode("utf-8", "replace")):
                    break
        finally:
            termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def start_serial_control(processor: LiveProcessor, options: LiveOptions, stop: threading.Event, log) -> threading.Thread:
    """Serve the hearmask protocol on ``options.serial_url``; SET_STRENGTHS / SET_AUDIOGRAM reach the processor.

    The agent has no model of its own here (INFER/BENCH answer NO_MODEL): the interpreter
    belongs to the audio callback.
    """
    from hearmask.firmware_bridge import messages as msg
    from hearmask.firmware_bridge.agent import AgentConfig, DeviceAgent
    from hearmask.firmware_bridge.errors import BridgeError, ValueOutOfRange
    from hearmask.firmware_bridge.plugins import ListenerSettings
    from hearmask.firmware_bridge.transport import open_transport

    def on_settings(settings: ListenerSettings) -> None:
        try:
            processor.apply_settings(settings)
        except HearmaskError as error:  # e.g. a strength above 1 without exaggeration: the host gets OUT_OF_RANGE
            raise ValueOutOfRange(str(error)) from None

    try:
        port = open_transport(options.serial_url, options.serial_baud, timeout_s=0.05)
    except BridgeError as error:
        raise HearmaskError(str(error)) from None
    agent = DeviceAgent(AgentConfig(target_name="hearmask-live", model_dir=None), on_settings=on_settings)
    target = processor.target
    agent.settings = ListenerSettings(tuple(target.audiogram_db_hl), target.alpha, target.beta)

    def serve() -> None:
        try:
            agent.serve(port, stop=stop)
        except Exception as error:  # a vanished port ends remote control, not the hearing aid
            log(f"hearmask live: serial control on {options.serial_url} ended: {error}")
        finally:
            port.close()

    thread = threading.Thread(target=serve, name="hearmask-live-serial", daemon=True)
    thread.start()
    log(f"hearmask live: SET_STRENGTHS / SET_AUDIOGRAM accepted on {options.serial_url} ({msg.MessageType.SET_STRENGTHS.name})")
    return thread


# ---------------------------------------------------------------------- bundle entry point


def options_from_bundle_config(path: Path) -> LiveOptions:
    """:class:`LiveOptions` from a Raspberry Pi bundle's ``config.json`` and its ``live`` section
    (:func:`hearmask.targets.live_unit.live_config_section`)."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HearmaskError(f"cannot read the bundle config {str(path)!r}: {error}") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise HearmaskError(f"{str(path)!r} is not a hearmask bundle config (expected \"format\": \"{CONFIG_FORMAT}\")")
    live = config.get("live")
    listener = config.get("listener")
    if not isinstance(live, dict) or not isinstance(listener, dict):
        raise HearmaskError(f"{str(path)!r} needs objects 'live' and 'listener'; re-export the bundle with hearmask export")
    try:
        limiter = LimiterConfig(float(live["max_output_dbfs"]), float(live["max_gain_db"]))
        serial = config.get("serial") or {}
        return LiveOptions(
            model_dir=Path(path).parent,
            audiogram_db_hl=tuple(float(v) for v in listener["audiogram_db_hl"]),
            audiogram_name=str(listener.get("audiogram_name", "custom")),
            alpha=float(listener["nr_strength"]), beta=float(listener["hlc_strength"]),
            allow_exaggeration=bool(live.get("allow_exaggeration", False)),
            limiter=limiter, ramp_hops=int(live.get("ramp_hops", DEFAULT_RAMP_HOPS)),
            reference_kernels=config.get("runtime") == "litert-reference", threads=int(config.get("threads", 1)),
            server_name=live.get("jack_server") or None, client_name=str(live.get("client_name", "hearmask-live")),
            capture_ports=_ports(live.get("capture_ports")), playback_ports=_ports(live.get("playback_ports")),
            serial_url=serial.get("port") if live.get("serial_control", True) else None,
            serial_baud=int(serial.get("baud", 115200)), keyboard=False,
            summary_path=Path(path).parent / live["summary_file"] if live.get("summary_file") else None,
            audio_label="hardware (JACK on the bundle's sound card)")
    except (KeyError, TypeError, ValueError) as error:
        raise HearmaskError(f"bad 'live' or 'listener' entry in {str(path)!r}: {error!r}") from None


def _ports(value) -> tuple[str, ...] | None:
    """A config port list; null or missing means the JACK default (the physical ports)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise ValueError(f"ports must be a list of JACK port names such as 'system:capture_1', or null, got {value!r}")
    return tuple(value)


CONFIG_ERROR_EXIT = 2  # systemd: RestartPreventExitStatus=2 (a configuration error is not retried)


def main(argv: list[str] | None = None) -> int:
    """``python -m hearmask.firmware_bridge.live --config config.json`` (the bundle's systemd unit)."""
    import signal

    parser = argparse.ArgumentParser(prog="python -m hearmask.firmware_bridge.live",
                                     description="Run the hearing-aid loop of a Raspberry Pi bundle from its config.json.")
    parser.add_argument("--config", type=Path, required=True, help="the bundle's config.json")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until stopped)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemctl stop
    try:
        options = options_from_bundle_config(args.config)
        options.duration_s = args.duration
        build_processor(options)  # configuration and model errors surface before any audio starts
    except HearmaskError as error:
        print(f"hearmask live: configuration error: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    try:
        summary = run_live(options, stop)
    except HearmaskError as error:
        print(f"hearmask live: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(json.dumps({key: summary[key] for key in ("callback_us", "xruns", "skipped_cycles", "hops_processed")}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
