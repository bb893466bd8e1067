"""plot_audiogram: audiological convention (log frequency, dB HL downward), ear markers, PNG."""

from __future__ import annotations

import sys

import pytest

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.plot import plot_audiogram
from hearmask.profiles.standard import standard_audiogram

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_writes_a_png_with_inverted_y_and_log_x(tmp_path):
    path = tmp_path / "plots" / "n3.png"
    ax = plot_audiogram(standard_audiogram("N3"), path=path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert ax.yaxis_inverted()
    assert ax.get_xscale() == "log"
    assert ax.get_ylim() == (120.0, -10.0)


def test_ticks_are_octaves_labelled_in_hz_and_khz():
    ax = plot_audiogram(standard_audiogram("S1"))
    ticks_hz = list(ax.get_xticks())
    assert ticks_hz == [250, 500, 1000, 2000, 4000, 8000]
    labels = [label.get_text() for label in ax.get_xticklabels()]
    assert labels == ["250 Hz", "500 Hz", "1 kHz", "2 kHz", "4 kHz", "8 kHz"]


def test_per_ear_data_use_o_for_right_and_x_for_left():
    audiogram = Audiogram("L1", [250, 1000, 4000], left_db_hl=[10, 20, 50], right_db_hl=[20, 30, 60])
    ax = plot_audiogram(audiogram)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"right", "left"}
    assert lines["right"].get_marker() == "o"
    assert lines["left"].get_marker() == "x"
    assert list(lines["left"].get_ydata()) == [10, 20, 50]


def test_several_audiograms_into_a_given_axes():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    returned = plot_audiogram([standard_audiogram("N1"), standard_audiogram("N4")], ax=ax)
    assert returned is ax
    assert [line.get_label() for line in ax.get_lines()] == ["N1", "N4"]


def test_wide_frequency_range_widens_the_axis():
    ax = plot_audiogram(Audiogram("wide", [125, 16000], [0, 80]))
    low_hz, high_hz = ax.get_xlim()
    assert low_hz < 125 and high_hz > 16000
    assert 125 in ax.get_xticks() and 16000 in ax.get_xticks()


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(HearmaskError, match="non-empty list of Audiograms"):
        plot_audiogram([])
    with pytest.raises(HearmaskError, match="non-empty list of Audiograms"):
        plot_audiogram("N3")
    with pytest.raises(HearmaskError, match="plot.xyz: cannot write"):
        plot_audiogram(standard_audiogram("N3"), path=tmp_path / "plot.xyz")


def test_importing_profiles_does_not_import_matplotlib():
    import subprocess

    code = "import sys, hearmask.profiles; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
