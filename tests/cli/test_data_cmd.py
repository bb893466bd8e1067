"""``hearmask data synth``: reproducible files, a manifest, --json, one-line errors."""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import pytest

from hearmask.cli import data_cmd
from hearmask.errors import HearmaskError


def _run(argv):
    """Parse and run ``hearmask data …`` through the command's own parser."""
    parser = argparse.ArgumentParser(prog="hearmask")
    data_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def _hashes(folder):
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Three runs of ``--minutes 0.1``: seed 1 twice (fresh folders) and seed 2, one shared cache."""
    root = tmp_path_factory.mktemp("synth")
    common = ["data", "synth", "--minutes", "0.1", "--sources", "flite,espeak", "--cache-dir", str(root / "cache")]
    for name, seed in (("first", "1"), ("again", "1"), ("other", "2")):
        assert _run([*common, "--out", str(root / name), "--seed", seed]) == 0
        time.sleep(1.1)  # files written in another second must still be identical (no timestamps)
    return root


def test_same_seed_gives_identical_files_and_another_seed_differs(datasets):
    first, again, other = (_hashes(datasets / name) for name in ("first", "again", "other"))
    assert "manifest.json" in first and any(name.startswith("noisy/") for name in first)
    assert first == again
    wav_names = [name for name in first if name.endswith(".wav")]
    assert all(first[name] != other[name] for name in wav_names)


def test_manifest_describes_every_item(datasets):
    manifest = json.loads((datasets / "first" / "manifest.json").read_text())
    assert manifest["minutes_requested"] == 0.1 and manifest["num_items"] == 2  # 6 s of 4 s items
    assert manifest["sources"] == ["flite", "espeak"] and manifest["hearmask_version"]
    for item in manifest["items"]:
        assert {"id", "speech_source", "utterance_ids", "noise_kind", "snr_db", "level_dbfs", "seed"} <= set(item)
        assert -5.0 <= item["snr_db"] <= 20.0
        for relative in item["files"].values():
            assert (datasets / "first" / relative).is_file()


def test_json_output_and_report(tmp_path, datasets, capsys):
    report = tmp_path / "report.json"
    code = _run(["data", "synth", "--minutes", "0.05", "--sources", "espeak", "--segment-seconds", "1",
                 "--cache-dir", str(datasets / "cache"), "--out", str(tmp_path / "set"), "--json",
                 "--report", str(report)])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed == json.loads(report.read_text())
    assert printed["num_items"] == 3 and printed["minutes_by_source"] == {"espeak": pytest.approx(0.05)}


@pytest.mark.parametrize("extra, message", [
    (["--minutes", "0"], "positive number of minutes"),
    (["--minutes", "1", "--sources", "flite,podcasts"], "expected distinct names"),
    (["--minutes", "1", "--snr-range", "10", "0"], "LO <= HI"),
])
def test_bad_arguments_raise_a_user_error(tmp_path, extra, message):
    with pytest.raises(HearmaskError, match=message):
        _run(["data", "synth", "--out", str(tmp_path / "set"), *extra])


def test_data_without_an_action_prints_help_and_fails(capsys):
    assert _run(["data"]) == 2
    assert "synth" in capsys.readouterr().err
