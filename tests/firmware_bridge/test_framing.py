"""COBS, CRC-32 frames and the resynchronising decoder: property tests (hypothesis)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearmask.firmware_bridge.errors import BridgeError
from hearmask.firmware_bridge.framing import (
    FRAME_OVERHEAD_BYTES,
    HEADER,
    PROTOCOL_VERSION,
    CobsError,
    Frame,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
    max_encoded_frame_bytes,
    raw_frame,
)

SMALL_CAP = 300  # payload cap used where oversize paths must be reachable cheaply
payloads = st.binary(max_size=700)
frames = st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), payloads)


def frame_is_intact(frame: Frame) -> bool:
    """What the decoder promises for every frame it yields: its CRC-32 over header+payload holds."""
    raw = raw_frame(frame.message_type, frame.seq, frame.payload, frame.version)
    return zlib.crc32(raw[:-4]) == int.from_bytes(raw[-4:], "little")


# ----------------------------------------------------------------------------- COBS


@given(st.binary(max_size=2000))
def test_cobs_round_trip_has_no_zero_and_bounded_overhead(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


def test_cobs_known_vectors():
    # Examples from the COBS paper / common test vectors.
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    run = bytes(range(1, 255))  # 254 non-zero bytes: one full block
    assert cobs_encode(run) == b"\xff" + run + b"\x01"


@pytest.mark.parametrize("bad", [b"\x05\x11", b"\x02\x00", b"\x00"])
def test_cobs_decode_rejects_truncated_or_zero(bad):
    with pytest.raises(CobsError):
        cobs_decode(bad)


# ----------------------------------------------------------------------------- frames


@given(frames)
def test_frame_round_trip(fields):
    message_type, seq, payload = fields
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(message_type, seq, payload)) == [Frame(message_type, seq, payload)]
    assert decoder.total_errors == 0
    assert decoder.buffered_bytes == 0


@given(st.lists(frames, max_size=6), st.data())
@settings(max_examples=60, deadline=None)
def test_stream_split_at_random_points_yields_every_frame(frame_list, data):
    stream = b"".join(encode_frame(t, s, p) for t, s, p in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        decoded += decoder.feed(stream[start:end])
    assert decoded == [Frame(t, s, p) for t, s, p in frame_list]


def test_frame_layout_is_little_endian_with_crc_over_header_and_payload():
    raw = raw_frame(0x20, 0x1234, b"\xaa\xbb")
    assert raw[:HEADER.size] == bytes([PROTOCOL_VERSION, 0x20, 0x34, 0x12, 2, 0, 0, 0])
    assert raw[HEADER.size:-4] == b"\xaa\xbb"
    assert int.from_bytes(raw[-4:], "little") == zlib.crc32(raw[:-4])
    assert len(raw) == FRAME_OVERHEAD_BYTES + 2
    encoded = encode_frame(0x20, 0x1234, b"\xaa\xbb")
    assert encoded[0] == 0 and encoded[-1] == 0 and 0 not in encoded[1:-1]


@pytest.mark.parametrize(
    "kwargs, text",
    [({"message_type": 256, "seq": 0}, "message type"), ({"message_type": 1, "seq": 70000}, "sequence number"),
     ({"message_type": 1, "seq": 0, "payload": bytes(11), "max_payload_bytes": 10}, "exceeds")],
)
def test_encode_frame_enforces_field_caps(kwargs, text):
    with pytest.raises(BridgeError, match=text):
        encode_frame(**kwargs)


# ----------------------------------------------------------------------------- decoder robustness


@given(st.binary(max_size=3000))
@settings(max_examples=150, deadline=None)
def test_garbage_never_crashes_never_yields_bad_frames_and_stays_bounded(garbage):
    decoder = FrameDecoder(SMALL_CAP)
    for frame in decoder.feed(garbage):
        assert frame_is_intact(frame)
        assert len(frame.payload) <= SMALL_CAP
    assert decoder.buffered_bytes <= decoder.max_buffered_bytes


@given(st.lists(st.binary(max_size=400), min_size=1, max_size=5), st.lists(frames, min_size=1, max_size=4))
@settings(max_examples=80, deadline=None)
def test_garbage_between_valid_frames_still_yields_the_frames(garbage_runs, frame_list):
    decoder = FrameDecoder()
    stream = b""
    for index, (t, s, p) in enumerate(frame_list):
        stream += garbage_runs[index % len(garbage_runs)] + encode_frame(t, s, p)
    decoded = decoder.feed(stream)
    # Garbage may itself form a frame only with a valid CRC-32; the real frames all come through, in order.
    real = [Frame(t, s, p) for t, s, p in frame_list]
    assert [f for f in decoded if f in real] == real


@given(frames, st.data())
@settings(max_examples=100, deadline=None)
def test_truncated_stream_yields_nothing_then_recovers(fields, data):
    message_type, seq, payload = fields
    encoded = encode_frame(message_type, seq, payload)
    cut = data.draw(st.integers(1, len(encoded) - 2))  # keep the leading delimiter, lose the tail
    decoder = FrameDecoder()
    assert decoder.feed(encoded[:cut]) == []
    # The next frame's leading delimiter ends the truncated one, which is dropped and counted.
    assert decoder.feed(encoded) == [Frame(message_type, seq, payload)]
    if cut > 1:
        assert decoder.total_errors == 1
        assert decoder.error_counts["truncated"] + decoder.error_counts["bad_cobs"] + decoder.error_counts["bad_crc"] == 1


@given(frames, st.data())
@settings(max_examples=200, deadline=None)
def test_crc_detects_every_single_bit_flip_of_the_raw_frame(fields, data):
    raw = bytearray(raw_frame(*fields))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    assert zlib.crc32(bytes(raw[:-4])) != int.from_bytes(raw[-4:], "little")
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00" + cobs_encode(bytes(raw)) + b"\x00") == []
    assert decoder.total_errors == 1


@given(frames, st.data())
@settings(max_examples=200, deadline=None)
def test_bit_flip_on_the_wire_never_yields_a_different_frame(fields, data):
    encoded = bytearray(encode_frame(*fields))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    decoded = FrameDecoder().feed(bytes(encoded))
    assert decoded in ([], [Frame(*fields)])  # a flipped delimiter can still leave the frame intact


def test_oversize_run_is_dropped_up_to_next_delimiter_and_counted():
    decoder = FrameDecoder(SMALL_CAP)
    flood = b"\x01" * (max_encoded_frame_bytes(SMALL_CAP) * 3)
    assert decoder.feed(flood) == []
    assert decoder.buffered_bytes == 0  # not growing: discarding until the next 0x00
    assert decoder.error_counts["oversize"] == 1
    assert decoder.feed(encode_frame(2, 9, b"ok")) == [Frame(2, 9, b"ok")]


def test_declared_payload_over_cap_is_oversize_even_when_intact():
    decoder = FrameDecoder(max_payload_bytes=8)
    assert decoder.feed(encode_frame(1, 1, bytes(8))) == [Frame(1, 1, bytes(8))]
    assert decoder.feed(encode_frame(1, 2, bytes(9), max_payload_bytes=9)) == []
    (error,) = decoder.take_errors()
    assert error.kind.value == "oversize"


def test_intact_frame_errors_keep_seq_and_type():
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(3, 77, b"x", version=PROTOCOL_VERSION + 1)) == []
    (error,) = decoder.take_errors()
    assert (error.kind.value, error.seq, error.message_type) == ("bad_version", 77, 3)
    body = HEADER.pack(PROTOCOL_VERSION, 3, 78, 1) + b"xy"  # declares 1 byte, carries 2
    raw = body + zlib.crc32(body).to_bytes(4, "little")
    assert decoder.feed(b"\x00" + cobs_encode(raw) + b"\x00") == []
    assert decoder.take_errors()[0].kind.value == "bad_length"
    body = HEADER.pack(PROTOCOL_VERSION, 3, 79, 5) + b"xy"  # declares 5, carries 2
    raw = body + zlib.crc32(body).to_bytes(4, "little")
    assert decoder.feed(b"\x00" + cobs_encode(raw) + b"\x00") == []
    assert decoder.take_errors()[0].kind.value == "truncated"


def test_pending_errors_are_bounded():
    decoder = FrameDecoder()
    decoder.feed(b"\x05\x00" * 1000)
    assert decoder.error_counts["bad_cobs"] == 1000
    assert len(decoder.take_errors()) == 32
    assert decoder.take_errors() == []


def test_reference_vectors_of_protocol_md():
    """The byte sequences PROTOCOL.md gives for the C port."""
    hello = (0x12345678).to_bytes(4, "little")
    assert raw_frame(0x01, 1, hello).hex(" ") == "01 01 01 00 04 00 00 00 78 56 34 12 ca 68 5f c4"
    assert encode_frame(0x01, 1, hello).hex(" ") == "00 04 01 01 01 02 04 01 01 09 78 56 34 12 ca 68 5f c4 00"
    strengths = bytes.fromhex("0000003f0000803f")  # f32 0.5, 1.0
    assert encode_frame(0x12, 2, strengths).hex(" ") == (
        "00 04 01 12 02 02 08 01 01 01 01 01 02 3f 01 07 80 3f 68 dc c1 e7 00")
    assert zlib.crc32(b"123456789") == 0xCBF43926
    protocol_md = (Path(__file__).parents[2] / "firmware_bridge" / "PROTOCOL.md").read_text()
    assert "00 04 01 01 01 02 04 01 01 09 78 56 34 12 ca 68 5f c4 00" in protocol_md
    assert "00 04 01 12 02 02 08 01 01 01 01 01 02 3f 01 07 80 3f 68 dc c1 e7 00" in protocol_md
