"""The dataset writer: files agree with the manifest, and the output folder is protected."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from hearmask import __version__
from hearmask.errors import HearmaskError
from hearmask.model.data.mixer import speech_activity_mask
from hearmask.model.data.synth import SynthConfig, synthesize_dataset

SAMPLE_RATE_HZ = 16000


@pytest.fixture(scope="module")
def tts_cache(tmp_path_factory):
    """One synthetic-speech cache for the module, so each utterance is synthesised once."""
    return tmp_path_factory.mktemp("tts-cache")


def _config(**options):
    return SynthConfig(minutes=0.05, sources=("flite", "espeak"), segment_seconds=1.0, **options)


def test_files_match_the_manifest(tmp_path, tts_cache):
    summary = synthesize_dataset(tmp_path / "set", _config(seed=2, snr_range_db=(0.0, 5.0)), cache_dir=tts_cache,
                                 progress=False)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert summary["num_items"] == manifest["num_items"] == 3  # 0.05 min = 3 s of 1 s items
    assert manifest["hearmask_version"] == __version__ and manifest["sample_rate_hz"] == SAMPLE_RATE_HZ
    assert manifest["seed"] == 2 and manifest["snr_range_db"] == [0.0, 5.0]
    for item in manifest["items"]:
        signals = {}
        for name in ("clean", "noise", "noisy"):
            signals[name], rate_hz = sf.read(tmp_path / "set" / item["files"][name], dtype="float32")
            assert rate_hz == SAMPLE_RATE_HZ and signals[name].shape == (SAMPLE_RATE_HZ,)
            assert sf.info(tmp_path / "set" / item["files"][name]).subtype == "FLOAT"
        np.testing.assert_allclose(signals["noisy"], signals["clean"] + signals["noise"], atol=1e-6)
        active = speech_activity_mask(signals["clean"])
        measured = 10 * np.log10(np.mean(signals["clean"][active].astype(np.float64) ** 2)
                                 / np.mean(signals["noise"].astype(np.float64) ** 2))
        assert measured == pytest.approx(item["snr_db"], abs=0.1) and 0.0 <= item["snr_db"] <= 5.0
        assert item["speech_source"] in ("flite", "espeak") and item["utterance_ids"]
        assert all(u.startswith(item["speech_source"] + "/") for u in item["utterance_ids"])
        assert item["noise_kind"] in manifest["noise_kinds"] and item["seed"] == 2


def test_output_folder_is_never_silently_overwritten(tmp_path, tts_cache):
    out_dir = tmp_path / "set"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine")
    with pytest.raises(HearmaskError, match="not empty"):
        synthesize_dataset(out_dir, _config(), cache_dir=tts_cache, progress=False)
    synthesize_dataset(out_dir, _config(), cache_dir=tts_cache, overwrite=True, progress=False)
    assert (out_dir / "notes.txt").read_text() == "mine"  # --overwrite only replaces what synth wrote
    assert (out_dir / "manifest.json").exists()


def test_bad_requests_are_refused(tmp_path, tts_cache):
    with pytest.raises(HearmaskError, match="positive number of minutes"):
        synthesize_dataset(tmp_path / "a", SynthConfig(minutes=0.0), cache_dir=tts_cache)
    with pytest.raises(HearmaskError, match="expected distinct names from real, flite, espeak"):
        synthesize_dataset(tmp_path / "b", SynthConfig(minutes=1.0, sources=("flite", "pocketsphinx")))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_default_sources_include_the_real_recordings(tmp_path):
    summary = synthesize_dataset(tmp_path / "set", SynthConfig(minutes=0.5, seed=0), cache_dir=tmp_path / "cache",
                                 progress=False)
    assert summary["minutes_by_source"].get("asterisk", 0.0) > 0.0
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    real_ids = [u for item in manifest["items"] for u in item["utterance_ids"] if u.startswith("asterisk-")]
    assert real_ids and all(u.split("/")[0] in ("asterisk-fr", "asterisk-it", "asterisk-ru") for u in real_ids)
