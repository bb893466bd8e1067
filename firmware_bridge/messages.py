"""Message types and payload codecs of the host <-> device protocol (PROTOCOL.md, "Messages").

Every payload is a little-endian fixed-size header, optionally followed by counted
arrays and short ASCII strings (``u8`` length, then bytes), so the C firmware can parse
it with ``memcpy`` and no allocation. Each message class has ``to_payload() -> bytes``
and ``from_payload(bytes)``; the latter raises :class:`MalformedPayload` naming the
field that was wrong. :func:`decode_message` turns a :class:`Frame` into a message.

Only numpy and the standard library are imported: the device agent uses this module.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar

import numpy as np

from hearmask.firmware_bridge.errors import MalformedPayload, ValueOutOfRange
from hearmask.firmware_bridge.framing import PROTOCOL_VERSION, Frame
from hearmask.firmware_bridge.wire import (  # re-exported: messages.X is the one place callers look
    MAX_DIM,
    MAX_STREAM_SAMPLES,
    MAX_STRING_BYTES,
    MAX_TENSORS,
    MAX_TENSOR_RANK,
    DeviceTime,
    PayloadReader,
    SampleFormat,
    TensorDtype,
    TimeUnit,
    WireTensor,
    decode_tensors,
    encode_tensors,
    numpy_dtype,
    pack_audio,
    read_audio,
    short_string,
    tensor_dtype_code,
)
from hearmask.profiles.audiogram import MAX_THRESHOLD_DB_HL, MIN_THRESHOLD_DB_HL, MODEL_AUDIOGRAM_FREQUENCIES_HZ

MAX_ERROR_MESSAGE_BYTES = 255
SHA256_BYTES = 32
NO_MODEL_SHA256 = bytes(SHA256_BYTES)  # all zero: no model loaded
AUDIOGRAM_POINTS = len(MODEL_AUDIOGRAM_FREQUENCIES_HZ)  # 8 values at 250..8000 Hz
AUDIOGRAM_WIRE_STEP_DB = 0.1  # int16 tenths of a dB: 22.5 dB HL -> 225, exact for clinical 0.5/1/5 dB steps
MAX_WIRE_STRENGTH = 4.0  # alpha, beta accepted on the wire: [0, 4] (above 1 exaggerates; DESIGN.md)
MAX_BENCH_RUNS = 100_000
MAX_BENCH_SAMPLES_RETURNED = 8192  # 32 KiB of u32 samples, inside a 64 KiB frame
MAX_BENCH_OPS = 512


class MessageType(IntEnum):
    """The ``message_type`` byte of a frame. Requests go host -> device; replies device -> host."""

    HELLO = 0x01  # host: u32 nonce -> INFO echoing it
    INFO = 0x02  # device: identity and capabilities
    ACK = 0x03  # device: request done, nothing else to return
    ERROR = 0x04  # device: request failed (or an unsolicited frame error, seq 0)
    RESET = 0x05  # host: clear device state -> INFO
    LOAD_MODEL = 0x10  # host: model chunk -> ACK, or INFO after the final chunk
    SET_AUDIOGRAM = 0x11  # host: 8 thresholds -> ACK
    SET_STRENGTHS = 0x12  # host: alpha, beta -> ACK
    INFER = 0x20  # host: tensors -> INFER_RESULT
    INFER_RESULT = 0x21
    BENCH = 0x22  # host: N timed runs -> BENCH_RESULT
    BENCH_RESULT = 0x23
    STREAM = 0x24  # host: one audio hop -> STREAM_RESULT
    STREAM_RESULT = 0x25
    POWER = 0x30  # host: read the power sensor -> POWER_RESULT
    POWER_RESULT = 0x31


class ErrorCode(IntEnum):
    """``code`` of an ERROR message."""

    UNKNOWN_MESSAGE = 1  # message type not known to this device
    MALFORMED_PAYLOAD = 2  # frame intact, payload does not decode
    FRAME_CORRUPT = 3  # unsolicited (seq 0): a frame failed COBS/CRC/length checks; resend
    FRAME_OVERSIZE = 4  # unsolicited (seq 0): a frame exceeded the device's payload cap
    BAD_VERSION = 5  # frame of another protocol version (seq echoed)
    UNSUPPORTED = 6  # known message this device cannot serve (e.g. LOAD_MODEL on Cortex-M, STREAM without a pipeline)
    NO_MODEL = 7  # INFER/BENCH/STREAM before a model is loaded
    TENSOR_MISMATCH = 8  # INFER tensors do not match the model's inputs (names, shapes, dtypes)
    MODEL_HASH_MISMATCH = 9  # LOAD_MODEL: the bytes received do not have the announced SHA-256
    LOAD_SEQUENCE = 10  # LOAD_MODEL: chunk offset or total size inconsistent
    NO_POWER_BACKEND = 11  # POWER: the device has no power sensor configured
    OUT_OF_RANGE = 12  # a value outside its accepted range (audiogram, strengths, run counts)
    INTERNAL = 13  # the runtime or pipeline failed on the device
    STORAGE = 14  # LOAD_MODEL: the model could not be written or loaded
    REPLY_TOO_LARGE = 15  # the reply would exceed the payload cap


class DeviceKind(IntEnum):
    """Whether timings come from real hardware or from an emulation on the host."""

    HARDWARE = 0
    EMULATED = 1

    @property
    def label(self) -> str:
        return self.name.lower()


class Capability(IntFlag):
    """INFO's ``capabilities`` bitmask: the requests this device serves."""

    INFER = 1 << 0
    BENCH = 1 << 1
    STREAM = 1 << 2
    LOAD_MODEL = 1 << 3
    POWER = 1 << 4
    SET_AUDIOGRAM = 1 << 5
    SET_STRENGTHS = 1 << 6
    PER_OP_COUNTS = 1 << 7
    RESET = 1 << 8


@dataclass(frozen=True)
class Hello:
    """Host -> device: ``u32 nonce``. The device answers INFO echoing the nonce."""

    nonce: int
    TYPE: ClassVar[MessageType] = MessageType.HELLO
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<I")

    def to_payload(self) -> bytes:
        return self._LAYOUT.pack(self.nonce)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Hello":
        reader = PayloadReader(payload, "HELLO")
        (nonce,) = reader.unpack(cls._LAYOUT, "nonce")
        reader.finish()
        return cls(nonce)


@dataclass(frozen=True)
class Info:
    """Device -> host: who the device is. Sent for HELLO, RESET, a final LOAD_MODEL chunk,
    and unsolicited (seq 0, nonce 0) when the device boots.

    Layout: ``u32 nonce | u8 protocol_version | u8 kind | u16 capabilities | u32 clock_hz |
    u32 arena_bytes | u32 max_payload_bytes | u8 model_sha256[32] | str target | str runtime``
    (str = ``u8 len`` + UTF-8). ``clock_hz`` and ``arena_bytes`` are 0 when unknown;
    ``model_sha256`` is all zero when no model is loaded.
    """

    nonce: int
    kind: DeviceKind
    capabilities: Capability
    clock_hz: int
    arena_bytes: int
    max_payload_bytes: int
    model_sha256: bytes
    target_name: str
    runtime_name: str
    protocol_version: int = PROTOCOL_VERSION
    TYPE: ClassVar[MessageType] = MessageType.INFO
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IBBHIII32s")

    @property
    def has_model(self) -> bool:
        return self.model_sha256 != NO_MODEL_SHA256

    def to_payload(self) -> bytes:
        if len(self.model_sha256) != SHA256_BYTES:
            raise MalformedPayload(f"model_sha256 must be {SHA256_BYTES} bytes, got {len(self.model_sha256)}")
        return (
            self._LAYOUT.pack(
                self.nonce, self.protocol_version, int(self.kind), int(self.capabilities),
                self.clock_hz, self.arena_bytes, self.max_payload_bytes, self.model_sha256,
            )
            + short_string(self.target_name, "target name")
            + short_string(self.runtime_name, "runtime name")
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> "Info":
        reader = PayloadReader(payload, "INFO")
        nonce, version, kind, capabilities, clock_hz, arena, max_payload, sha = reader.unpack(cls._LAYOUT, "header")
        try:
            device_kind = DeviceKind(kind)
        except ValueError:
            raise MalformedPayload(f"INFO: device kind {kind} is unknown; accepted: 0 (hardware), 1 (emulated)") from None
        target = reader.string("target name")
        runtime = reader.string("runtime name")
        reader.finish()
        return cls(nonce, device_kind, Capability(capabilities), clock_hz, arena, max_payload, sha, target, runtime, version)


@dataclass(frozen=True)
class Ack:
    """Device -> host: ``u8 acked_type | u8 0 | u16 0 | u32 value`` (LOAD_MODEL: bytes received so far)."""

    acked_type: int
    value: int = 0
    TYPE: ClassVar[MessageType] = MessageType.ACK
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBHI")

    def to_payload(self) -> bytes:
        return self._LAYOUT.pack(self.acked_type, 0, 0, self.value)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Ack":
        reader = PayloadReader(payload, "ACK")
        acked_type, _, _, value = reader.unpack(cls._LAYOUT, "header")
        reader.finish()
        return cls(acked_type, value)


@dataclass(frozen=True)
class ErrorMessage:
    """Device -> host: ``u16 code | u8 message_len | message`` (UTF-8, at most 255 bytes)."""

    code: int
    message: str
    TYPE: ClassVar[MessageType] = MessageType.ERROR

    def to_payload(self) -> bytes:
        raw = self.message.encode("utf-8")[:MAX_ERROR_MESSAGE_BYTES]
        raw = raw.decode("utf-8", errors="ignore").encode("utf-8")  # never cut a UTF-8 sequence in half
        return struct.pack("<HB", self.code, len(raw)) + raw

    @classmethod
    def from_payload(cls, payload: bytes) -> "ErrorMessage":
        reader = PayloadReader(payload, "ERROR")
        (code,) = reader.unpack(struct.Struct("<H"), "code")
        message = reader.string("message", limit=MAX_ERROR_MESSAGE_BYTES)
        reader.finish()
        return cls(code, message)

    @property
    def code_name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"code {self.code}"


@dataclass(frozen=True)
class Reset:
    """Host -> device: empty payload. The device clears its state and answers INFO."""

    TYPE: ClassVar[MessageType] = MessageType.RESET

    def to_payload(self) -> bytes:
        return b""

    @classmethod
    def from_payload(cls, payload: bytes) -> "Reset":
        PayloadReader(payload, "RESET").finish()
        return cls()


@dataclass(frozen=True)
class LoadModel:
    """Host -> device: one chunk of a model file (Raspberry Pi agent only).

    Layout: ``u32 total_bytes | u32 offset | u8 flags | u8 0 | u16 0 | [u8 sha256[32] if
    flags & 1] | data``. Chunks come in order from offset 0; the chunk with flag bit 0
    (final) carries the SHA-256 of the whole file.
    """

    total_bytes: int
    offset: int
    data: bytes
    sha256: bytes | None = None  # set on the final chunk only
    TYPE: ClassVar[MessageType] = MessageType.LOAD_MODEL
    FLAG_FINAL: ClassVar[int] = 1
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IIBBH")

    @property
    def final(self) -> bool:
        return self.sha256 is not None

    def to_payload(self) -> bytes:
        flags = self.FLAG_FINAL if self.final else 0
        head = self._LAYOUT.pack(self.total_bytes, self.offset, flags, 0, 0)
        if self.final:
            if len(self.sha256) != SHA256_BYTES:
                raise MalformedPayload(f"LOAD_MODEL sha256 must be {SHA256_BYTES} bytes, got {len(self.sha256)}")
            head += self.sha256
        return head + bytes(self.data)

    @classmethod
    def from_payload(cls, payload: bytes) -> "LoadModel":
        reader = PayloadReader(payload, "LOAD_MODEL")
        total, offset, flags, _, _ = reader.unpack(cls._LAYOUT, "header")
        sha = reader.take(SHA256_BYTES, "sha256") if flags & cls.FLAG_FINAL else None
        data = reader.payload[reader.offset:]
        return cls(total, offset, data, sha)


def audiogram_to_wire(thresholds_db_hl) -> tuple[int, ...]:
    """dB HL -> int16 tenths, validated against the audiogram range (-10..120 dB HL)."""
    values = [float(v) for v in thresholds_db_hl]
    if len(values) != AUDIOGRAM_POINTS:
        freqs = ", ".join(f"{f:g}" for f in MODEL_AUDIOGRAM_FREQUENCIES_HZ)
        raise MalformedPayload(f"audiogram needs {AUDIOGRAM_POINTS} thresholds (at {freqs} Hz), got {len(values)}")
    for frequency_hz, value in zip(MODEL_AUDIOGRAM_FREQUENCIES_HZ, values):
        if not (math.isfinite(value) and MIN_THRESHOLD_DB_HL <= value <= MAX_THRESHOLD_DB_HL):
            raise ValueOutOfRange(
                f"audiogram threshold at {frequency_hz:g} Hz is {value} dB HL; accepted: finite, "
                f"{MIN_THRESHOLD_DB_HL:g}..{MAX_THRESHOLD_DB_HL:g} dB HL"
            )
    return tuple(int(round(v / AUDIOGRAM_WIRE_STEP_DB)) for v in values)


@dataclass(frozen=True)
class SetAudiogram:
    """Host -> device: ``i16 thresholds[8]`` in tenths of dB HL at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz."""

    thresholds_db_hl: tuple[float, ...]
    TYPE: ClassVar[MessageType] = MessageType.SET_AUDIOGRAM
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct(f"<{AUDIOGRAM_POINTS}h")

    def to_payload(self) -> bytes:
        return self._LAYOUT.pack(*audiogram_to_wire(self.thresholds_db_hl))

    @classmethod
    def from_payload(cls, payload: bytes) -> "SetAudiogram":
        reader = PayloadReader(payload, "SET_AUDIOGRAM")
        tenths = reader.unpack(cls._LAYOUT, "thresholds")
        reader.finish()
        thresholds = tuple(t * AUDIOGRAM_WIRE_STEP_DB for t in tenths)
        audiogram_to_wire(thresholds)  # range check on the device side too
        return cls(tuple(round(t, 1) for t in thresholds))


def validate_wire_strength(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= MAX_WIRE_STRENGTH):
        raise ValueOutOfRange(
            f"strength {name} = {value} is outside the accepted range [0, {MAX_WIRE_STRENGTH:g}] "
            "(1 = full mask, above 1 exaggerates)"
        )
    return value


@dataclass(frozen=True)
class SetStrengths:
    """Host -> device: ``f32 alpha | f32 beta``: gain dB = alpha·NR_dB + beta·HLC_dB, each in [0, 4]."""

    alpha: float
    beta: float
    TYPE: ClassVar[MessageType] = MessageType.SET_STRENGTHS
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<ff")

    def to_payload(self) -> bytes:
        return self._LAYOUT.pack(validate_wire_strength("alpha", self.alpha), validate_wire_strength("beta", self.beta))

    @classmethod
    def from_payload(cls, payload: bytes) -> "SetStrengths":
        reader = PayloadReader(payload, "SET_STRENGTHS")
        alpha, beta = reader.unpack(cls._LAYOUT, "strengths")
        reader.finish()
        return cls(validate_wire_strength("alpha", alpha), validate_wire_strength("beta", beta))


@dataclass(frozen=True)
class Infer:
    """Host -> device: a tensor block with the model inputs (named, or matched by position)."""

    tensors: tuple[WireTensor, ...]
    TYPE: ClassVar[MessageType] = MessageType.INFER

    def to_payload(self) -> bytes:
        return encode_tensors(self.tensors)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Infer":
        reader = PayloadReader(payload, "INFER")
        tensors = decode_tensors(reader)
        reader.finish()
        return cls(tensors)


@dataclass(frozen=True)
class InferResult:
    """Device -> host: ``DeviceTime`` of the invoke, then a tensor block with the outputs."""

    device_time: DeviceTime
    tensors: tuple[WireTensor, ...]
    TYPE: ClassVar[MessageType] = MessageType.INFER_RESULT

    def to_payload(self) -> bytes:
        return self.device_time.pack() + encode_tensors(self.tensors)

    @classmethod
    def from_payload(cls, payload: bytes) -> "InferResult":
        reader = PayloadReader(payload, "INFER_RESULT")
        device_time = DeviceTime.read(reader)
        tensors = decode_tensors(reader)
        reader.finish()
        return cls(device_time, tensors)


@dataclass(frozen=True)
class Bench:
    """Host -> device: ``u32 runs | u32 warmup | u8 flags | u8 0 | u16 0``.

    Flag bit 0: return every sample; bit 1: return per-op counts where the device has them.
    The device times ``runs`` invokes on the last INFER inputs (zeros if none) after
    ``warmup`` untimed ones.
    """

    runs: int
    warmup: int = 0
    return_samples: bool = False
    per_op: bool = False
    TYPE: ClassVar[MessageType] = MessageType.BENCH
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IIBBH")

    def to_payload(self) -> bytes:
        _check_bench_counts(self.runs, self.warmup, "BENCH")
        flags = (1 if self.return_samples else 0) | (2 if self.per_op else 0)
        return self._LAYOUT.pack(self.runs, self.warmup, flags, 0, 0)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Bench":
        reader = PayloadReader(payload, "BENCH")
        runs, warmup, flags, _, _ = reader.unpack(cls._LAYOUT, "header")
        reader.finish()
        _check_bench_counts(runs, warmup, "BENCH")
        return cls(runs, warmup, bool(flags & 1), bool(flags & 2))


def _check_bench_counts(runs: int, warmup: int, what: str) -> None:
    if not 1 <= runs <= MAX_BENCH_RUNS:
        raise ValueOutOfRange(f"{what}: runs = {runs}; accepted 1..{MAX_BENCH_RUNS}")
    if not 0 <= warmup <= MAX_BENCH_RUNS:
        raise ValueOutOfRange(f"{what}: warmup = {warmup}; accepted 0..{MAX_BENCH_RUNS}")


@dataclass(frozen=True)
class BenchResult:
    """Device -> host: statistics of ``runs`` timed invokes, in ``unit``.

    Layout: ``u32 runs | u8 unit | u8 0 | u16 n_ops | u32 min | u32 median | u32 mean |
    u32 max | u32 n_samples | u32 samples[n_samples] | n_ops × (str op_name | u32 value)``.
    """

    runs: int
    unit: TimeUnit
    min: int
    median: int
    mean: int
    max: int
    samples: tuple[int, ...] = ()
    op_counts: tuple[tuple[str, int], ...] = ()
    TYPE: ClassVar[MessageType] = MessageType.BENCH_RESULT
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IBBHIIIII")

    def to_payload(self) -> bytes:
        if len(self.samples) > MAX_BENCH_SAMPLES_RETURNED:
            raise MalformedPayload(f"BENCH_RESULT: {len(self.samples)} samples; at most {MAX_BENCH_SAMPLES_RETURNED}")
        if len(self.op_counts) > MAX_BENCH_OPS:
            raise MalformedPayload(f"BENCH_RESULT: {len(self.op_counts)} ops; at most {MAX_BENCH_OPS}")
        parts = [
            self._LAYOUT.pack(self.runs, int(self.unit), 0, len(self.op_counts), self.min, self.median,
                              self.mean, self.max, len(self.samples)),
            struct.pack(f"<{len(self.samples)}I", *self.samples),
        ]
        for name, value in self.op_counts:
            parts.append(short_string(name, "op name") + struct.pack("<I", value))
        return b"".join(parts)

    @classmethod
    def from_payload(cls, payload: bytes) -> "BenchResult":
        reader = PayloadReader(payload, "BENCH_RESULT")
        runs, unit, _, n_ops, low, median, mean, high, n_samples = reader.unpack(cls._LAYOUT, "header")
        if n_samples > MAX_BENCH_SAMPLES_RETURNED:
            raise MalformedPayload(f"BENCH_RESULT: {n_samples} samples; at most {MAX_BENCH_SAMPLES_RETURNED}")
        samples = reader.unpack(struct.Struct(f"<{n_samples}I"), "samples")
        ops = []
        for index in range(n_ops):
            name = reader.string(f"op {index} name")
            (value,) = reader.unpack(struct.Struct("<I"), f"op {index} value")
            ops.append((name, value))
        reader.finish()
        try:
            time_unit = TimeUnit(unit)
        except ValueError:
            raise MalformedPayload(f"BENCH_RESULT: time unit {unit} is unknown; accepted 0..3") from None
        return cls(runs, time_unit, low, median, mean, high, tuple(samples), tuple(ops))


@dataclass(frozen=True)
class Stream:
    """Host -> device: one hop of mono audio, ``u8 format | u8 0 | u16 n_samples | samples``."""

    samples: np.ndarray
    TYPE: ClassVar[MessageType] = MessageType.STREAM

    def to_payload(self) -> bytes:
        return pack_audio(self.samples, "STREAM")

    @classmethod
    def from_payload(cls, payload: bytes) -> "Stream":
        reader = PayloadReader(payload, "STREAM")
        samples = read_audio(reader)
        reader.finish()
        return cls(samples)


@dataclass(frozen=True)
class StreamResult:
    """Device -> host: ``DeviceTime`` of the whole hop, then the processed hop in the request's format."""

    device_time: DeviceTime
    samples: np.ndarray
    TYPE: ClassVar[MessageType] = MessageType.STREAM_RESULT

    def to_payload(self) -> bytes:
        return self.device_time.pack() + pack_audio(self.samples, "STREAM_RESULT")

    @classmethod
    def from_payload(cls, payload: bytes) -> "StreamResult":
        reader = PayloadReader(payload, "STREAM_RESULT")
        device_time = DeviceTime.read(reader)
        samples = read_audio(reader)
        reader.finish()
        return cls(device_time, samples)


class PowerSource(IntEnum):
    """Where a power reading comes from. Replayed and synthetic readings are never measurements."""

    RPI5_PMIC = 1
    INA219 = 2
    EXTERNAL_METER = 3
    REPLAY = 4  # a recorded trace played back
    SYNTHETIC = 5  # made up, for tests

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class PowerRequest:
    """Host -> device: empty payload."""

    TYPE: ClassVar[MessageType] = MessageType.POWER

    def to_payload(self) -> bytes:
        return b""

    @classmethod
    def from_payload(cls, payload: bytes) -> "PowerRequest":
        PayloadReader(payload, "POWER").finish()
        return cls()


@dataclass(frozen=True)
class PowerResult:
    """Device -> host: ``u8 source | u8 0 | u16 0 | f32 power_mw | f32 voltage_v | f32 current_ma |
    u32 window_us | str detail``. Voltage and current are NaN when the sensor does not give them;
    ``window_us`` is the averaging window (0 = instantaneous)."""

    source: PowerSource
    power_mw: float
    voltage_v: float = float("nan")
    current_ma: float = float("nan")
    window_us: int = 0
    detail: str = ""
    TYPE: ClassVar[MessageType] = MessageType.POWER_RESULT
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBHfffI")

    def to_payload(self) -> bytes:
        return self._LAYOUT.pack(int(self.source), 0, 0, self.power_mw, self.voltage_v, self.current_ma,
                                 self.window_us) + short_string(self.detail, "power detail")

    @classmethod
    def from_payload(cls, payload: bytes) -> "PowerResult":
        reader = PayloadReader(payload, "POWER_RESULT")
        source, _, _, power_mw, voltage_v, current_ma, window_us = reader.unpack(cls._LAYOUT, "header")
        detail = reader.string("detail")
        reader.finish()
        try:
            power_source = PowerSource(source)
        except ValueError:
            raise MalformedPayload(f"POWER_RESULT: power source {source} is unknown; accepted 1..5") from None
        return cls(power_source, power_mw, voltage_v, current_ma, window_us, detail)


MESSAGE_CLASSES: dict[MessageType, type] = {
    cls.TYPE: cls
    for cls in (Hello, Info, Ack, ErrorMessage, Reset, LoadModel, SetAudiogram, SetStrengths, Infer,
                InferResult, Bench, BenchResult, Stream, StreamResult, PowerRequest, PowerResult)
}


def decode_message(frame: Frame):
    """The message object of an intact frame; raises :class:`MalformedPayload` for an unknown type or bad payload."""
    try:
        message_type = MessageType(frame.message_type)
    except ValueError:
        raise MalformedPayload(f"message type 0x{frame.message_type:02x} is unknown") from None
    return MESSAGE_CLASSES[message_type].from_payload(frame.payload)


def message_name(message_type: int) -> str:
    try:
        return MessageType(message_type).name
    except ValueError:
        return f"0x{message_type:02x}"

