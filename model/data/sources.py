"""What every speech source shares: the utterance type, the source interface, splits.

A speech source is a fixed, ordered collection of utterances addressed by id. Ids are
globally unique because each starts with the source's prefix (``asterisk-fr/…``,
``flite/…``, ``espeak/…``, ``pocketsphinx/…``, ``folder-<name>/…``).

Splits are decided by the id alone (a salted SHA-256 mapped to [0, 1)), so they are
deterministic, need no stored list, never overlap, and stay stable when a source grows:
an utterance never moves between train, validation and test.

Sources marked ``evaluation_only`` (the English/Spanish asterisk prompts, the pocketsphinx
clips) are never split for training: they only give a ``"test"`` view, holding all of
their utterances.
"""

from __future__ import annotations

import abc
import hashlib
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError

SPLITS = ("train", "validation", "test")
DEFAULT_VALIDATION_FRACTION = 0.05
DEFAULT_TEST_FRACTION = 0.05
# Changing the salt reshuffles every split; it is versioned so that never happens by accident.
_SPLIT_SALT = "hearmask-split-v1:"


@dataclass(frozen=True)
class Utterance:
    """One utterance: ``audio`` is float32 mono, shape ``(num_samples,)``, at ``sample_rate_hz``."""

    utterance_id: str
    audio: np.ndarray
    source_name: str
    sample_rate_hz: int = 16000


class SpeechSource(abc.ABC):
    """An ordered, finite collection of mono float32 16 kHz utterances, addressed by id."""

    #: Short name, used in manifests (e.g. ``"asterisk"``, ``"flite"``).
    name: str = "speech"
    #: True for material reserved for independent evaluation: training code refuses it.
    evaluation_only: bool = False

    @abc.abstractmethod
    def utterance_ids(self) -> tuple[str, ...]:
        """All utterance ids, in a fixed order."""

    @abc.abstractmethod
    def load(self, utterance_id: str) -> np.ndarray:
        """The audio of ``utterance_id``: float32, shape ``(num_samples,)``, 16 kHz."""

    def __len__(self) -> int:
        return len(self.utterance_ids())

    def __iter__(self) -> Iterator[Utterance]:
        for utterance_id in self.utterance_ids():
            yield Utterance(utterance_id, self.load(utterance_id), self.name)


def split_position(utterance_id: str) -> float:
    """Where ``utterance_id`` falls in [0, 1): a salted SHA-256 of the id, uniform in practice."""
    digest = hashlib.sha256((_SPLIT_SALT + utterance_id).encode("utf-8")).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    each_valid = 0.0 <= validation_fraction < 1.0 and 0.0 <= test_fraction < 1.0
    if not (each_valid and validation_fraction + test_fraction < 1.0):
        raise HearmaskError(
            f"split fractions validation={validation_fraction}, test={test_fraction} are invalid; "
            "each must be in [0, 1) and their sum below 1"
        )


def split_of(
    utterance_id: str,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> str:
    """The split (``"train"``, ``"validation"`` or ``"test"``) that ``utterance_id`` belongs to."""
    _check_fractions(validation_fraction, test_fraction)
    position = split_position(utterance_id)
    if position < test_fraction:
        return "test"
    if position < test_fraction + validation_fraction:
        return "validation"
    return "train"


def split_ids(
    utterance_ids: Sequence[str],
    split: str,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> tuple[str, ...]:
    """The ids of ``utterance_ids`` in ``split``, order kept."""
    if split not in SPLITS:
        raise HearmaskError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return tuple(i for i in utterance_ids if split_of(i, validation_fraction, test_fraction) == split)


class SplitSpeech(SpeechSource):
    """The utterances of ``source`` that fall in ``split``.

    For an ``evaluation_only`` source only ``split="test"`` is accepted, and it holds every
    utterance (the whole source is held out).
    """

    def __init__(
        self,
        source: SpeechSource,
        split: str,
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        test_fraction: float = DEFAULT_TEST_FRACTION,
    ) -> None:
        if split not in SPLITS:
            raise HearmaskError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if source.evaluation_only and split != "test":
            raise HearmaskError(
                f"speech source {source.name!r} is reserved for independent evaluation; "
                f"it cannot give a {split!r} split (only 'test')"
            )
        _check_fractions(validation_fraction, test_fraction)
        self.source = source
        self.split = split
        self.name = source.name
        self.evaluation_only = source.evaluation_only
        self._validation_fraction = validation_fraction
        self._test_fraction = test_fraction
        self._ids: tuple[str, ...] | None = None

    def utterance_ids(self) -> tuple[str, ...]:
        if self._ids is None:
            all_ids = self.source.utterance_ids()
            if self.source.evaluation_only:
                self._ids = tuple(all_ids)
            else:
                self._ids = split_ids(all_ids, self.split, self._validation_fraction, self._test_fraction)
        return self._ids

    def load(self, utterance_id: str) -> np.ndarray:
        return self.source.load(utterance_id)


class CombinedSpeech(SpeechSource):
    """Several sources seen as one; ids stay unique because each carries its source prefix."""

    def __init__(self, sources: Sequence[SpeechSource]) -> None:
        if not sources:
            raise HearmaskError("CombinedSpeech needs at least one speech source; got none")
        self.sources = tuple(sources)
        self.name = "+".join(source.name for source in self.sources)
        self.evaluation_only = any(source.evaluation_only for source in self.sources)
        self._owner: dict[str, SpeechSource] | None = None

    def _owners(self) -> dict[str, SpeechSource]:
        if self._owner is None:
            owner: dict[str, SpeechSource] = {}
            for source in self.sources:
                for utterance_id in source.utterance_ids():
                    if utterance_id in owner:
                        raise HearmaskError(f"utterance id {utterance_id!r} appears in two speech sources")
                    owner[utterance_id] = source
            self._owner = owner
        return self._owner

    def utterance_ids(self) -> tuple[str, ...]:
        return tuple(self._owners())

    def load(self, utterance_id: str) -> np.ndarray:
        try:
            source = self._owners()[utterance_id]
        except KeyError:
            raise HearmaskError(f"unknown utterance id {utterance_id!r} in {self.name}") from None
        return source.load(utterance_id)


def require_program(program: str, debian_package: str) -> str:
    """Return the path of ``program``, or raise naming the Debian package that provides it."""
    path = shutil.which(program)
    if path is None:
        raise HearmaskError(
            f"the program {program!r} was not found on PATH; "
            f"install the Debian package with: sudo apt install {debian_package}"
        )
    return path


def draw_speech_segment(
    source: SpeechSource,
    num_samples: int,
    rng: np.random.Generator,
    *,
    max_gap_samples: int = 4800,
    max_utterances: int = 64,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A ``num_samples`` stretch of speech made of random utterances of ``source``.

    Utterances are drawn uniformly (with replacement) and joined with gaps of digital
    silence of 0..``max_gap_samples`` (default 0.3 s at 16 kHz), until the total exceeds the
    first utterance's random start offset plus ``num_samples``. The segment starts at that
    offset, inside the first utterance, so it always begins with speech.

    Returns:
        ``(audio float32 (num_samples,), ids of the utterances used, in order)``.
    """
    utterance_ids = source.utterance_ids()
    if not utterance_ids:
        raise HearmaskError(f"speech source {source.name!r} holds no utterances")
    pieces: list[np.ndarray] = []
    used: list[str] = []
    total = 0
    start = 0
    while len(used) < max_utterances:
        utterance_id = utterance_ids[int(rng.integers(len(utterance_ids)))]
        audio = source.load(utterance_id)
        if not used:
            start = int(rng.integers(max(1, audio.size // 2)))  # keep most of the first utterance
        else:
            gap = int(rng.integers(max_gap_samples + 1))
            pieces.append(np.zeros(gap, dtype=np.float32))
            total += gap
        pieces.append(audio.astype(np.float32, copy=False))
        used.append(utterance_id)
        total += audio.size
        if total >= start + num_samples:
            break
    joined = np.concatenate(pieces)
    segment = np.zeros(num_samples, dtype=np.float32)
    available = joined[start : start + num_samples]
    segment[: available.size] = available
    return segment, tuple(used)
