"""Speech sources: the evaluation reserve, prompt filtering, caching, synthesis, splits."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from hearmask.errors import HearmaskError
from hearmask.model.data.asterisk import (
    ASTERISK_SOUNDS_DIR,
    PromptFilter,
    decode_g722_files,
    is_non_speech_name,
    median_spectral_flatness,
)
from hearmask.model.data.mixer import speech_activity_mask
from hearmask.model.data.speech import (
    AsteriskSpeech,
    CombinedSpeech,
    EspeakSpeech,
    FliteSpeech,
    PocketsphinxSpeech,
    SplitSpeech,
    split_ids,
    split_of,
)

SAMPLE_RATE_HZ = 16000


# -- the English/Spanish evaluation reserve ---------------------------------------------
@pytest.mark.parametrize("language", ["en", "es"])
def test_english_and_spanish_prompts_are_refused_for_training(language):
    with pytest.raises(HearmaskError, match="reserved for independent evaluation"):
        AsteriskSpeech(languages=("fr", language))


def test_evaluation_path_accepts_english_only_and_is_marked_evaluation_only(tmp_path):
    english = AsteriskSpeech(languages=("en",), evaluation_only=True, cache_dir=tmp_path)
    assert english.evaluation_only
    with pytest.raises(HearmaskError, match="reserved for independent evaluation"):
        SplitSpeech(english, "train")
    with pytest.raises(HearmaskError, match="expected one of en, es"):
        AsteriskSpeech(languages=("fr",), evaluation_only=True)


def test_unknown_language_lists_the_accepted_ones():
    with pytest.raises(HearmaskError, match="expected one of fr, it, ru"):
        AsteriskSpeech(languages=("de",))


def test_missing_package_names_the_debian_package(tmp_path):
    source = AsteriskSpeech(languages=("it",), sounds_dir=tmp_path, cache_dir=tmp_path)
    with pytest.raises(HearmaskError, match="sudo apt install asterisk-core-sounds-it-g722"):
        source.utterance_ids()


# -- prompt filtering ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["beep", "beeperr", "silence/3", "ascending-2tone", "descending-2tone",
                                  "dtmf-1", "tt-monkeys", "confbridge-join"])
def test_non_speech_names_are_dropped(name):
    assert is_non_speech_name(name)


@pytest.mark.parametrize("name", ["at-tone-time-exactly", "tt-monkeysintro", "vm-deleted", "digits/1", "tonight"])
def test_speech_names_are_kept(name):
    assert not is_non_speech_name(name)


def test_signal_check_rejects_real_tones_and_keeps_real_speech(tmp_path):
    names = ["beep", "ascending-2tone", "confbridge-join", "confbridge-leave", "vm-deleted", "vm-goodbye"]
    sources = [ASTERISK_SOUNDS_DIR / "fr" / f"{name}.g722" for name in names]
    outputs = [tmp_path / f"{name}.wav" for name in names]
    decode_g722_files(sources, outputs)
    reasons = {name: PromptFilter().reject_reason(sf.read(output, dtype="float32")[0])
               for name, output in zip(names, outputs)}
    for tone in names[:4]:
        assert reasons[tone] is not None and "tonal" in reasons[tone], (tone, reasons[tone])
    assert reasons["vm-deleted"] is None and reasons["vm-goodbye"] is None


def test_signal_check_rejects_short_and_quiet_signals():
    rng = np.random.default_rng(0)
    check = PromptFilter()
    assert "too short" in check.reject_reason(0.1 * rng.standard_normal(SAMPLE_RATE_HZ // 10))
    assert "too quiet" in check.reject_reason(1e-4 * rng.standard_normal(SAMPLE_RATE_HZ))
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ)
    assert median_spectral_flatness(tone) < 1e-5
    assert median_spectral_flatness(rng.standard_normal(SAMPLE_RATE_HZ)) > 0.5


def test_decoding_is_cached_so_a_second_source_decodes_nothing(tmp_path):
    first = AsteriskSpeech(languages=("fr",), cache_dir=tmp_path, max_files_per_language=5, progress=False)
    ids = first.utterance_ids()
    assert first.decoded_count == 5
    assert 1 <= len(ids) <= 5 and all(i.startswith("asterisk-fr/") for i in ids)
    audio = first.load(ids[0])
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0.2 * SAMPLE_RATE_HZ
    started = time.perf_counter()
    second = AsteriskSpeech(languages=("fr",), cache_dir=tmp_path, max_files_per_language=5, progress=False)
    assert second.utterance_ids() == ids
    assert second.decoded_count == 0
    assert time.perf_counter() - started < 2.0
    np.testing.assert_array_equal(second.load(ids[0]), audio)
    summary = second.summary()["fr"]
    assert summary["kept_prompts"] == len(ids) and 0 < summary["active_minutes"] <= summary["minutes"]


# -- synthetic speech -----------------------------------------------------------------------
@pytest.mark.parametrize("source_class", [FliteSpeech, EspeakSpeech])
def test_synthetic_speech_is_seeded_cached_and_has_a_noise_floor(source_class, tmp_path):
    first = source_class(num_utterances=3, seed=5, cache_dir=tmp_path)
    audio = [first.load(i) for i in first.utterance_ids()]
    assert first.cache_misses == 3
    again = source_class(num_utterances=3, seed=5, cache_dir=tmp_path)
    assert again.utterance_ids() == first.utterance_ids()
    for utterance_id, expected in zip(again.utterance_ids(), audio):
        np.testing.assert_array_equal(again.load(utterance_id), expected)
    assert (again.cache_hits, again.cache_misses) == (3, 0)
    other_seed = source_class(num_utterances=3, seed=6, cache_dir=tmp_path)
    assert [other_seed.plan(i) for i in other_seed.utterance_ids()] != [first.plan(i) for i in first.utterance_ids()]
    for clip in audio:
        assert clip.dtype == np.float32 and clip.size > 0.5 * SAMPLE_RATE_HZ
        assert np.count_nonzero(clip == 0.0) < 0.001 * clip.size  # no digital silence left
        frame_rms = np.sqrt(np.mean(clip[: clip.size // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        quietest_dbfs = 20 * np.log10(np.min(frame_rms))
        assert -76.0 < quietest_dbfs < -64.0  # the -70 dBFS floor shows between words
        assert np.any(speech_activity_mask(clip))


def test_synthetic_speech_is_16_khz_whatever_the_engine_rate(tmp_path):
    espeak = EspeakSpeech(languages=("de",), num_utterances=1, cache_dir=tmp_path, noise_floor_dbfs=None)
    audio = espeak.load(espeak.utterance_ids()[0])
    raw_path = next((tmp_path / "tts").glob("*.wav"))
    raw, raw_rate_hz = sf.read(raw_path)
    assert raw_rate_hz == 22050
    assert abs(audio.size - raw.size * SAMPLE_RATE_HZ / raw_rate_hz) <= 1


def test_missing_synthesisers_and_decoder_name_their_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HearmaskError, match="sudo apt install flite"):
        FliteSpeech()
    with pytest.raises(HearmaskError, match="sudo apt install espeak-ng"):
        EspeakSpeech()
    with pytest.raises(HearmaskError, match="sudo apt install ffmpeg"):
        decode_g722_files([tmp_path / "x.g722"], [tmp_path / "x.wav"])


def test_unknown_voices_and_languages_are_refused():
    with pytest.raises(HearmaskError, match="installed voices"):
        FliteSpeech(voices=("nosuchvoice",))
    with pytest.raises(HearmaskError, match="no built-in text"):
        EspeakSpeech(languages=("xx",))


# -- pocketsphinx and splits -------------------------------------------------------------
def test_pocketsphinx_clips_are_real_16_khz_speech_for_evaluation_only():
    clips = PocketsphinxSpeech()
    assert clips.evaluation_only and len(clips) == 10
    seconds = sum(clips.load(i).size for i in clips.utterance_ids()) / SAMPLE_RATE_HZ
    assert 30.0 < seconds < 40.0


def test_missing_pocketsphinx_names_its_package(tmp_path):
    with pytest.raises(HearmaskError, match="sudo apt install pocketsphinx-testdata"):
        PocketsphinxSpeech(tmp_path)


def test_splits_are_deterministic_disjoint_complete_and_stable():
    ids = [f"asterisk-fr/prompt-{index}" for index in range(4000)]
    train, validation, test = (split_ids(ids, split) for split in ("train", "validation", "test"))
    assert set(train).isdisjoint(validation) and set(train).isdisjoint(test) and set(validation).isdisjoint(test)
    assert len(train) + len(validation) + len(test) == len(ids)
    assert all(split_of(i) == "validation" for i in validation) and all(split_of(i) == "test" for i in test)
    assert 0.035 < len(validation) / len(ids) < 0.065 and 0.035 < len(test) / len(ids) < 0.065
    # An id's split depends on the id alone: a subset, or extra ids, never move it.
    subset = ids[::7] + ["a-new-utterance"]
    assert set(split_ids(subset, "validation")) - {"a-new-utterance"} == set(validation) & set(subset)


def test_split_views_never_share_utterances(make_fake_speech):
    source = make_fake_speech(num_utterances=300)
    train = set(SplitSpeech(source, "train").utterance_ids())
    validation = set(SplitSpeech(source, "validation").utterance_ids())
    assert train and validation and train.isdisjoint(validation)
    with pytest.raises(HearmaskError, match="unknown split"):
        SplitSpeech(source, "dev")


def test_combined_sources_keep_ids_unique_and_dispatch_loads(make_fake_speech):
    first, second = make_fake_speech(5, name="a"), make_fake_speech(7, name="b")
    combined = CombinedSpeech([first, second])
    assert len(combined) == 12
    np.testing.assert_array_equal(combined.load("b/003"), second.load("b/003"))
    with pytest.raises(HearmaskError, match="appears in two speech sources"):
        CombinedSpeech([first, make_fake_speech(5, name="a")]).utterance_ids()


@pytest.mark.slow
def test_all_training_prompts_decode_to_about_20_minutes_per_language(tmp_path):
    source = AsteriskSpeech(cache_dir=tmp_path, progress=False)
    summary = source.summary()
    for language in ("fr", "it", "ru"):
        assert summary[language]["minutes"] > 20.0, summary
        assert summary[language]["active_minutes"] > 18.0, summary
        # Only the few non-speech names and at most a handful of signal rejects are dropped.
        assert summary[language]["rejected_prompts"] - summary[language]["rejected_by_name"] <= 5, summary
    assert not any(is_non_speech_name(i.split("/", 1)[1]) for i in source.utterance_ids())
