"""User corpora: resampling and mono mixing, and bad files named or skipped with a count."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from hearmask.errors import HearmaskError
from hearmask.model.data.corpora import CleanNoiseCorpus, PairedCorpus, WavFolder
from hearmask.model.data.mixer import speech_activity_mask

SAMPLE_RATE_HZ = 16000


def _tone(seconds=1.0, rate_hz=SAMPLE_RATE_HZ, amplitude=0.3, frequency_hz=300.0):
    time_s = np.arange(int(seconds * rate_hz)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * frequency_hz * time_s)).astype(np.float32)


def _write(path, audio, rate_hz=SAMPLE_RATE_HZ, subtype="FLOAT"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate_hz, subtype=subtype)
    return path


def _bad_files(folder):
    """Three bad files: garbage bytes, zero bytes, and a valid header with no samples."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garbage.wav").write_bytes(b"this is not a wav file at all")
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "no_samples.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE_HZ)


def test_any_rate_and_channel_count_becomes_16_khz_mono_average(tmp_path):
    left, right = _tone(rate_hz=44100, amplitude=0.5), _tone(rate_hz=44100, amplitude=0.1)
    _write(tmp_path / "speech" / "stereo.wav", np.stack([left, right], axis=1), rate_hz=44100)
    folder = WavFolder(tmp_path / "speech")
    audio = folder.load(folder.utterance_ids()[0])
    assert audio.dtype == np.float32 and audio.shape == (SAMPLE_RATE_HZ,)
    middle = audio[2000:-2000]
    assert np.max(np.abs(middle)) == pytest.approx(0.3, abs=0.005)  # (0.5 + 0.1) / 2


@pytest.mark.parametrize("bad_name, reason", [("garbage.wav", "unreadable"), ("empty.wav", "empty file"),
                                              ("no_samples.wav", "zero-length")])
def test_each_bad_file_is_named_in_the_error(tmp_path, bad_name, reason):
    _bad_files(tmp_path / "bad")
    _write(tmp_path / "clean" / "good.wav", _tone())
    (tmp_path / "clean" / bad_name).write_bytes((tmp_path / "bad" / bad_name).read_bytes())
    with pytest.raises(HearmaskError, match=rf"{bad_name}: {reason}"):
        WavFolder(tmp_path / "clean")


def test_skip_bad_skips_with_a_counted_warning(tmp_path):
    _bad_files(tmp_path / "clean")
    _write(tmp_path / "clean" / "good.wav", _tone())
    with pytest.warns(UserWarning, match="skipped 3 bad audio file"):
        folder = WavFolder(tmp_path / "clean", skip_bad=True)
    assert folder.skipped_count == 3 and len(folder) == 1
    assert {s.path.name for s in folder.skipped} == {"garbage.wav", "empty.wav", "no_samples.wav"}


def test_empty_missing_and_all_bad_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HearmaskError, match="holds no audio files"):
        WavFolder(tmp_path / "empty")
    with pytest.raises(HearmaskError, match="does not exist"):
        WavFolder(tmp_path / "missing")
    _bad_files(tmp_path / "all-bad")
    with pytest.warns(UserWarning), pytest.raises(HearmaskError, match="no usable audio files"):
        WavFolder(tmp_path / "all-bad", skip_bad=True)


def test_non_finite_samples_are_named_on_load(tmp_path):
    audio = _tone()
    audio[100] = np.nan
    _write(tmp_path / "clean" / "nan.wav", audio)
    folder = WavFolder(tmp_path / "clean")
    with pytest.raises(HearmaskError, match="nan.wav"):
        folder.load(folder.utterance_ids()[0])


def test_clean_noise_corpus_mixes_deterministically(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(3):
        _write(tmp_path / "clean" / f"s{index}.wav", _tone(seconds=1.0 + index, frequency_hz=200 + 50 * index))
    _write(tmp_path / "noise" / "n0.wav", rng.standard_normal(8000).astype(np.float32) * 0.1, rate_hz=8000)
    _write(tmp_path / "noise" / "n1.wav", rng.standard_normal(48000).astype(np.float32) * 0.1, rate_hz=48000)
    corpus = CleanNoiseCorpus(tmp_path / "clean", tmp_path / "noise", seed=4)
    assert len(corpus) == 3
    mixture = corpus.mixture(2)
    assert mixture.noisy.shape == (3 * SAMPLE_RATE_HZ,) and -5.0 <= mixture.snr_db <= 20.0
    np.testing.assert_array_equal(mixture.noisy, CleanNoiseCorpus(tmp_path / "clean", tmp_path / "noise",
                                                                  seed=4).mixture(2).noisy)
    active = speech_activity_mask(mixture.clean)
    measured = 10 * np.log10(np.mean(mixture.clean[active] ** 2.0) / np.mean(mixture.noise**2.0))
    assert measured == pytest.approx(mixture.snr_db, abs=0.1)
    assert corpus.mixture(1).snr_db != mixture.snr_db
    with pytest.raises(HearmaskError, match="outside the corpus"):
        corpus.mixture(3)


def _paired(tmp_path, names_noisy, names_clean):
    for name in names_noisy:
        _write(tmp_path / "noisy" / name, _tone(amplitude=0.4))
    for name in names_clean:
        rate_hz = 48000 if name.startswith("hi") else SAMPLE_RATE_HZ  # "hi*" clean files are at 48 kHz
        _write(tmp_path / "clean" / name, _tone(amplitude=0.2, rate_hz=rate_hz), rate_hz=rate_hz)


def test_paired_folders_match_by_name_at_16_khz(tmp_path):
    _paired(tmp_path, ["p1.wav", "sub/p2.wav", "hi.wav"], ["p1.wav", "sub/p2.wav", "hi.wav"])
    corpus = PairedCorpus(tmp_path / "noisy", tmp_path / "clean")
    assert corpus.item_ids() == ("hi.wav", "p1.wav", "sub/p2.wav")
    item = corpus[0]
    assert item.noisy.shape == item.clean.shape == (SAMPLE_RATE_HZ,)


def test_unmatched_paired_files_are_named(tmp_path):
    _paired(tmp_path, ["p1.wav", "extra.wav"], ["p1.wav", "lonely.wav"])
    with pytest.raises(HearmaskError, match=r"extra\.wav: noisy file has no clean partner"):
        PairedCorpus(tmp_path / "noisy", tmp_path / "clean")
    with pytest.warns(UserWarning, match="skipped 2"):
        corpus = PairedCorpus(tmp_path / "noisy", tmp_path / "clean", skip_bad=True)
    assert corpus.skipped_count == 2 and corpus.item_ids() == ("p1.wav",)
    assert any("lonely.wav" in str(s.path) and "no noisy partner" in s.reason for s in corpus.skipped)


def test_paired_duration_mismatch_names_both_files(tmp_path):
    _write(tmp_path / "noisy" / "a.wav", _tone(seconds=1.0))
    _write(tmp_path / "clean" / "a.wav", _tone(seconds=1.5))
    with pytest.raises(HearmaskError, match=r"noisy/a\.wav: duration 1\.000 s differs .*clean/a\.wav"):
        PairedCorpus(tmp_path / "noisy", tmp_path / "clean")
