"""Write a reproducible noisy-speech dataset to disk (``hearmask data synth``).

Layout of ``out_dir``::

    clean/000000.wav   noise/000000.wav   noisy/000000.wav   …   manifest.json

Every item is one :class:`~hearmask.model.data.stream.TrainingMixtureStream` example
(``segment_seconds`` long, ``noisy = clean + noise`` sample for sample), so the files are a
pure function of the seed and the parameters: the same seed gives byte-identical files.

Files are 16 kHz mono 32-bit float wav (``FLOAT``): the training targets are exact (no
16-bit rounding) and a sum that peaks above full scale cannot wrap around. The mixer
already keeps peaks below 0.99, so the files also convert to PCM without clipping.

``manifest.json`` holds the dataset parameters, the hearmask version, and per item its id,
files, index and seed, speech source and utterance ids, noise kind, SNR, active level,
peak-protection gain and augmentation. It is written last: a folder without it is an
interrupted run.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scipy.io import wavfile
from tqdm import tqdm

from hearmask import __version__
from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ
from hearmask.model.data.augment import AugmentConfig
from hearmask.model.data.cache import atomic_write_json
from hearmask.model.data.mixer import DEFAULT_LEVEL_RANGE_DBFS, DEFAULT_SNR_RANGE_DB
from hearmask.model.data.noise import NOISE_KINDS
from hearmask.model.data.sources import SpeechSource
from hearmask.model.data.stream import TrainingMixtureStream

DATASET_FORMAT = "hearmask-dataset-v1"
WAV_SUBTYPE = "FLOAT"
SPEECH_SOURCE_NAMES = ("real", "flite", "espeak")
MANIFEST_NAME = "manifest.json"
_SIGNAL_FOLDERS = ("clean", "noise", "noisy")
# The synthetic sources' utterance lists are fixed (seed 0), so every dataset seed shares
# one cache of synthesised speech; the dataset seed picks which utterances are used.
SYNTHETIC_SOURCE_SEED = 0
SYNTHETIC_NUM_UTTERANCES = 400


@dataclass(frozen=True)
class SynthConfig:
    """What ``hearmask data synth`` builds; all of it is recorded in the manifest."""

    minutes: float
    seed: int = 0
    snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB
    level_range_dbfs: tuple[float, float] = DEFAULT_LEVEL_RANGE_DBFS
    #: Any of "real" (asterisk fr/it/ru), "flite", "espeak".
    sources: tuple[str, ...] = SPEECH_SOURCE_NAMES
    segment_seconds: float = 4.0
    split: str = "train"
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def num_items(self) -> int:
        """Items needed to reach ``minutes`` (rounded up)."""
        return max(1, math.ceil(self.minutes * 60.0 / self.segment_seconds - 1e-9))


def build_speech_sources(names: Sequence[str], cache_dir: str | os.PathLike[str] | None = None,
                         progress: bool = True) -> list[SpeechSource]:
    """The training speech sources for ``names`` (``real``, ``flite``, ``espeak``)."""
    from hearmask.model.data.speech import AsteriskSpeech, EspeakSpeech, FliteSpeech

    names = tuple(names)
    unknown = [name for name in names if name not in SPEECH_SOURCE_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        raise HearmaskError(f"speech sources {list(names)} are not accepted; expected distinct names "
                            f"from {', '.join(SPEECH_SOURCE_NAMES)}")
    sources: list[SpeechSource] = []
    for name in names:
        if name == "real":
            sources.append(AsteriskSpeech(cache_dir=cache_dir, progress=progress))
        elif name == "flite":
            sources.append(FliteSpeech(num_utterances=SYNTHETIC_NUM_UTTERANCES, seed=SYNTHETIC_SOURCE_SEED,
                                       cache_dir=cache_dir))
        else:
            sources.append(EspeakSpeech(num_utterances=SYNTHETIC_NUM_UTTERANCES, seed=SYNTHETIC_SOURCE_SEED,
                                        cache_dir=cache_dir))
    return sources


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise HearmaskError(f"output path {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise HearmaskError(f"output folder {out_dir} is not empty; choose a new folder or pass --overwrite")
        # Remove only what a previous synth wrote, never anything else in the folder.
        for name in _SIGNAL_FOLDERS:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for name in _SIGNAL_FOLDERS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)


def synthesize_dataset(out_dir: str | os.PathLike[str], config: SynthConfig, *,
                       cache_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
                       progress: bool = True) -> dict:
    """Write the dataset of ``config`` into ``out_dir``; return a summary (JSON-ready).

    The summary holds ``out_dir``, ``manifest``, ``num_items``, ``total_minutes``,
    ``minutes_by_source`` and ``items_by_noise_kind``.
    """
    if not (math.isfinite(config.minutes) and config.minutes > 0.0):
        raise HearmaskError(f"minutes={config.minutes}; expected a positive number of minutes")
    out_dir = Path(out_dir)
    sources = build_speech_sources(config.sources, cache_dir, progress)
    stream = TrainingMixtureStream(
        sources, config.seed, config.segment_seconds, config.snr_range_db,
        level_range_dbfs=config.level_range_dbfs, noise_kinds=config.noise_kinds, augment=config.augment,
        split=config.split,
    )
    _prepare_out_dir(out_dir, overwrite)
    items = []
    for index in tqdm(range(config.num_items()), desc="synthesising mixtures", unit="item",
                      disable=not progress, delay=2.0):
        example = stream.at(index)
        item_id = f"{index:06d}"
        files = {name: f"{name}/{item_id}.wav" for name in _SIGNAL_FOLDERS}
        for name, signal in (("clean", example.clean), ("noise", example.noise), ("noisy", example.noisy)):
            # scipy writes float wav without libsndfile's time-stamped PEAK chunk, so equal
            # signals give byte-identical files whenever they are written.
            wavfile.write(out_dir / files[name], MODEL_SAMPLE_RATE_HZ, signal.astype("float32"))
        items.append({"id": item_id, "seed": config.seed, "files": files, **example.describe()})

    segment_minutes = stream.segment_samples / MODEL_SAMPLE_RATE_HZ / 60.0
    minutes_by_source = Counter()
    for item in items:
        minutes_by_source[item["speech_source"]] += segment_minutes
    manifest = {
        "format": DATASET_FORMAT,
        "hearmask_version": __version__,
        "sample_rate_hz": MODEL_SAMPLE_RATE_HZ,
        "wav_subtype": WAV_SUBTYPE,
        "seed": config.seed,
        "minutes_requested": config.minutes,
        "num_items": len(items),
        "total_minutes": len(items) * segment_minutes,
        "segment_seconds": config.segment_seconds,
        "segment_samples": stream.segment_samples,
        "snr_range_db": list(config.snr_range_db),
        "level_range_dbfs": list(config.level_range_dbfs),
        "sources": list(config.sources),
        "synthetic_sources": {"seed": SYNTHETIC_SOURCE_SEED, "num_utterances": SYNTHETIC_NUM_UTTERANCES},
        "split": config.split,
        "noise_kinds": list(config.noise_kinds),
        "augment": config.augment.to_dict(),
        "items": items,
    }
    atomic_write_json(out_dir / MANIFEST_NAME, manifest)
    return {
        "out_dir": str(out_dir),
        "manifest": str(out_dir / MANIFEST_NAME),
        "num_items": len(items),
        "total_minutes": manifest["total_minutes"],
        "minutes_by_source": dict(sorted(minutes_by_source.items())),
        "items_by_noise_kind": dict(sorted(Counter(item["noise_kind"] for item in items).items())),
    }
