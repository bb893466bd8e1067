"""Speech packs: same ids and splits, audio within half a 16-bit step, no test speech, clear errors."""

import json

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.model.data.pack import read_speech_pack, write_speech_pack
from hearmask.model.data.sources import SpeechSource, split_of
from hearmask.model.data.stream import TrainingMixtureStream


class ToneSpeech(SpeechSource):
    """Deterministic float 'utterances' (not on the 16-bit grid), 200 ids: every split is populated."""

    def __init__(self, name):
        self.name = name

    def utterance_ids(self):
        return tuple(f"{self.name}/u{i:03d}" for i in range(200))

    def load(self, utterance_id):
        number = int(utterance_id.rsplit("u", 1)[1])
        t = np.arange(4000 + 10 * number) / 16000
        return (0.3 * np.sin(2 * np.pi * (150 + number) * t) * (1 + np.sin(7 * t))).astype(np.float32) / 2


@pytest.fixture(scope="module")
def sources():
    return [ToneSpeech("tone-a"), ToneSpeech("tone-b")]


def test_pack_keeps_ids_splits_and_audio_and_never_test_speech(sources, tmp_path):
    write_speech_pack(sources, tmp_path / "pack", progress=False)
    packed = read_speech_pack(tmp_path / "pack")
    assert [p.name for p in packed] == ["tone-a", "tone-b"]
    for original, copy in zip(sources, packed):
        expected_ids = [i for i in original.utterance_ids() if split_of(i) != "test"]
        assert list(copy.utterance_ids()) == expected_ids
        assert len(expected_ids) < 200  # some test utterances existed and were left out
        for utterance_id in expected_ids[:20]:
            difference = np.abs(copy.load(utterance_id) - original.load(utterance_id))
            assert difference.max() <= 0.5 / 32768 + 1e-9
    # A stream over the pack draws the same segments as one over the sources (same ids, same split).
    a = TrainingMixtureStream(sources, 3, segment_seconds=0.2).at(7)
    b = TrainingMixtureStream(packed, 3, segment_seconds=0.2).at(7)
    assert a.utterance_ids == b.utterance_ids and a.noise_kind == b.noise_kind
    assert np.abs(a.clean - b.clean).max() < 1e-3


def test_train_fraction_keeps_a_nested_training_subset_and_all_validation(sources, tmp_path):
    write_speech_pack(sources, tmp_path / "half", train_fraction=0.5, progress=False)
    write_speech_pack(sources, tmp_path / "quarter", train_fraction=0.25, progress=False)
    half = set(read_speech_pack(tmp_path / "half", ["tone-a"])[0].utterance_ids())
    quarter = set(read_speech_pack(tmp_path / "quarter", ["tone-a"])[0].utterance_ids())
    validation = {i for i in sources[0].utterance_ids() if split_of(i) == "validation"}
    train_all = {i for i in sources[0].utterance_ids() if split_of(i) == "train"}
    assert validation <= quarter <= half
    assert 0.35 < len(half - validation) / len(train_all) < 0.65
    assert len(quarter - validation) < len(half - validation)


def test_bad_packs_and_arguments_give_clear_errors(sources, tmp_path):
    with pytest.raises(HearmaskError, match=r"train_fraction 0 is not accepted; expected a value in \(0, 1\]"):
        write_speech_pack(sources, tmp_path / "p0", train_fraction=0, progress=False)
    with pytest.raises(HearmaskError, match="pack.json is missing"):
        read_speech_pack(tmp_path)
    write_speech_pack(sources[:1], tmp_path / "p", train_fraction=0.1, progress=False)
    with pytest.raises(HearmaskError, match="not an empty folder"):
        write_speech_pack(sources[:1], tmp_path / "p", progress=False)
    with pytest.raises(HearmaskError, match=r"has no source\(s\) \['flite'\]; it holds \['tone-a'\]"):
        read_speech_pack(tmp_path / "p", ["flite"])
    index_path = tmp_path / "p" / "pack.json"
    index = json.loads(index_path.read_text())
    index["sources"]["tone-a"][0]["file"] = "../../etc/passwd"
    index_path.write_text(json.dumps(index))
    with pytest.raises(HearmaskError, match="not a relative path inside the pack"):
        read_speech_pack(tmp_path / "p")
    index_path.write_text(json.dumps({"format": "something-else", "sources": {}}))
    with pytest.raises(HearmaskError, match="format 'something-else' is not accepted"):
        read_speech_pack(tmp_path / "p")
