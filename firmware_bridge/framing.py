"""Binary framing of the host <-> device link: COBS, CRC-32 and a resynchronising decoder.

Wire format (PROTOCOL.md, "Framing"): a raw frame is

    u8 version | u8 message_type | u16 seq | u32 payload_len | payload | u32 crc32

all little-endian; ``crc32`` is CRC-32/IEEE (``zlib.crc32``, the Ethernet/zip polynomial
0x04C11DB7, reflected, init and xorout 0xFFFFFFFF) over header + payload. The raw frame
is COBS-encoded (Cheshire & Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM Trans.
Networking 7(2), 1999), so it holds no 0x00 byte, and sent between two 0x00 delimiters.
The leading delimiter terminates whatever line noise the receiver has buffered, so a
frame never merges with garbage sent before it. Empty frames (two delimiters in a row)
are ignored.

Only the standard library is imported: this module runs on the device agent too.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from dataclasses import dataclass
from enum import Enum

from hearmask.firmware_bridge.errors import BridgeError

PROTOCOL_VERSION = 1
FRAME_DELIMITER = b"\x00"
HEADER = struct.Struct("<BBHI")  # version, message_type, seq, payload_len
CRC = struct.Struct("<I")
FRAME_OVERHEAD_BYTES = HEADER.size + CRC.size  # 12 bytes around every payload before COBS
DEFAULT_MAX_PAYLOAD_BYTES = 65536  # 64 KiB: a LOAD_MODEL chunk, or a large INFER
MAX_SEQ = 0xFFFF
MAX_MESSAGE_TYPE = 0xFF
# Bounded memory for decode errors nobody has collected yet (oldest are dropped).
MAX_PENDING_ERRORS = 32
# COBS: a code byte before each run of up to 254 non-zero bytes.
_COBS_MAX_RUN = 254


class CobsError(BridgeError):
    """Bytes that are not a valid COBS encoding."""


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``: the result holds no 0x00 byte and is at most ``len(data) + len(data)//254 + 1`` long."""
    out = bytearray()
    code_index = 0
    out.append(0)  # placeholder for the first code byte
    code = 1
    for byte in data:
        if byte == 0:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == _COBS_MAX_RUN + 1:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises :class:`CobsError` on a 0x00 byte or a code past the end."""
    out = bytearray()
    index = 0
    length = len(encoded)
    while index < length:
        code = encoded[index]
        if code == 0:
            raise CobsError(f"COBS data holds a 0x00 byte at offset {index}; a frame must not contain the delimiter")
        end = index + code
        if end > length:
            raise CobsError(
                f"COBS code {code} at offset {index} runs past the end of the {length}-byte frame (truncated?)"
            )
        block = encoded[index + 1:end]
        if 0 in block:
            raise CobsError(f"COBS block at offset {index} holds a 0x00 byte")
        out += block
        index = end
        # A code below 255 stands for "block, then a zero", except at the very end.
        if code < _COBS_MAX_RUN + 1 and index < length:
            out.append(0)
    return bytes(out)


def max_encoded_frame_bytes(max_payload_bytes: int) -> int:
    """Largest COBS-encoded frame (delimiters excluded) for a payload cap, in bytes."""
    raw = FRAME_OVERHEAD_BYTES + max_payload_bytes
    return raw + raw // _COBS_MAX_RUN + 1


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``seq`` 0 marks a message the device sent on its own (PROTOCOL.md)."""

    message_type: int
    seq: int
    payload: bytes
    version: int = PROTOCOL_VERSION


def raw_frame(message_type: int, seq: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """Header + payload + CRC-32, before COBS (exposed for tests and for C-port reference vectors)."""
    body = HEADER.pack(version, message_type, seq, len(payload)) + payload
    return body + CRC.pack(zlib.crc32(body))


def encode_frame(
    message_type: int,
    seq: int,
    payload: bytes = b"",
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """The bytes to write for one frame: ``0x00 + COBS(raw frame) + 0x00``.

    Raises :class:`BridgeError` when a field is out of range or the payload exceeds
    ``max_payload_bytes`` (the sender enforces the same cap as the receiver).
    """
    if not 0 <= message_type <= MAX_MESSAGE_TYPE:
        raise BridgeError(f"message type must be 0..{MAX_MESSAGE_TYPE}, got {message_type}")
    if not 0 <= seq <= MAX_SEQ:
        raise BridgeError(f"sequence number must be 0..{MAX_SEQ}, got {seq}")
    if len(payload) > max_payload_bytes:
        raise BridgeError(
            f"payload of {len(payload)} bytes exceeds the frame limit of {max_payload_bytes} bytes"
        )
    return FRAME_DELIMITER + cobs_encode(raw_frame(message_type, seq, bytes(payload), version)) + FRAME_DELIMITER


class FrameErrorKind(str, Enum):
    """Why a run of bytes between delimiters was dropped."""

    BAD_COBS = "bad_cobs"  # not a valid COBS encoding
    TRUNCATED = "truncated"  # shorter than header + CRC, or shorter than its declared payload
    BAD_CRC = "bad_crc"  # CRC-32 mismatch: corrupted bytes
    BAD_VERSION = "bad_version"  # intact frame of another protocol version
    BAD_LENGTH = "bad_length"  # intact frame whose payload_len is less than the bytes it carries
    OVERSIZE = "oversize"  # more bytes than the payload cap allows


@dataclass(frozen=True)
class FrameError:
    """One dropped frame. ``seq`` and ``message_type`` are set only when the CRC was good."""

    kind: FrameErrorKind
    detail: str
    seq: int | None = None
    message_type: int | None = None


class FrameDecoder:
    """Streaming frame decoder: ``feed(bytes) -> list[Frame]``.

    Never raises on bad input and never buffers more than one maximal encoded frame:
    bytes past that cap are dropped up to the next delimiter (an ``oversize`` error).
    Dropped frames are counted per kind (:attr:`error_counts`) and the last
    :data:`MAX_PENDING_ERRORS` are kept for :meth:`take_errors`.
    """

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, version: int = PROTOCOL_VERSION):
        if max_payload_bytes < 0:
            raise BridgeError(f"max_payload_bytes must be >= 0, got {max_payload_bytes}")
        self.max_payload_bytes = max_payload_bytes
        self.version = version
        self.max_buffered_bytes = max_encoded_frame_bytes(max_payload_bytes)
        self._buffer = bytearray()
        self._discarding = False  # after an oversize run, drop bytes up to the next delimiter
        self._pending_errors: deque[FrameError] = deque(maxlen=MAX_PENDING_ERRORS)
        self.error_counts: dict[str, int] = {kind.value: 0 for kind in FrameErrorKind}
        self.frames_decoded = 0
        self.bytes_discarded = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held while waiting for a delimiter (never above :attr:`max_buffered_bytes`)."""
        return len(self._buffer)

    @property
    def total_errors(self) -> int:
        return sum(self.error_counts.values())

    def take_errors(self) -> list[FrameError]:
        """The dropped frames since the last call (at most :data:`MAX_PENDING_ERRORS`), oldest first."""
        errors = list(self._pending_errors)
        self._pending_errors.clear()
        return errors

    def reset(self) -> None:
        """Forget any partial frame (e.g. after the port was reopened)."""
        self._buffer.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data`` and return the frames it completed, in order."""
        frames: list[Frame] = []
        start = 0
        length = len(data)
        while start < length:
            delimiter = data.find(FRAME_DELIMITER, start)
            end = length if delimiter < 0 else delimiter
            self._append(data[start:end])
            if delimiter < 0:
                break
            if self._discarding:
                self._discarding = False
            elif self._buffer:
                frame = self._decode(bytes(self._buffer))
                if frame is not None:
                    frames.append(frame)
            self._buffer.clear()
            start = delimiter + 1
        return frames

    def _append(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._discarding:
            self.bytes_discarded += len(chunk)
            return
        if len(self._buffer) + len(chunk) > self.max_buffered_bytes:
            self.bytes_discarded += len(self._buffer) + len(chunk)
            self._record(
                FrameErrorKind.OVERSIZE,
                f"more than {self.max_buffered_bytes} bytes without a delimiter "
                f"(payload limit {self.max_payload_bytes} bytes)",
            )
            self._buffer.clear()
            self._discarding = True
            return
        self._buffer += chunk

    def _record(self, kind: FrameErrorKind, detail: str, seq: int | None = None, message_type: int | None = None) -> None:
        self.error_counts[kind.value] += 1
        self._pending_errors.append(FrameError(kind, detail, seq, message_type))

    def _decode(self, encoded: bytes) -> Frame | None:
        try:
            raw = cobs_decode(encoded)
        except CobsError as error:
            self.bytes_discarded += len(encoded)
            self._record(FrameErrorKind.BAD_COBS, str(error))
            return None
        if len(raw) < FRAME_OVERHEAD_BYTES:
            self.bytes_discarded += len(encoded)
            self._record(
                FrameErrorKind.TRUNCATED,
                f"frame of {len(raw)} bytes is shorter than header + CRC ({FRAME_OVERHEAD_BYTES} bytes)",
            )
            return None
        body, (crc_received,) = raw[:-CRC.size], CRC.unpack(raw[-CRC.size:])
        if zlib.crc32(body) != crc_received:
            self.bytes_discarded += len(encoded)
            self._record(FrameErrorKind.BAD_CRC, f"CRC-32 mismatch in a {len(raw)}-byte frame")
            return None
        version, message_type, seq, payload_len = HEADER.unpack_from(body)
        payload = body[HEADER.size:]
        problem = self._check_intact_frame(version, payload_len, len(payload))
        if problem is not None:
            self.bytes_discarded += len(encoded)
            self._record(problem[0], problem[1], seq, message_type)
            return None
        self.frames_decoded += 1
        return Frame(message_type, seq, payload, version)

    def _check_intact_frame(self, version: int, payload_len: int, received: int) -> tuple[FrameErrorKind, str] | None:
        if version != self.version:
            return FrameErrorKind.BAD_VERSION, f"protocol version {version}; this side speaks version {self.version}"
        if payload_len > self.max_payload_bytes:
            return FrameErrorKind.OVERSIZE, f"payload of {payload_len} bytes exceeds the limit of {self.max_payload_bytes}"
        if payload_len > received:
            return FrameErrorKind.TRUNCATED, f"payload_len says {payload_len} bytes, frame carries {received}"
        if payload_len < received:
            return FrameErrorKind.BAD_LENGTH, f"payload_len says {payload_len} bytes, frame carries {received}"
        return None
