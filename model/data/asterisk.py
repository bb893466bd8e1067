"""Real recorded speech: the asterisk G.722 prompts from Debian (studio speakers, CC-BY-SA).

Packages ``asterisk-core-sounds-{fr,it,ru}-g722`` give one speaker per language. The
English and Spanish packages share a speaker and are reserved for independent evaluation
(DESIGN.md, "Offline data"): asking for them without ``evaluation_only=True`` raises.

Each prompt is decoded once with ffmpeg (``-f g722 … -ar 16000 -ac 1``), many files per
ffmpeg process and several processes in parallel, into the cache. Non-speech files are
dropped twice over:

1. by name (:data:`NON_SPEECH_NAME_PATTERNS`: the ``silence/`` folder, beeps, two-tone
   signals, DTMF, the recorded monkeys, the conference join/leave sounds), before decoding;
2. by signal (:class:`PromptFilter`): too short, too quiet, or too tonal (low spectral flatness).

The per-language list of kept prompts (the "catalogue") is cached under a content address
of the input files' hashes and the filter settings, so a second run does no decoding and
no signal analysis.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import stft
from tqdm import tqdm

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import MODEL_SAMPLE_RATE_HZ, rms_dbfs
from hearmask.model.data.cache import DiskCache, cache_key, file_sha256
from hearmask.model.data.mixer import speech_activity_mask
from hearmask.model.data.sources import SpeechSource, require_program

ASTERISK_SOUNDS_DIR = Path("/usr/share/asterisk/sounds")
TRAINING_LANGUAGES = ("fr", "it", "ru")
EVALUATION_LANGUAGES = ("en", "es")
# Matched (re.search) against the prompt's relative path without extension, e.g. "digits/1".
NON_SPEECH_NAME_PATTERNS = (
    r"(^|/)silence/",  # silence/1 … silence/10: 1 to 10 s of digital silence
    r"beep",  # beep, beeperr
    r"dtmf",
    r"(^|[-_/])\d*tones?$",  # ascending-2tone, descending-2tone (not "at-tone-time-exactly")
    r"(^|/)tt-monkeys$",  # a recording of monkeys, not speech
    r"(^|/)confbridge-(join|leave)$",  # conference join/leave sound effects (tones)
)
# Bump when decoding or catalogue content changes, so old cache entries are not reused.
_DECODE_VERSION = 1
_CATALOGUE_VERSION = 3
_FILES_PER_FFMPEG = 40


def debian_package(language: str) -> str:
    """The Debian package holding the G.722 prompts of ``language``."""
    return f"asterisk-core-sounds-{language}-g722"


def median_spectral_flatness(audio: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> float:
    """Median over loud frames of the spectral flatness in 100-7000 Hz (1.0 = white, 0 = pure tone).

    Flatness is the geometric over the arithmetic mean of the power spectrum (Wiener
    entropy) of 32 ms Hann frames; frames more than 30 dB below the loudest are ignored.
    Measured on the fr/it/ru prompts: beeps, two-tone signals and the conference join/leave
    sounds are below 1e-5, every spoken prompt is above 9e-5 (median 6e-3).
    """
    frame_samples = min(512, audio.size)
    frequencies_hz, _, spectrum = stft(audio.astype(np.float64), fs=sample_rate_hz, nperseg=frame_samples)
    band = (frequencies_hz > 100.0) & (frequencies_hz < 7000.0)
    power = np.abs(spectrum[band]) ** 2 + 1e-20
    frame_power = power.sum(axis=0)
    loud = frame_power > frame_power.max() * 1e-3
    if power.shape[0] == 0 or not np.any(loud):
        return 1.0
    flatness = np.exp(np.mean(np.log(power[:, loud]), axis=0)) / np.mean(power[:, loud], axis=0)
    return float(np.median(flatness))


@dataclass(frozen=True)
class PromptFilter:
    """Signal checks that drop non-speech prompts the name patterns missed."""

    #: Shorter prompts are dropped (a click or a truncated file, not a word).
    min_duration_s: float = 0.2
    #: Prompts whose overall RMS is below this are dropped as silence.
    min_level_dbfs: float = -50.0
    #: Prompts whose median spectral flatness is below this are dropped as tones.
    min_spectral_flatness: float = 3e-5

    def reject_reason(self, audio: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> str | None:
        """None for speech-like audio, else a short reason (``"too short"`` …)."""
        duration_s = audio.size / sample_rate_hz
        if duration_s < self.min_duration_s:
            return f"too short ({duration_s:.2f} s < {self.min_duration_s} s)"
        level_dbfs = rms_dbfs(audio)
        if level_dbfs < self.min_level_dbfs:
            return f"too quiet ({level_dbfs:.1f} dBFS < {self.min_level_dbfs} dBFS)"
        flatness = median_spectral_flatness(audio, sample_rate_hz)
        if flatness < self.min_spectral_flatness:
            return f"too tonal (spectral flatness {flatness:.1e} < {self.min_spectral_flatness:.0e})"
        return None


def is_non_speech_name(relative_name: str) -> bool:
    """True when ``relative_name`` (e.g. ``"beep"``, ``"silence/3"``) names a non-speech file."""
    return any(re.search(pattern, relative_name) for pattern in NON_SPEECH_NAME_PATTERNS)


def decode_g722_files(sources: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Decode G.722 files to 16 kHz mono PCM_16 wav with one ffmpeg process.

    ``outputs[i]`` receives ``sources[i]``. Raises naming the files when ffmpeg fails.
    """
    ffmpeg = require_program("ffmpeg", "ffmpeg")
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for source in sources:
        command += ["-f", "g722", "-i", str(source)]
    for index, output in enumerate(outputs):
        command += ["-map", f"{index}:a", "-ar", str(MODEL_SAMPLE_RATE_HZ), "-ac", "1",
                    "-c:a", "pcm_s16le", "-map_metadata", "-1", "-bitexact", "-f", "wav", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        names = ", ".join(str(source) for source in sources[:3]) + (" …" if len(sources) > 3 else "")
        raise HearmaskError(f"ffmpeg could not decode G.722 prompts ({names}): {result.stderr.strip()[-300:]}")


@dataclass(frozen=True)
class _Prompt:
    """A prompt file on disk: its id, path and the cache key of its decoded wav."""

    utterance_id: str
    relative_name: str
    path: Path
    decoded_key: str


class AsteriskSpeech(SpeechSource):
    """Decoded asterisk prompts, one speaker per language, filtered to speech.

    Args:
        languages: language codes; training may use ``fr``, ``it``, ``ru``.
        evaluation_only: must be True to ask for ``en``/``es`` (reserved for independent
            evaluation), and then only those are accepted. The source is then marked
            ``evaluation_only`` and training code refuses it.
        cache_dir: cache root (see :mod:`hearmask.model.data.cache`).
        sounds_dir: where the packages install their prompts.
        max_files_per_language: use only the first N prompts (sorted by name, after the
            name filter) per language: for tests and quick looks.
        prompt_filter: the signal checks.
        workers: parallel ffmpeg processes (default: the number of CPUs).
        progress: show a progress bar while decoding.

    Utterance ids are ``asterisk-<language>/<relative name>``, e.g. ``asterisk-fr/digits/1``.
    Decoding happens on the first call that needs the catalogue (:meth:`prepare`).
    """

    name = "asterisk"

    def __init__(
        self,
        languages: Sequence[str] = TRAINING_LANGUAGES,
        *,
        evaluation_only: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        sounds_dir: str | os.PathLike[str] = ASTERISK_SOUNDS_DIR,
        max_files_per_language: int | None = None,
        prompt_filter: PromptFilter = PromptFilter(),
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        languages = tuple(languages)
        if not languages:
            raise HearmaskError("AsteriskSpeech needs at least one language; got none")
        allowed = EVALUATION_LANGUAGES if evaluation_only else TRAINING_LANGUAGES
        for language in languages:
            if language in EVALUATION_LANGUAGES and not evaluation_only:
                raise HearmaskError(
                    f"asterisk language {language!r} is reserved for independent evaluation (the "
                    f"{'/'.join(EVALUATION_LANGUAGES)} prompts share a speaker) and must never be used "
                    f"for training, validation or tuning; use {', '.join(TRAINING_LANGUAGES)} for "
                    "training, or evaluation_only=True in evaluation code"
                )
            if language not in allowed:
                purpose = "evaluation_only=True" if evaluation_only else "training"
                raise HearmaskError(
                    f"asterisk language {language!r} is not accepted for {purpose}; "
                    f"expected one of {', '.join(allowed)}"
                )
        if max_files_per_language is not None and max_files_per_language < 1:
            raise HearmaskError(f"max_files_per_language={max_files_per_language}; expected at least 1 or None")
        self.languages = languages
        self.evaluation_only = evaluation_only
        self.sounds_dir = Path(sounds_dir)
        self.max_files_per_language = max_files_per_language
        self.prompt_filter = prompt_filter
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self._cache = DiskCache("asterisk", cache_dir)
        #: Number of prompts this object decoded with ffmpeg (0 on a warm cache).
        self.decoded_count = 0
        self._catalogues: dict[str, dict] | None = None
        self._key_by_id: dict[str, str] = {}

    # -- discovery ---------------------------------------------------------------------
    def _list_prompts(self, language: str) -> tuple[list[_Prompt], list[str]]:
        """The prompts to decode, and the ids dropped by name."""
        folder = self.sounds_dir / language
        files = sorted(folder.rglob("*.g722")) if folder.is_dir() else []
        if not files:
            raise HearmaskError(
                f"no asterisk G.722 prompts for {language!r} in {folder}; install them with: "
                f"sudo apt install {debian_package(language)}"
            )
        prompts, dropped_by_name = [], []
        for path in files:
            relative_name = path.relative_to(folder).with_suffix("").as_posix()
            if is_non_speech_name(relative_name):
                dropped_by_name.append(f"asterisk-{language}/{relative_name}")
                continue
            decoded_key = cache_key({"kind": "asterisk-g722", "sha256": file_sha256(path),
                                     "sample_rate_hz": MODEL_SAMPLE_RATE_HZ, "version": _DECODE_VERSION})
            prompts.append(_Prompt(f"asterisk-{language}/{relative_name}", relative_name, path, decoded_key))
            if self.max_files_per_language is not None and len(prompts) >= self.max_files_per_language:
                break
        return prompts, dropped_by_name

    # -- decoding ----------------------------------------------------------------------
    def _decode_missing(self, prompts: Sequence[_Prompt]) -> None:
        missing = [p for p in prompts if not self._cache.path(p.decoded_key, ".wav").exists()]
        if not missing:
            return
        batches = [missing[i : i + _FILES_PER_FFMPEG] for i in range(0, len(missing), _FILES_PER_FFMPEG)]
        with self._cache.scratch_dir() as scratch, tqdm(
            total=len(missing), desc="decoding asterisk prompts", unit="file",
            disable=not self.progress, delay=2.0, leave=False,
        ) as bar:

            def decode_batch(batch_index: int) -> None:
                batch = batches[batch_index]
                outputs = [scratch / f"{batch_index}-{i}.wav" for i in range(len(batch))]
                decode_g722_files([p.path for p in batch], outputs)
                for prompt, output in zip(batch, outputs):
                    os.replace(output, self._cache.path(prompt.decoded_key, ".wav"))
                bar.update(len(batch))

            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                list(pool.map(decode_batch, range(len(batches))))
        self.decoded_count += len(missing)

    def _read_decoded(self, decoded_key: str) -> np.ndarray:
        audio, _ = sf.read(self._cache.path(decoded_key, ".wav"), dtype="float32")
        return audio

    def _build_catalogue(self, language: str, prompts: Sequence[_Prompt], dropped_by_name: Sequence[str]) -> dict:
        self._decode_missing(prompts)
        kept = []
        rejected = [{"utterance_id": i, "reason": "non-speech file name"} for i in dropped_by_name]
        for prompt in prompts:
            audio = self._read_decoded(prompt.decoded_key)
            reason = self.prompt_filter.reject_reason(audio)
            if reason is None:
                active_samples = int(np.count_nonzero(speech_activity_mask(audio)))
                kept.append({"utterance_id": prompt.utterance_id, "decoded_key": prompt.decoded_key,
                             "seconds": audio.size / MODEL_SAMPLE_RATE_HZ,
                             "active_seconds": active_samples / MODEL_SAMPLE_RATE_HZ})
            else:
                rejected.append({"utterance_id": prompt.utterance_id, "reason": reason})
        return {"language": language, "kept": kept, "rejected": rejected}

    def prepare(self) -> None:
        """Decode (where not cached) and filter every language; cheap when already done."""
        if self._catalogues is not None:
            return
        catalogues = {}
        for language in self.languages:
            prompts, dropped_by_name = self._list_prompts(language)
            key = cache_key({"kind": "asterisk-catalogue", "version": _CATALOGUE_VERSION, "language": language,
                             "prompts": [[p.relative_name, p.decoded_key] for p in prompts],
                             "dropped_by_name": dropped_by_name,
                             "filter": asdict(self.prompt_filter)})
            catalogue = self._cache.get_or_create_json(
                key, lambda: self._build_catalogue(language, prompts, dropped_by_name))
            # A catalogue may outlive a deleted decoded file: decode any that went missing.
            kept_keys = {entry["decoded_key"] for entry in catalogue["kept"]}
            self._decode_missing([p for p in prompts if p.decoded_key in kept_keys])
            for entry in catalogue["kept"]:
                self._key_by_id[entry["utterance_id"]] = entry["decoded_key"]
            catalogues[language] = catalogue
        self._catalogues = catalogues

    # -- the SpeechSource interface ----------------------------------------------------
    def utterance_ids(self) -> tuple[str, ...]:
        self.prepare()
        return tuple(self._key_by_id)

    def load(self, utterance_id: str) -> np.ndarray:
        self.prepare()
        try:
            decoded_key = self._key_by_id[utterance_id]
        except KeyError:
            raise HearmaskError(f"unknown asterisk utterance id {utterance_id!r}") from None
        return self._read_decoded(decoded_key)

    # -- reporting ---------------------------------------------------------------------
    def catalogue(self, language: str) -> dict:
        """The filtered prompt list of ``language``.

        ``{"language", "kept": [{utterance_id, decoded_key, seconds, active_seconds}],
        "rejected": [{utterance_id, reason}]}``.
        """
        self.prepare()
        assert self._catalogues is not None
        return self._catalogues[language]

    def summary(self) -> dict[str, dict[str, float]]:
        """Per language: kept and rejected prompt counts, kept minutes and active-speech minutes."""
        result = {}
        for language in self.languages:
            catalogue = self.catalogue(language)
            result[language] = {
                "kept_prompts": len(catalogue["kept"]),
                "rejected_prompts": len(catalogue["rejected"]),
                "rejected_by_name": sum(r["reason"] == "non-speech file name" for r in catalogue["rejected"]),
                "minutes": sum(entry["seconds"] for entry in catalogue["kept"]) / 60.0,
                "active_minutes": sum(entry["active_seconds"] for entry in catalogue["kept"]) / 60.0,
            }
        return result
