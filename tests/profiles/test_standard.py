"""Standard profiles: the Bisgaard table cell by cell, names, closest-name suggestions."""

from __future__ import annotations

import pytest

from hearmask.errors import HearmaskError
from hearmask.profiles.standard import (
    STANDARD_FREQUENCIES_HZ,
    STANDARD_PROFILE_NAMES,
    closest_profile_name,
    standard_audiogram,
)


def test_names_are_nh_then_bisgaard_n1_to_n7_and_s1_to_s3():
    assert STANDARD_PROFILE_NAMES == ("NH", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "S1", "S2", "S3")


def test_grid_is_bisgaard_frequencies_plus_8khz():
    assert STANDARD_FREQUENCIES_HZ == (250, 375, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000)
    for name in STANDARD_PROFILE_NAMES:
        assert standard_audiogram(name).frequencies_hz == STANDARD_FREQUENCIES_HZ


@pytest.mark.parametrize(
    "name, frequency_hz, expected_db_hl",
    [
        # Cells from DESIGN.md's table (Bisgaard et al. 2010), corners and half-dB values.
        ("N1", 250, 10), ("N1", 2000, 15), ("N1", 6000, 40),
        ("N2", 750, 22.5), ("N2", 1500, 30), ("N2", 6000, 50),
        ("N3", 1000, 40), ("N3", 3000, 55),
        ("N4", 250, 55), ("N4", 4000, 75),
        ("N5", 375, 67.5), ("N5", 750, 72.5), ("N5", 2000, 80),
        ("N6", 375, 77.5), ("N6", 750, 82.5), ("N6", 3000, 95), ("N6", 4000, 100),
        ("N7", 375, 92.5), ("N7", 750, 100), ("N7", 1000, 105), ("N7", 6000, 105),
        ("S1", 3000, 30), ("S1", 4000, 55), ("S1", 6000, 70),
        ("S2", 1500, 35), ("S2", 2000, 55), ("S2", 4000, 95),
        ("S3", 500, 35), ("S3", 750, 47.5), ("S3", 1000, 60), ("S3", 6000, 85),
        # 8 kHz copies 6 kHz.
        ("N1", 8000, 40), ("N3", 8000, 65), ("N6", 8000, 100), ("S1", 8000, 70), ("S3", 8000, 85),
    ],
)
def test_table_cells(name, frequency_hz, expected_db_hl):
    audiogram = standard_audiogram(name)
    index = audiogram.frequencies_hz.index(frequency_hz)
    assert audiogram.thresholds_db_hl[index] == expected_db_hl


def test_full_rows_of_n3_and_s2():
    assert standard_audiogram("N3").thresholds_db_hl == (35, 35, 35, 35, 40, 45, 50, 55, 60, 65, 65)
    assert standard_audiogram("S2").thresholds_db_hl == (20, 20, 20, 22.5, 25, 35, 55, 75, 95, 95, 95)


def test_every_profile_copies_6khz_to_8khz():
    for name in STANDARD_PROFILE_NAMES:
        thresholds_db_hl = standard_audiogram(name).thresholds_db_hl
        assert thresholds_db_hl[-1] == thresholds_db_hl[-2], name


def test_nh_is_zero_everywhere_and_profiles_are_mono():
    assert set(standard_audiogram("NH").thresholds_db_hl) == {0.0}
    assert not any(standard_audiogram(name).has_per_ear for name in STANDARD_PROFILE_NAMES)


@pytest.mark.parametrize("spelling", ["n3", " N3 ", "N3", "n3\t"])
def test_names_are_case_insensitive(spelling):
    assert standard_audiogram(spelling).name == "N3"


@pytest.mark.parametrize(
    "typo, suggestion",
    [("N8", "N7"), ("N33", "N3"), ("SS2", "S2"), ("nhh", "NH"), ("s-1", "S1"), ("Bisgaard N4", "N4"), ("S0", "S1")],
)
def test_unknown_names_suggest_the_closest(typo, suggestion):
    assert closest_profile_name(typo) == suggestion
    with pytest.raises(HearmaskError) as error:
        standard_audiogram(typo)
    message = str(error.value)
    assert f"did you mean {suggestion!r}" in message
    assert repr(typo) in message
    assert "NH, N1, N2, N3, N4, N5, N6, N7, S1, S2, S3" in message


def test_unrelated_name_lists_the_accepted_names_without_a_guess():
    with pytest.raises(HearmaskError) as error:
        standard_audiogram("moderate")
    assert "did you mean" not in str(error.value)
    assert "Accepted names: NH, N1" in str(error.value)


def test_non_string_name_raises():
    with pytest.raises(HearmaskError, match="must be a string"):
        standard_audiogram(3)
