"""`hearmask pipeline`: the main job writes every promised file, and its figures are consistent."""

import json

import numpy as np
import soundfile

from hearmask.cli import main
from hearmask.model.baselines.nalr import nalr_gains_db
from hearmask.profiles.standard import standard_audiogram


def test_pipeline_writes_files_and_consistent_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pipeline", "--out", str(out), "--audiogram", "N2", "--snr", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "report.json").read_text())
    for path in report["files"].values():
        assert (out / path.split("/")[-1]).stat().st_size > 0
    assert (out / "audiogram_gain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    clean, rate = soundfile.read(out / "clean.wav")
    noisy, _ = soundfile.read(out / "noisy.wav")
    compensated, _ = soundfile.read(out / "nalr.wav")
    assert rate == 16000 and len(clean) == len(noisy) == len(compensated)
    noise = noisy - clean
    assert report["sample"]["snr_db"] == 3.0
    # The recorded prescription is the NAL-R formula's, within the interpolation to bins.
    expected_1k = float(nalr_gains_db(standard_audiogram("N2"), np.array([1000.0]))[0])
    assert abs(report["nalr"]["gain_db_at_hz"]["1000"] - expected_1k) < 0.5
    # Compensation made the output louder than the input by a plausible broadband amount.
    gain_db = 10 * np.log10(np.mean(compensated**2) / np.mean(noisy**2))
    assert 3.0 < gain_db < max(report["nalr"]["gain_db_at_hz"].values())
    assert np.mean(noise**2) > 0
