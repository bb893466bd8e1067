"""Synthetic speech from flite and espeak-ng (Debian packages), for talker diversity.

Utterance ``i`` of a source is defined by ``(seed, i)`` alone: a generator seeded with
them picks the voice, the sentence and the prosody. The raw synthesiser output is cached
under a content address of (program version, voice, text, prosody), so a second run does
not call the synthesiser. On load the audio is resampled to 16 kHz and a white noise floor
(-70 dBFS RMS by default, seeded by ``(seed, i)``) is added: synthesisers emit exact
digital silence between words, which a mask model would otherwise learn to expect.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from hearmask.errors import HearmaskError
from hearmask.model.data.audio import to_model_rate
from hearmask.model.data.cache import DiskCache, cache_key
from hearmask.model.data.sentences import SENTENCES_BY_LANGUAGE
from hearmask.model.data.sources import SpeechSource, require_program

NOISE_FLOOR_DBFS = -70.0
DEFAULT_NUM_UTTERANCES = 400
FLITE_VOICES = ("slt", "awb", "rms", "kal16")
# Nominal mean F0 of each flite voice (Hz, by ear and from the voices' defaults); the
# pitch is set to this times a random factor, so each voice keeps its own register.
FLITE_NOMINAL_F0_HZ = {"slt": 170.0, "awb": 115.0, "rms": 105.0, "kal16": 105.0, "kal": 105.0, "awb_time": 115.0}
# espeak-ng voice (language) -> key of SENTENCES_BY_LANGUAGE holding its text.
ESPEAK_LANGUAGES = {
    "en-us": "en", "en-gb": "en", "en-gb-scotland": "en", "en-029": "en", "fr-fr": "fr", "de": "de",
    "es": "es", "it": "it", "pt": "pt", "nl": "nl", "pl": "pl",
}
# Human-like espeak-ng variants (the robotic, whispered and croaking ones are left out).
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_TTS_VERSION = 1
# Distinguishes the noise-floor generator from the parameter generator of the same index.
_FLOOR_STREAM = 1


@dataclass(frozen=True)
class _Synthesis:
    """What one synthetic utterance is: enough to rebuild it exactly."""

    utterance_id: str
    voice: str
    text: str
    prosody: tuple[tuple[str, float], ...]


def _run_to_wav(command: list[str], text_input: str | None, scratch_wav: os.PathLike[str]) -> None:
    result = subprocess.run(command, input=text_input, capture_output=True, encoding="utf-8", errors="replace",
                            check=False)
    if result.returncode != 0 or not os.path.exists(scratch_wav) or os.path.getsize(scratch_wav) <= 44:
        raise HearmaskError(f"{command[0]} failed ({' '.join(command[1:4])} …): {result.stderr.strip()[-300:]}")


def _program_version(program: str, flag: str) -> str:
    result = subprocess.run([program, flag], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else "unknown"


class _SynthesisedSpeech(SpeechSource):
    """Shared machinery: utterance plans, cache, resampling, noise floor."""

    _program = ""

    def __init__(self, num_utterances: int, seed: int, cache_dir, noise_floor_dbfs: float | None) -> None:
        if num_utterances < 1:
            raise HearmaskError(f"num_utterances={num_utterances}; expected at least 1")
        if seed < 0:
            raise HearmaskError(f"seed={seed}; expected a non-negative integer")
        self.seed = int(seed)
        self.noise_floor_dbfs = noise_floor_dbfs
        self._cache = DiskCache("tts", cache_dir)
        self._plans = [self._plan(index, np.random.default_rng([self.seed, index])) for index in range(num_utterances)]
        self._index_by_id = {plan.utterance_id: index for index, plan in enumerate(self._plans)}
        if len(self._index_by_id) != len(self._plans):
            raise HearmaskError(f"{self.name}: utterance ids are not unique")
        self._version: str | None = None

    # Subclasses define how an utterance is chosen and how it is synthesised.
    def _plan(self, index: int, rng: np.random.Generator) -> _Synthesis:
        raise NotImplementedError

    def _synthesise(self, plan: _Synthesis, scratch_wav: os.PathLike[str]) -> None:
        raise NotImplementedError

    def _program_version(self) -> str:
        raise NotImplementedError

    @property
    def cache_hits(self) -> int:
        """Cached syntheses reused by this object."""
        return self._cache.hits

    @property
    def cache_misses(self) -> int:
        """Syntheses this object had to run."""
        return self._cache.misses

    def utterance_ids(self) -> tuple[str, ...]:
        return tuple(plan.utterance_id for plan in self._plans)

    def plan(self, utterance_id: str) -> dict:
        """The voice, text and prosody of ``utterance_id`` (for manifests and debugging)."""
        plan = self._plans[self._index(utterance_id)]
        return {"voice": plan.voice, "text": plan.text, **dict(plan.prosody)}

    def _index(self, utterance_id: str) -> int:
        try:
            return self._index_by_id[utterance_id]
        except KeyError:
            raise HearmaskError(f"unknown {self.name} utterance id {utterance_id!r}") from None

    def load(self, utterance_id: str) -> np.ndarray:
        index = self._index(utterance_id)
        plan = self._plans[index]
        if self._version is None:
            self._version = self._program_version()
        key = cache_key({"kind": self.name, "version": _TTS_VERSION, "program": self._version,
                         "voice": plan.voice, "text": plan.text, "prosody": plan.prosody})

        def create() -> tuple[np.ndarray, int]:
            with self._cache.scratch_dir() as scratch:
                scratch_wav = os.path.join(scratch, "utterance.wav")
                self._synthesise(plan, scratch_wav)
                audio, rate_hz = sf.read(scratch_wav, dtype="float32", always_2d=True)
            return audio[:, 0], int(rate_hz)

        raw, rate_hz = self._cache.get_or_create_audio(key, create)
        audio = to_model_rate(raw, rate_hz)
        if self.noise_floor_dbfs is not None:
            floor_rng = np.random.default_rng([self.seed, index, _FLOOR_STREAM])
            floor_rms = 10.0 ** (self.noise_floor_dbfs / 20.0)
            audio = audio + (floor_rms * floor_rng.standard_normal(audio.size)).astype(np.float32)
        return audio.astype(np.float32)


class FliteSpeech(_SynthesisedSpeech):
    """English sentences read by flite voices, with random speaking rate and pitch.

    Args:
        voices: flite voice names (``flite -lv`` lists them).
        num_utterances: how many utterances the source holds.
        seed: chooses voice, sentence, duration stretch (0.85-1.2) and pitch (0.85-1.2 ×
            the voice's nominal F0) per utterance.
        cache_dir: cache root.
        noise_floor_dbfs: RMS of the added white floor; None adds none.

    Ids: ``flite/<index>-<voice>``.
    """

    name = "flite"

    def __init__(self, voices: Sequence[str] = FLITE_VOICES, *, num_utterances: int = DEFAULT_NUM_UTTERANCES,
                 seed: int = 0, cache_dir=None, noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS) -> None:
        self._flite = require_program("flite", "flite")
        available = self._available_voices()
        voices = tuple(voices)
        unknown = [voice for voice in voices if voice not in available]
        if not voices or unknown:
            raise HearmaskError(f"flite voices {unknown or list(voices)} are not available; "
                                f"installed voices: {', '.join(sorted(available))}")
        self.voices = voices
        super().__init__(num_utterances, seed, cache_dir, noise_floor_dbfs)

    def _available_voices(self) -> set[str]:
        result = subprocess.run([self._flite, "-lv"], capture_output=True, text=True, check=False)
        text = result.stdout.split(":", 1)[-1]
        return set(text.split())

    def _program_version(self) -> str:
        return _program_version(self._flite, "--version")

    def _plan(self, index: int, rng: np.random.Generator) -> _Synthesis:
        voice = self.voices[int(rng.integers(len(self.voices)))]
        sentences = SENTENCES_BY_LANGUAGE["en"]
        text = sentences[int(rng.integers(len(sentences)))]
        stretch = round(float(rng.uniform(0.85, 1.2)), 3)
        f0_hz = round(FLITE_NOMINAL_F0_HZ.get(voice, 120.0) * float(rng.uniform(0.85, 1.2)), 1)
        return _Synthesis(f"flite/{index:05d}-{voice}", voice, text,
                          (("duration_stretch", stretch), ("f0_mean_hz", f0_hz)))

    def _synthesise(self, plan: _Synthesis, scratch_wav: os.PathLike[str]) -> None:
        prosody = dict(plan.prosody)
        command = [self._flite, "-voice", plan.voice,
                   "--setf", f"duration_stretch={prosody['duration_stretch']}",
                   "--setf", f"int_f0_target_mean={prosody['f0_mean_hz']}",
                   "-t", plan.text, "-o", os.fspath(scratch_wav)]
        _run_to_wav(command, None, scratch_wav)


class EspeakSpeech(_SynthesisedSpeech):
    """Sentences in several languages read by espeak-ng with random variant, pitch and speed.

    Args:
        languages: espeak-ng voices from :data:`ESPEAK_LANGUAGES` (each has built-in text).
        variants: espeak-ng variants (``espeak-ng --voices=variant``).
        pitch_range: espeak pitch (0-99, default 50), drawn uniformly.
        speed_wpm_range: speaking rate in words per minute, drawn uniformly.
        num_utterances, seed, cache_dir, noise_floor_dbfs: as :class:`FliteSpeech`.

    Ids: ``espeak/<index>-<language>+<variant>``.
    """

    name = "espeak"

    def __init__(self, languages: Sequence[str] = tuple(ESPEAK_LANGUAGES), *,
                 variants: Sequence[str] = ESPEAK_VARIANTS, pitch_range: tuple[float, float] = (25.0, 75.0),
                 speed_wpm_range: tuple[float, float] = (130.0, 195.0),
                 num_utterances: int = DEFAULT_NUM_UTTERANCES, seed: int = 0, cache_dir=None,
                 noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS) -> None:
        self._espeak = require_program("espeak-ng", "espeak-ng")
        languages, variants = tuple(languages), tuple(variants)
        unknown = [language for language in languages if language not in ESPEAK_LANGUAGES]
        if not languages or unknown:
            raise HearmaskError(f"espeak languages {unknown or list(languages)} have no built-in text; "
                                f"expected some of {', '.join(ESPEAK_LANGUAGES)}")
        if not variants:
            raise HearmaskError(f"espeak variants are empty; expected some of {', '.join(ESPEAK_VARIANTS)}")
        if not (0 <= pitch_range[0] <= pitch_range[1] <= 99):
            raise HearmaskError(f"espeak pitch range {pitch_range} is invalid; expected 0 <= low <= high <= 99")
        if not (80 <= speed_wpm_range[0] <= speed_wpm_range[1] <= 450):
            raise HearmaskError(f"espeak speed range {speed_wpm_range} wpm is invalid; "
                                "expected 80 <= low <= high <= 450")
        self.languages, self.variants = languages, variants
        self.pitch_range, self.speed_wpm_range = pitch_range, speed_wpm_range
        super().__init__(num_utterances, seed, cache_dir, noise_floor_dbfs)

    def _program_version(self) -> str:
        return _program_version(self._espeak, "--version")

    def _plan(self, index: int, rng: np.random.Generator) -> _Synthesis:
        language = self.languages[int(rng.integers(len(self.languages)))]
        variant = self.variants[int(rng.integers(len(self.variants)))]
        sentences = SENTENCES_BY_LANGUAGE[ESPEAK_LANGUAGES[language]]
        text = sentences[int(rng.integers(len(sentences)))]
        pitch = int(round(rng.uniform(*self.pitch_range)))
        speed_wpm = int(round(rng.uniform(*self.speed_wpm_range)))
        voice = f"{language}+{variant}"
        return _Synthesis(f"espeak/{index:05d}-{voice}", voice, text, (("pitch", pitch), ("speed_wpm", speed_wpm)))

    def _synthesise(self, plan: _Synthesis, scratch_wav: os.PathLike[str]) -> None:
        prosody = dict(plan.prosody)
        # The text goes through stdin as UTF-8 (-b 1), so no sentence is read as an option.
        command = [self._espeak, "-b", "1", "--stdin", "-v", plan.voice, "-p", str(prosody["pitch"]),
                   "-s", str(prosody["speed_wpm"]), "-w", os.fspath(scratch_wav)]
        _run_to_wav(command, plan.text, scratch_wav)
