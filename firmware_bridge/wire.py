"""Wire primitives shared by the payload codecs (PROTOCOL.md, sections 4.3, 4.4 and 4.6).

A bounds-checked little-endian reader whose errors name the field, short strings, the
tensor block, the audio block and device-measured durations. Only numpy and the
standard library are imported: the device agent uses this module.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

import numpy as np

from hearmask.firmware_bridge.errors import MalformedPayload

MAX_STRING_BYTES = 63  # names on the wire (u8 length, UTF-8/ASCII)
MAX_TENSORS = 16
MAX_TENSOR_RANK = 6
MAX_DIM = 0xFFFF
MAX_STREAM_SAMPLES = 8192


class TimeUnit(IntEnum):
    """Unit of a device-measured duration. Instruction counts (QEMU ``-icount``) are not time."""

    MICROSECONDS = 0
    NANOSECONDS = 1
    CYCLES = 2
    INSTRUCTIONS = 3


class TensorDtype(IntEnum):
    """Element type code of a tensor on the wire (little-endian)."""

    INT8 = 1
    UINT8 = 2
    INT16 = 3
    INT32 = 4
    FLOAT32 = 5


_NUMPY_DTYPES = {
    TensorDtype.INT8: np.dtype("i1"),
    TensorDtype.UINT8: np.dtype("u1"),
    TensorDtype.INT16: np.dtype("<i2"),
    TensorDtype.INT32: np.dtype("<i4"),
    TensorDtype.FLOAT32: np.dtype("<f4"),
}


def tensor_dtype_code(dtype: np.dtype) -> TensorDtype:
    """Wire code of a numpy dtype; raises :class:`MalformedPayload` for types the protocol does not carry."""
    dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    for code, wire_dtype in _NUMPY_DTYPES.items():
        if wire_dtype == dtype:
            return code
    accepted = ", ".join(str(d) for d in _NUMPY_DTYPES.values())
    raise MalformedPayload(f"tensor dtype {dtype} is not carried by the protocol; accepted: {accepted}")


def numpy_dtype(code: int) -> np.dtype:
    try:
        return _NUMPY_DTYPES[TensorDtype(code)]
    except ValueError:
        raise MalformedPayload(
            f"tensor dtype code {code} is unknown; accepted: {', '.join(f'{c.value} ({c.name})' for c in TensorDtype)}"
        ) from None


# ----------------------------------------------------------------------------- readers


class PayloadReader:
    """Sequential little-endian reader over one payload, with errors that name the field."""

    def __init__(self, payload: bytes, message: str):
        self.payload = payload
        self.offset = 0
        self.message = message

    def take(self, count: int, what: str) -> bytes:
        end = self.offset + count
        if count < 0 or end > len(self.payload):
            raise MalformedPayload(
                f"{self.message}: payload ends at byte {len(self.payload)} while reading {what} "
                f"({count} bytes at offset {self.offset})"
            )
        chunk = self.payload[self.offset:end]
        self.offset = end
        return chunk

    def unpack(self, layout: struct.Struct, what: str) -> tuple:
        return layout.unpack(self.take(layout.size, what))

    def string(self, what: str, limit: int = MAX_STRING_BYTES, length_layout: struct.Struct = struct.Struct("<B")) -> str:
        (length,) = self.unpack(length_layout, f"{what} length")
        if length > limit:
            raise MalformedPayload(f"{self.message}: {what} is {length} bytes long; at most {limit} accepted")
        raw = self.take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPayload(f"{self.message}: {what} is not UTF-8: {raw!r}") from None

    def finish(self) -> None:
        if self.offset != len(self.payload):
            raise MalformedPayload(
                f"{self.message}: {len(self.payload) - self.offset} unexpected bytes after the last field "
                f"(payload is {len(self.payload)} bytes, fields end at {self.offset})"
            )


def string_bytes(text: str, what: str, limit: int = MAX_STRING_BYTES) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise MalformedPayload(f"{what} {text[:80]!r} is {len(raw)} bytes long in UTF-8; at most {limit} accepted")
    return raw


def short_string(text: str, what: str) -> bytes:
    raw = string_bytes(text, what)
    return bytes([len(raw)]) + raw


# ----------------------------------------------------------------------------- tensors


@dataclass(frozen=True)
class WireTensor:
    """A named tensor on the wire. ``name`` may be empty: then tensors match by position.

    Layout (PROTOCOL.md, "Tensor block"): ``u8 dtype | u8 rank | u8 name_len | u8 0 |
    u16 dims[rank] | name | data`` with data C-ordered, little-endian.
    """

    name: str
    array: np.ndarray

    _FIXED: ClassVar[struct.Struct] = struct.Struct("<BBBB")


def encode_tensors(tensors: "list[WireTensor] | tuple[WireTensor, ...]") -> bytes:
    """Tensor block: ``u8 count | u8 0 | u16 0`` then each tensor (see :class:`WireTensor`)."""
    if len(tensors) > MAX_TENSORS:
        raise MalformedPayload(f"{len(tensors)} tensors in one message; at most {MAX_TENSORS} accepted")
    parts = [struct.pack("<BBH", len(tensors), 0, 0)]
    for tensor in tensors:
        array = np.asarray(tensor.array)
        code = tensor_dtype_code(array.dtype)
        if array.ndim > MAX_TENSOR_RANK:
            raise MalformedPayload(f"tensor {tensor.name!r} has rank {array.ndim}; at most {MAX_TENSOR_RANK} accepted")
        if any(dim > MAX_DIM for dim in array.shape):
            raise MalformedPayload(f"tensor {tensor.name!r} has shape {array.shape}; each dimension must be <= {MAX_DIM}")
        name = string_bytes(tensor.name, "tensor name")
        parts.append(WireTensor._FIXED.pack(code, array.ndim, len(name), 0))
        parts.append(struct.pack(f"<{array.ndim}H", *array.shape))
        parts.append(name)
        parts.append(np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[code]).tobytes())
    return b"".join(parts)


def decode_tensors(reader: PayloadReader) -> tuple[WireTensor, ...]:
    count, _, _ = reader.unpack(struct.Struct("<BBH"), "tensor count")
    if count > MAX_TENSORS:
        raise MalformedPayload(f"{reader.message}: {count} tensors; at most {MAX_TENSORS} accepted")
    tensors = []
    for index in range(count):
        code, rank, name_len, _ = reader.unpack(WireTensor._FIXED, f"tensor {index} header")
        dtype = numpy_dtype(code)
        if rank > MAX_TENSOR_RANK:
            raise MalformedPayload(f"{reader.message}: tensor {index} has rank {rank}; at most {MAX_TENSOR_RANK} accepted")
        if name_len > MAX_STRING_BYTES:
            raise MalformedPayload(f"{reader.message}: tensor {index} name is {name_len} bytes; at most {MAX_STRING_BYTES}")
        shape = reader.unpack(struct.Struct(f"<{rank}H"), f"tensor {index} dims")
        raw_name = reader.take(name_len, f"tensor {index} name")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPayload(f"{reader.message}: tensor {index} name is not UTF-8: {raw_name!r}") from None
        nbytes = math.prod(shape) * dtype.itemsize
        data = reader.take(nbytes, f"tensor {index} ({name!r}, shape {shape}, {dtype}) data")
        array = np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)
        tensors.append(WireTensor(name, array))
    return tuple(tensors)


@dataclass(frozen=True)
class DeviceTime:
    """A device-measured duration: ``u32 value | u8 unit | u8 0 | u16 0`` on the wire."""

    value: int
    unit: TimeUnit

    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IBBH")

    @property
    def microseconds(self) -> float | None:
        """The duration in µs, or None when the unit is a count (cycles, instructions), not time."""
        if self.unit == TimeUnit.MICROSECONDS:
            return float(self.value)
        if self.unit == TimeUnit.NANOSECONDS:
            return self.value / 1000.0
        return None

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.value, int(self.unit), 0, 0)

    @classmethod
    def read(cls, reader: PayloadReader) -> "DeviceTime":
        value, unit, _, _ = reader.unpack(cls._LAYOUT, "device time")
        try:
            return cls(value, TimeUnit(unit))
        except ValueError:
            raise MalformedPayload(f"{reader.message}: time unit {unit} is unknown; accepted 0..3") from None


class SampleFormat(IntEnum):
    """Audio sample encoding of STREAM: int16 PCM (full scale 32768) or float32 in [-1, 1]."""

    INT16 = 1
    FLOAT32 = 2


_SAMPLE_DTYPES = {SampleFormat.INT16: np.dtype("<i2"), SampleFormat.FLOAT32: np.dtype("<f4")}


def pack_audio(samples: np.ndarray, what: str) -> bytes:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise MalformedPayload(f"{what}: a hop must be one-dimensional (mono samples), got shape {samples.shape}")
    if samples.dtype == np.int16:
        sample_format = SampleFormat.INT16
    elif samples.dtype == np.float32:
        sample_format = SampleFormat.FLOAT32
    else:
        raise MalformedPayload(f"{what}: samples must be int16 or float32, got {samples.dtype}")
    if len(samples) > MAX_STREAM_SAMPLES:
        raise MalformedPayload(f"{what}: {len(samples)} samples in one hop; at most {MAX_STREAM_SAMPLES}")
    return struct.pack("<BBH", int(sample_format), 0, len(samples)) + samples.astype(_SAMPLE_DTYPES[sample_format]).tobytes()


def read_audio(reader: PayloadReader) -> np.ndarray:
    code, _, count = reader.unpack(struct.Struct("<BBH"), "sample header")
    try:
        dtype = _SAMPLE_DTYPES[SampleFormat(code)]
    except ValueError:
        raise MalformedPayload(f"{reader.message}: sample format {code} is unknown; accepted 1 (int16), 2 (float32)") from None
    if count > MAX_STREAM_SAMPLES:
        raise MalformedPayload(f"{reader.message}: {count} samples; at most {MAX_STREAM_SAMPLES}")
    data = reader.take(count * dtype.itemsize, "samples")
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
