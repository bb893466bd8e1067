"""Audiogram files: JSON / CSV / Clarity round trips, name-or-path resolution, bad files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.io import clarity_listener_dict, load_audiogram, save_audiogram
from hearmask.profiles.standard import standard_audiogram

CLARITY_CFS_HZ = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]


@st.composite
def valid_audiograms(draw):
    frequencies_hz = sorted(
        draw(st.lists(st.floats(125, 16000), min_size=2, max_size=12, unique=True))
    )
    size = len(frequencies_hz)
    thresholds = st.lists(st.floats(-10, 120), min_size=size, max_size=size)
    left_db_hl = draw(st.none() | thresholds)
    right_db_hl = draw(st.none() | thresholds)
    no_ears = left_db_hl is None and right_db_hl is None
    mono_db_hl = draw(thresholds if no_ears else st.none() | thresholds)
    name = draw(st.text(min_size=1, max_size=20).filter(str.strip))
    return Audiogram(name, frequencies_hz, mono_db_hl, left_db_hl, right_db_hl)


@given(valid_audiograms())
def test_json_round_trip_is_exact(audiogram):
    with tempfile.TemporaryDirectory() as folder:
        path = save_audiogram(audiogram, Path(folder) / "listener.json")
        assert load_audiogram(path) == audiogram


@given(valid_audiograms())
def test_csv_round_trip_is_exact_with_the_stem_as_name(audiogram):
    with tempfile.TemporaryDirectory() as folder:
        path = save_audiogram(audiogram, Path(folder) / "listener_7.csv")
        loaded = load_audiogram(path)
    assert loaded.name == "listener_7"
    assert loaded.frequencies_hz == audiogram.frequencies_hz
    assert loaded.thresholds_db_hl == audiogram.thresholds_db_hl
    assert loaded.left_db_hl == audiogram.left_db_hl
    assert loaded.right_db_hl == audiogram.right_db_hl


def test_json_file_layout(tmp_path):
    path = save_audiogram(Audiogram("L1", [250, 1000], left_db_hl=[10, 20], right_db_hl=[30, 40]), tmp_path / "a.json")
    assert json.loads(path.read_text()) == {
        "format": "hearmask-audiogram",
        "version": 1,
        "name": "L1",
        "frequencies_hz": [250.0, 1000.0],
        "thresholds_db_hl": [20.0, 30.0],
        "left_db_hl": [10.0, 20.0],
        "right_db_hl": [30.0, 40.0],
    }


def test_csv_file_layout(tmp_path):
    mono = save_audiogram(Audiogram("m", [250, 1000], [10, 22.5]), tmp_path / "m.csv")
    assert mono.read_text() == "frequency_hz,threshold_db_hl\n250.0,10.0\n1000.0,22.5\n"
    ears = save_audiogram(Audiogram("e", [250, 1000], left_db_hl=[10, 20], right_db_hl=[30, 40]), tmp_path / "e.csv")
    assert ears.read_text().splitlines() == [
        "frequency_hz,threshold_db_hl,ear",
        "250.0,10.0,left", "1000.0,20.0,left", "250.0,30.0,right", "1000.0,40.0,right",
    ]


def test_hand_written_csv_with_spaces_interleaved_ears_and_both(tmp_path):
    path = tmp_path / "clinic.csv"
    path.write_text(
        "\ufeffFrequency_Hz, Threshold_dB_HL, Ear\n"
        "250, 10, left\n250, 20, RIGHT\n1000, 30, left\n1000, 50, right\n\n"
        "250, 12, both\n1000, 44, both\n"
    )
    audiogram = load_audiogram(path)
    assert audiogram.left_db_hl == (10.0, 30.0)
    assert audiogram.right_db_hl == (20.0, 50.0)
    assert audiogram.thresholds_db_hl == (12.0, 44.0)


def test_hand_written_json_without_format_and_name(tmp_path):
    path = tmp_path / "me.json"
    path.write_text('{"frequencies_hz": [500, 2000], "left_db_hl": [10, 30], "right_db_hl": [20, 40]}')
    audiogram = load_audiogram(path)
    assert audiogram.name == "me"
    assert audiogram.thresholds_db_hl == (15.0, 35.0)


def test_clarity_single_listener(tmp_path):
    path = tmp_path / "L0042.json"
    path.write_text(json.dumps({
        "name": "L0042", "audiogram_cfs": CLARITY_CFS_HZ,
        "audiogram_levels_l": [10, 10, 20, 30, 45, 55, 65, 70],
        "audiogram_levels_r": [15, 15, 25, 40, 50, 60, 70, 80],
    }))
    audiogram = load_audiogram(path)
    assert audiogram.name == "L0042"
    assert audiogram.frequencies_hz == tuple(CLARITY_CFS_HZ)
    assert audiogram.left_db_hl == (10, 10, 20, 30, 45, 55, 65, 70)
    assert audiogram.right_db_hl == (15, 15, 25, 40, 50, 60, 70, 80)
    assert audiogram.thresholds_db_hl == (12.5, 12.5, 22.5, 35, 47.5, 57.5, 67.5, 75)
    assert load_audiogram(path, listener_id="L0042") == audiogram


def _write_clarity_listeners(path: Path, listener_ids: list[str]) -> None:
    listeners = {
        listener_id: {
            "name": listener_id, "audiogram_cfs": CLARITY_CFS_HZ,
            "audiogram_levels_l": [index * 10] * 8, "audiogram_levels_r": [index * 10 + 5] * 8,
        }
        for index, listener_id in enumerate(listener_ids)
    }
    path.write_text(json.dumps(listeners))


def test_clarity_listener_dict_picks_by_id(tmp_path):
    path = tmp_path / "listeners.json"
    _write_clarity_listeners(path, ["L0001", "L0002", "L0003"])
    audiogram = load_audiogram(path, listener_id="L0002")
    assert audiogram.name == "L0002"
    assert audiogram.left_db_hl == (10.0,) * 8 and audiogram.right_db_hl == (15.0,) * 8


def test_clarity_listener_dict_needs_an_id_when_it_holds_several(tmp_path):
    path = tmp_path / "listeners.json"
    _write_clarity_listeners(path, ["L0001", "L0002"])
    with pytest.raises(HearmaskError) as error:
        load_audiogram(path)
    assert "listeners.json" in str(error.value) and "L0001, L0002" in str(error.value)
    with pytest.raises(HearmaskError, match="no Clarity listener 'L0009'.*L0001, L0002"):
        load_audiogram(path, listener_id="L0009")


def test_clarity_listener_dict_with_one_listener_needs_no_id(tmp_path):
    path = tmp_path / "one.json"
    _write_clarity_listeners(path, ["L0100"])
    assert load_audiogram(path).name == "L0100"


@given(valid_audiograms().filter(lambda audiogram: (audiogram.left_db_hl is None) == (audiogram.right_db_hl is None)))
def test_clarity_round_trip(audiogram):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "listeners.json"
        path.write_text(json.dumps({"Lx": clarity_listener_dict(audiogram)}))
        loaded = load_audiogram(path, listener_id="Lx")
    assert loaded.name == "Lx"
    assert loaded.frequencies_hz == audiogram.frequencies_hz
    if audiogram.has_per_ear:
        assert (loaded.left_db_hl, loaded.right_db_hl) == (audiogram.left_db_hl, audiogram.right_db_hl)
    else:  # a mono audiogram describes both ears alike
        assert loaded.left_db_hl == loaded.right_db_hl == audiogram.thresholds_db_hl
        assert loaded.thresholds_db_hl == audiogram.thresholds_db_hl


def test_clarity_writer_needs_both_ears():
    with pytest.raises(HearmaskError, match="no left-ear thresholds"):
        clarity_listener_dict(Audiogram("x", [250, 500], right_db_hl=[10, 20]))


def test_standard_names_resolve_before_files():
    assert load_audiogram("s2") == standard_audiogram("S2")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(HearmaskError, match="did you mean 'N4'"):
        load_audiogram("N44")


def test_listener_id_with_a_standard_name_is_refused():
    with pytest.raises(HearmaskError, match="Clarity listener file"):
        load_audiogram("N3", listener_id="L0001")


@pytest.mark.parametrize("suffix", [".txt", ".ext"])
def test_save_refuses_unknown_suffixes(tmp_path, suffix):
    with pytest.raises(HearmaskError, match=r"accepted: \.json, \.csv"):
        save_audiogram(standard_audiogram("N1"), tmp_path / f"a{suffix}")


def test_files_without_a_known_suffix_are_read_by_content(tmp_path):
    json_path = save_audiogram(standard_audiogram("N2"), tmp_path / "n2.json").rename(tmp_path / "n2.audiogram")
    assert load_audiogram(json_path).thresholds_db_hl == standard_audiogram("N2").thresholds_db_hl
    csv_path = tmp_path / "n2_table"
    csv_path.write_text("frequency_hz,threshold_db_hl\n500,20\n4000,45\n")
    assert load_audiogram(csv_path).thresholds_db_hl == (20.0, 45.0)


# Each bad file: (file name, content, words the message must contain besides the name).
BAD_FILES = [
    ("empty.json", "", "empty"),
    ("blank.csv", "  \n\n", "empty"),
    ("broken.json", '{"frequencies_hz": [250, 500', "not valid JSON"),
    ("list.json", "[250, 500]", "not a recognised audiogram JSON"),
    ("other.json", '{"hello": 1}', "not a recognised audiogram JSON"),
    ("nofreq.json", '{"name": "x", "thresholds_db_hl": [1, 2]}', "missing key 'frequencies_hz'"),
    ("nothr.json", '{"format": "hearmask-audiogram", "frequencies_hz": [250, 500]}', "missing key 'thresholds_db_hl'"),
    ("strfreq.json", '{"frequencies_hz": "250, 500", "thresholds_db_hl": [1, 2]}', "must be a list of numbers"),
    ("strthr.json", '{"frequencies_hz": [250, 500], "thresholds_db_hl": [1, "2"]}', "item #2"),
    ("nullthr.json", '{"frequencies_hz": [250, 500], "thresholds_db_hl": [1, null]}', "expected a number"),
    ("typo.json", '{"frequencies_hz": [250, 500], "threshold_db_hl": [1, 2]}', "unknown key(s) 'threshold_db_hl'"),
    ("version.json", '{"version": 2, "frequencies_hz": [250, 500], "thresholds_db_hl": [1, 2]}', "version 2"),
    ("format.json", '{"format": "other", "frequencies_hz": [250, 500], "thresholds_db_hl": [1, 2]}', "expected 'hearmask-audiogram'"),
    ("name.json", '{"name": 7, "frequencies_hz": [250, 500], "thresholds_db_hl": [1, 2]}', "'name' must be a string"),
    ("nan.json", '{"frequencies_hz": [250, 500], "thresholds_db_hl": [1, NaN]}', "finite"),
    ("unsorted.json", '{"frequencies_hz": [500, 250], "thresholds_db_hl": [1, 2]}', "increasing order"),
    ("loud.json", '{"frequencies_hz": [250, 500], "thresholds_db_hl": [1, 130]}', "130 dB HL"),
    ("clarity.json", '{"audiogram_cfs": [250, 500], "audiogram_levels_l": [1, 2]}', "'audiogram_levels_r'"),
    ("clarity2.json", '{"L1": {"audiogram_cfs": [250, 500], "audiogram_levels_l": [1], "audiogram_levels_r": [1, 2]}}', "one threshold per frequency"),
    ("header.csv", "freq,level\n250,10\n500,20\n", "header"),
    ("onlyheader.csv", "frequency_hz,threshold_db_hl\n", "no data rows"),
    ("cell.csv", "frequency_hz,threshold_db_hl\n250,10\n500,abc\n", "line 3: threshold_db_hl 'abc' is not a number"),
    ("cells.csv", "frequency_hz,threshold_db_hl\n250,10,left\n", "line 2: 3 cells"),
    ("ear.csv", "frequency_hz,threshold_db_hl,ear\n250,10,middle\n500,10,left\n", "ear is 'middle'"),
    ("ears.csv", "frequency_hz,threshold_db_hl,ear\n250,10,left\n500,10,left\n250,10,right\n", "same frequencies"),
    ("inf.csv", "frequency_hz,threshold_db_hl\n250,10\n500,inf\n", "finite"),
    ("short.csv", "frequency_hz,threshold_db_hl\n250,10\n", "at least 2"),
    ("binary.json", b"\xff\xfe\x00garbage", "not a text file"),
]


@pytest.mark.parametrize("file_name, content, expected_text", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_files_name_the_file_and_the_problem(tmp_path, file_name, content, expected_text):
    path = tmp_path / file_name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(HearmaskError) as error:
        load_audiogram(path)
    message = str(error.value)
    assert file_name in message
    assert expected_text in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(HearmaskError, match="missing.json: no such audiogram file"):
        load_audiogram(tmp_path / "missing.json")
    with pytest.raises(HearmaskError, match="missing.csv: no such audiogram file"):
        load_audiogram(str(tmp_path / "missing.csv"))
    with pytest.raises(HearmaskError, match="is a folder"):
        load_audiogram(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.json"
    path.write_text("{}")
    original_read_bytes = Path.read_bytes

    def read_bytes_denied(self):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original_read_bytes(self)

    # chmod 0 does not stop root (CI containers), so the denial is simulated.
    monkeypatch.setattr(Path, "read_bytes", read_bytes_denied)
    with pytest.raises(HearmaskError, match="secret.json: cannot read the audiogram file: Permission denied"):
        load_audiogram(path)


def test_listener_id_with_a_hearmask_file_is_refused(tmp_path):
    path = save_audiogram(standard_audiogram("N1"), tmp_path / "n1.json")
    with pytest.raises(HearmaskError, match="n1.json: a listener id"):
        load_audiogram(path, listener_id="L0001")


def test_save_creates_folders_and_reports_unwritable_paths(tmp_path):
    path = save_audiogram(standard_audiogram("N1"), tmp_path / "a" / "b" / "n1.json")
    assert path.is_file()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HearmaskError, match="cannot write"):
        save_audiogram(standard_audiogram("N1"), blocker / "n1.json")
