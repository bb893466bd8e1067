"""Training configuration: one TOML file mapped onto frozen dataclasses.

Example (every section and key optional; defaults are the shipped recipe)::

    [stft]
    name = "default"            # a shipped STFT configuration

    [model]
    size = "default"            # MaskNet size preset; other keys override its fields

    [task]
    variant = "joint"           # joint | nr | hlc | cascade
    weighting = "uncertainty"   # uncertainty | fixed
    nr_weight = 1.0             # fixed weights (weighting = "fixed")
    hlc_weight = 1.0
    distance = "l1"             # l1 | mse on auditory-model outputs
    nr_mask_weight = 0.0        # auxiliary band ideal-ratio-mask loss on the NR mask (0 = off)
    combined_weight = 0.0       # joint only: end-to-end term HI(x·M_NR·M_HLC) vs NH(clean) (0 = off)

    [data]
    sources = ["real", "flite", "espeak"]
    segment_seconds = 2.0
    snr_db = [-5.0, 20.0]
    clean_dir = ""              # user corpora instead of the embedded default
    noise_dir = ""
    noisy_dir = ""
    speech_pack = ""            # a `hearmask data pack` folder: the embedded speech on another machine

    [auditory]                  # AuditoryModelConfig fields of the training objective, e.g.
    filterbank = "gammatone"    # gammatone | drnl (Lopez-Poveda & Meddis 2001 dual-resonance)

    [train]
    seed = 0
    batch_size = 8
    steps = 20000
    steps_per_epoch = 500
    validation_batches = 8
    learning_rate = 1e-3
    gradient_clip = 1.0
    threads = 0                 # torch intra-op threads; 0 = torch's default
    data_workers = 0            # processes building batches ahead (a GPU needs them); same batches
    keep_every = 0              # keep the weights every N steps (a multiple of steps_per_epoch); 0 = off
    init_from = ""              # warm start: a checkpoint (or run dir) whose model weights start this run

Unknown sections or keys are errors that list what is accepted (a typo must not silently
fall back to a default). Configuration is passed explicitly; nothing reads a global.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hearmask.errors import HearmaskError

TASK_VARIANTS = ("joint", "nr", "hlc", "cascade")
WEIGHTINGS = ("uncertainty", "fixed")
DISTANCES = ("l1", "mse")


@dataclass(frozen=True)
class StftSection:
    name: str = "default"  # key of SHIPPED_STFT_CONFIGS


@dataclass(frozen=True)
class ModelSection:
    size: str = "default"  # MaskNet size preset
    overrides: dict = field(default_factory=dict)  # MaskNetConfig fields that override the preset


@dataclass(frozen=True)
class TaskSection:
    variant: str = "joint"  # which masks are trained and how they combine
    weighting: str = "uncertainty"  # learned e^-s·L + s weights, or fixed ones
    nr_weight: float = 1.0  # used when weighting = "fixed"
    hlc_weight: float = 1.0
    distance: str = "l1"  # distance between auditory-model outputs
    nr_mask_weight: float = 0.0  # weight of the auxiliary NR mask loss (band IRM target); 0 = paper's objective only
    combined_weight: float = 0.0  # joint only: weight of the (1, 1) end-to-end term; 0 = the two task losses only


@dataclass(frozen=True)
class DataSection:
    sources: tuple = ("real", "flite", "espeak")  # embedded speech sources
    segment_seconds: float = 2.0  # length of each training example
    snr_db: tuple = (-5.0, 20.0)  # uniform SNR range of the mixtures
    clean_dir: str = ""  # user clean-speech folder (with noise_dir), replaces `sources`
    noise_dir: str = ""
    noisy_dir: str = ""  # paired noisy folder (with clean_dir), VoiceBank-DEMAND style
    speech_pack: str = ""  # a `hearmask data pack` folder: the embedded speech without its Debian packages/TTS


@dataclass(frozen=True)
class TrainSection:
    seed: int = 0  # seeds data order, audiograms and initialisation
    batch_size: int = 8
    steps: int = 20000  # total optimiser steps
    steps_per_epoch: int = 500  # validation and checkpoint after each epoch
    validation_batches: int = 8  # fixed validation set size, in batches
    learning_rate: float = 1e-3
    gradient_clip: float = 1.0  # max gradient norm
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    data_workers: int = 0  # processes building batches ahead (0 = in the training process); same batches either way
    keep_every: int = 0  # also keep the weights every N steps as snapshots/stepNNNNNN.json (0 = only latest + best)
    init_from: str = ""  # checkpoint or run dir whose model weights initialise this run (fine-tuning)


@dataclass(frozen=True)
class AuditorySection:
    overrides: dict = field(default_factory=dict)  # AuditoryModelConfig fields (sample rate: from the STFT)


@dataclass(frozen=True)
class TrainConfig:
    stft: StftSection = StftSection()
    model: ModelSection = ModelSection()
    task: TaskSection = TaskSection()
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()
    auditory: AuditorySection = AuditorySection()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECTIONS = {"stft": StftSection, "model": ModelSection, "task": TaskSection, "data": DataSection, "train": TrainSection,
             "auditory": AuditorySection}


def _build_section(name: str, cls: type, values: Any, source: str):
    if not isinstance(values, dict):
        raise HearmaskError(f"{source}: [{name}] must be a table, got {values!r}")
    accepted = {f.name: f for f in fields(cls)}
    if cls is ModelSection:
        values = dict(values)
        size = values.pop("size", ModelSection.size)
        overrides = values.pop("overrides", {})
        return ModelSection(size=size, overrides={**overrides, **values})
    if cls is AuditorySection:
        values = dict(values)
        overrides = values.pop("overrides", {})
        # TOML arrays become tuples, as the frozen config's fields are.
        merged = {k: tuple(v) if isinstance(v, list) else v for k, v in {**overrides, **values}.items()}
        return AuditorySection(overrides=merged)
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise HearmaskError(f"{source}: unknown key(s) {unknown} in [{name}]; accepted: {sorted(accepted)}")
    converted = {}
    for key, value in values.items():
        default = accepted[key].default
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise HearmaskError(f"{source}: [{name}] {key} must be a list, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool) or not isinstance(value, type(default)):
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            else:
                raise HearmaskError(
                    f"{source}: [{name}] {key} must be {type(default).__name__}, got {value!r}"
                )
        converted[key] = value
    return cls(**converted)


def train_config_from_dict(document: dict[str, Any], source: str = "config") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a parsed TOML document."""
    unknown = sorted(set(document) - set(_SECTIONS))
    if unknown:
        raise HearmaskError(f"{source}: unknown section(s) {unknown}; accepted: {sorted(_SECTIONS)}")
    sections = {name: _build_section(name, cls, document.get(name, {}), source) for name, cls in _SECTIONS.items()}
    config = TrainConfig(**sections)
    validate_train_config(config, source)
    return config


def data_source_config(config: TrainConfig, segment_seconds: float, batch_size: int, **train_fields) -> TrainConfig:
    """``config`` for a Trainer used only to draw a run's data and losses (QAT, validation).

    Other segment length and batch size; no warm start: ``init_from`` named the run's own
    starting weights, which are not needed here and need not exist on this machine. Likewise
    a ``speech_pack`` (the embedded speech, packed for a machine without its Debian packages)
    gives way to the embedded sources themselves, and batches are built in this process.
    """
    return replace(config, data=replace(config.data, segment_seconds=segment_seconds, speech_pack=""),
                   train=replace(config.train, batch_size=batch_size, init_from="", data_workers=0, **train_fields))


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a TOML training configuration, with errors that name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise HearmaskError(f"training config {str(path)!r} does not exist")
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HearmaskError(f"training config {str(path)!r} is not valid TOML: {error}") from None
    return train_config_from_dict(document, str(path))


def auditory_model_config(config: TrainConfig, sample_rate_hz: int):
    """The training objective's :class:`AuditoryModelConfig`: ``[auditory]`` over the defaults."""
    from hearmask.model.auditory import AuditoryModelConfig

    overrides = dict(config.auditory.overrides)
    if "sample_rate_hz" in overrides:
        raise HearmaskError(f"[auditory] sample_rate_hz comes from the STFT ({sample_rate_hz} Hz); remove it")
    accepted = sorted(f.name for f in fields(AuditoryModelConfig) if f.name != "sample_rate_hz")
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise HearmaskError(f"unknown key(s) {unknown} in [auditory]; accepted: {accepted}")
    try:
        return AuditoryModelConfig(sample_rate_hz=sample_rate_hz, **overrides)
    except TypeError as error:  # a value of the wrong kind that validation did not name
        raise HearmaskError(f"[auditory] {error}") from None


def validate_train_config(config: TrainConfig, source: str = "config") -> None:
    task, data, train = config.task, config.data, config.train
    try:
        from hearmask.model.stft_config import shipped_stft_config

        auditory_model_config(config, shipped_stft_config(config.stft.name).sample_rate_hz)
    except HearmaskError as error:
        raise HearmaskError(f"{source}: {error}") from None
    if task.variant not in TASK_VARIANTS:
        raise HearmaskError(f"{source}: [task] variant {task.variant!r}; accepted: {', '.join(TASK_VARIANTS)}")
    if task.weighting not in WEIGHTINGS:
        raise HearmaskError(f"{source}: [task] weighting {task.weighting!r}; accepted: {', '.join(WEIGHTINGS)}")
    if task.distance not in DISTANCES:
        raise HearmaskError(f"{source}: [task] distance {task.distance!r}; accepted: {', '.join(DISTANCES)}")
    if task.nr_mask_weight < 0:
        raise HearmaskError(f"{source}: [task] nr_mask_weight must be >= 0, got {task.nr_mask_weight}")
    if task.combined_weight < 0:
        raise HearmaskError(f"{source}: [task] combined_weight must be >= 0, got {task.combined_weight}")
    if task.combined_weight > 0 and task.variant != "joint":
        raise HearmaskError(f"{source}: [task] combined_weight applies to variant 'joint' only, "
                            f"got variant {task.variant!r} with combined_weight {task.combined_weight}")
    if task.nr_weight < 0 or task.hlc_weight < 0:
        raise HearmaskError(f"{source}: [task] weights must be >= 0, got {task.nr_weight}, {task.hlc_weight}")
    if len(data.snr_db) != 2 or data.snr_db[0] > data.snr_db[1]:
        raise HearmaskError(f"{source}: [data] snr_db must be [low, high] with low <= high, got {list(data.snr_db)}")
    if not 0.1 <= data.segment_seconds <= 60:
        raise HearmaskError(f"{source}: [data] segment_seconds must be within 0.1..60 s, got {data.segment_seconds}")
    if bool(data.noise_dir) and not data.clean_dir or bool(data.noisy_dir) and not data.clean_dir:
        raise HearmaskError(f"{source}: [data] noise_dir and noisy_dir need clean_dir as well")
    if data.speech_pack and data.clean_dir:
        raise HearmaskError(f"{source}: [data] give speech_pack (the embedded speech, packed) or clean_dir "
                            f"(your own speech), not both; got {data.speech_pack!r} and {data.clean_dir!r}")
    if data.noise_dir and data.noisy_dir:
        raise HearmaskError(f"{source}: [data] give noise_dir (mix clean speech with noise) or noisy_dir "
                            f"(paired recordings), not both; got {data.noise_dir!r} and {data.noisy_dir!r}")
    for key in ("batch_size", "steps", "steps_per_epoch", "validation_batches"):
        if getattr(train, key) < 1:
            raise HearmaskError(f"{source}: [train] {key} must be >= 1, got {getattr(train, key)}")
    if not 0 < train.learning_rate < 1:
        raise HearmaskError(f"{source}: [train] learning_rate must be in (0, 1), got {train.learning_rate}")
    if train.threads < 0:
        raise HearmaskError(f"{source}: [train] threads must be >= 0, got {train.threads}")
    if train.keep_every < 0 or train.keep_every % max(train.steps_per_epoch, 1):
        raise HearmaskError(f"{source}: [train] keep_every must be 0 or a multiple of steps_per_epoch "
                            f"({train.steps_per_epoch}): snapshots are taken at epoch ends; got {train.keep_every}")
    if train.data_workers < 0:
        raise HearmaskError(f"{source}: [train] data_workers must be >= 0, got {train.data_workers}")
