"""Host side of the protocol: :class:`DeviceClient` over any pyserial URL (PROTOCOL.md).

    with DeviceClient("/dev/ttyACM0", expected_model_sha256=sha) as device:
        device.set_strengths(0.8, 1.0)
        reply = device.infer({"features": x, "state_in": s})

Reliability rules (PROTOCOL.md, "Host behaviour"):
- Handshake: pyserial may drop input on open, so the client sends HELLO with a random
  nonce and discards everything until an INFO echoing it (bounded attempts).
- Every request gets a fresh sequence number; only a reply with that number counts.
- A corrupted reply, or the device's unsolicited FRAME_CORRUPT error, makes the client
  resend (at most ``retries`` times). A timeout makes it re-handshake, then resend.
- An unsolicited INFO (seq 0) means the device restarted: the client checks the model
  hash, restores the audiogram and strengths it had set, and resends. STREAM is not
  resent when the device may have consumed the hop (its streaming state would diverge):
  it raises :class:`DeviceReset` or :class:`DeviceTimeout` instead.

Not thread-safe: one client per port, used from one thread.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import serial

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.errors import (
    BridgeError,
    DeviceErrorReply,
    DeviceReset,
    DeviceTimeout,
    MalformedPayload,
    ModelHashMismatch,
    ProtocolError,
    TransportClosed,
)
from hearmask.firmware_bridge.framing import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_SEQ,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    FrameErrorKind,
    encode_frame,
)
from hearmask.firmware_bridge.transport import Transport, open_transport

DeviceInfo = msg.Info
LOAD_CHUNK_HEADER_BYTES = 12 + msg.SHA256_BYTES  # LoadModel fixed header + the final chunk's digest
BENCH_TIMEOUT_PER_RUN_S = 0.01  # default BENCH wait: timeout_s + 10 ms per run


@dataclass(frozen=True)
class InferReply:
    """Outputs of one INFER (name -> array, in the model's output order), the device-measured
    invoke time, and the host round trip in µs (write of the request to decoded reply)."""

    outputs: dict[str, np.ndarray]
    device_time: msg.DeviceTime
    round_trip_us: float


@dataclass(frozen=True)
class StreamReply:
    """One processed hop (same dtype and length as sent), the device time of the whole hop, the host round trip in µs."""

    samples: np.ndarray
    device_time: msg.DeviceTime
    round_trip_us: float


@dataclass
class LinkStats:
    """Counters of one client's link, for reports."""

    requests: int = 0
    resends: int = 0
    timeouts: int = 0
    corrupt_replies: int = 0
    device_dropped_frames: int = 0
    device_resets: int = 0
    handshakes: int = 0
    stale_frames: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    decoder_errors: dict[str, int] = field(default_factory=dict)


class DeviceClient:
    """A device speaking the hearmask protocol, over ``url``.

    Args:
        url: ``/dev/ttyUSB0``, ``socket://host:port``, ``loop://``, ``emulate://rpi`` ...
        baudrate: UART rate for real ports (ignored by sockets and ptys).
        timeout_s: how long to wait for each reply (and each handshake INFO).
        retries: resends per request after a timeout, a corrupted frame or a device reset.
        handshake_attempts: HELLOs sent before giving up on a handshake.
        expected_model_sha256: the model the device must run (32 bytes or 64 hex digits);
            checked at every INFO, raising :class:`ModelHashMismatch`.
        max_payload_bytes: the largest payload this host accepts and sends.
        transport: an already open :class:`Transport` (tests wrap one to inject faults); ``url`` then only names it.
        poll_s: read poll interval.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        timeout_s: float = 2.0,
        retries: int = 3,
        handshake_attempts: int = 3,
        expected_model_sha256: bytes | str | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        transport: Transport | None = None,
        poll_s: float = 0.02,
    ):
        if timeout_s <= 0:
            raise BridgeError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        if retries < 0 or handshake_attempts < 1:
            raise BridgeError(f"retries must be >= 0 and handshake_attempts >= 1, got {retries}, {handshake_attempts}")
        self.url = url
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.retries = retries
        self.handshake_attempts = handshake_attempts
        self.expected_model_sha256 = _as_digest(expected_model_sha256)
        self.max_payload_bytes = max_payload_bytes
        self.poll_s = poll_s
        self.transport = transport
        self.decoder = FrameDecoder(max_payload_bytes)
        self.stats = LinkStats()
        self.device_info: msg.Info | None = None
        self._seq = 0
        self._audiogram_db_hl: tuple[float, ...] | None = None
        self._strengths: tuple[float, float] | None = None

    # ------------------------------------------------------------------ connection

    def open(self) -> msg.Info:
        """Open the port (if not given) and handshake; returns the device's INFO."""
        if self.transport is None:
            self.transport = open_transport(self.url, self.baudrate, timeout_s=self.poll_s)
        else:
            self.transport.timeout = self.poll_s
        self.transport.reset_input_buffer()
        self.decoder.reset()
        return self._handshake()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def __enter__(self) -> "DeviceClient":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _handshake(self) -> msg.Info:
        nonce = 0
        for _ in range(self.handshake_attempts):
            nonce = secrets.randbits(32) or 1  # nonce 0 marks an unsolicited INFO
            seq = self._next_seq()
            self.stats.handshakes += 1
            self._write(encode_frame(msg.MessageType.HELLO, seq, msg.Hello(nonce).to_payload(), self.max_payload_bytes))
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                for frame in self._read_frames():
                    if frame.message_type != msg.MessageType.INFO:
                        continue
                    try:
                        info = msg.Info.from_payload(frame.payload)
                    except MalformedPayload:
                        continue
                    if info.nonce == nonce:
                        return self._accept_info(info)
                self.decoder.take_errors()  # noise before the INFO is expected after opening a port
        raise DeviceTimeout(
            f"no INFO echoing HELLO nonce 0x{nonce:08x} from {self.url} after {self.handshake_attempts} HELLOs "
            f"({self.timeout_s} s each); is the device agent running on the other end, and the baud rate "
            f"({self.baudrate}) right?"
        )

    def _accept_info(self, info: msg.Info) -> msg.Info:
        if info.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"device at {self.url} speaks protocol version {info.protocol_version}; this host speaks {PROTOCOL_VERSION}"
            )
        self.device_info = info
        self.check_model_hash(info)
        return info

    def check_model_hash(self, info: msg.Info) -> None:
        """Raise :class:`ModelHashMismatch` if ``expected_model_sha256`` is set and INFO reports another model."""
        if self.expected_model_sha256 is None or info.model_sha256 == self.expected_model_sha256:
            return
        reported = info.model_sha256.hex() if info.has_model else "no model loaded"
        raise ModelHashMismatch(
            f"device {info.target_name!r} at {self.url} runs model SHA-256 {reported}; expected "
            f"{self.expected_model_sha256.hex()}. Load the bundle's model (load_model) or point at the right bundle"
        )

    # ------------------------------------------------------------------ typed requests

    def info(self) -> msg.Info:
        """A fresh HELLO/INFO round trip."""
        return self._handshake()

    def load_model(self, model_bytes: bytes, chunk_bytes: int | None = None) -> msg.Info:
        """Send a model file in chunks (Raspberry Pi agent); returns the INFO with its hash, which becomes the expected one."""
        model_bytes = bytes(model_bytes)
        if not model_bytes:
            raise BridgeError("model is empty; expected the bytes of a .tflite file")
        limit = self._send_limit() - LOAD_CHUNK_HEADER_BYTES
        chunk_bytes = min(chunk_bytes or limit, limit)
        if chunk_bytes <= 0:
            raise BridgeError(f"chunk size must be > 0 bytes, got {chunk_bytes}")
        digest = hashlib.sha256(model_bytes).digest()
        info = None
        for offset in range(0, len(model_bytes), chunk_bytes):
            data = model_bytes[offset:offset + chunk_bytes]
            final = offset + len(data) == len(model_bytes)
            chunk = msg.LoadModel(len(model_bytes), offset, data, digest if final else None)
            reply = self.request(chunk, (msg.MessageType.INFO,) if final else (msg.MessageType.ACK,))
            if final:
                info = reply
        if info.model_sha256 != digest:
            raise ProtocolError(
                f"device reports model SHA-256 {info.model_sha256.hex()} after loading one with {digest.hex()}"
            )
        self.expected_model_sha256 = digest
        self.device_info = info
        return info

    def set_audiogram(self, thresholds_db_hl: Sequence[float]) -> None:
        """8 thresholds in dB HL at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz (sent in tenths of a dB)."""
        message = msg.SetAudiogram(tuple(float(v) for v in thresholds_db_hl))
        message.to_payload()  # validate before anything is sent
        self.request(message, (msg.MessageType.ACK,))
        self._audiogram_db_hl = message.thresholds_db_hl

    def set_strengths(self, alpha: float, beta: float) -> None:
        """Noise-reduction (alpha) and compensation (beta) strengths, each in [0, 4]."""
        message = msg.SetStrengths(float(alpha), float(beta))
        message.to_payload()
        self.request(message, (msg.MessageType.ACK,))
        self._strengths = (message.alpha, message.beta)

    def infer(self, tensors: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> InferReply:
        """One inference: inputs by name (a mapping) or by position (a sequence)."""
        if isinstance(tensors, Mapping):
            wire = tuple(msg.WireTensor(str(name), np.asarray(array)) for name, array in tensors.items())
        else:
            wire = tuple(msg.WireTensor("", np.asarray(array)) for array in tensors)
        start = time.perf_counter()
        result = self.request(msg.Infer(wire), (msg.MessageType.INFER_RESULT,))
        round_trip_us = (time.perf_counter() - start) * 1e6
        outputs = {(t.name or f"output_{i}"): t.array for i, t in enumerate(result.tensors)}
        return InferReply(outputs, result.device_time, round_trip_us)

    def bench(self, runs: int, warmup: int = 0, return_samples: bool = False, per_op: bool = False,
              timeout_s: float | None = None) -> msg.BenchResult:
        """``runs`` timed invokes on the device (on the last INFER inputs, zeros if none) after ``warmup`` untimed ones."""
        message = msg.Bench(int(runs), int(warmup), return_samples, per_op)
        message.to_payload()
        wait_s = timeout_s if timeout_s is not None else self.timeout_s + BENCH_TIMEOUT_PER_RUN_S * (runs + warmup)
        return self.request(message, (msg.MessageType.BENCH_RESULT,), timeout_s=wait_s)

    def stream(self, hop: np.ndarray) -> StreamReply:
        """One hop of mono audio (int16 or float32) through the device's full pipeline."""
        start = time.perf_counter()
        result = self.request(msg.Stream(np.asarray(hop)), (msg.MessageType.STREAM_RESULT,), idempotent=False)
        return StreamReply(result.samples, result.device_time, (time.perf_counter() - start) * 1e6)

    def power(self) -> msg.PowerResult:
        """The device's own power reading (source-labelled)."""
        return self.request(msg.PowerRequest(), (msg.MessageType.POWER_RESULT,))

    def reset(self) -> msg.Info:
        """Clear device state (settings, streaming state); returns INFO. The client forgets the settings it had sent."""
        info = self.request(msg.Reset(), (msg.MessageType.INFO,))
        self._audiogram_db_hl = None
        self._strengths = None
        return self._accept_info(info)

    # ------------------------------------------------------------------ request engine

    def request(self, message, expect: tuple[msg.MessageType, ...], idempotent: bool = True,
                timeout_s: float | None = None, restore_on_reset: bool = True):
        """Send ``message`` and return the decoded reply of one of the ``expect`` types (see module docstring)."""
        if self.transport is None:
            raise BridgeError(f"the client for {self.url} is not open; call open() or use it as a context manager")
        payload = message.to_payload()
        if len(payload) > self._send_limit():
            raise BridgeError(
                f"{message.TYPE.name} payload of {len(payload)} bytes exceeds the link limit of {self._send_limit()} "
                "bytes (the smaller of the host's and the device's max_payload_bytes)"
            )
        wait_s = timeout_s if timeout_s is not None else self.timeout_s
        name = message.TYPE.name
        self.stats.requests += 1
        failures: list[str] = []
        last_detail = ""
        needs_handshake = False
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.resends += 1
            if needs_handshake:
                try:
                    self._handshake()
                except DeviceTimeout as error:
                    raise DeviceTimeout(
                        f"no reply to {name} within {wait_s} s from {self.url}, and no answer to a new handshake: {error}"
                    ) from None
                needs_handshake = False
            seq = self._next_seq()
            self._write(encode_frame(message.TYPE, seq, payload, self.max_payload_bytes))
            # A dropped or corrupted frame may be noise, not this request or its reply: resending a
            # STREAM hop the device did get would advance its state twice, so STREAM waits instead.
            outcome, detail = self._await_reply(seq, name, expect, wait_s, resend_on_noise=idempotent)
            if outcome == "reply":
                return detail
            failures.append(outcome)
            last_detail = detail if isinstance(detail, str) else last_detail
            if outcome == "device_reset":
                self.stats.device_resets += 1
                self._accept_info(detail)
                if restore_on_reset:
                    self._restore_settings()
                if not idempotent:
                    raise DeviceReset(
                        f"device at {self.url} restarted during {name}; its streaming state was lost. "
                        "Restart the stream (the settings the client had sent were restored)"
                    )
            elif outcome == "timeout":
                self.stats.timeouts += 1
                if not idempotent:
                    raise DeviceTimeout(
                        f"no intact reply to {name} (seq {seq}) within {wait_s} s from {self.url}; not resent because "
                        "the device may have consumed the hop. Call reset() before streaming again"
                    )
                needs_handshake = True
            elif outcome == "corrupt_reply":
                self.stats.corrupt_replies += 1
            elif outcome == "device_dropped":
                self.stats.device_dropped_frames += 1  # the request never reached the device intact: resend
        summary = ", ".join(f"{failures.count(k)} {k.replace('_', ' ')}" for k in dict.fromkeys(failures))
        raise DeviceTimeout(
            f"no valid {'/'.join(t.name for t in expect)} reply to {name} from {self.url} after "
            f"{self.retries + 1} attempts ({summary}; {wait_s} s each){'; last: ' + last_detail if last_detail else ''}"
        )

    def _restore_settings(self) -> None:
        if self._audiogram_db_hl is not None:
            self.request(msg.SetAudiogram(self._audiogram_db_hl), (msg.MessageType.ACK,), restore_on_reset=False)
        if self._strengths is not None:
            self.request(msg.SetStrengths(*self._strengths), (msg.MessageType.ACK,), restore_on_reset=False)

    def _await_reply(self, seq: int, name: str, expect: tuple[msg.MessageType, ...], wait_s: float,
                     resend_on_noise: bool = True):
        """('reply', message) | ('timeout', None) | ('corrupt_reply', detail) | ('device_dropped', text) | ('device_reset', Info)."""
        deadline = time.monotonic() + wait_s
        pending: tuple[str, object] | None = None
        while time.monotonic() < deadline:
            frames = self._read_frames()
            for error in self.decoder.take_errors():
                if error.kind == FrameErrorKind.OVERSIZE:
                    raise ProtocolError(
                        f"device at {self.url} sent a frame over this host's limit while answering {name}: "
                        f"{error.detail}. Raise max_payload_bytes if the device is right"
                    )
                if error.kind == FrameErrorKind.BAD_VERSION:
                    raise ProtocolError(f"device at {self.url} answered {name} with {error.detail}")
                if resend_on_noise:
                    pending = pending or ("corrupt_reply", f"{error.kind.value}: {error.detail}")
            for frame in frames:
                if frame.seq == seq:
                    return "reply", self._decode_reply(frame, name, expect)
                if frame.seq != 0:
                    self.stats.stale_frames += 1  # a late reply to an earlier attempt
                    continue
                unsolicited = self._unsolicited(frame, name)
                if unsolicited is None or (unsolicited[0] != "device_reset" and not resend_on_noise):
                    continue
                if pending is None or unsolicited[0] == "device_reset":
                    pending = unsolicited
            if pending is not None:
                return pending
        return "timeout", None

    def _unsolicited(self, frame: Frame, name: str):
        """Classify a seq-0 frame: a boot INFO (device restarted) or the device dropping a frame."""
        try:
            message = msg.decode_message(frame)
        except MalformedPayload:
            return "corrupt_reply", "malformed unsolicited frame"
        if isinstance(message, msg.Info):
            return "device_reset", message
        if isinstance(message, msg.ErrorMessage) and message.code in (msg.ErrorCode.FRAME_CORRUPT,
                                                                        msg.ErrorCode.FRAME_OVERSIZE):
            return "device_dropped", f"{message.code_name}: {message.message}"
        self.stats.stale_frames += 1
        return None

    def _decode_reply(self, frame: Frame, name: str, expect: tuple[msg.MessageType, ...]):
        if frame.message_type == msg.MessageType.ERROR:
            try:
                error = msg.ErrorMessage.from_payload(frame.payload)
            except MalformedPayload as problem:
                raise ProtocolError(f"device at {self.url} answered {name} with a malformed ERROR: {problem}") from None
            raise DeviceErrorReply(
                f"device at {self.url} refused {name}: {error.code_name}: {error.message}", error.code, error.message
            )
        if frame.message_type not in expect:
            raise ProtocolError(
                f"device at {self.url} answered {name} with {msg.message_name(frame.message_type)}; "
                f"expected {'/'.join(t.name for t in expect)}"
            )
        try:
            return msg.decode_message(frame)
        except MalformedPayload as problem:
            raise ProtocolError(f"device at {self.url} sent a malformed reply to {name}: {problem}") from None

    # ------------------------------------------------------------------ bytes

    def _next_seq(self) -> int:
        self._seq = self._seq % MAX_SEQ + 1  # 1..65535; 0 is the device's unsolicited seq
        return self._seq

    def _send_limit(self) -> int:
        device_limit = self.device_info.max_payload_bytes if self.device_info else self.max_payload_bytes
        return min(self.max_payload_bytes, device_limit)

    def _write(self, data: bytes) -> None:
        try:
            self.transport.write(data)
        except serial.SerialTimeoutException:
            raise DeviceTimeout(f"writing {len(data)} bytes to {self.url} timed out: the device is not reading") from None
        except (serial.SerialException, OSError) as error:
            raise TransportClosed(f"cannot write to {self.url}: {error}") from None
        self.stats.bytes_sent += len(data)

    def _read_frames(self) -> list[Frame]:
        try:
            data = self.transport.read(max(1, self.transport.in_waiting))
        except (serial.SerialException, OSError) as error:
            raise TransportClosed(f"cannot read from {self.url}: {error}") from None
        if not data:
            return []
        self.stats.bytes_received += len(data)
        frames = self.decoder.feed(data)
        self.stats.decoder_errors = {k: v for k, v in self.decoder.error_counts.items() if v}
        return frames


def _as_digest(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise BridgeError(f"expected_model_sha256 {value!r} is not hex; expected 64 hex digits") from None
    if len(value) != msg.SHA256_BYTES:
        raise BridgeError(f"expected_model_sha256 must be 32 bytes (64 hex digits), got {len(value)} bytes")
    return bytes(value)
