"""``hearmask evaluate``: score systems on a held-out set, for every standard listener.

Held-out set (issue 4, "Evaluation"; all offline, deterministic for a seed)
---------------------------------------------------------------------------
Utterance ``i`` is real recorded speech when ``i`` is even and synthetic when odd (real
speech runs out first, then synthetic fills up):

- real: Debian's ``pocketsphinx-testdata`` clips of at least :data:`MIN_UTTERANCE_S`
  (LibriVox and AN4 talkers no training source contains), in a seeded order;
- synthetic: espeak-ng English (four accents) with the named variants
  :data:`HELD_OUT_ESPEAK_VARIANTS` (training uses m1-m7, f1-f5) and the evaluation seed
  (training uses seed 0), utterances of at least :data:`MIN_UTTERANCE_S`. The sentences come
  from the same built-in English list as training: voices and prosody are held out, the
  text is not. flite has no held-out voice: ``kal`` is the 8 kHz diphone build of the
  training voice ``kal16``, and ``awb_time`` is a limited-domain talking clock that
  cannot read arbitrary text.

Each utterance is cut to ``max_seconds`` and gets one procedural noise kind (cycling
through ``noise_kinds``; babble/speech-shaped noise is made of espeak-ng speech with the
evaluation seed). The same noise is mixed at every SNR (a paired design: only the SNR
changes between conditions), with the active speech level at ``presentation_level_db_spl``
under the auditory model's calibration (RMS 1 = ``full_scale_db_spl``, 100 dB SPL): 65 dB
SPL is -35 dBFS, inside the training range of -40 to -20 dBFS.

Systems and metrics
-------------------
``unprocessed`` (the noisy input), ``nalr`` (NAL-R, :mod:`hearmask.model.baselines.nalr`) and,
per model, its outputs at strength points (alpha, beta) (:func:`default_points`). One row per
(system, audiogram, snr_db) holds each metric averaged over the utterances:

- ``pesq``, ``estoi``, ``si_sdr``: the noise-reduction part alone (the system at
  (alpha, 0), the noisy input for ``unprocessed``/``nalr``) against clean speech. Hearing-loss
  gain is left out because these metrics would count compensation as distortion.
- ``haspi``, ``hasqi``: the full output at (alpha, beta) heard by the listener's ear model
  (:mod:`hearmask.model.metrics`), reference = clean speech at the presentation level; the
  output keeps the processing's gain.
- ``auditory_loss``: the training auditory model's L1 distance between the impaired ear
  hearing the full output and a normal ear hearing clean speech (lower is better).

Every processed signal is delayed by its STFT's algorithmic latency ``L``: the input is padded
with ``L`` zeros at the end and the first ``L`` output samples are dropped, so each metric
compares the whole utterance sample-aligned with the clean speech.

Size and cost
-------------
HASPI and HASQI dominate: about 1.3 s of CPU per second of audio together
(:mod:`hearmask.model.metrics`). The default (4 utterances cut to 2.5 s, 3 SNRs, 11
audiograms) costs about 14 s of CPU per row; two models (joint + cascade) make 216 rows,
about 50 CPU-minutes, i.e. about 25 min with one worker process per core on 2 cores.
``num_utterances``, ``snrs_db``, ``audiograms`` and ``metrics`` shrink it.

Files in the report folder: ``conditions.json`` (written first), ``rows.jsonl`` (one row per
line as it is computed, so ``resume=True`` skips finished rows), and at the end
``report.json``, ``results.csv``, ``results.md`` and plots (:mod:`hearmask.model.evaluate_report`).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.standard import STANDARD_PROFILE_NAMES

SAMPLE_RATE_HZ = 16000
METRIC_NAMES = ("pesq", "estoi", "si_sdr", "haspi", "hasqi", "auditory_loss")
DEFAULT_SNRS_DB = (0.0, 5.0, 10.0)
DEFAULT_NUM_UTTERANCES = 4
DEFAULT_SEED = 2026
DEFAULT_MAX_SECONDS = 2.5
PRESENTATION_LEVEL_DB_SPL = 65.0
MIN_UTTERANCE_S = 2.0  # shorter clips give noisy HASPI/ESTOI values
# Ordered so that a small set covers the most speech-like, hardest kinds first.
DEFAULT_NOISE_KINDS = ("babble", "speech_shaped", "modulated", "pink", "transients", "white", "brown", "hum",
                       "tones")
DEFAULT_SWEEP_AUDIOGRAMS = ("N1", "N3", "S2")
DEFAULT_SWEEP_STRENGTHS = (0.0, 0.5, 1.0)
HELD_OUT_ESPEAK_LANGUAGES = ("en-us", "en-gb", "en-gb-scotland", "en-029")
HELD_OUT_ESPEAK_VARIANTS = ("Andy", "Annie", "Linda", "Michael", "Steph", "Paul")
# Main strength points per task variant; a joint model also gets the sweep.
VARIANT_POINTS = {"joint": ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0)), "nr": ((1.0, 0.0),), "hlc": ((0.0, 1.0),),
                  "cascade": ((1.0, 1.0),)}
REPORT_FORMAT = "hearmask-evaluation"
REPORT_VERSION = 1
_NOISE_STREAM = 0x4E0


@dataclass(frozen=True)
class EvaluationConfig:
    """What an evaluation computes; everything but ``workers`` is part of its fingerprint."""

    num_utterances: int = DEFAULT_NUM_UTTERANCES  # clean utterances, each mixed at every SNR
    snrs_db: tuple[float, ...] = DEFAULT_SNRS_DB
    audiograms: tuple[str, ...] = STANDARD_PROFILE_NAMES  # profile names or audiogram files
    sweep_audiograms: tuple[str, ...] = DEFAULT_SWEEP_AUDIOGRAMS  # where a joint model's sweep runs
    sweep_strengths: tuple[float, ...] = DEFAULT_SWEEP_STRENGTHS  # alpha at beta=1 and beta at alpha=1
    metrics: tuple[str, ...] = METRIC_NAMES
    noise_kinds: tuple[str, ...] = DEFAULT_NOISE_KINDS
    seed: int = DEFAULT_SEED
    max_seconds: float = DEFAULT_MAX_SECONDS  # each utterance is cut to this length
    presentation_level_db_spl: float = PRESENTATION_LEVEL_DB_SPL  # active speech level of the clean speech
    workers: int = 0  # processes computing rows; 0 = one per CPU

    def __post_init__(self) -> None:
        from hearmask.model.data.noise import NOISE_KINDS

        if int(self.num_utterances) < 1:
            raise HearmaskError(f"utterances={self.num_utterances}; expected at least 1")
        if not self.snrs_db or not all(math.isfinite(snr) and -20 <= snr <= 40 for snr in self.snrs_db):
            raise HearmaskError(f"SNRs {list(self.snrs_db)} dB; expected one or more values in -20..40 dB")
        if len(set(self.snrs_db)) != len(self.snrs_db):
            raise HearmaskError(f"SNRs {list(self.snrs_db)} dB repeat a value; give each SNR once")
        if not self.audiograms:
            raise HearmaskError("no audiograms selected; give at least one (e.g. NH N3)")
        unknown = [name for name in self.metrics if name not in METRIC_NAMES]
        if not self.metrics or unknown:
            raise HearmaskError(f"metrics {unknown} are unknown or none is selected; accepted: {', '.join(METRIC_NAMES)}")
        bad_kinds = [kind for kind in self.noise_kinds if kind not in NOISE_KINDS]
        if not self.noise_kinds or bad_kinds:
            raise HearmaskError(f"noise kinds {bad_kinds} are unknown or none is selected; accepted: "
                                f"{', '.join(NOISE_KINDS)}")
        if not all(0.0 <= value <= 1.0 for value in self.sweep_strengths):
            raise HearmaskError(f"sweep strengths {list(self.sweep_strengths)}; expected values in [0, 1]")
        if not self.max_seconds >= 1.0:
            raise HearmaskError(f"max_seconds={self.max_seconds}; expected at least 1 s")
        if int(self.workers) < 0:
            raise HearmaskError(f"workers={self.workers}; expected 0 (one per CPU) or more")

    def fingerprint_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("workers")
        return values


# ----- held-out set ------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutItem:
    """One noisy mixture: float32 ``(num_samples,)`` signals at 16 kHz, ``noisy = clean + noise``."""

    utterance_index: int
    utterance_id: str
    source: str  # "pocketsphinx" or "espeak"
    noise_kind: str
    snr_db: float
    clean: np.ndarray
    noisy: np.ndarray

    def describe(self) -> dict[str, Any]:
        return {"utterance_index": self.utterance_index, "utterance_id": self.utterance_id, "source": self.source,
                "noise_kind": self.noise_kind, "snr_db": self.snr_db,
                "duration_s": round(self.clean.size / SAMPLE_RATE_HZ, 4)}


def speech_level_dbfs(presentation_level_db_spl: float) -> float:
    """The digital active speech level that the auditory model hears at ``presentation_level_db_spl``."""
    from hearmask.model.auditory import AuditoryModelConfig

    return presentation_level_db_spl - AuditoryModelConfig().full_scale_db_spl


def held_out_utterances(num_utterances: int, seed: int, max_seconds: float) -> list[tuple[str, str, np.ndarray]]:
    """``(source, utterance_id, speech)`` for the held-out set (module docstring), speech cut to ``max_seconds``."""
    from hearmask.model.data.speech import PocketsphinxSpeech

    min_samples = int(MIN_UTTERANCE_S * SAMPLE_RATE_HZ)
    pocketsphinx = PocketsphinxSpeech()
    real = [(utterance_id, speech) for utterance_id in pocketsphinx.utterance_ids()
            if (speech := pocketsphinx.load(utterance_id)).size >= min_samples]
    real = [real[index] for index in np.random.default_rng([seed, 1]).permutation(len(real))]
    num_real = min(len(real), (num_utterances + 1) // 2)
    synthetic = _held_out_synthetic(num_utterances - num_real, seed, min_samples)
    real = [("pocketsphinx", utterance_id, speech) for utterance_id, speech in real[:num_real]]
    chosen = []
    for index in range(num_utterances):
        # Even positions real, odd positions synthetic, while each lasts.
        take_real = real and (index % 2 == 0 or not synthetic)
        chosen.append(real.pop(0) if take_real else synthetic.pop(0))
    max_samples = int(round(max_seconds * SAMPLE_RATE_HZ))
    return [(source, utterance_id, speech[:max_samples]) for source, utterance_id, speech in chosen]


def _held_out_synthetic(count: int, seed: int, min_samples: int) -> list[tuple[str, str, np.ndarray]]:
    """The first ``count`` held-out espeak-ng utterances at least ``min_samples`` long."""
    if count == 0:
        return []
    from hearmask.model.data.tts import EspeakSpeech

    # Most sentences last 2-4 s; four times the count leaves room for the short ones.
    source = EspeakSpeech(HELD_OUT_ESPEAK_LANGUAGES, variants=HELD_OUT_ESPEAK_VARIANTS, num_utterances=4 * count + 4,
                          seed=seed)
    chosen = []
    for utterance_id in source.utterance_ids():
        speech = source.load(utterance_id)
        if speech.size >= min_samples:
            chosen.append((source.name, utterance_id, speech))
            if len(chosen) == count:
                return chosen
    raise HearmaskError(f"fewer than {count} held-out espeak-ng utterances of at least {MIN_UTTERANCE_S} s; "
                        "try fewer utterances")


def build_held_out_set(config: EvaluationConfig) -> list[HeldOutItem]:
    """Every utterance mixed at every SNR: ``num_utterances × len(snrs_db)`` items, utterance-major."""
    from hearmask.model.data.mixer import mix
    from hearmask.model.data.noise import SPEECH_NOISE_KINDS, make_noise

    level_dbfs = speech_level_dbfs(config.presentation_level_db_spl)
    babble_source = None
    items = []
    for index, (source, utterance_id, speech) in enumerate(
            held_out_utterances(config.num_utterances, config.seed, config.max_seconds)):
        kind = config.noise_kinds[index % len(config.noise_kinds)]
        if kind in SPEECH_NOISE_KINDS and babble_source is None:
            from hearmask.model.data.tts import EspeakSpeech

            babble_source = EspeakSpeech(num_utterances=64, seed=config.seed)
        noise = make_noise(kind, speech.size, SAMPLE_RATE_HZ, np.random.default_rng([config.seed, index, _NOISE_STREAM]),
                           speech_source=babble_source)
        for snr_db in config.snrs_db:
            mixture = mix(speech, noise, float(snr_db), level_dbfs)
            items.append(HeldOutItem(index, utterance_id, source, kind, float(snr_db), mixture.clean, mixture.noisy))
    return items


# ----- systems -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A model to evaluate: a display name, a checkpoint path, optional explicit (alpha, beta) points."""

    name: str
    path: Path
    points: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class SystemPoint:
    """One system at one strength point; ``sweep`` points run on the sweep audiograms only."""

    kind: str  # "unprocessed", "nalr" or "model"
    model: str | None = None
    variant: str | None = None
    alpha: float | None = None
    beta: float | None = None
    sweep: bool = False

    @property
    def label(self) -> str:
        if self.kind != "model":
            return self.kind
        return f"{self.model} (alpha={self.alpha:g}, beta={self.beta:g})"


def default_points(variant: str, sweep_strengths: Sequence[float]) -> tuple[list[tuple[float, float]], list]:
    """``(main, sweep)`` strength points of a variant: main on every audiogram, sweep on a few.

    joint: (1,1), (1,0), (0,1), and the sweep alpha at beta=1 and beta at alpha=1; nr: (1,0);
    hlc: (0,1); cascade: (1,1).
    """
    main = list(VARIANT_POINTS[variant])
    sweep = []
    if variant == "joint":
        candidates = [(float(a), 1.0) for a in sweep_strengths] + [(1.0, float(b)) for b in sweep_strengths]
        for point in candidates:
            if point not in main and point not in sweep:
                sweep.append(point)
    return main, sweep


def plan_systems(models: Sequence[ModelSpec], variants: dict[str, str], config: EvaluationConfig) -> list[SystemPoint]:
    systems = [SystemPoint("unprocessed"), SystemPoint("nalr")]
    for spec in models:
        variant = variants[spec.name]
        if spec.points is not None:
            main, sweep = list(spec.points), []
        else:
            main, sweep = default_points(variant, config.sweep_strengths)
        systems += [SystemPoint("model", spec.name, variant, a, b) for a, b in main]
        systems += [SystemPoint("model", spec.name, variant, a, b, sweep=True) for a, b in sweep]
    return systems


@dataclass(frozen=True)
class RowTask:
    system: SystemPoint
    audiogram: str
    snr_db: float

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.system.label, self.audiogram, self.snr_db)


def plan_rows(systems: Sequence[SystemPoint], audiogram_names: Sequence[str], sweep_audiograms: Sequence[str],
              snrs_db: Sequence[float]) -> list[RowTask]:
    """Main points on every audiogram, sweep points on ``sweep_audiograms`` (in the order given)."""
    tasks = []
    for system in systems:
        names = sweep_audiograms if system.sweep else audiogram_names
        tasks += [RowTask(system, name, float(snr)) for name in names for snr in snrs_db]
    return tasks


# ----- computing a row ---------------------------------------------------------------------


class RowEvaluator:
    """Computes rows; holds the held-out items, listeners and (lazily) the loaded models."""

    def __init__(self, items: Sequence[HeldOutItem], audiograms: dict[str, Audiogram], model_paths: dict[str, str],
                 metrics: Sequence[str], presentation_level_db_spl: float):
        self.items = list(items)
        self.audiograms = audiograms
        self.model_paths = model_paths
        self.metrics = tuple(metrics)
        self.presentation_level_db_spl = presentation_level_db_spl
        self._systems: dict[str, Any] = {}
        self._auditory_model = None

    def system(self, name: str):
        if name not in self._systems:
            from hearmask.model.system_io import load_system

            self._systems[name] = load_system(self.model_paths[name])[0]
        return self._systems[name]

    def outputs(self, point: SystemPoint, audiogram: Audiogram, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(nr_output, full_output)`` aligned with the input, float64 ``(T,)`` (module docstring)."""
        if point.kind == "unprocessed":
            return noisy.astype(np.float64), noisy.astype(np.float64)
        if point.kind == "nalr":
            from hearmask.model.baselines.nalr import enhance_nalr
            from hearmask.model.stft_config import shipped_stft_config

            stft_config = shipped_stft_config("default")
            latency = stft_config.algorithmic_latency_samples
            padded = np.concatenate([noisy, np.zeros(latency, dtype=noisy.dtype)])
            return noisy.astype(np.float64), np.asarray(enhance_nalr(padded, audiogram, stft_config))[latency:]
        return model_outputs(self.system(point.model), audiogram, noisy, point.alpha, point.beta)

    def auditory_loss(self, clean: np.ndarray, processed: np.ndarray, audiogram: Audiogram) -> float:
        import torch

        from hearmask.model.auditory import AuditoryModel, AuditoryModelConfig

        if self._auditory_model is None:
            self._auditory_model = AuditoryModel(AuditoryModelConfig(sample_rate_hz=SAMPLE_RATE_HZ))
        hear = self._auditory_model
        with torch.inference_mode():
            loss_db = hear.channel_loss_db(audiogram.frequencies_hz, audiogram.thresholds_db_hl)
            impaired = hear(torch.as_tensor(processed, dtype=torch.float32)[None], loss_db[None])
            normal = hear(torch.as_tensor(clean, dtype=torch.float32)[None])
            return float((impaired - normal).abs().mean())

    def utterance_metrics(self, point: SystemPoint, audiogram: Audiogram, item: HeldOutItem,
                          ) -> tuple[dict[str, float | None], list[str]]:
        """Each selected metric of one utterance (None where it failed) and the failures' messages."""
        from hearmask.model import metrics as m

        nr_output, full_output = self.outputs(point, audiogram, item.noisy)
        clean = item.clean.astype(np.float64)
        level = self.presentation_level_db_spl
        compute = {
            "pesq": lambda: m.pesq_wb(clean, nr_output, SAMPLE_RATE_HZ),
            "estoi": lambda: m.estoi(clean, nr_output, SAMPLE_RATE_HZ),
            "si_sdr": lambda: m.si_sdr_db(clean, nr_output),
            "haspi": lambda: m.haspi_v2(clean, full_output, SAMPLE_RATE_HZ, audiogram, level),
            "hasqi": lambda: m.hasqi_v2(clean, full_output, SAMPLE_RATE_HZ, audiogram, level),
            "auditory_loss": lambda: self.auditory_loss(clean, full_output, audiogram),
        }
        values, errors = {}, []
        for name in self.metrics:
            try:  # one failed metric must not end a long run: it is recorded and left out of the mean
                value = compute[name]()
                if not math.isfinite(value):
                    raise HearmaskError(f"{name} is {value}")
            except HearmaskError as error:
                value = None
                errors.append(f"{name} on {item.utterance_id}: {error}")
            values[name] = value
        return values, errors

    def row(self, task: RowTask) -> dict[str, Any]:
        audiogram = self.audiograms[task.audiogram]
        items = [item for item in self.items if item.snr_db == task.snr_db]
        started = time.process_time()
        per_utterance = {name: [] for name in self.metrics}
        errors = []
        for item in items:
            values, item_errors = self.utterance_metrics(task.system, audiogram, item)
            for name, value in values.items():
                per_utterance[name].append(value)
            errors += item_errors
        point = task.system
        row: dict[str, Any] = {"system": point.label, "model": point.model, "variant": point.variant,
                               "alpha": point.alpha, "beta": point.beta, "sweep": point.sweep,
                               "audiogram": task.audiogram, "snr_db": task.snr_db, "utterances": len(items)}
        for name in METRIC_NAMES:
            valid = [value for value in per_utterance.get(name, []) if value is not None]
            row[name] = float(np.mean(valid)) if valid else None
        row["per_utterance"] = per_utterance
        row["errors"] = errors
        row["cpu_s"] = round(time.process_time() - started, 3)
        return row


def model_outputs(system, audiogram: Audiogram, noisy: np.ndarray, alpha: float, beta: float,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A model's ``(output at (alpha, 0), output at (alpha, beta))``, latency removed, float64 ``(T,)``."""
    import torch

    from hearmask.model.gains import combine_gains_db

    latency = system.stft_config.algorithmic_latency_samples
    padded = torch.as_tensor(np.concatenate([noisy, np.zeros(latency, dtype=np.float32)]), dtype=torch.float32)[None]
    network_input = torch.as_tensor(audiogram.model_input())[None]
    with torch.inference_mode():
        spectrum = system.stft.stft(padded)
        nr_db, hlc_db = system.masks_db(spectrum, network_input)
        signals = []
        for point_beta in (0.0, beta):
            gain_db = combine_gains_db(nr_db, hlc_db, alpha, point_beta, allow_exaggeration=True)
            signals.append(system.synthesize(spectrum, gain_db, padded.shape[-1])[0, latency:].double().numpy())
    return signals[0], signals[1]


# One evaluator per worker process, set by the pool initializer.
_WORKER_EVALUATOR: RowEvaluator | None = None


def _init_worker(arguments: tuple) -> None:
    global _WORKER_EVALUATOR
    import torch

    torch.set_num_threads(1)  # one process per core; the networks are tiny
    _WORKER_EVALUATOR = RowEvaluator(*arguments)


def _worker_row(task: RowTask) -> dict[str, Any]:
    return _WORKER_EVALUATOR.row(task)


# ----- the run -----------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    report_dir: Path
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    computed_rows: int
    skipped_rows: int
    elapsed_s: float
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"report_dir": str(self.report_dir), "rows": len(self.rows), "computed_rows": self.computed_rows,
                "skipped_rows": self.skipped_rows, "elapsed_s": round(self.elapsed_s, 2), "files": self.files,
                "summary": self.summary}


def _model_record(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    from hearmask.model.checkpoint import resolve_checkpoint_path
    from hearmask.model.system_io import load_system

    try:
        json_path = resolve_checkpoint_path(spec.path)
    except HearmaskError as error:
        raise HearmaskError(f"model {spec.name!r}: {error}") from None
    system, metadata = load_system(json_path)
    record = {"path": str(json_path), "variant": system.variant, "weights_sha256": metadata.get("weights_sha256"),
              "parameters": system.count_parameters(), "step": metadata.get("progress", {}).get("step"),
              "algorithmic_latency_ms": system.stft_config.algorithmic_latency_ms,
              "points": [list(point) for point in spec.points] if spec.points is not None else None}
    if system.stft_config.sample_rate_hz != SAMPLE_RATE_HZ:
        raise HearmaskError(f"model {spec.name!r} runs at {system.stft_config.sample_rate_hz} Hz; "
                            f"the evaluation set is {SAMPLE_RATE_HZ} Hz")
    return str(json_path), record


def software_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from hearmask.model.checkpoint import software_versions as core_versions

    versions = core_versions()
    for package in ("pyclarity", "pesq", "pystoi", "scipy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _fingerprint(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def _read_finished_rows(rows_path: Path) -> list[dict[str, Any]]:
    """Rows already in ``rows.jsonl``; a torn last line (interrupted write) is dropped and cut off."""
    if not rows_path.is_file():
        return []
    rows, good_bytes = [], 0
    with open(rows_path, "rb") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not line.endswith(b"\n"):
                rows.pop()
                break
            good_bytes += len(line)
    with open(rows_path, "r+b") as handle:
        handle.truncate(good_bytes)
    return rows


def evaluate(models: Sequence[ModelSpec], report_dir: str | Path, config: EvaluationConfig | None = None, *,
             resume: bool = False, progress: bool = True) -> EvaluationResult:
    """Run the evaluation into ``report_dir`` and write every report file; see the module docstring."""
    from hearmask.model.evaluate_report import mask_example, write_reports
    from hearmask.profiles.io import load_audiogram

    config = config or EvaluationConfig()
    started = time.monotonic()
    names = [spec.name for spec in models]
    if len(set(names)) != len(names):
        raise HearmaskError(f"model names {names} repeat; give each model a distinct NAME (NAME=PATH)")
    for name in names:
        if not name or name in ("unprocessed", "nalr") or "(" in name:
            raise HearmaskError(f"model name {name!r} is not accepted; use a short name other than "
                                "'unprocessed' and 'nalr', without parentheses")
    model_paths, model_records = {}, {}
    for spec in models:
        model_paths[spec.name], model_records[spec.name] = _model_record(spec)
    # Rows are labelled by the audiogram's own name ("N3", or the name inside a file).
    audiograms, labels = {}, {}
    for name_or_path in dict.fromkeys(config.audiograms + config.sweep_audiograms):
        audiogram = load_audiogram(name_or_path)
        if audiogram.name in audiograms and audiograms[audiogram.name] != audiogram:
            raise HearmaskError(f"two different audiograms are named {audiogram.name!r}; give each a distinct name")
        audiograms[audiogram.name], labels[name_or_path] = audiogram, audiogram.name
    audiogram_names = list(dict.fromkeys(labels[name] for name in config.audiograms))
    sweep_audiograms = [labels[name] for name in config.sweep_audiograms if labels[name] in audiogram_names]

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    items = build_held_out_set(config)
    systems = plan_systems(models, {name: record["variant"] for name, record in model_records.items()}, config)
    tasks = plan_rows(systems, audiogram_names, sweep_audiograms, config.snrs_db)
    conditions = {
        "config": config.fingerprint_dict(),
        "utterances": [item.describe() for item in items if item.snr_db == config.snrs_db[0]],
        "speech_level_dbfs": speech_level_dbfs(config.presentation_level_db_spl),
        "presentation_level_db_spl": config.presentation_level_db_spl,
        "models": model_records,
        "audiograms": {name: audiograms[name].to_json_dict() for name in audiogram_names},
        "sweep_audiograms": sweep_audiograms,
        "items_sha256": hashlib.sha256(b"".join(item.noisy.tobytes() + item.clean.tobytes() for item in items)).hexdigest(),
    }
    # The weights' hash identifies a model; its path may be spelled differently on resume.
    conditions["fingerprint"] = _fingerprint({**conditions, "models": {
        name: {key: value for key, value in record.items() if key != "path"} for name, record in model_records.items()}})
    conditions_path, rows_path = report_dir / "conditions.json", report_dir / "rows.jsonl"
    finished = []
    if conditions_path.is_file() or rows_path.is_file():
        if not resume:
            raise HearmaskError(f"{report_dir} already holds an evaluation; pass --resume to continue it, "
                                "or choose another --report folder")
        previous = json.loads(conditions_path.read_text()) if conditions_path.is_file() else {}
        if previous.get("fingerprint") != conditions["fingerprint"]:
            raise HearmaskError(f"{report_dir} holds an evaluation with other conditions (models, options or data "
                                "changed); resume it with the same options, or choose another --report folder")
        finished = _read_finished_rows(rows_path)
    conditions["versions"] = software_versions()
    conditions_path.write_text(json.dumps(conditions, indent=2) + "\n")

    done = {(row["system"], row["audiogram"], row["snr_db"]) for row in finished}
    todo = [task for task in tasks if task.key not in done]
    evaluator_args = (items, audiograms, model_paths, config.metrics, config.presentation_level_db_spl)
    new_rows = _compute_rows(todo, evaluator_args, config.workers, rows_path, progress)

    by_key = {(row["system"], row["audiogram"], row["snr_db"]): row for row in finished + new_rows}
    rows = [by_key[task.key] for task in tasks]
    evaluator = RowEvaluator(*evaluator_args)
    example = mask_example(evaluator, items, audiogram_names, list(model_records))
    elapsed_s = time.monotonic() - started
    files, summary = write_reports(report_dir, rows, conditions, example,
                                   {"elapsed_s": round(elapsed_s, 2), "computed_rows": len(new_rows),
                                    "skipped_rows": len(tasks) - len(todo)})
    return EvaluationResult(report_dir, rows, summary, len(new_rows), len(tasks) - len(todo), elapsed_s, files)


def _compute_rows(tasks: Sequence[RowTask], evaluator_args: tuple, workers: int, rows_path: Path,
                  progress: bool) -> list[dict[str, Any]]:
    """Compute ``tasks``, appending each row to ``rows_path`` as soon as it is done."""
    from tqdm import tqdm

    if not tasks:
        return []
    workers = min(int(workers) or os.cpu_count() or 1, len(tasks))
    rows = []
    bar = tqdm(total=len(tasks), desc="evaluate", unit="row", disable=not progress, dynamic_ncols=True)
    pool = None
    try:
        if workers == 1:
            evaluator = RowEvaluator(*evaluator_args)
            results = (evaluator.row(task) for task in tasks)
        else:
            # spawn, not fork: the parent has run torch, whose thread pools do not survive a fork.
            pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (evaluator_args,))
            results = pool.imap_unordered(_worker_row, tasks)
        with open(rows_path, "a", encoding="utf-8") as handle:
            for row in results:
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                rows.append(row)
                bar.set_postfix_str(f"{row['system']} {row['audiogram']} {row['snr_db']:g} dB", refresh=False)
                bar.update(1)
        if pool is not None:
            pool.close()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()  # a no-op after close() once all rows are in; stops workers on errors
            pool.join()
    return rows
