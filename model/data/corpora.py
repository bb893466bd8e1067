"""User corpora: folders of audio files, checked up front with errors that name the file.

Two layouts:

- :class:`CleanNoiseCorpus`: a folder of clean speech plus a folder of noise, mixed on the
  fly at random SNRs (deterministic per ``(seed, index)``).
- :class:`PairedCorpus`: a folder of noisy files and a folder of clean files matched by
  relative path (VoiceBank-DEMAND style: ``noisy/p232_001.wav`` ↔ ``clean/p232_001.wav``).

Files are ``.wav`` or ``.flac``, found recursively and sorted. Any sample rate is resampled
to 16 kHz; multichannel files are mixed to mono by averaging the channels (see
:mod:`hearmask.model.data.audio`).

Each file's header is read when the folder is opened, so unreadable, empty (0 bytes, not
audio) and zero-length files are found before any training starts. They raise a
:class:`HearmaskError` naming the file, or, with ``skip_bad=True``, are skipped: one
``UserWarning`` says how many, and ``skipped_count`` / ``skipped`` hold the count and the
``(path, reason)`` list. Problems only visible in the samples (NaN) raise on load, naming
the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import read_mono
from hearmask.model.data.mixer import DEFAULT_SNR_RANGE_DB, Mixture, mix_random_snr
from hearmask.model.data.sources import SpeechSource

AUDIO_EXTENSIONS = (".wav", ".flac")
# Paired files whose durations differ by more than this are a mismatch, not resampling slack.
PAIR_DURATION_TOLERANCE_S = 0.01


@dataclass(frozen=True)
class SkippedFile:
    """A file left out with ``skip_bad=True``, and why."""

    path: Path
    reason: str


def _header_problem(path: Path) -> str | None:
    """None when ``path`` opens as audio with at least one sample, else the reason."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        size = path.stat().st_size if path.exists() else -1
        return "empty file (0 bytes)" if size == 0 else f"unreadable as audio ({error})"
    if info.frames <= 0:
        return "zero-length audio (no samples)"
    return None


def _audio_files(folder: Path, role: str) -> list[Path]:
    if not folder.is_dir():
        raise HearmaskError(f"{role} folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise HearmaskError(f"{role} folder {folder} holds no audio files; "
                            f"expected {' or '.join(AUDIO_EXTENSIONS)} files")
    return files


def _warn_skipped(skipped: list[SkippedFile], where: str) -> None:
    if skipped:
        first = skipped[0]
        warnings.warn(f"skipped {len(skipped)} bad audio file(s) in {where} (first: {first.path}: {first.reason})",
                      UserWarning, stacklevel=3)


class WavFolder(SpeechSource):
    """A folder of audio files as a speech (or noise) source.

    Args:
        folder: searched recursively for .wav/.flac files.
        name: source name for manifests (default ``folder-<folder name>``).
        skip_bad: skip bad files with a counted warning instead of raising.
        role: word used in messages (``"clean speech"``, ``"noise"`` …).

    Ids: ``<name>/<relative path>``.
    """

    def __init__(self, folder: str | os.PathLike[str], *, name: str | None = None, skip_bad: bool = False,
                 role: str = "audio") -> None:
        self.folder = Path(folder)
        self.name = name or f"folder-{self.folder.name}"
        self.skipped: list[SkippedFile] = []
        self._path_by_id: dict[str, Path] = {}
        for path in _audio_files(self.folder, role):
            problem = _header_problem(path)
            if problem is not None:
                if not skip_bad:
                    raise HearmaskError(f"{role} file {path}: {problem}; fix or remove it, or pass skip_bad=True")
                self.skipped.append(SkippedFile(path, problem))
                continue
            self._path_by_id[f"{self.name}/{path.relative_to(self.folder).as_posix()}"] = path
        _warn_skipped(self.skipped, str(self.folder))
        if not self._path_by_id:
            raise HearmaskError(f"{role} folder {self.folder} holds no usable audio files "
                                f"({len(self.skipped)} skipped as bad)")

    @property
    def skipped_count(self) -> int:
        """How many files were skipped as bad."""
        return len(self.skipped)

    def path_of(self, utterance_id: str) -> Path:
        """The file behind ``utterance_id``."""
        try:
            return self._path_by_id[utterance_id]
        except KeyError:
            raise HearmaskError(f"unknown id {utterance_id!r} in {self.folder}") from None

    def utterance_ids(self) -> tuple[str, ...]:
        return tuple(self._path_by_id)

    def load(self, utterance_id: str) -> np.ndarray:
        return read_mono(self.path_of(utterance_id))


class CleanNoiseCorpus:
    """Clean speech mixed on the fly with noise recordings.

    ``mixture(index)`` uses clean file ``index`` (sorted order) and a noise file, noise start,
    SNR and level drawn from a generator seeded with ``(seed, index)``: the same call always
    gives the same mixture. The noise is looped or cropped to the speech length.
    """

    def __init__(self, clean_dir: str | os.PathLike[str], noise_dir: str | os.PathLike[str], *,
                 skip_bad: bool = False, seed: int = 0,
                 snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB,
                 level_range_dbfs: tuple[float, float] | None = None) -> None:
        if seed < 0:
            raise HearmaskError(f"seed={seed}; expected a non-negative integer")
        self.clean = WavFolder(clean_dir, name="clean", skip_bad=skip_bad, role="clean speech")
        self.noise = WavFolder(noise_dir, name="noise", skip_bad=skip_bad, role="noise")
        self.seed = int(seed)
        self.snr_range_db = snr_range_db
        self.level_range_dbfs = level_range_dbfs

    @property
    def skipped_count(self) -> int:
        """Bad files skipped in both folders."""
        return self.clean.skipped_count + self.noise.skipped_count

    def __len__(self) -> int:
        return len(self.clean)

    def mixture(self, index: int) -> Mixture:
        """The mixture of clean file ``index`` (see the class docstring)."""
        clean_ids = self.clean.utterance_ids()
        if not 0 <= index < len(clean_ids):
            raise HearmaskError(f"index {index} is outside the corpus of {len(clean_ids)} clean files")
        rng = np.random.default_rng([self.seed, index])
        noise_ids = self.noise.utterance_ids()
        noise_id = noise_ids[int(rng.integers(len(noise_ids)))]
        speech = self.clean.load(clean_ids[index])
        noise = self.noise.load(noise_id)
        if not np.any(noise):
            raise HearmaskError(f"noise file {self.noise.path_of(noise_id)} is digital silence; expected noise")
        try:
            return mix_random_snr(speech, noise, rng, self.snr_range_db, self.level_range_dbfs)
        except HearmaskError as error:
            raise HearmaskError(f"clean file {self.clean.path_of(clean_ids[index])}: {error}") from error


@dataclass(frozen=True)
class PairedItem:
    """One noisy/clean pair, float32 16 kHz, equal lengths."""

    item_id: str
    noisy: np.ndarray
    clean: np.ndarray


class PairedCorpus:
    """Paired noisy/clean folders matched by relative path (VoiceBank-DEMAND style).

    A file without a partner, or a pair whose durations differ by more than 10 ms, raises
    naming the file(s); with ``skip_bad=True`` it is skipped and counted like a bad file.
    """

    def __init__(self, noisy_dir: str | os.PathLike[str], clean_dir: str | os.PathLike[str], *,
                 skip_bad: bool = False) -> None:
        self.noisy_dir, self.clean_dir = Path(noisy_dir), Path(clean_dir)
        noisy = {p.relative_to(self.noisy_dir).as_posix(): p for p in _audio_files(self.noisy_dir, "noisy")}
        clean = {p.relative_to(self.clean_dir).as_posix(): p for p in _audio_files(self.clean_dir, "clean")}
        self.skipped: list[SkippedFile] = []
        self._pairs: dict[str, tuple[Path, Path]] = {}

        def reject(path: Path, reason: str) -> None:
            if not skip_bad:
                raise HearmaskError(f"{path}: {reason}; fix or remove it, or pass skip_bad=True")
            self.skipped.append(SkippedFile(path, reason))

        for name in sorted(set(noisy) | set(clean)):
            if name not in clean:
                reject(noisy[name], f"noisy file has no clean partner {self.clean_dir / name}")
                continue
            if name not in noisy:
                reject(clean[name], f"clean file has no noisy partner {self.noisy_dir / name}")
                continue
            problems = [(path, _header_problem(path)) for path in (noisy[name], clean[name])]
            bad = [(path, problem) for path, problem in problems if problem is not None]
            if bad:
                reject(bad[0][0], bad[0][1])
                continue
            noisy_s = sf.info(noisy[name]).duration
            clean_s = sf.info(clean[name]).duration
            if abs(noisy_s - clean_s) > PAIR_DURATION_TOLERANCE_S:
                reject(noisy[name], f"duration {noisy_s:.3f} s differs from its clean partner "
                                    f"{clean[name]} ({clean_s:.3f} s)")
                continue
            self._pairs[name] = (noisy[name], clean[name])
        _warn_skipped(self.skipped, f"{self.noisy_dir} / {self.clean_dir}")
        if not self._pairs:
            raise HearmaskError(f"no usable noisy/clean pairs in {self.noisy_dir} and {self.clean_dir} "
                                f"({len(self.skipped)} skipped)")

    @property
    def skipped_count(self) -> int:
        """How many files were skipped (bad or unmatched)."""
        return len(self.skipped)

    def item_ids(self) -> tuple[str, ...]:
        """Relative paths of the matched pairs, sorted."""
        return tuple(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> PairedItem:
        item_id = self.item_ids()[index]
        noisy_path, clean_path = self._pairs[item_id]
        noisy = read_mono(noisy_path)
        clean = read_mono(clean_path)
        length = min(noisy.size, clean.size)  # resampling may leave them one sample apart
        return PairedItem(item_id, noisy[:length], clean[:length])
