"""The C protocol (targets/firmware/protocol/hm_proto.c) against the Python reference (framing.py).

The C file is compiled with the host gcc into a shared library and driven through ctypes:
frames built by C decode with :class:`FrameDecoder` and the other way round, the byte-at-a-time
C receiver reports exactly the events the Python decoder does on the same random streams
(garbage, corruption, oversize), and the C dispatcher answers like the Python agent. The same
source must compile for the Cortex-M cores of the firmware with ``arm-none-eabi-gcc -Werror``.
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.framing import (
    FrameDecoder,
    cobs_encode,
    encode_frame,
    max_encoded_frame_bytes,
    raw_frame,
)

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "targets" / "firmware" / "protocol"
HOST_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC"]
TEST_MAX_PAYLOAD_BYTES = 512  # small cap so oversize cases stay cheap
OPAQUE_STRUCT_BYTES = 4096  # hm_receiver_t / hm_device_t are allocated opaquely (they are < 200 bytes)
C_KIND_NAMES = {1: "bad_cobs", 2: "truncated", 3: "bad_crc", 4: "bad_version", 5: "bad_length", 6: "oversize"}
RX_NONE, RX_FRAME, RX_ERROR = 0, 1, 2


class CFrame(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint8), ("message_type", ctypes.c_uint8), ("seq", ctypes.c_uint16),
                ("payload", ctypes.POINTER(ctypes.c_uint8)), ("payload_len", ctypes.c_uint32)]


class CFrameError(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_uint8), ("crc_good", ctypes.c_uint8), ("message_type", ctypes.c_uint8),
                ("seq", ctypes.c_uint16)]


WRITE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
HANDLER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(CFrame), ctypes.c_void_p,
                              ctypes.POINTER(ctypes.c_uint8), ctypes.c_void_p)


class CHandlerEntry(ctypes.Structure):
    _fields_ = [("message_type", ctypes.c_uint8), ("handler", HANDLER_FN)]


@pytest.fixture(scope="session")
def hm(tmp_path_factory):
    """hm_proto.c as a host shared library (compiled with -Werror)."""
    if shutil.which("gcc") is None:
        pytest.skip("host gcc is not installed")
    library = tmp_path_factory.mktemp("hm_proto") / "libhm_proto.so"
    subprocess.run(["gcc", *HOST_CFLAGS, str(PROTOCOL_DIR / "hm_proto.c"), "-o", str(library)],
                   check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    size_t, u8p = ctypes.c_size_t, ctypes.c_char_p
    lib.hm_crc32.argtypes = [ctypes.c_uint32, u8p, size_t]
    lib.hm_crc32.restype = ctypes.c_uint32
    lib.hm_cobs_encode.argtypes = [u8p, size_t, u8p, size_t]
    lib.hm_cobs_encode.restype = size_t
    lib.hm_cobs_decode.argtypes = [u8p, size_t, u8p, size_t, ctypes.POINTER(size_t)]
    lib.hm_cobs_decode.restype = ctypes.c_int
    lib.hm_frame_build.argtypes = [u8p, size_t, ctypes.c_uint8, ctypes.c_uint16, u8p, ctypes.c_uint32]
    lib.hm_frame_build.restype = size_t
    lib.hm_frame_encode.argtypes = [u8p, size_t, u8p, size_t]
    lib.hm_frame_encode.restype = size_t
    lib.hm_frame_send.argtypes = [u8p, size_t, WRITE_FN, ctypes.c_void_p]
    lib.hm_frame_send.restype = None
    lib.hm_receiver_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, size_t, ctypes.c_uint32]
    lib.hm_receiver_init.restype = ctypes.c_int
    lib.hm_receiver_push.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.POINTER(CFrame),
                                     ctypes.POINTER(CFrameError)]
    lib.hm_receiver_push.restype = ctypes.c_int
    lib.hm_device_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, size_t, ctypes.c_void_p, size_t,
                                   ctypes.c_uint32, ctypes.c_void_p, size_t, ctypes.c_void_p, WRITE_FN,
                                   ctypes.c_void_p]
    lib.hm_device_init.restype = ctypes.c_int
    lib.hm_device_push_byte.argtypes = [ctypes.c_void_p, ctypes.c_uint8]
    lib.hm_device_push_byte.restype = None
    lib.hm_write_bytes.argtypes = [ctypes.c_void_p, u8p, ctypes.c_uint32]
    lib.hm_write_bytes.restype = None
    lib.hm_text_str.argtypes = [ctypes.c_void_p, u8p]
    lib.hm_text_str.restype = None
    return lib


def c_cobs_encode(hm, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(len(data) + len(data) // 254 + 2)
    n = hm.hm_cobs_encode(data, len(data), out, len(out))
    assert n > 0
    return out.raw[:n]


def c_cobs_decode(hm, data: bytes) -> bytes | None:
    out = ctypes.create_string_buffer(len(data) + 1)
    length = ctypes.c_size_t()
    if hm.hm_cobs_decode(data, len(data), out, len(out), ctypes.byref(length)) != 0:
        return None
    return out.raw[:length.value]


def c_raw_frame(hm, message_type: int, seq: int, payload: bytes) -> bytes:
    raw = ctypes.create_string_buffer(len(payload) + 12)
    n = hm.hm_frame_build(raw, len(raw), message_type, seq, payload, len(payload))
    assert n == len(payload) + 12
    return raw.raw[:n]


def c_frame_send(hm, raw: bytes) -> bytes:
    chunks: list[bytes] = []
    callback = WRITE_FN(lambda _ctx, data, length: chunks.append(ctypes.string_at(data, length)))
    hm.hm_frame_send(raw, len(raw), callback, None)
    return b"".join(chunks)


class CReceiver:
    """The C byte-at-a-time receiver; push() returns ('frame', type, seq, payload), ('error', kind, seq) or None."""

    def __init__(self, hm, max_payload_bytes: int):
        self.hm = hm
        self.state = ctypes.create_string_buffer(OPAQUE_STRUCT_BYTES)
        self.buffer = ctypes.create_string_buffer(max_encoded_frame_bytes(max_payload_bytes))
        assert hm.hm_receiver_init(self.state, self.buffer, len(self.buffer), max_payload_bytes) == 0
        self.frame, self.error = CFrame(), CFrameError()

    def push(self, byte: int):
        event = self.hm.hm_receiver_push(self.state, byte, ctypes.byref(self.frame), ctypes.byref(self.error))
        if event == RX_FRAME:
            payload = ctypes.string_at(self.frame.payload, self.frame.payload_len)
            return ("frame", self.frame.message_type, self.frame.seq, payload)
        if event == RX_ERROR:
            seq = self.error.seq if self.error.crc_good else None
            return ("error", C_KIND_NAMES[self.error.kind], seq)
        assert event == RX_NONE
        return None


def python_events(stream: bytes, max_payload_bytes: int) -> list:
    """framing.FrameDecoder fed one byte at a time: the ordered frames and errors."""
    decoder = FrameDecoder(max_payload_bytes)
    events = []
    for byte in stream:
        for frame in decoder.feed(bytes([byte])):
            events.append(("frame", frame.message_type, frame.seq, frame.payload))
        for error in decoder.take_errors():
            events.append(("error", error.kind.value, error.seq))
    return events


def c_events(hm, stream: bytes, max_payload_bytes: int) -> list:
    receiver = CReceiver(hm, max_payload_bytes)
    return [event for event in (receiver.push(b) for b in stream) if event is not None]


# ---------------------------------------------------------------------------- CRC and COBS


def test_crc32_check_value_and_continuation_match_zlib(hm):
    assert hm.hm_crc32(0, b"123456789", 9) == 0xCBF43926  # CRC-32/IEEE check value (PROTOCOL.md)
    first = hm.hm_crc32(0, b"1234", 4)
    assert hm.hm_crc32(first, b"56789", 5) == zlib.crc32(b"123456789")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=700))
def test_crc32_matches_zlib(hm, data):
    assert hm.hm_crc32(0, data, len(data)) == zlib.crc32(data)


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.binary(max_size=800), st.lists(st.sampled_from([0, 1, 255]), max_size=600).map(bytes),
                 st.integers(250, 520).map(lambda n: b"\x07" * n)))
def test_cobs_encoding_is_byte_identical_to_python_and_round_trips(hm, data):
    encoded = c_cobs_encode(hm, data)
    assert encoded == cobs_encode(data)
    assert 0 not in encoded
    assert c_cobs_decode(hm, encoded) == data


@pytest.mark.parametrize("bad", [b"\x05\x01\x02", b"\x03\x01\x00\x02", b"\x00", b"\x02\x01\xff"])
def test_cobs_decode_rejects_what_python_rejects(hm, bad):
    from hearmask.firmware_bridge.framing import CobsError, cobs_decode

    with pytest.raises(CobsError):
        cobs_decode(bad)
    assert c_cobs_decode(hm, bad) is None


def test_cobs_encode_reports_a_too_small_output_buffer(hm):
    out = ctypes.create_string_buffer(4)
    assert hm.hm_cobs_encode(b"\x01\x02\x03\x04\x05", 5, out, len(out)) == 0


# ---------------------------------------------------------------------------- frames


def test_reference_vectors_from_protocol_md(hm):
    hello = c_raw_frame(hm, msg.MessageType.HELLO, 1, struct.pack("<I", 0x12345678))
    assert hello.hex(" ") == "01 01 01 00 04 00 00 00 78 56 34 12 ca 68 5f c4"
    assert c_frame_send(hm, hello).hex(" ") == "00 04 01 01 01 02 04 01 01 09 78 56 34 12 ca 68 5f c4 00"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 255), st.integers(0, 0xFFFF),
       st.one_of(st.binary(max_size=600), st.integers(240, 520).map(lambda n: bytes([9]) * n)))
def test_c_built_frames_equal_python_frames_and_decode_in_python(hm, message_type, seq, payload):
    raw = c_raw_frame(hm, message_type, seq, payload)
    assert raw == raw_frame(message_type, seq, payload)
    wire = c_frame_send(hm, raw)
    out = ctypes.create_string_buffer(max_encoded_frame_bytes(len(payload)) + 2)
    encoded_length = hm.hm_frame_encode(raw, len(raw), out, len(out))
    assert out.raw[:encoded_length] == wire
    assert wire == encode_frame(message_type, seq, payload)
    (frame,) = FrameDecoder(max(len(payload), 1)).feed(wire)
    assert (frame.message_type, frame.seq, frame.payload) == (message_type, seq, payload)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=TEST_MAX_PAYLOAD_BYTES))
def test_python_frames_decode_in_the_c_receiver(hm, message_type, seq, payload):
    events = c_events(hm, encode_frame(message_type, seq, payload), TEST_MAX_PAYLOAD_BYTES)
    assert events == [("frame", message_type, seq, payload)]


_frames = st.builds(lambda t, s, p: encode_frame(t, s, p, max_payload_bytes=1 << 20),
                    st.integers(0, 255), st.integers(1, 0xFFFF), st.binary(max_size=80))
_oversize = st.integers(TEST_MAX_PAYLOAD_BYTES + 1, TEST_MAX_PAYLOAD_BYTES + 40).map(
    lambda n: encode_frame(0x20, 7, bytes([5]) * n, max_payload_bytes=1 << 20))
_long_garbage = st.integers(max_encoded_frame_bytes(TEST_MAX_PAYLOAD_BYTES) - 2,
                            max_encoded_frame_bytes(TEST_MAX_PAYLOAD_BYTES) + 3).map(lambda n: b"\x11" * n)
_other_version = st.builds(
    lambda s: b"\x00" + cobs_encode(raw_frame(0x01, s, b"\x01\x02\x03\x04", version=2)) + b"\x00",
    st.integers(1, 0xFFFF))


@st.composite
def _line_stream(draw):
    """Frames mixed with garbage, corrupted copies, truncations, oversize runs and other versions."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["frame", "garbage", "corrupt", "truncate", "oversize", "long", "version"]))
        if kind == "frame":
            parts.append(draw(_frames))
        elif kind == "garbage":
            parts.append(draw(st.binary(min_size=1, max_size=60)))
        elif kind == "corrupt":
            frame = bytearray(draw(_frames))
            index = draw(st.integers(1, len(frame) - 2))
            frame[index] ^= draw(st.integers(1, 255))
            parts.append(bytes(frame))
        elif kind == "truncate":
            frame = draw(_frames)
            parts.append(frame[: draw(st.integers(1, len(frame) - 1))])
        elif kind == "oversize":
            parts.append(draw(_oversize))
        elif kind == "long":
            parts.append(draw(_long_garbage))
        else:
            parts.append(draw(_other_version))
    return b"".join(parts) + draw(_frames)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_line_stream())
def test_c_receiver_reports_exactly_the_python_decoder_events(hm, stream):
    """Same frames, same dropped-frame kinds (with seq when the CRC was good), same order; then resync."""
    expected = python_events(stream, TEST_MAX_PAYLOAD_BYTES)
    assert c_events(hm, stream, TEST_MAX_PAYLOAD_BYTES) == expected
    assert expected[-1][0] == "frame"  # every stream ends with a good frame: both sides resynchronised


def test_receiver_error_kinds_for_crc_oversize_and_overflow(hm):
    good = encode_frame(0x20, 3, b"abc")
    corrupted = bytearray(good)
    corrupted[6] ^= 0x40
    # Zeros encode without COBS growth, so this frame fits the buffer and only its payload_len is over the cap.
    oversize = encode_frame(0x20, 4, bytes(TEST_MAX_PAYLOAD_BYTES + 1), max_payload_bytes=1 << 20)
    overflow = b"\x00" + b"\x22" * (max_encoded_frame_bytes(TEST_MAX_PAYLOAD_BYTES) + 10) + b"\x00"
    stream = bytes(corrupted) + oversize + overflow + good
    events = c_events(hm, stream, TEST_MAX_PAYLOAD_BYTES)
    assert [e[1] if e[0] == "error" else "frame" for e in events] == ["bad_crc", "oversize", "oversize", "frame"]
    assert events[1] == ("error", "oversize", 4)  # intact frame over the cap: seq known
    assert events[2] == ("error", "oversize", None)  # too many bytes without a delimiter: nothing trusted
    assert events[3] == ("frame", 0x20, 3, b"abc")


def test_receiver_init_refuses_a_buffer_smaller_than_one_encoded_frame(hm):
    state = ctypes.create_string_buffer(OPAQUE_STRUCT_BYTES)
    buffer = ctypes.create_string_buffer(max_encoded_frame_bytes(TEST_MAX_PAYLOAD_BYTES) - 1)
    assert hm.hm_receiver_init(state, buffer, len(buffer), TEST_MAX_PAYLOAD_BYTES) == -1


# ---------------------------------------------------------------------------- device dispatch


class CDevice:
    """hm_device_t with one Python handler: INFER echoes its payload as INFER_RESULT."""

    def __init__(self, hm, max_payload_bytes: int = TEST_MAX_PAYLOAD_BYTES):
        self.hm = hm
        self.out = bytearray()
        self.state = ctypes.create_string_buffer(OPAQUE_STRUCT_BYTES)
        self.rx = ctypes.create_string_buffer(max_encoded_frame_bytes(max_payload_bytes))
        self.tx = ctypes.create_string_buffer(max_payload_bytes + 12)
        self._write = WRITE_FN(lambda _ctx, data, length: self.out.extend(ctypes.string_at(data, length)))
        self._echo = HANDLER_FN(self._on_infer)
        self.handlers = (CHandlerEntry * 1)(CHandlerEntry(msg.MessageType.INFER, self._echo))
        assert hm.hm_device_init(self.state, self.rx, len(self.rx), self.tx, len(self.tx), max_payload_bytes,
                                 self.handlers, 1, None, self._write, None) == 0

    def _on_infer(self, _context, frame, writer, reply_type, text):
        payload = ctypes.string_at(frame.contents.payload, frame.contents.payload_len)
        if payload == b"fail":
            self.hm.hm_text_str(text, b"asked to fail")
            return int(msg.ErrorCode.INTERNAL)
        copies = 3 if payload == b"big" * 100 else 1  # a reply over the cap
        for _ in range(copies):
            self.hm.hm_write_bytes(writer, payload, len(payload))
        reply_type[0] = msg.MessageType.INFER_RESULT
        return 0

    def feed(self, data: bytes) -> list:
        self.out.clear()
        for byte in data:
            self.hm.hm_device_push_byte(self.state, byte)
        frames = FrameDecoder().feed(bytes(self.out))
        assert sum(1 for b in self.out if b == 0) == 2 * len(frames)  # nothing but whole frames came out
        return [(f.message_type, f.seq, msg.decode_message(f) if f.message_type == msg.MessageType.ERROR else f.payload)
                for f in frames]


def test_device_dispatches_requests_and_echoes_seq(hm):
    device = CDevice(hm)
    assert device.feed(encode_frame(msg.MessageType.INFER, 41, b"tensors")) == [
        (msg.MessageType.INFER_RESULT, 41, b"tensors")]


@pytest.mark.parametrize("message_type, code", [(0x7F, msg.ErrorCode.UNKNOWN_MESSAGE),
                                                (msg.MessageType.POWER, msg.ErrorCode.UNSUPPORTED)])
def test_device_answers_unknown_and_unserved_types_with_errors(hm, message_type, code):
    ((reply_type, seq, error),) = CDevice(hm).feed(encode_frame(message_type, 9, b""))
    assert (reply_type, seq, error.code) == (msg.MessageType.ERROR, 9, code)
    assert f"0x{message_type:02x}" in error.message


def test_device_handler_errors_and_too_large_replies(hm):
    device = CDevice(hm)
    ((_, seq, error),) = device.feed(encode_frame(msg.MessageType.INFER, 5, b"fail"))
    assert (seq, error.code, error.message) == (5, msg.ErrorCode.INTERNAL, "asked to fail")
    ((_, seq, error),) = device.feed(encode_frame(msg.MessageType.INFER, 6, b"big" * 100))
    assert (seq, error.code) == (6, msg.ErrorCode.REPLY_TOO_LARGE)
    assert str(TEST_MAX_PAYLOAD_BYTES) in error.message


def test_device_reports_dropped_frames_before_the_next_reply(hm):
    """Garbage -> FRAME_CORRUPT (seq 0), oversize -> FRAME_OVERSIZE (seq 0), other version -> BAD_VERSION
    with the seq echoed; each in wire order, then the good request is answered."""
    device = CDevice(hm)
    corrupted = bytearray(encode_frame(msg.MessageType.INFER, 11, b"xyz"))
    corrupted[5] ^= 0x10
    stream = (b"\x00\x13\x37garbage" + bytes(corrupted)
              + encode_frame(0x20, 12, b"\x01" * (TEST_MAX_PAYLOAD_BYTES + 1), max_payload_bytes=1 << 20)
              + b"\x00" + cobs_encode(raw_frame(0x01, 13, b"\x00" * 4, version=3)) + b"\x00"
              + encode_frame(msg.MessageType.INFER, 14, b"ok"))
    replies = device.feed(stream)
    summary = [(t, s, r.code if t == msg.MessageType.ERROR else r) for t, s, r in replies]
    assert summary == [
        (msg.MessageType.ERROR, 0, msg.ErrorCode.FRAME_CORRUPT),
        (msg.MessageType.ERROR, 0, msg.ErrorCode.FRAME_CORRUPT),
        (msg.MessageType.ERROR, 0, msg.ErrorCode.FRAME_OVERSIZE),
        (msg.MessageType.ERROR, 13, msg.ErrorCode.BAD_VERSION),
        (msg.MessageType.INFER_RESULT, 14, b"ok"),
    ]


# ---------------------------------------------------------------------------- cross-compilation


@pytest.mark.parametrize("cpu", ["cortex-m3", "cortex-m33", "cortex-m55"])
def test_protocol_compiles_for_cortex_m_with_werror(tmp_path, cpu):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (Debian: gcc-arm-none-eabi)")
    obj = tmp_path / f"hm_proto_{cpu}.o"
    result = subprocess.run(
        ["arm-none-eabi-gcc", "-std=c99", f"-mcpu={cpu}", "-mthumb", "-Wall", "-Wextra", "-Werror", "-O2", "-c",
         str(PROTOCOL_DIR / "hm_proto.c"), "-o", str(obj)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True).stdout
    assert " T hm_device_push_byte" in symbols and " U malloc" not in symbols
