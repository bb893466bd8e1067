"""The device agent: serves the hearmask protocol (PROTOCOL.md) on a serial port.

It runs on a Raspberry Pi with numpy + pyserial + LiteRT only: nothing in its import
graph imports torch or tensorflow (tested). The same code serves the emulated device
(:mod:`emulate`), which runs it as a subprocess on a pty.

    python -m hearmask.firmware_bridge.agent --port /dev/ttyGS0 --model model.tflite
    python -m hearmask.firmware_bridge.agent --port /dev/pts/3 --kind emulated --protocol mlperf

STREAM runs the same per-hop int8 pipeline as the live loop
(:mod:`~hearmask.firmware_bridge.agent_stream`), built from the model's ``manifest.json``
(``--manifest``, or the one beside ``--model``).

:class:`DeviceAgent` is transport-free: :meth:`DeviceAgent.handle_frame` maps one
frame to the reply frames, and :meth:`DeviceAgent.serve` runs the read loop.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.errors import (
    MalformedPayload,
    TensorMismatch,
    TransportClosed,
    ValueOutOfRange,
)
from hearmask.firmware_bridge.framing import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    FRAME_DELIMITER,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    encode_frame,
)
from hearmask.firmware_bridge.agent_stream import manifest_beside, manifest_stream_factory
from hearmask.firmware_bridge.plugins import ListenerSettings, PowerBackend, StreamProcessor, load_plugin
from hearmask.firmware_bridge.runtime import InferenceRuntime

UNSOLICITED_SEQ = 0  # frames the device sends on its own (boot INFO, frame errors)
DEFAULT_MAX_MODEL_BYTES = 32 * 1024 * 1024
MODEL_FILE_NAME = "model.tflite"
U32_MAX = 0xFFFFFFFF
READ_POLL_S = 0.05
INT16_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class AgentConfig:
    """What the agent says about itself in INFO, and its limits.

    Attributes:
        target_name: e.g. ``"raspberry-pi-5"`` or ``"emulated-rpi"``.
        kind: hardware or emulated; emulated timings are labelled so in every report.
        clock_hz: CPU clock in Hz, 0 when unknown.
        max_payload_bytes: the largest frame payload accepted and sent.
        model_dir: where LOAD_MODEL writes ``model.tflite``; None disables LOAD_MODEL.
        max_model_bytes: the largest model LOAD_MODEL accepts.
    """

    target_name: str = "raspberry-pi"
    kind: msg.DeviceKind = msg.DeviceKind.HARDWARE
    clock_hz: int = 0
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    model_dir: Path | None = None
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES


@dataclass
class _Upload:
    total_bytes: int
    data: bytearray


class _RequestError(Exception):
    """Internal: abort a request with an ERROR reply."""

    def __init__(self, code: msg.ErrorCode, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


class DeviceAgent:
    """Serves one host over one byte stream.

    Args:
        config: identity and limits.
        runtime: the loaded model, or None (INFER answers NO_MODEL until LOAD_MODEL).
        runtime_factory: builds a runtime from a model file (LOAD_MODEL); None disables loading.
        stream_processor_factory: builds the STREAM pipeline for a runtime; None -> STREAM unsupported.
            A :class:`HearmaskError` from it (no model, a manifest of another model) turns STREAM off
            for that runtime; STREAM then answers UNSUPPORTED with the reason.
        power_backend: the device's own power sensor; None -> POWER answers NO_POWER_BACKEND.
        on_settings: called with the new :class:`ListenerSettings` after every SET_* (issue 8's live loop).
    """

    def __init__(
        self,
        config: AgentConfig = AgentConfig(),
        runtime: InferenceRuntime | None = None,
        runtime_factory: Callable[[Path], InferenceRuntime] | None = None,
        stream_processor_factory: Callable[[InferenceRuntime | None], StreamProcessor] | None = None,
        power_backend: PowerBackend | None = None,
        on_settings: Callable[[ListenerSettings], None] | None = None,
    ):
        self.config = config
        self.runtime = runtime
        self.runtime_factory = runtime_factory
        self.stream_processor_factory = stream_processor_factory
        self.power_backend = power_backend
        self.on_settings = on_settings
        self.settings = ListenerSettings()
        self.decoder = FrameDecoder(config.max_payload_bytes)
        self.stream_processor: StreamProcessor | None = None
        self._stream_unavailable = "no stream pipeline is configured on this device"
        self._build_stream_processor(runtime)
        self._last_inputs: dict[str, np.ndarray] | None = None
        self._upload: _Upload | None = None
        self._completed_upload: tuple[int, bytes] | None = None  # (total, sha) of the model last loaded
        self.requests_served = 0

    # ------------------------------------------------------------------ identity

    @property
    def capabilities(self) -> msg.Capability:
        caps = msg.Capability.INFER | msg.Capability.BENCH | msg.Capability.RESET
        caps |= msg.Capability.SET_AUDIOGRAM | msg.Capability.SET_STRENGTHS
        if self.runtime_factory is not None and self.config.model_dir is not None:
            caps |= msg.Capability.LOAD_MODEL
        if self.stream_processor is not None:
            caps |= msg.Capability.STREAM
        if self.power_backend is not None:
            caps |= msg.Capability.POWER
        return caps

    def info(self, nonce: int = 0) -> msg.Info:
        runtime = self.runtime
        return msg.Info(
            nonce=nonce,
            kind=self.config.kind,
            capabilities=self.capabilities,
            clock_hz=self.config.clock_hz,
            arena_bytes=runtime.arena_bytes if runtime else 0,
            max_payload_bytes=self.config.max_payload_bytes,
            model_sha256=runtime.model_sha256 if runtime else msg.NO_MODEL_SHA256,
            target_name=self.config.target_name[: msg.MAX_STRING_BYTES],
            runtime_name=(runtime.name if runtime else "no model")[: msg.MAX_STRING_BYTES],
            protocol_version=PROTOCOL_VERSION,
        )

    def boot_frame(self) -> bytes:
        """The unsolicited INFO (seq 0, nonce 0) a device sends when it (re)starts."""
        return self._frame(msg.MessageType.INFO, UNSOLICITED_SEQ, self.info().to_payload())

    def _frame(self, message_type: int, seq: int, payload: bytes) -> bytes:
        return encode_frame(message_type, seq, payload, self.config.max_payload_bytes)

    def _error_frame(self, seq: int, code: msg.ErrorCode, text: str) -> bytes:
        return self._frame(msg.MessageType.ERROR, seq, msg.ErrorMessage(int(code), text).to_payload())

    # ------------------------------------------------------------------ dispatch

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes from the line -> encoded reply frames, including ERRORs for dropped frames, in wire order.

        Fed one delimiter at a time so an error about garbage is sent before the reply
        to the request that follows it, never after (the host would blame the next request).
        """
        replies: list[bytes] = []
        start = 0
        while start < len(data):
            end = data.find(FRAME_DELIMITER, start)
            stop = len(data) if end < 0 else end + 1
            replies.extend(self.handle_frame(frame) for frame in self.decoder.feed(data[start:stop]))
            replies.extend(self.frame_error_replies(self.decoder.take_errors()))
            start = stop
        return replies

    def frame_error_replies(self, errors: list[FrameError]) -> list[bytes]:
        """One unsolicited ERROR per dropped frame, so the host resends without waiting for its timeout."""
        replies = []
        for error in errors:
            if error.kind == FrameErrorKind.OVERSIZE:
                code = msg.ErrorCode.FRAME_OVERSIZE
                text = f"frame dropped: {error.detail}"
            elif error.kind == FrameErrorKind.BAD_VERSION:
                code = msg.ErrorCode.BAD_VERSION
                text = f"frame dropped: {error.detail}"
            else:
                code = msg.ErrorCode.FRAME_CORRUPT
                text = f"frame dropped ({error.kind.value}): {error.detail}"
            seq = error.seq if error.kind == FrameErrorKind.BAD_VERSION and error.seq is not None else UNSOLICITED_SEQ
            replies.append(self._error_frame(seq, code, text))
        return replies

    def handle_frame(self, frame: Frame) -> bytes:
        """One intact frame -> one encoded reply frame (an ERROR when the request fails)."""
        self.requests_served += 1
        try:
            message = msg.decode_message(frame)
            reply_type, payload = self._dispatch(message, frame.seq)
        except _RequestError as error:
            return self._error_frame(frame.seq, error.code, error.text)
        except ValueOutOfRange as error:
            return self._error_frame(frame.seq, msg.ErrorCode.OUT_OF_RANGE, str(error))
        except MalformedPayload as error:
            code = msg.ErrorCode.MALFORMED_PAYLOAD
            if frame.message_type not in {int(t) for t in msg.MessageType}:
                code = msg.ErrorCode.UNKNOWN_MESSAGE
            return self._error_frame(frame.seq, code, str(error))
        except Exception as error:  # the agent keeps serving whatever the runtime or a plugin does
            return self._error_frame(frame.seq, msg.ErrorCode.INTERNAL, f"{type(error).__name__}: {error}")
        if len(payload) > self.config.max_payload_bytes:
            return self._error_frame(
                frame.seq, msg.ErrorCode.REPLY_TOO_LARGE,
                f"{msg.message_name(reply_type)} reply of {len(payload)} bytes exceeds the payload limit "
                f"of {self.config.max_payload_bytes} bytes",
            )
        return self._frame(reply_type, frame.seq, payload)

    def _dispatch(self, message, seq: int) -> tuple[int, bytes]:
        handlers = {
            msg.Hello: self._on_hello,
            msg.Reset: self._on_reset,
            msg.LoadModel: self._on_load_model,
            msg.SetAudiogram: self._on_set_audiogram,
            msg.SetStrengths: self._on_set_strengths,
            msg.Infer: self._on_infer,
            msg.Bench: self._on_bench,
            msg.Stream: self._on_stream,
            msg.PowerRequest: self._on_power,
        }
        handler = handlers.get(type(message))
        if handler is None:
            raise _RequestError(
                msg.ErrorCode.UNSUPPORTED, f"{msg.message_name(message.TYPE)} is a device-to-host message, not a request"
            )
        return handler(message)

    # ------------------------------------------------------------------ handlers

    def _on_hello(self, message: msg.Hello) -> tuple[int, bytes]:
        return msg.MessageType.INFO, self.info(message.nonce).to_payload()

    def _on_reset(self, message: msg.Reset) -> tuple[int, bytes]:
        self.reset_state()
        return msg.MessageType.INFO, self.info().to_payload()

    def reset_state(self) -> None:
        """Forget listener settings, streaming state, the last inputs and any partial upload."""
        self.settings = ListenerSettings()
        self._last_inputs = None
        self._upload = None
        if self.stream_processor is not None:
            self.stream_processor.reset()
        if self.on_settings is not None:
            self.on_settings(self.settings)

    def _require_runtime(self) -> InferenceRuntime:
        if self.runtime is None:
            raise _RequestError(msg.ErrorCode.NO_MODEL, "no model is loaded on the device (send LOAD_MODEL first)")
        return self.runtime

    def _on_infer(self, message: msg.Infer) -> tuple[int, bytes]:
        runtime = self._require_runtime()
        try:
            inputs = runtime.match_inputs([(t.name, t.array) for t in message.tensors])
        except TensorMismatch as error:
            raise _RequestError(msg.ErrorCode.TENSOR_MISMATCH, str(error)) from None
        result = runtime.run(inputs)
        self._last_inputs = inputs
        outputs = tuple(msg.WireTensor(name, array) for name, array in result.outputs.items())
        return msg.MessageType.INFER_RESULT, msg.InferResult(_device_time(result.device_time_ns), outputs).to_payload()

    def _on_bench(self, message: msg.Bench) -> tuple[int, bytes]:
        runtime = self._require_runtime()
        runtime.set_inputs(self._last_inputs if self._last_inputs is not None else runtime.zero_inputs())
        for _ in range(message.warmup):
            runtime.invoke()
        samples_ns = np.empty(message.runs, dtype=np.int64)
        clock = time.perf_counter_ns
        for index in range(message.runs):
            start_ns = clock()
            runtime.invoke()
            samples_ns[index] = clock() - start_ns
        # Nanoseconds fit u32 up to 4.29 s per run; beyond that report microseconds.
        if samples_ns.max() <= U32_MAX:
            unit, samples = msg.TimeUnit.NANOSECONDS, samples_ns
        else:
            unit, samples = msg.TimeUnit.MICROSECONDS, np.minimum(samples_ns // 1000, U32_MAX)
        returned = tuple(int(s) for s in samples[: msg.MAX_BENCH_SAMPLES_RETURNED]) if message.return_samples else ()
        result = msg.BenchResult(
            runs=message.runs, unit=unit, min=int(samples.min()), median=int(round(float(np.median(samples)))),
            mean=int(round(float(samples.mean()))), max=int(samples.max()), samples=returned, op_counts=(),
        )
        return msg.MessageType.BENCH_RESULT, result.to_payload()

    def _build_stream_processor(self, runtime: InferenceRuntime | None) -> None:
        self.stream_processor = None
        if self.stream_processor_factory is None:
            return
        try:
            self.stream_processor = self.stream_processor_factory(runtime)
        except HearmaskError as error:
            self._stream_unavailable = str(error)

    def _on_stream(self, message: msg.Stream) -> tuple[int, bytes]:
        if self.stream_processor is None:
            raise _RequestError(msg.ErrorCode.UNSUPPORTED, f"STREAM is not available: {self._stream_unavailable}")
        start_ns = time.perf_counter_ns()
        samples = message.samples
        hop = samples.astype(np.float32) / INT16_FULL_SCALE if samples.dtype == np.int16 else samples.astype(np.float32)
        processed = np.asarray(self.stream_processor.process_hop(hop, self.settings), dtype=np.float32)
        if processed.shape != hop.shape:
            raise _RequestError(
                msg.ErrorCode.INTERNAL, f"stream pipeline returned shape {processed.shape} for a hop of shape {hop.shape}"
            )
        if samples.dtype == np.int16:
            processed = np.clip(np.round(processed * INT16_FULL_SCALE), -32768, 32767).astype(np.int16)
        elapsed_ns = time.perf_counter_ns() - start_ns
        return msg.MessageType.STREAM_RESULT, msg.StreamResult(_device_time(elapsed_ns), processed).to_payload()

    def _on_power(self, message: msg.PowerRequest) -> tuple[int, bytes]:
        if self.power_backend is None:
            raise _RequestError(msg.ErrorCode.NO_POWER_BACKEND, "no power backend is configured on this device")
        reading = self.power_backend.read()
        result = msg.PowerResult(reading.source, reading.power_mw, reading.voltage_v, reading.current_ma,
                                 reading.window_us, reading.detail[: msg.MAX_STRING_BYTES])
        return msg.MessageType.POWER_RESULT, result.to_payload()

    def _on_set_audiogram(self, message: msg.SetAudiogram) -> tuple[int, bytes]:
        self._update_settings(replace(self.settings, audiogram_db_hl=tuple(message.thresholds_db_hl)))
        return msg.MessageType.ACK, msg.Ack(int(msg.MessageType.SET_AUDIOGRAM)).to_payload()

    def _on_set_strengths(self, message: msg.SetStrengths) -> tuple[int, bytes]:
        self._update_settings(replace(self.settings, alpha=message.alpha, beta=message.beta))
        return msg.MessageType.ACK, msg.Ack(int(msg.MessageType.SET_STRENGTHS)).to_payload()

    def _update_settings(self, settings: ListenerSettings) -> None:
        self.settings = settings
        if self.on_settings is not None:
            self.on_settings(settings)

    def _on_load_model(self, chunk: msg.LoadModel) -> tuple[int, bytes]:
        if self.runtime_factory is None or self.config.model_dir is None:
            raise _RequestError(msg.ErrorCode.UNSUPPORTED, "this device cannot load models over the link")
        if chunk.total_bytes > self.config.max_model_bytes or chunk.total_bytes == 0:
            raise _RequestError(
                msg.ErrorCode.OUT_OF_RANGE,
                f"model of {chunk.total_bytes} bytes; accepted 1..{self.config.max_model_bytes} bytes",
            )
        if chunk.final and self._completed_upload == (chunk.total_bytes, chunk.sha256) and self._upload is None:
            # The host resent the final chunk because our INFO got lost: answer it again.
            return msg.MessageType.INFO, self.info().to_payload()
        upload = self._accept_chunk(chunk)
        if not chunk.final:
            return msg.MessageType.ACK, msg.Ack(int(msg.MessageType.LOAD_MODEL), len(upload.data)).to_payload()
        self._upload = None
        if len(upload.data) != upload.total_bytes:
            raise _RequestError(
                msg.ErrorCode.LOAD_SEQUENCE,
                f"final chunk leaves {len(upload.data)} of {upload.total_bytes} bytes received",
            )
        digest = hashlib.sha256(upload.data).digest()
        if digest != chunk.sha256:
            raise _RequestError(
                msg.ErrorCode.MODEL_HASH_MISMATCH,
                f"received model has SHA-256 {digest.hex()[:16]}..., the host announced {chunk.sha256.hex()[:16]}...",
            )
        self._install_model(bytes(upload.data))
        self._completed_upload = (chunk.total_bytes, chunk.sha256)
        return msg.MessageType.INFO, self.info().to_payload()

    def _accept_chunk(self, chunk: msg.LoadModel) -> _Upload:
        resent_first_chunk = self._upload is not None and chunk.offset == 0 and self._upload.data == chunk.data
        if chunk.offset == 0 and not resent_first_chunk:
            self._upload = _Upload(chunk.total_bytes, bytearray())
        upload = self._upload
        if upload is None:
            raise _RequestError(msg.ErrorCode.LOAD_SEQUENCE, f"chunk at offset {chunk.offset} but no upload started at 0")
        if chunk.total_bytes != upload.total_bytes:
            raise _RequestError(
                msg.ErrorCode.LOAD_SEQUENCE,
                f"chunk says the model is {chunk.total_bytes} bytes, the upload started with {upload.total_bytes}",
            )
        received = len(upload.data)
        end = chunk.offset + len(chunk.data)
        if chunk.offset == received and end <= upload.total_bytes:
            upload.data += chunk.data
        elif end == received and upload.data[chunk.offset:end] == chunk.data:
            pass  # a resent chunk we already have (its ACK was lost)
        else:
            raise _RequestError(
                msg.ErrorCode.LOAD_SEQUENCE,
                f"chunk at offset {chunk.offset} with {len(chunk.data)} bytes; expected offset {received} "
                f"within {upload.total_bytes} bytes",
            )
        return upload

    def _install_model(self, model_bytes: bytes) -> None:
        """Write atomically (temp file, fsync, rename), loading from the temp file first so a bad model never replaces a good one."""
        model_dir = Path(self.config.model_dir)
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            final_path = model_dir / MODEL_FILE_NAME
            temp_path = model_dir / f".{MODEL_FILE_NAME}.{os.getpid()}.tmp"
            with open(temp_path, "wb") as handle:
                handle.write(model_bytes)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise _RequestError(msg.ErrorCode.STORAGE, f"cannot write the model to {str(model_dir)!r}: {error}") from None
        try:
            runtime = self.runtime_factory(temp_path)
        except Exception as error:
            temp_path.unlink(missing_ok=True)
            raise _RequestError(
                msg.ErrorCode.STORAGE, f"the model did not load ({type(error).__name__}: {error}); the previous model stays"
            ) from None
        os.replace(temp_path, final_path)  # the runtime keeps the inode it opened
        _fsync_directory(model_dir)
        self.runtime = runtime
        self._last_inputs = None
        self._build_stream_processor(runtime)

    # ------------------------------------------------------------------ loop

    def serve(self, port, stop: threading.Event | None = None, announce: bool = True, parent_pid: int | None = None) -> None:
        """Serve until ``stop`` is set, the port hangs up (:class:`TransportClosed` or pyserial's
        SerialException propagate) or ``parent_pid`` is no longer our parent."""
        if announce:
            port.write(self.boot_frame())
        while stop is None or not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            for reply in self.feed(data):
                port.write(reply)


def _device_time(elapsed_ns: int) -> msg.DeviceTime:
    if elapsed_ns <= U32_MAX:
        return msg.DeviceTime(int(elapsed_ns), msg.TimeUnit.NANOSECONDS)
    return msg.DeviceTime(min(int(elapsed_ns // 1000), U32_MAX), msg.TimeUnit.MICROSECONDS)


def _fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def cpu_clock_hz() -> int:
    """The CPU's maximum clock from Linux cpufreq, 0 when not exposed (containers, non-Linux)."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip()) * 1000
    except (OSError, ValueError):
        return 0


# ---------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hearmask.firmware_bridge.agent",
        description="Serve the hearmask device protocol (or the MLPerf Tiny DUT protocol) on a serial port.",
    )
    parser.add_argument("--port", required=True, help="serial device or pyserial URL, e.g. /dev/ttyGS0, /dev/ttyACM0")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate of a real UART (default 115200)")
    parser.add_argument("--model", type=Path, help="the .tflite to load at start (optional with LOAD_MODEL)")
    parser.add_argument("--model-dir", type=Path,
                        help="where LOAD_MODEL stores model.tflite (default: the --model folder, else ./hearmask-agent-model)")
    parser.add_argument("--runtime", choices=("litert", "litert-reference", "fake-test"), default="litert",
                        help="litert (optimised kernels, default), litert-reference (reference kernels, the golden), "
                             "or fake-test (a deterministic stand-in for tests; never a model)")
    parser.add_argument("--fake-size", type=int, default=16, help="fake-test runtime: tensor size in int8 elements")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads (default 1)")
    parser.add_argument("--kind", choices=("hardware", "emulated"), default="hardware",
                        help="label for every timing this device reports (default hardware)")
    parser.add_argument("--target", default="raspberry-pi", help="target name reported in INFO")
    parser.add_argument("--protocol", choices=("binary", "mlperf"), default="binary",
                        help="binary: hearmask frames (PROTOCOL.md); mlperf: MLPerf Tiny DUT text protocol")
    parser.add_argument("--line-rate", type=int, default=None, metavar="BAUD",
                        help="pace bytes as a UART at BAUD would (10 bits per byte); for emulated devices")
    parser.add_argument("--max-payload-bytes", type=int, default=DEFAULT_MAX_PAYLOAD_BYTES)
    parser.add_argument("--manifest", type=Path,
                        help="the model's manifest.json (STFT, features, dB rule) for STREAM; default: the one beside "
                             "--model, if any. Without a manifest (or --stream-processor) STREAM is unsupported")
    parser.add_argument("--stream-processor", metavar="MODULE:FACTORY",
                        help="factory(runtime) -> StreamProcessor for STREAM, instead of the manifest's pipeline")
    parser.add_argument("--power-backend", metavar="SPEC",
                        help="rpi5-pmic, ina219[:ADDRESS[:SHUNT_OHMS]], replay:TRACE.csv, "
                             "ppk2[:PORT[:SUPPLY_MV[:source|ampere]]], joulescope or MODULE:FACTORY; "
                             "without it POWER answers NO_POWER_BACKEND")
    parser.add_argument("--exit-on-hangup", action="store_true", help="exit when the port hangs up (emulated devices)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is no longer our parent (emulated devices)")
    return parser


def make_runtime_factory(args) -> Callable[[Path], InferenceRuntime]:
    if args.runtime == "fake-test":
        from hearmask.firmware_bridge.fake_runtime import FakeRuntimeForTests
        from hearmask.firmware_bridge.runtime import file_sha256

        return lambda path: FakeRuntimeForTests(args.fake_size, file_sha256(path))
    from hearmask.firmware_bridge.runtime import LiteRTRuntime

    reference = args.runtime == "litert-reference"
    return lambda path: LiteRTRuntime(path, num_threads=args.threads, reference_kernels=reference)


def build_agent(args) -> DeviceAgent:
    factory = make_runtime_factory(args)
    if args.model is not None:
        runtime = factory(args.model)
    elif args.runtime == "fake-test":
        from hearmask.firmware_bridge.fake_runtime import FakeRuntimeForTests

        runtime = FakeRuntimeForTests(args.fake_size)
    else:
        runtime = None
    model_dir = args.model_dir or (args.model.parent if args.model is not None else Path("hearmask-agent-model"))
    config = AgentConfig(
        target_name=args.target,
        kind=msg.DeviceKind.EMULATED if args.kind == "emulated" else msg.DeviceKind.HARDWARE,
        clock_hz=cpu_clock_hz(),
        max_payload_bytes=args.max_payload_bytes,
        model_dir=model_dir,
    )
    stream_factory = None
    if args.stream_processor:
        stream_factory = load_plugin(args.stream_processor, "--stream-processor")
    elif args.manifest is not None or manifest_beside(args.model) is not None:
        stream_factory = manifest_stream_factory(args.manifest or manifest_beside(args.model), factory)
    power_backend = None
    if args.power_backend:
        from hearmask.firmware_bridge.power import make_power_backend

        power_backend = make_power_backend(args.power_backend)
    return DeviceAgent(config, runtime, factory, stream_factory, power_backend)


def open_port(args):
    import serial

    port = serial.serial_for_url(args.port, baudrate=args.baud, timeout=READ_POLL_S)
    if args.line_rate:
        from hearmask.firmware_bridge.transport import PacedTransport

        return PacedTransport(port, args.line_rate)
    return port


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import serial

    try:
        agent = build_agent(args)
        port = open_port(args)
    except (HearmaskError, OSError, serial.SerialException) as error:
        print(f"hearmask agent: {error}", file=sys.stderr)
        return 2
    if args.protocol == "mlperf":
        from hearmask.firmware_bridge.mlperf_dut import MlperfDut

        if agent.runtime is None:
            port.close()
            print("hearmask agent: --protocol mlperf needs a model (--model or --runtime fake-test)", file=sys.stderr)
            return 2
        agent = MlperfDut(agent.runtime)  # serves the MLPerf Tiny line protocol instead
    return serve_until_closed(agent, port, args.parent_pid, args.exit_on_hangup)


def serve_until_closed(agent, port, parent_pid: int | None, exit_on_hangup: bool) -> int:
    """Serve ``port`` (``agent.serve(port, parent_pid=...)``: a DeviceAgent or an MLPerf DUT) until
    it closes or Ctrl-C; returns the process exit status and closes the port.

    A hang-up is a clean exit (0) when ``exit_on_hangup`` (the emulated device's pty), else a
    failure (1) with the reason on stderr.
    """
    import serial

    try:
        agent.serve(port, parent_pid=parent_pid)
    except (TransportClosed, serial.SerialException) as error:
        if exit_on_hangup:
            return 0
        print(f"hearmask agent: serial port failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        port.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
