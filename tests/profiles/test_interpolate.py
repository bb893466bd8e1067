"""interpolate_db_hl: exact at measured points, monotone between, flat outside, log-frequency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.profiles.interpolate import interpolate_db_hl

measured_frequencies_hz = st.lists(st.floats(125, 16000), min_size=2, max_size=10, unique=True).map(sorted)


@st.composite
def measured_audiogram(draw):
    frequencies_hz = draw(measured_frequencies_hz)
    thresholds_db_hl = draw(
        st.lists(st.floats(-10, 120), min_size=len(frequencies_hz), max_size=len(frequencies_hz))
    )
    return np.array(frequencies_hz), np.array(thresholds_db_hl)


@given(measured_audiogram())
def test_exact_at_measured_frequencies(audiogram):
    frequencies_hz, thresholds_db_hl = audiogram
    interpolated = interpolate_db_hl(frequencies_hz, thresholds_db_hl, frequencies_hz)
    assert np.array_equal(interpolated, thresholds_db_hl)


@given(measured_audiogram(), st.data())
def test_monotone_and_bounded_between_neighbouring_points(audiogram, data):
    frequencies_hz, thresholds_db_hl = audiogram
    segment = data.draw(st.integers(0, len(frequencies_hz) - 2))
    low_hz, high_hz = frequencies_hz[segment], frequencies_hz[segment + 1]
    targets_hz = np.geomspace(low_hz, high_hz, 33)
    interpolated = interpolate_db_hl(frequencies_hz, thresholds_db_hl, targets_hz)
    low_db, high_db = thresholds_db_hl[segment], thresholds_db_hl[segment + 1]
    tolerance_db = 1e-9
    assert np.all(interpolated >= min(low_db, high_db) - tolerance_db)
    assert np.all(interpolated <= max(low_db, high_db) + tolerance_db)
    steps = np.diff(interpolated) * np.sign(high_db - low_db)
    assert np.all(steps >= -tolerance_db)


@given(measured_audiogram(), st.floats(0.0, 1.0), st.floats(1.0, 100.0))
def test_flat_outside_the_measured_range(audiogram, below_fraction, above_factor):
    frequencies_hz, thresholds_db_hl = audiogram
    below_hz = max(frequencies_hz[0] * below_fraction, 1e-3)
    above_hz = frequencies_hz[-1] * above_factor
    below_db, above_db = interpolate_db_hl(frequencies_hz, thresholds_db_hl, [below_hz, above_hz])
    assert below_db == thresholds_db_hl[0]
    assert above_db == thresholds_db_hl[-1]


def test_geometric_midpoint_gets_the_arithmetic_mean():
    # Linear on a log axis: sqrt(1000 * 4000) = 2000 Hz is half-way between 1 and 4 kHz.
    value = interpolate_db_hl([1000, 4000], [20, 60], [2000])[0]
    assert value == pytest.approx(40.0, abs=1e-12)
    # The linear-frequency midpoint (2500 Hz) is past half-way on a log axis.
    value_2500 = interpolate_db_hl([1000, 4000], [20, 60], [2500])[0]
    assert value_2500 == pytest.approx(20 + 40 * math.log(2.5) / math.log(4), abs=1e-12)


def test_8khz_copies_6khz_when_the_audiogram_stops_there():
    value = interpolate_db_hl([250, 1000, 6000], [10, 30, 70], [8000, 16000])
    assert value.tolist() == [70.0, 70.0]


def test_batch_of_audiograms_and_shaped_targets():
    thresholds_db_hl = np.array([[0.0, 40.0], [20.0, 20.0], [60.0, 0.0]])  # (3, 2)
    targets_hz = np.array([[500.0, 1000.0], [2000.0, 4000.0]])  # (2, 2)
    result = interpolate_db_hl([1000, 4000], thresholds_db_hl, targets_hz)
    assert result.shape == (3, 2, 2)
    for row in range(3):
        expected = interpolate_db_hl([1000, 4000], thresholds_db_hl[row], targets_hz.ravel())
        assert np.array_equal(result[row].ravel(), expected)
    assert result[0].tolist() == [[0.0, 0.0], [20.0, 40.0]]


@pytest.mark.parametrize(
    "frequencies_hz, thresholds_db_hl, targets_hz, expected_text",
    [
        ([1000, 500], [10, 20], [700], "strictly increasing"),
        ([500, 500], [10, 20], [700], "strictly increasing"),
        ([0, 500], [10, 20], [700], "> 0 Hz"),
        ([500, 1000], [10, 20, 30], [700], "one value per frequency"),
        ([500, 1000], [10, 20], [-5], "target_frequencies_hz"),
        ([], [], [700], "non-empty"),
    ],
)
def test_bad_inputs_raise(frequencies_hz, thresholds_db_hl, targets_hz, expected_text):
    with pytest.raises(HearmaskError, match=expected_text):
        interpolate_db_hl(frequencies_hz, thresholds_db_hl, targets_hz)


def test_frequencies_closer_than_log_resolution_stay_finite():
    frequencies_hz = [125.0, np.nextafter(125.0, 200.0), 1000.0]
    interpolated = interpolate_db_hl(frequencies_hz, [10.0, 20.0, 30.0], frequencies_hz + [130.0])
    assert interpolated[0] == 10.0 and interpolated[1] == 20.0 and interpolated[2] == 30.0
    assert 20.0 <= interpolated[3] <= 30.0
