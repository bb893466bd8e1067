"""Speech packs: the embedded training speech as one folder of FLAC files (``hearmask data pack``).

Why: the embedded speech comes from Debian packages (asterisk prompts) and TTS programs
(flite, espeak) that a rented GPU machine does not have. A pack holds what each source's
``load`` returned, so training there sees the same utterances under the same ids, and
therefore the same train/validation/test hash split (:func:`~hearmask.model.data.sources.split_of`):
a pack can never leak held-out speech into training, because test utterances are not
written at all.

Layout of a pack folder::

    pack.json                      format, sources, utterance ids and files, parameters
    <source>/<nnnnnn>.flac         16 kHz mono 16-bit FLAC, one per utterance

Samples are stored as 16-bit PCM (lossless FLAC of the 16-bit values): a source's float32
audio comes back within half a 16-bit step (1.5e-5, −96 dBFS) of what ``load`` gave.
``train_fraction`` keeps a deterministic subset of the training utterances (to fit a
transfer limit); validation utterances are always all kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from hearmask import __version__
from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ
from hearmask.model.data.cache import atomic_write_json
from hearmask.model.data.sources import SpeechSource, split_of

PACK_FORMAT = "hearmask-speech-pack-v1"
PACK_INDEX_NAME = "pack.json"
PACKED_SPLITS = ("train", "validation")
# A salt of its own, so the kept subset is independent of the split hash.
_SUBSET_SALT = "hearmask-pack-subset-v1:"


def _subset_position(utterance_id: str) -> float:
    digest = hashlib.sha256((_SUBSET_SALT + utterance_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def write_speech_pack(sources: Sequence[SpeechSource], out_dir: str | os.PathLike[str], *,
                      train_fraction: float = 1.0, progress: bool = True) -> dict:
    """Write the train and validation utterances of ``sources`` to ``out_dir``; returns the index.

    Args:
        sources: training speech sources (evaluation-only sources are refused).
        out_dir: a new or empty folder.
        train_fraction: in (0, 1]; the share of training utterances kept (by a salted hash of
            the id, so the subset is deterministic and nested: a smaller fraction keeps a subset
            of a larger one's utterances).
    """
    if not 0.0 < train_fraction <= 1.0:
        raise HearmaskError(f"train_fraction {train_fraction} is not accepted; expected a value in (0, 1]")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise HearmaskError(f"pack folder {out_dir} exists and is not an empty folder; choose a new folder")
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise HearmaskError(f"speech sources need distinct names in a pack; got {names}")
    chosen = []
    for source in sources:
        if source.evaluation_only:
            raise HearmaskError(f"speech source {source.name!r} is reserved for evaluation; it cannot be packed "
                                "for training")
        for utterance_id in source.utterance_ids():
            split = split_of(utterance_id)
            if split == "validation" or split == "train" and _subset_position(utterance_id) < train_fraction:
                chosen.append((source, utterance_id, split))
    index = {"format": PACK_FORMAT, "hearmask_version": __version__, "sample_rate_hz": MODEL_SAMPLE_RATE_HZ,
             "train_fraction": train_fraction, "sources": {name: [] for name in names}}
    seconds = 0.0
    for number, (source, utterance_id, split) in enumerate(
            tqdm(chosen, desc="pack", unit="utt", disable=not progress, leave=False)):
        audio = np.clip(source.load(utterance_id), -1.0, 32767 / 32768)
        relative = f"{source.name}/{number:06d}.flac"
        (out_dir / source.name).mkdir(parents=True, exist_ok=True)
        sf.write(out_dir / relative, np.round(audio * 32768.0).astype(np.int16), MODEL_SAMPLE_RATE_HZ,
                 format="FLAC", subtype="PCM_16")
        index["sources"][source.name].append({"utterance_id": utterance_id, "file": relative, "split": split})
        seconds += audio.size / MODEL_SAMPLE_RATE_HZ
    index["seconds"] = round(seconds, 2)
    # Written last: a folder without it is an interrupted pack.
    atomic_write_json(out_dir / PACK_INDEX_NAME, index)
    return index


class PackedSpeech(SpeechSource):
    """One source of a pack: the original source's name and ids, audio read from FLAC."""

    def __init__(self, folder: Path, name: str, entries: Sequence[dict]) -> None:
        self.folder = folder
        self.name = name
        self._file_by_id = {}
        for entry in entries:
            relative = Path(str(entry.get("file", "")))
            # Only files inside the pack are read, whatever the index says.
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise HearmaskError(f"pack {folder}: file {str(relative)!r} of {entry.get('utterance_id')!r} is not "
                                    "a relative path inside the pack")
            self._file_by_id[str(entry["utterance_id"])] = relative

    def utterance_ids(self) -> tuple[str, ...]:
        return tuple(self._file_by_id)

    def load(self, utterance_id: str) -> np.ndarray:
        try:
            relative = self._file_by_id[utterance_id]
        except KeyError:
            raise HearmaskError(f"unknown utterance id {utterance_id!r} in pack {self.folder}") from None
        path = self.folder / relative
        try:
            audio, rate_hz = sf.read(path, dtype="float32")
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            raise HearmaskError(f"pack file {path} is unreadable ({error}); rebuild the pack") from None
        if rate_hz != MODEL_SAMPLE_RATE_HZ or audio.ndim != 1:
            raise HearmaskError(f"pack file {path} is {rate_hz} Hz with shape {audio.shape}; a pack holds "
                                f"{MODEL_SAMPLE_RATE_HZ} Hz mono files")
        return audio


def read_speech_pack(folder: str | os.PathLike[str], names: Sequence[str] | None = None) -> list[PackedSpeech]:
    """The sources of the pack in ``folder`` (all, or those in ``names``, in that order)."""
    folder = Path(folder)
    path = folder / PACK_INDEX_NAME
    if not path.is_file():
        raise HearmaskError(f"{folder} is not a speech pack: {PACK_INDEX_NAME} is missing (an interrupted "
                            "`hearmask data pack` leaves none)")
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HearmaskError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(index, dict) or index.get("format") != PACK_FORMAT or not isinstance(index.get("sources"), dict):
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise HearmaskError(f"{path}: format {found!r} is not accepted; expected {PACK_FORMAT!r}")
    available = index["sources"]
    wanted = list(available) if names is None else list(names)
    missing = [name for name in wanted if name not in available]
    if missing:
        raise HearmaskError(f"pack {folder} has no source(s) {missing}; it holds {sorted(available)}")
    return [PackedSpeech(folder, name, available[name]) for name in wanted]
