"""Speech sources for training, validation and evaluation (all offline, from Debian packages).

Every source yields mono float32 16 kHz utterances with a globally unique id (see
:mod:`hearmask.model.data.sources` for the interface and the hash-based splits):

- :class:`AsteriskSpeech`: real studio speech, fr/it/ru for training; en/es only with
  ``evaluation_only=True``.
- :class:`FliteSpeech`, :class:`EspeakSpeech`: synthetic speech, seeded and cached.
- :class:`PocketsphinxSpeech`: the LibriVox/AN4 clips of ``pocketsphinx-testdata``, for
  tests and evaluation only.
- User folders: :class:`hearmask.model.data.corpora.WavFolder`.
"""

from __future__ import annotations

from pathlib import Path

from hearmask.errors import HearmaskError
from hearmask.model.data.asterisk import (
    ASTERISK_SOUNDS_DIR,
    EVALUATION_LANGUAGES,
    TRAINING_LANGUAGES,
    AsteriskSpeech,
    PromptFilter,
)
from hearmask.model.data.corpora import WavFolder
from hearmask.model.data.sources import (
    SPLITS,
    CombinedSpeech,
    SpeechSource,
    SplitSpeech,
    Utterance,
    split_ids,
    split_of,
)
from hearmask.model.data.tts import EspeakSpeech, FliteSpeech

POCKETSPHINX_DATA_DIR = Path("/usr/share/pocketsphinx/test/data")

__all__ = [
    "ASTERISK_SOUNDS_DIR", "EVALUATION_LANGUAGES", "POCKETSPHINX_DATA_DIR", "SPLITS", "TRAINING_LANGUAGES",
    "AsteriskSpeech", "CombinedSpeech", "EspeakSpeech", "FliteSpeech", "PocketsphinxSpeech", "PromptFilter",
    "SpeechSource", "SplitSpeech", "Utterance", "split_ids", "split_of",
]


class PocketsphinxSpeech(WavFolder):
    """The 16 kHz wav clips of Debian's ``pocketsphinx-testdata`` (LibriVox and AN4 "cards").

    Reserved for tests and evaluation (``evaluation_only``): 10 clips, about 34 s of real
    English speech from other speakers than any training source.
    Ids: ``pocketsphinx/<folder>/<name>.wav``.
    """

    evaluation_only = True

    def __init__(self, data_dir: str | Path = POCKETSPHINX_DATA_DIR) -> None:
        data_dir = Path(data_dir)
        if not (data_dir.is_dir() and any(data_dir.rglob("*.wav"))):
            raise HearmaskError(f"no pocketsphinx test clips (*.wav) in {data_dir}; install them with: "
                                "sudo apt install pocketsphinx-testdata")
        super().__init__(data_dir, name="pocketsphinx", role="pocketsphinx test clip")
