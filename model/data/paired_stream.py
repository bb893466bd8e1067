"""Training examples from paired noisy/clean folders (VoiceBank-DEMAND style).

The counterpart of :class:`~hearmask.model.data.stream.TrainingMixtureStream` for users
whose noisy recordings already exist: nothing is mixed, so the SNR is the corpus's own.
Example ``index`` is a pure function of ``(seed, index)`` and the folder contents, so
``--resume`` reproduces the data order exactly, as with the synthetic stream.

Per example: a pair is drawn, a ``segment_seconds`` window at a random offset is cut from
both files (the same samples), short pairs are zero-padded at the end, and both signals get
the same gain so the clean speech's active level is drawn uniformly from
``level_range_dbfs``. The level matters: the HLC objective is level dependent (the auditory
model compresses), so a corpus recorded at one level would otherwise teach one level.

Train/validation split: by the pair's relative path, with the same salted hash as the
speech sources (:func:`~hearmask.model.data.sources.split_of`); test-split pairs are never used.
"""

from __future__ import annotations

import math

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ
from hearmask.model.data.corpora import PairedCorpus
from hearmask.model.data.mixer import DEFAULT_LEVEL_RANGE_DBFS, active_speech_power, speech_activity_mask
from hearmask.model.data.sources import DEFAULT_TEST_FRACTION, DEFAULT_VALIDATION_FRACTION, split_of
from hearmask.model.data.stream import TrainingExample

PAIRED_NOISE_KIND = "paired"
_MAX_SEGMENT_DRAWS = 16


class PairedSegmentStream:
    """Deterministic, indexable stream of ``segment_seconds`` windows of paired recordings.

    ``at(index)`` returns a :class:`TrainingExample` whose ``noise`` is ``noisy - clean`` and
    whose ``snr_db`` is measured on the window (active speech power over noise power).
    """

    def __init__(
        self,
        corpus: PairedCorpus,
        seed: int,
        segment_seconds: float = 4.0,
        *,
        level_range_dbfs: tuple[float, float] = DEFAULT_LEVEL_RANGE_DBFS,
        split: str = "train",
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
    ) -> None:
        if split not in ("train", "validation"):
            raise HearmaskError(f"split {split!r} is not a training split; expected 'train' or 'validation'")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise HearmaskError(f"seed={seed!r}; expected a non-negative integer")
        if not (math.isfinite(segment_seconds) and segment_seconds > 0.0):
            raise HearmaskError(f"segment_seconds={segment_seconds}; expected a positive duration")
        low, high = level_range_dbfs
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise HearmaskError(f"level range (dBFS) ({low}, {high}) is invalid; expected finite low <= high")
        self.corpus = corpus
        self.seed = int(seed)
        self.sample_rate_hz = int(sample_rate_hz)
        self.segment_seconds = float(segment_seconds)
        self.segment_samples = max(1, int(round(segment_seconds * sample_rate_hz)))
        self.level_range_dbfs = (float(low), float(high))
        self.split = split
        ids = corpus.item_ids()
        self.positions = tuple(i for i, item_id in enumerate(ids)
                               if split_of(item_id, validation_fraction, test_fraction) == split)
        if not self.positions:
            raise HearmaskError(
                f"none of the {len(ids)} pairs in {corpus.noisy_dir} falls in the {split!r} split "
                f"(hash split by file name: validation {validation_fraction:.0%}, test {test_fraction:.0%}); "
                "add more pairs"
            )

    def __len__(self) -> int:
        """Pairs in this split."""
        return len(self.positions)

    def _window(self, noisy: np.ndarray, clean: np.ndarray, rng: np.random.Generator):
        length = self.segment_samples
        if clean.size <= length:
            pad = length - clean.size
            return np.pad(noisy, (0, pad)), np.pad(clean, (0, pad))
        start = int(rng.integers(0, clean.size - length + 1))
        return noisy[start : start + length], clean[start : start + length]

    def at(self, index: int) -> TrainingExample:
        """Example ``index`` (>= 0): a pure function of ``(seed, index)`` and the folders' content."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise HearmaskError(f"index={index!r}; expected a non-negative integer")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(index), 0x9A12ED]))
        for _ in range(_MAX_SEGMENT_DRAWS):
            item = self.corpus[self.positions[int(rng.integers(len(self.positions)))]]
            noisy, clean = self._window(item.noisy, item.clean, rng)
            if np.any(speech_activity_mask(clean, self.sample_rate_hz)):
                break  # a window in a pause teaches nothing about speech: draw again
        else:
            raise HearmaskError(f"no active speech in {_MAX_SEGMENT_DRAWS} windows of {self.segment_seconds} s "
                                f"from {self.corpus.clean_dir}; use longer segments or check the clean files")
        level_dbfs = float(rng.uniform(*self.level_range_dbfs))
        speech_power = active_speech_power(clean, self.sample_rate_hz)
        gain = 10.0 ** (level_dbfs / 20.0) / math.sqrt(speech_power)
        # One gain for both keeps the pair's SNR; a peak above full scale is scaled back (both).
        peak = float(max(np.max(np.abs(noisy)), np.max(np.abs(clean)))) * gain
        peak_gain_db = 0.0
        if peak > 1.0:
            peak_gain_db = -20.0 * math.log10(peak)
            gain /= peak
        noisy = (noisy * gain).astype(np.float32)
        clean = (clean * gain).astype(np.float32)
        noise = noisy - clean
        noise_power = float(np.mean(noise.astype(np.float64) ** 2))
        snr_db = math.inf if noise_power == 0.0 else 10.0 * math.log10(speech_power * gain**2 / noise_power)
        return TrainingExample(
            index=int(index), clean=clean, noisy=noisy, noise=noise, speech_source="paired",
            utterance_ids=(item.item_id,), noise_kind=PAIRED_NOISE_KIND, noise_id=item.item_id, snr_db=snr_db,
            level_dbfs=level_dbfs + peak_gain_db, peak_gain_db=peak_gain_db, augmentation={},
        )
