"""Payload codecs: round trips, byte layouts, range checks and malformed payloads."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.errors import MalformedPayload, ValueOutOfRange
from hearmask.firmware_bridge.framing import Frame

wire_dtypes = st.sampled_from([np.int8, np.uint8, np.int16, np.int32, np.float32])
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", max_size=20)


@st.composite
def wire_tensors(draw):
    dtype = draw(wire_dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, max_side=5))
    array = draw(hnp.arrays(dtype, shape, elements={"allow_nan": False} if dtype == np.float32 else None))
    return msg.WireTensor(draw(names), array)


def assert_tensors_equal(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert a.name == b.name
        assert a.array.dtype == b.array.dtype and a.array.shape == b.array.shape
        np.testing.assert_array_equal(a.array, b.array)


@given(st.lists(wire_tensors(), max_size=msg.MAX_TENSORS))
@settings(max_examples=80, deadline=None)
def test_infer_tensor_block_round_trip(tensors):
    decoded = msg.Infer.from_payload(msg.Infer(tuple(tensors)).to_payload())
    assert_tensors_equal(decoded.tensors, tensors)


def test_tensor_block_layout_is_c_friendly():
    array = np.array([[1, -2, 3]], dtype=np.int8)
    payload = msg.Infer((msg.WireTensor("x", array),)).to_payload()
    expected = struct.pack("<BBH", 1, 0, 0) + bytes([msg.TensorDtype.INT8, 2, 1, 0]) + struct.pack("<2H", 1, 3)
    assert payload == expected + b"x" + array.tobytes()
    int16 = msg.Infer((msg.WireTensor("", np.array([258], dtype=np.int16)),)).to_payload()
    assert int16.endswith(b"\x02\x01")  # little-endian data


@given(st.lists(wire_tensors(), min_size=1, max_size=3), st.data())
@settings(max_examples=80, deadline=None)
def test_truncated_or_padded_payload_raises_malformed_never_anything_else(tensors, data):
    payload = msg.Infer(tuple(tensors)).to_payload()
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(MalformedPayload):
        msg.Infer.from_payload(payload[:cut])
    with pytest.raises(MalformedPayload, match="unexpected bytes"):
        msg.Infer.from_payload(payload + b"\x00")


@given(st.binary(max_size=200), st.sampled_from(list(msg.MessageType)))
@settings(max_examples=300, deadline=None)
def test_random_payloads_decode_or_raise_malformed(payload, message_type):
    try:
        msg.decode_message(Frame(int(message_type), 1, payload))
    except MalformedPayload:
        pass


def test_rejects_unsupported_dtype_rank_and_count():
    with pytest.raises(MalformedPayload, match="dtype"):
        msg.Infer((msg.WireTensor("x", np.zeros(2, np.float64)),)).to_payload()
    with pytest.raises(MalformedPayload, match="rank"):
        msg.Infer((msg.WireTensor("x", np.zeros((1,) * 7, np.int8)),)).to_payload()
    with pytest.raises(MalformedPayload, match="tensors"):
        msg.Infer(tuple(msg.WireTensor("", np.zeros(1, np.int8)) for _ in range(17))).to_payload()
    bad_code = struct.pack("<BBH", 1, 0, 0) + bytes([9, 1, 0, 0]) + struct.pack("<H", 1) + b"\x00"
    with pytest.raises(MalformedPayload, match="dtype code 9"):
        msg.Infer.from_payload(bad_code)


def make_info(**overrides) -> msg.Info:
    fields = dict(nonce=0xDEADBEEF, kind=msg.DeviceKind.EMULATED, capabilities=msg.Capability.INFER | msg.Capability.BENCH,
                  clock_hz=1_500_000_000, arena_bytes=32768, max_payload_bytes=65536,
                  model_sha256=hashlib.sha256(b"model").digest(), target_name="raspberry-pi-5", runtime_name="litert 2.3.0")
    fields.update(overrides)
    return msg.Info(**fields)


ROUND_TRIP_MESSAGES = [
    msg.Hello(0x01020304),
    make_info(),
    make_info(model_sha256=msg.NO_MODEL_SHA256, kind=msg.DeviceKind.HARDWARE),
    msg.Ack(int(msg.MessageType.LOAD_MODEL), 4096),
    msg.ErrorMessage(int(msg.ErrorCode.TENSOR_MISMATCH), "input 'x' must be (1, 8) int8"),
    msg.Reset(),
    msg.LoadModel(10, 0, b"abcde"),
    msg.LoadModel(10, 5, b"fghij", hashlib.sha256(b"abcdefghij").digest()),
    msg.SetAudiogram((10.0, 22.5, 35.0, 40.0, 55.0, 60.0, 75.5, 120.0)),
    msg.SetStrengths(0.5, 1.25),
    msg.Bench(1000, 10, return_samples=True, per_op=False),
    msg.BenchResult(100, msg.TimeUnit.NANOSECONDS, 10, 12, 13, 40, samples=(10, 12, 40), op_counts=(("FULLY_CONNECTED", 7),)),
    msg.PowerRequest(),
    msg.PowerResult(msg.PowerSource.INA219, 812.5, 5.0, 162.5, 1000, "ina219 @0x40")  # float32-exact values,
]


@pytest.mark.parametrize("message", ROUND_TRIP_MESSAGES, ids=lambda m: type(m).__name__)
def test_message_round_trip(message):
    decoded = msg.decode_message(Frame(int(message.TYPE), 5, message.to_payload()))
    assert decoded == message


def test_info_byte_layout():
    payload = make_info().to_payload()
    nonce, version, kind, caps, clock, arena, max_payload = struct.unpack_from("<IBBHIII", payload)
    assert (nonce, version, kind, caps) == (0xDEADBEEF, 1, 1, 3)
    assert (clock, arena, max_payload) == (1_500_000_000, 32768, 65536)
    assert payload[20:52] == hashlib.sha256(b"model").digest()
    assert payload[52] == len("raspberry-pi-5") and payload[53:67] == b"raspberry-pi-5"


def test_stream_and_results_round_trip_keep_sample_format():
    for samples in (np.arange(-5, 5, dtype=np.int16), np.linspace(-1, 1, 7, dtype=np.float32)):
        decoded = msg.Stream.from_payload(msg.Stream(samples).to_payload())
        assert decoded.samples.dtype == samples.dtype
        np.testing.assert_array_equal(decoded.samples, samples)
        result = msg.StreamResult(msg.DeviceTime(123, msg.TimeUnit.NANOSECONDS), samples)
        back = msg.StreamResult.from_payload(result.to_payload())
        assert back.device_time == result.device_time
        np.testing.assert_array_equal(back.samples, samples)
    with pytest.raises(MalformedPayload, match="int16 or float32"):
        msg.Stream(np.zeros(4, np.float64)).to_payload()


def test_infer_result_carries_device_time_and_tensors():
    result = msg.InferResult(msg.DeviceTime(4_000_000, msg.TimeUnit.INSTRUCTIONS),
                             (msg.WireTensor("mask", np.array([[1, 2]], np.int8)),))
    back = msg.InferResult.from_payload(result.to_payload())
    assert back.device_time == result.device_time
    assert back.device_time.microseconds is None  # instruction counts are not time
    assert msg.DeviceTime(2500, msg.TimeUnit.NANOSECONDS).microseconds == 2.5
    assert_tensors_equal(back.tensors, result.tensors)


def test_audiogram_is_sent_in_tenths_of_db():
    payload = msg.SetAudiogram((0, 22.5, 30, 40, 50, 60, 70, -10)).to_payload()
    assert struct.unpack("<8h", payload) == (0, 225, 300, 400, 500, 600, 700, -100)


@pytest.mark.parametrize("values, text", [
    ((10,) * 7, "needs 8 thresholds"),
    ((10,) * 7 + (121,), "8000 Hz is 121"),
    ((float("nan"),) + (10,) * 7, "250 Hz"),
])
def test_audiogram_validation(values, text):
    with pytest.raises(MalformedPayload, match=text):
        msg.SetAudiogram(values).to_payload()


def test_audiogram_out_of_range_on_the_wire_is_rejected_by_the_device_side_decoder():
    with pytest.raises(ValueOutOfRange):
        msg.SetAudiogram.from_payload(struct.pack("<8h", *([100] * 7 + [2000])))


@pytest.mark.parametrize("alpha, beta", [(-0.1, 1.0), (1.0, 4.5), (float("inf"), 0.0), (float("nan"), 0.0)])
def test_strengths_range(alpha, beta):
    with pytest.raises(ValueOutOfRange, match=r"\[0, 4\]"):
        msg.SetStrengths(alpha, beta).to_payload()
    with pytest.raises(ValueOutOfRange):
        msg.SetStrengths.from_payload(struct.pack("<ff", alpha, beta))


@pytest.mark.parametrize("runs, warmup", [(0, 0), (msg.MAX_BENCH_RUNS + 1, 0), (10, -1)])
def test_bench_counts_range(runs, warmup):
    with pytest.raises(ValueOutOfRange):
        msg.Bench(runs, warmup).to_payload()


def test_error_message_is_capped_without_splitting_utf8():
    payload = msg.ErrorMessage(13, "é" * 200).to_payload()
    decoded = msg.ErrorMessage.from_payload(payload)
    assert len(decoded.message.encode()) <= msg.MAX_ERROR_MESSAGE_BYTES
    assert set(decoded.message) == {"é"}


def test_unknown_message_type_is_malformed():
    with pytest.raises(MalformedPayload, match="0x7f"):
        msg.decode_message(Frame(0x7F, 1, b""))
