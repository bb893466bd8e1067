"""The training-time data stream: fixed-length (clean, noisy) segments, a pure function of
``(seed, index)``.

``stream.at(index)`` draws everything from generators seeded with ``(seed, index)`` (one
independent child generator per stage: speech, augmentation, noise, mixing), so a resumed
run that restarts at index ``k`` sees exactly the examples it would have seen, and adding
a stage's random draws never shifts another stage.

Per example:

1. a speech source (weights ``source_weights``, default equal), then a segment of its
   utterances in the chosen split (:func:`~hearmask.model.data.sources.draw_speech_segment`);
2. augmentation (tilt, EQ, reverberation; :mod:`~hearmask.model.data.augment`). The
   clean target is the augmented (possibly reverberant) speech: the model is taught to
   remove noise, not reverberation;
3. a noise kind from ``noise_kinds`` (``"recorded"`` draws from ``noise_recordings``);
   babble and speech-shaped noise are made from the same split of the training speech;
4. a mix at an SNR and active level drawn uniformly from the ranges (:func:`~hearmask.model.data.mixer.mix`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ
from hearmask.model.data.augment import AugmentConfig, augment_speech
from hearmask.model.data.mixer import (
    DEFAULT_LEVEL_RANGE_DBFS,
    DEFAULT_SNR_RANGE_DB,
    fit_noise_length,
    mix,
    speech_activity_mask,
)
from hearmask.model.data.noise import NOISE_KINDS, make_noise
from hearmask.model.data.sources import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VALIDATION_FRACTION,
    CombinedSpeech,
    SpeechSource,
    SplitSpeech,
    draw_speech_segment,
)

RECORDED_NOISE_KIND = "recorded"
_MAX_SEGMENT_DRAWS = 16


@dataclass(frozen=True)
class TrainingExample:
    """One example: ``clean``, ``noisy`` and ``noise`` are float32 ``(segment_samples,)``.

    The rest describes how it was made (for manifests): the speech source name and the
    utterances used, the noise kind (and recording id for ``"recorded"``), SNR, active
    level, peak-protection gain and the augmentation applied.
    """

    index: int
    clean: np.ndarray
    noisy: np.ndarray
    noise: np.ndarray
    speech_source: str
    utterance_ids: tuple[str, ...]
    noise_kind: str
    noise_id: str | None
    snr_db: float
    level_dbfs: float
    peak_gain_db: float
    augmentation: dict

    def describe(self) -> dict:
        """Everything but the audio, as plain JSON."""
        return {
            "index": self.index, "speech_source": self.speech_source, "utterance_ids": list(self.utterance_ids),
            "noise_kind": self.noise_kind, "noise_id": self.noise_id, "snr_db": self.snr_db,
            "level_dbfs": self.level_dbfs, "peak_gain_db": self.peak_gain_db, "augmentation": self.augmentation,
        }


class TrainingMixtureStream:
    """Deterministic, indexable stream of training mixtures.

    Args:
        speech_sources: training speech (e.g. ``[AsteriskSpeech(), FliteSpeech(), EspeakSpeech()]``
            or a :class:`~hearmask.model.data.corpora.WavFolder`). Evaluation-only sources are refused.
        seed: non-negative integer; with ``index`` it fixes each example.
        segment_seconds: length of every example.
        snr_range_db: SNR drawn uniformly per example.
        level_range_dbfs: active speech level drawn uniformly per example.
        noise_kinds: kinds drawn uniformly; ``"recorded"`` needs ``noise_recordings``.
        noise_recordings: a source of noise recordings (e.g. ``CleanNoiseCorpus.noise``).
        augment: speech augmentation settings.
        split: ``"train"`` or ``"validation"`` (hash split of utterance ids; never overlap).
        source_weights: relative probability of each speech source (default equal).
    """

    def __init__(
        self,
        speech_sources: Sequence[SpeechSource],
        seed: int,
        segment_seconds: float = 4.0,
        snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB,
        *,
        level_range_dbfs: tuple[float, float] = DEFAULT_LEVEL_RANGE_DBFS,
        noise_kinds: Sequence[str] = NOISE_KINDS,
        noise_recordings: SpeechSource | None = None,
        augment: AugmentConfig = AugmentConfig(),
        split: str = "train",
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        source_weights: Sequence[float] | None = None,
        sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
    ) -> None:
        if not speech_sources:
            raise HearmaskError("TrainingMixtureStream needs at least one speech source; got none")
        for source in speech_sources:
            if source.evaluation_only:
                raise HearmaskError(
                    f"speech source {source.name!r} is reserved for independent evaluation and cannot be "
                    "used for training or validation"
                )
        if split not in ("train", "validation"):
            raise HearmaskError(f"split {split!r} is not a training split; expected 'train' or 'validation'")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise HearmaskError(f"seed={seed!r}; expected a non-negative integer")
        if not (math.isfinite(segment_seconds) and segment_seconds > 0.0):
            raise HearmaskError(f"segment_seconds={segment_seconds}; expected a positive duration")
        for label, (low, high) in (("SNR range (dB)", snr_range_db), ("level range (dBFS)", level_range_dbfs)):
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise HearmaskError(f"{label} ({low}, {high}) is invalid; expected finite low <= high")
        noise_kinds = tuple(noise_kinds)
        known_kinds = NOISE_KINDS + (RECORDED_NOISE_KIND,)
        unknown = [kind for kind in noise_kinds if kind not in known_kinds]
        if not noise_kinds or unknown:
            raise HearmaskError(f"noise kinds {unknown or list(noise_kinds)} are not accepted; "
                                f"expected some of {', '.join(known_kinds)}")
        if RECORDED_NOISE_KIND in noise_kinds and noise_recordings is None:
            raise HearmaskError("noise kind 'recorded' needs noise_recordings (a folder of noise files)")
        weights = np.ones(len(speech_sources)) if source_weights is None else np.asarray(source_weights, dtype=float)
        if weights.shape != (len(speech_sources),) or np.any(weights < 0) or weights.sum() <= 0:
            raise HearmaskError(f"source_weights {list(weights)} must be {len(speech_sources)} non-negative "
                                "numbers with a positive sum")

        self.seed = int(seed)
        self.segment_seconds = float(segment_seconds)
        self.sample_rate_hz = int(sample_rate_hz)
        self.segment_samples = max(1, int(round(segment_seconds * sample_rate_hz)))
        self.snr_range_db = (float(snr_range_db[0]), float(snr_range_db[1]))
        self.level_range_dbfs = (float(level_range_dbfs[0]), float(level_range_dbfs[1]))
        self.noise_kinds = noise_kinds
        self.noise_recordings = noise_recordings
        self.augment = augment
        self.split = split
        self.sources = tuple(SplitSpeech(s, split, validation_fraction, test_fraction) for s in speech_sources)
        self.source_probabilities = weights / weights.sum()
        for source in self.sources:
            if len(source) == 0:
                raise HearmaskError(f"speech source {source.name!r} has no utterances in the {split!r} split")
        # Babble and speech-shaped noise come from the same split, never from held-out speech.
        self._babble_source = CombinedSpeech(self.sources) if len(self.sources) > 1 else self.sources[0]

    def at(self, index: int) -> TrainingExample:
        """Example ``index`` (>= 0): a pure function of ``(seed, index)`` and the sources' content."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise HearmaskError(f"index={index!r}; expected a non-negative integer")
        speech_rng, augment_rng, noise_rng, mix_rng = (
            np.random.default_rng(child) for child in np.random.SeedSequence([self.seed, int(index)]).spawn(4)
        )
        source_index = int(speech_rng.choice(len(self.sources), p=self.source_probabilities))
        source = self.sources[source_index]
        for _ in range(_MAX_SEGMENT_DRAWS):
            speech, utterance_ids = draw_speech_segment(source, self.segment_samples, speech_rng)
            if np.any(speech_activity_mask(speech, self.sample_rate_hz)):
                break  # A very short segment may fall in a pause: draw again (same generator).
        else:
            raise HearmaskError(f"no active speech in {_MAX_SEGMENT_DRAWS} segments of {self.segment_seconds} s "
                                f"from {source.name!r}; use longer segments")
        speech, augmentation = augment_speech(speech, augment_rng, self.augment, self.sample_rate_hz)

        noise_kind = self.noise_kinds[int(noise_rng.integers(len(self.noise_kinds)))]
        noise_id = None
        if noise_kind == RECORDED_NOISE_KIND:
            assert self.noise_recordings is not None
            recording_ids = self.noise_recordings.utterance_ids()
            noise_id = recording_ids[int(noise_rng.integers(len(recording_ids)))]
            noise = fit_noise_length(self.noise_recordings.load(noise_id), self.segment_samples, noise_rng,
                                     self.sample_rate_hz)
        else:
            noise = make_noise(noise_kind, self.segment_samples, self.sample_rate_hz, noise_rng,
                               speech_source=self._babble_source)

        snr_db = float(mix_rng.uniform(*self.snr_range_db))
        level_dbfs = float(mix_rng.uniform(*self.level_range_dbfs))
        mixture = mix(speech, noise, snr_db, level_dbfs, sample_rate_hz=self.sample_rate_hz)
        return TrainingExample(
            index=int(index), clean=mixture.clean, noisy=mixture.noisy, noise=mixture.noise,
            speech_source=source.name, utterance_ids=utterance_ids, noise_kind=noise_kind, noise_id=noise_id,
            snr_db=mixture.snr_db, level_dbfs=mixture.level_dbfs, peak_gain_db=mixture.peak_gain_db,
            augmentation=augmentation,
        )

    def iterate(self, start_index: int = 0, stop_index: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(clean, noisy)`` for indices ``start_index, start_index + 1, …`` (up to ``stop_index``)."""
        index = start_index
        while stop_index is None or index < stop_index:
            example = self.at(index)
            yield example.clean, example.noisy
            index += 1

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.iterate(0)
