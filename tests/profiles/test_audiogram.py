"""The Audiogram type: validation (property tests), per-ear handling, model input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import (
    MAX_FREQUENCY_HZ,
    MAX_THRESHOLD_DB_HL,
    MIN_FREQUENCY_HZ,
    MIN_THRESHOLD_DB_HL,
    MODEL_AUDIOGRAM_FREQUENCIES_HZ,
    Audiogram,
)

valid_frequencies_hz = st.lists(
    st.floats(MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ), min_size=2, max_size=12, unique=True
).map(sorted)
valid_threshold_db_hl = st.floats(MIN_THRESHOLD_DB_HL, MAX_THRESHOLD_DB_HL)


@st.composite
def valid_audiogram_fields(draw):
    """(frequencies, mono or None, left or None, right or None), all valid."""
    frequencies_hz = draw(valid_frequencies_hz)
    size = len(frequencies_hz)
    thresholds = st.lists(valid_threshold_db_hl, min_size=size, max_size=size)
    left_db_hl = draw(st.none() | thresholds)
    right_db_hl = draw(st.none() | thresholds)
    mono_strategy = thresholds if left_db_hl is None and right_db_hl is None else st.none() | thresholds
    return frequencies_hz, draw(mono_strategy), left_db_hl, right_db_hl


@given(valid_audiogram_fields())
def test_valid_inputs_never_raise_and_are_stored_as_float_tuples(fields):
    frequencies_hz, mono_db_hl, left_db_hl, right_db_hl = fields
    audiogram = Audiogram("listener", frequencies_hz, mono_db_hl, left_db_hl, right_db_hl)
    assert audiogram.frequencies_hz == tuple(frequencies_hz)
    assert all(isinstance(value, float) for value in audiogram.thresholds_db_hl)
    assert len(audiogram.thresholds_db_hl) == len(frequencies_hz)


@given(valid_frequencies_hz, st.data())
def test_unsorted_frequencies_always_raise(frequencies_hz, data):
    first = data.draw(st.integers(0, len(frequencies_hz) - 2))
    second = data.draw(st.integers(first + 1, len(frequencies_hz) - 1))
    frequencies_hz[first], frequencies_hz[second] = frequencies_hz[second], frequencies_hz[first]
    with pytest.raises(HearmaskError, match="increasing order"):
        Audiogram("x", frequencies_hz, [20.0] * len(frequencies_hz))


@given(valid_frequencies_hz, st.data())
def test_duplicate_frequencies_always_raise(frequencies_hz, data):
    index = data.draw(st.integers(0, len(frequencies_hz) - 1))
    frequencies_hz.insert(index, frequencies_hz[index])
    with pytest.raises(HearmaskError, match="more than once"):
        Audiogram("x", frequencies_hz, [20.0] * len(frequencies_hz))


out_of_range_frequency_hz = st.floats(1e-3, MIN_FREQUENCY_HZ, exclude_max=True) | st.floats(
    MAX_FREQUENCY_HZ, 1e6, exclude_min=True
)


@given(valid_frequencies_hz, out_of_range_frequency_hz)
def test_frequencies_outside_125_to_16000_hz_always_raise(frequencies_hz, bad_hz):
    frequencies_hz = sorted(set(frequencies_hz) | {bad_hz})
    with pytest.raises(HearmaskError, match="125-16000 Hz"):
        Audiogram("x", frequencies_hz, [20.0] * len(frequencies_hz))


out_of_range_threshold_db_hl = st.floats(-1e4, MIN_THRESHOLD_DB_HL, exclude_max=True) | st.floats(
    MAX_THRESHOLD_DB_HL, 1e4, exclude_min=True
)


@given(
    valid_frequencies_hz,
    out_of_range_threshold_db_hl,
    st.sampled_from(["thresholds_db_hl", "left_db_hl", "right_db_hl"]),
    st.data(),
)
def test_thresholds_outside_minus10_to_120_db_hl_always_raise(frequencies_hz, bad_db_hl, field, data):
    thresholds_db_hl = [30.0] * len(frequencies_hz)
    thresholds_db_hl[data.draw(st.integers(0, len(frequencies_hz) - 1))] = bad_db_hl
    fields = {"thresholds_db_hl": [30.0] * len(frequencies_hz), field: thresholds_db_hl}
    with pytest.raises(HearmaskError, match=r"-10\.\.120 dB HL"):
        Audiogram("x", frequencies_hz, **fields)


@given(valid_frequencies_hz, st.sampled_from([math.nan, math.inf, -math.inf]), st.booleans(), st.data())
def test_nan_and_inf_always_raise(frequencies_hz, bad_value, in_frequencies, data):
    index = data.draw(st.integers(0, len(frequencies_hz) - 1))
    thresholds_db_hl = [30.0] * len(frequencies_hz)
    if in_frequencies:
        frequencies_hz[index] = bad_value
    else:
        thresholds_db_hl[index] = bad_value
    with pytest.raises(HearmaskError, match="finite"):
        Audiogram("x", frequencies_hz, thresholds_db_hl)


@given(st.lists(st.floats(MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ), max_size=1))
def test_fewer_than_two_points_always_raise(frequencies_hz):
    with pytest.raises(HearmaskError, match="at least 2"):
        Audiogram("x", frequencies_hz, [20.0] * len(frequencies_hz))


@given(valid_frequencies_hz, st.integers(-3, 3), st.sampled_from(["thresholds_db_hl", "left_db_hl"]))
def test_length_mismatch_always_raises(frequencies_hz, length_change, field):
    assume(length_change != 0 and len(frequencies_hz) + length_change >= 0)
    wrong_length = [20.0] * (len(frequencies_hz) + length_change)
    fields = {"thresholds_db_hl": [20.0] * len(frequencies_hz), field: wrong_length}
    with pytest.raises(HearmaskError, match="one threshold per frequency"):
        Audiogram("x", frequencies_hz, **fields)


@pytest.mark.parametrize(
    "frequencies_hz, thresholds_db_hl, expected_text",
    [
        ([250, 500], [10, "20"], "item #2 is '20'"),
        ([250, 500], [10, True], "expected a number"),
        ("250,500", [10, 20], "must be a list of numbers"),
        ([250, 500], None, "has no thresholds"),
    ],
)
def test_wrong_types_raise_with_the_offending_value(frequencies_hz, thresholds_db_hl, expected_text):
    with pytest.raises(HearmaskError, match=expected_text):
        Audiogram("x", frequencies_hz, thresholds_db_hl)


def test_messages_name_the_value_and_the_accepted_range():
    with pytest.raises(HearmaskError) as error:
        Audiogram("L7", [250, 20000], [10, 20])
    assert "'L7'" in str(error.value) and "20000 Hz" in str(error.value) and "125-16000" in str(error.value)
    with pytest.raises(HearmaskError) as error:
        Audiogram("L7", [250, 500], [10, 130])
    assert "500 Hz" in str(error.value) and "130 dB HL" in str(error.value)


def test_mono_thresholds_default_to_the_mean_of_the_ears():
    audiogram = Audiogram("x", [250, 1000, 4000], left_db_hl=[10, 20, 50], right_db_hl=[20, 40, 61])
    assert audiogram.thresholds_db_hl == (15.0, 30.0, 55.5)
    assert not audiogram.has_explicit_mono


def test_one_ear_alone_gives_the_mono_thresholds():
    audiogram = Audiogram("x", [250, 1000], right_db_hl=[30, 50])
    assert audiogram.thresholds_db_hl == (30.0, 50.0)
    with pytest.raises(HearmaskError, match="no left-ear thresholds"):
        audiogram.for_ear("left")


def test_explicit_mono_thresholds_are_kept_next_to_the_ears():
    audiogram = Audiogram("x", [250, 1000], [0, 0], left_db_hl=[10, 20], right_db_hl=[30, 40])
    assert audiogram.thresholds_db_hl == (0.0, 0.0)
    assert audiogram.has_explicit_mono


def test_for_ear_returns_mono_audiograms():
    audiogram = Audiogram("x", [250, 1000], left_db_hl=[10, 20], right_db_hl=[30, 40])
    left = audiogram.for_ear("left")
    assert left.thresholds_db_hl == (10.0, 20.0) and not left.has_per_ear
    assert audiogram.for_ear("right").thresholds_db_hl == (30.0, 40.0)
    assert audiogram.for_ear("mean").thresholds_db_hl == (20.0, 30.0)
    with pytest.raises(HearmaskError, match="accepted: left, right, mean"):
        audiogram.for_ear("both")


def test_mono_audiogram_serves_either_ear():
    audiogram = Audiogram("x", [250, 1000], [10, 20])
    assert audiogram.for_ear("left").thresholds_db_hl == (10.0, 20.0)
    assert audiogram.for_ear("right").thresholds_db_hl == (10.0, 20.0)


def test_to_json_dict_lists_per_ear_values_only_when_given():
    mono = Audiogram("m", [250, 1000], [10, 20]).to_json_dict()
    assert mono == {"name": "m", "frequencies_hz": [250.0, 1000.0], "thresholds_db_hl": [10.0, 20.0]}
    both = Audiogram("b", [250, 1000], left_db_hl=[10, 20], right_db_hl=[30, 40]).to_json_dict()
    assert both["left_db_hl"] == [10.0, 20.0] and both["right_db_hl"] == [30.0, 40.0]
    assert both["thresholds_db_hl"] == [20.0, 30.0]


def test_audiograms_are_frozen_and_compare_by_value():
    first = Audiogram("x", np.array([250.0, 1000.0]), np.array([10, 20]))
    assert first == Audiogram("x", [250, 1000], (10.0, 20.0))
    assert hash(first) == hash(Audiogram("x", [250, 1000], (10.0, 20.0)))
    with pytest.raises(AttributeError):
        first.name = "y"


def test_model_input_is_float32_on_the_fixed_grid_divided_by_100():
    audiogram = Audiogram("x", [250, 500, 1000, 2000, 4000, 6000], [10, 20, 30, 40, 60, 80])
    model_input = audiogram.model_input()
    assert model_input.dtype == np.float32
    assert model_input.shape == (len(MODEL_AUDIOGRAM_FREQUENCIES_HZ),)
    assert MODEL_AUDIOGRAM_FREQUENCIES_HZ == (250, 500, 1000, 2000, 3000, 4000, 6000, 8000)
    # 3 kHz lies log-linearly between 2 kHz (40) and 4 kHz (60): 40 + 20 * log2(1.5).
    expected = [0.1, 0.2, 0.3, 0.4, (40 + 20 * math.log2(1.5)) / 100, 0.6, 0.8, 0.8]
    np.testing.assert_allclose(model_input, expected, rtol=1e-6)


def test_model_input_accepts_another_grid():
    audiogram = Audiogram("x", [250, 8000], [0, 50])
    np.testing.assert_allclose(audiogram.model_input([250, 8000, 16000]), [0.0, 0.5, 0.5])
