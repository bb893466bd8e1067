"""``hearmask profiles list|show`` through the real ``hearmask.cli.main`` error handling."""

from __future__ import annotations

import json

import pytest

import hearmask.cli
from hearmask.profiles.io import save_audiogram
from hearmask.profiles.standard import STANDARD_PROFILE_NAMES, standard_audiogram


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``hearmask`` with only this command registered; returns (status, stdout, stderr)."""
    # The other commands in COMMAND_MODULES may not exist yet; this test needs only ours.
    monkeypatch.setattr(hearmask.cli, "COMMAND_MODULES", ("hearmask.cli.profiles_cmd",))

    def run(*argv: str) -> tuple[int, str, str]:
        status = hearmask.cli.main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_list_prints_every_standard_name_with_a_description(run_cli):
    status, out, _ = run_cli("profiles", "list")
    assert status == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list(STANDARD_PROFILE_NAMES)
    assert "moderate" in lines[STANDARD_PROFILE_NAMES.index("N3")]


def test_list_json_is_a_list(run_cli):
    status, out, _ = run_cli("profiles", "list", "--json")
    assert status == 0
    profiles = json.loads(out)
    assert [profile["name"] for profile in profiles] == list(STANDARD_PROFILE_NAMES)
    assert all(profile["description"] for profile in profiles)


def test_show_json_prints_the_audiogram(run_cli):
    status, out, _ = run_cli("profiles", "show", "n3", "--json")
    assert status == 0
    assert json.loads(out) == standard_audiogram("N3").to_json_dict()


def test_show_table_lists_each_frequency(run_cli):
    status, out, _ = run_cli("profiles", "show", "S2")
    assert status == 0
    assert out.splitlines()[0].startswith("S2: Bisgaard S2")
    assert out.splitlines()[-1].split() == ["8000", "95"]


def test_show_clarity_listener_with_ears_plot_and_report(run_cli, tmp_path):
    listeners = tmp_path / "listeners.json"
    listeners.write_text(json.dumps({
        listener_id: {
            "name": listener_id, "audiogram_cfs": [250, 1000, 4000],
            "audiogram_levels_l": [10, 20, 40], "audiogram_levels_r": [20, 30, 60],
        }
        for listener_id in ("L0001", "L0002")
    }))
    plot_path, report_path = tmp_path / "a.png", tmp_path / "out" / "report.json"
    status, out, _ = run_cli(
        "profiles", "show", str(listeners), "--listener", "L0002", "--json",
        "--plot", str(plot_path), "--report", str(report_path),
    )
    assert status == 0
    shown = json.loads(out)
    assert shown == {
        "name": "L0002", "frequencies_hz": [250.0, 1000.0, 4000.0],
        "thresholds_db_hl": [15.0, 25.0, 50.0],
        "left_db_hl": [10.0, 20.0, 40.0], "right_db_hl": [20.0, 30.0, 60.0],
    }
    assert json.loads(report_path.read_text()) == shown
    assert plot_path.read_bytes()[:4] == b"\x89PNG"


def test_show_a_saved_csv_file(run_cli, tmp_path):
    path = save_audiogram(standard_audiogram("N1"), tmp_path / "mine.csv")
    status, out, _ = run_cli("profiles", "show", str(path), "--json")
    assert status == 0
    assert json.loads(out)["thresholds_db_hl"] == list(standard_audiogram("N1").thresholds_db_hl)
    assert json.loads(out)["name"] == "mine"


@pytest.mark.parametrize(
    "arguments, expected_text",
    [
        (["N8"], "did you mean 'N7'"),
        (["missing.json"], "missing.json: no such audiogram file"),
        (["N3", "--listener", "L1"], "Clarity listener file"),
    ],
)
def test_bad_names_and_files_exit_non_zero_with_one_line(run_cli, tmp_path, monkeypatch, arguments, expected_text):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("profiles", "show", *arguments)
    assert status != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert expected_text in err


def test_malformed_file_names_the_file(run_cli, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("frequency_hz,threshold_db_hl\n250,ten\n")
    status, _, err = run_cli("profiles", "show", str(path))
    assert status == 1
    assert err.count("\n") == 1 and "broken.csv, line 2" in err and "'ten' is not a number" in err


def test_profiles_without_an_action_prints_help_and_fails(run_cli):
    status, _, err = run_cli("profiles")
    assert status == 2
    assert "list" in err and "show" in err
