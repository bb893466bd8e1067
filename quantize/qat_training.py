"""Calibration + quantization-aware fine-tuning from a float checkpoint, resumable.

The QAT run fine-tunes the :class:`QuantMaskNet` form of a trained model on the losses
and data it was trained with (the checkpoint's own ``train_config``; the learned task
weights are kept fixed), on short segments because the recurrence runs frame by frame
through the quantizers.

- **Data order** is the trainer's: calibration uses training batches
  ``0 … calibration_batches − 1`` and QAT step ``s`` uses batch
  ``calibration_batches + s``, a pure function of the seed, so a resumed run sees
  exactly the batches the uninterrupted one would have.
- **Checkpoint** ``OUT_DIR/qat_checkpoint.{json,safetensors}`` (the safetensors + JSON
  contract of :mod:`hearmask.model.checkpoint`): the QAT model's state (weights and
  Brevitas's learned scales and zero points) under ``model/``, the optimiser state under
  ``optimizer/``, and in JSON the float model's description, the source checkpoint's
  path and SHA-256, the QAT configuration and the progress. Written after calibration,
  every ``checkpoint_every`` steps and at the end; ``resume=True`` continues from it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from hearmask.errors import HearmaskError
from hearmask.model.checkpoint import (
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
    sha256_of_file,
    software_versions,
)
from hearmask.model.system import HearingAidSystem
from hearmask.model.system_io import MODEL_PREFIX, load_system, system_description
from hearmask.quantize.calibrate import build_qat_system, calibrate

QAT_CHECKPOINT_NAME = "qat_checkpoint.json"
FLOAT_PREFIX = "float/"


@dataclass(frozen=True)
class QatConfig:
    """QAT recipe; everything not here (data, losses, seed) comes from the float checkpoint."""

    steps: int = 300  # QAT optimiser steps after calibration
    calibration_batches: int = 8  # training batches whose activation ranges initialise the scales
    learning_rate: float = 1e-4  # Adam, for weights and the learned scales / zero points
    batch_size: int = 8
    segment_seconds: float = 0.5  # short: the GRU runs frame by frame through the quantizers
    gradient_clip: float = 1.0
    checkpoint_every: int = 50  # steps between checkpoints (and at the end)
    # Weight of a distillation term, mean |mask_dB(QAT) − mask_dB(float)| over NR and HLC masks with the
    # float model frozen: keeps the int8 model near the float one it stands in for (the task losses alone
    # let QAT drift: the audio check compares int8 with float). 0 = the task losses only.
    distillation_weight: float = 0.0

    def __post_init__(self) -> None:
        for field in ("calibration_batches", "batch_size", "checkpoint_every"):
            if getattr(self, field) < 1:
                raise HearmaskError(f"QAT {field} must be >= 1, got {getattr(self, field)}")
        if self.steps < 0:
            raise HearmaskError(f"QAT steps must be >= 0, got {self.steps}")
        if not 0 < self.learning_rate < 1:
            raise HearmaskError(f"QAT learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0.1 <= self.segment_seconds <= 60:
            raise HearmaskError(f"QAT segment_seconds must be within 0.1..60 s, got {self.segment_seconds}")
        if not 0 <= self.distillation_weight <= 100:
            raise HearmaskError(f"QAT distillation_weight must be within 0..100, got {self.distillation_weight}")


def resolve_source_checkpoint(path: str | Path) -> Path:
    """A run folder means its ``best.json`` (lowest validation loss) when present, else its
    ``checkpoint.json``; a file path means that checkpoint."""
    path = Path(path)
    if path.is_dir() and (path / "best.json").is_file():
        return path / "best.json"
    return resolve_checkpoint_path(path)


def _without_steps(config: dict) -> dict:
    """The QAT settings a resumed run must share, with defaults filled in for keys that older
    checkpoints do not store (a setting added later had its default then)."""
    defaults = json.loads(json.dumps(asdict(QatConfig())))
    return {key: value for key, value in {**defaults, **config}.items() if key != "steps"}


class QatTrainer:
    """Calibrate and fine-tune; :meth:`run` returns a summary. The QAT system is ``self.qat_system``."""

    def __init__(self, source: str | Path, out_dir: str | Path, config: QatConfig = QatConfig(), *,
                 resume: bool = False, progress: bool = True):
        from hearmask.model.train_config import data_source_config, train_config_from_dict
        from hearmask.model.trainer import Trainer

        self.source_path = resolve_source_checkpoint(source)
        self.out_dir = Path(out_dir)
        self.config = config
        self.progress = progress
        self.float_system, metadata = load_system(self.source_path)
        self.source_metadata = metadata
        self.source_sha256 = sha256_of_file(self.source_path.with_suffix(".safetensors"))
        if "train_config" not in metadata:
            raise HearmaskError(f"{self.source_path}: the checkpoint has no train_config; QAT fine-tunes on the "
                                "data and losses the model was trained with (a checkpoint written by hearmask train)")
        train_config = train_config_from_dict(metadata["train_config"], str(self.source_path))
        train_config = data_source_config(train_config, config.segment_seconds, config.batch_size)
        # The trainer provides the data stream and the loss; it writes nothing unless run.
        self.data = Trainer(train_config, self.out_dir / ".qat-data", progress=False)
        self.device = self.data.device
        self.loss = self.data.module.loss
        tensors, _ = load_checkpoint(self.source_path)
        if self.loss.log_variances is not None and "loss/log_variances" in tensors:
            with torch.no_grad():
                self.loss.log_variances.copy_(tensors["loss/log_variances"])
        for parameter in self.loss.parameters():
            parameter.requires_grad_(False)  # task weights stay as the float training left them
        self.qat_system = build_qat_system(self.float_system).to(self.device).train()
        self.optimizer = self._new_optimizer()
        self.step = 0
        self.calibrated = False
        self.elapsed_s = 0.0
        self.last_loss = math.nan
        checkpoint = self.out_dir / QAT_CHECKPOINT_NAME
        if resume:
            self._restore(checkpoint)
        elif checkpoint.exists():
            raise HearmaskError(f"{self.out_dir} already holds a QAT run ({QAT_CHECKPOINT_NAME}); pass --resume to "
                                "continue it, or choose another --out")

    def _new_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the current trainable parameters. Rebuilt after calibration and after loading a
        checkpoint: Brevitas may replace its scale/zero-point parameter objects when it (re)initialises them."""
        return torch.optim.Adam([p for p in self.qat_system.parameters() if p.requires_grad],
                                lr=self.config.learning_rate)

    # ----- loop -----

    def calibration_batches(self) -> list:
        return [self.data.train_batch(index) for index in range(self.config.calibration_batches)]

    def run(self) -> dict:
        started = time.perf_counter() - self.elapsed_s
        if not self.calibrated:
            calibrate(self.qat_system, self.calibration_batches(), progress=self.progress)
            self.calibrated = True
            self.optimizer = self._new_optimizer()
            self._save()
        bar = None
        if self.progress and self.step < self.config.steps:
            from tqdm import tqdm

            bar = tqdm(total=self.config.steps, initial=self.step, unit="step", desc="qat", dynamic_ncols=True)
        self.qat_system.train()
        try:
            while self.step < self.config.steps:
                batch = self.data.train_batch(self.config.calibration_batches + self.step)
                with self._mask_recorder() as masks:
                    terms = self.loss(self.qat_system, batch.noisy, batch.clean, batch.audiogram,
                                      batch.channel_loss_db)
                total = terms.total + self._distillation(masks)
                if not torch.isfinite(total):
                    raise HearmaskError(f"QAT loss became {float(terms.total.detach())} at step {self.step}; stopped. "
                                        f"The last good checkpoint is kept in {self.out_dir}; lower the learning rate")
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                nn.utils.clip_grad_norm_([p for p in self.qat_system.parameters() if p.requires_grad],
                                         self.config.gradient_clip)
                self.optimizer.step()
                self.step += 1
                self.last_loss = float(total.detach())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.last_loss:.4f}")
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.steps:
                    self.elapsed_s = time.perf_counter() - started
                    self._save()
        except KeyboardInterrupt:
            self.elapsed_s = time.perf_counter() - started
            self._save()
            raise
        finally:
            if bar is not None:
                bar.close()
        self.elapsed_s = time.perf_counter() - started
        self.qat_system.eval()
        return {"step": self.step, "loss": self.last_loss, "elapsed_s": self.elapsed_s,
                "checkpoint": str(self.out_dir / QAT_CHECKPOINT_NAME)}

    # ----- distillation -----

    @contextlib.contextmanager
    def _mask_recorder(self):
        """Within the block, every QAT network's forward appends ``(index, inputs, (nr_db, hlc_db))``."""
        records: list = []
        hooks = []
        if self.config.distillation_weight > 0:
            hooks = [network.register_forward_hook(
                lambda module, args, output, index=index: records.append((index, args, output)))
                for index, network in enumerate(self.qat_system.networks)]
        try:
            yield records
        finally:
            for hook in hooks:
                hook.remove()

    def _distillation(self, records: list) -> torch.Tensor:
        """``distillation_weight`` × mean |dB difference| of each recorded QAT mask from the frozen float
        network's on the same inputs (0 when the weight is 0)."""
        if self.config.distillation_weight <= 0 or not records:
            return torch.zeros((), device=self.device)
        distance = torch.zeros((), device=self.device)
        for index, args, (nr_db, hlc_db) in records:
            with torch.no_grad():
                float_nr_db, float_hlc_db = self.float_system.networks[index](*args[:2])
            distance = distance + (nr_db - float_nr_db).abs().mean() + (hlc_db - float_hlc_db).abs().mean()
        return self.config.distillation_weight * distance / len(records)

    # ----- files -----

    def _metadata(self) -> dict:
        import brevitas

        return {
            "kind": "hearmask-qat",
            "system": system_description(self.float_system),
            "source_checkpoint": {"path": str(self.source_path), "weights_sha256": self.source_sha256},
            "qat_config": asdict(self.config),
            "progress": {"step": self.step, "calibrated": self.calibrated, "elapsed_s": self.elapsed_s,
                         "loss": None if math.isnan(self.last_loss) else self.last_loss},
            "versions": {**software_versions(), "brevitas": brevitas.__version__},
        }

    def _save(self) -> None:
        tensors = {MODEL_PREFIX + name: tensor for name, tensor in self.qat_system.state_dict().items()}
        # The float model QAT started from travels with it: it is the reference in validation.
        tensors.update({FLOAT_PREFIX + name: tensor for name, tensor in self.float_system.state_dict().items()})
        metadata = self._metadata()
        optimizer_tensors, metadata["optimizer_param_groups"] = optimizer_to_checkpoint(self.optimizer)
        tensors.update(optimizer_tensors)
        save_checkpoint(self.out_dir / QAT_CHECKPOINT_NAME, tensors, metadata)

    def _restore(self, checkpoint: Path) -> None:
        if not checkpoint.exists():
            raise HearmaskError(f"--resume: {self.out_dir} holds no {QAT_CHECKPOINT_NAME} to continue")
        tensors, metadata = load_checkpoint(checkpoint)
        if metadata.get("source_checkpoint", {}).get("weights_sha256") != self.source_sha256:
            raise HearmaskError(f"--resume: {checkpoint} was made from another float checkpoint than "
                                f"{self.source_path}; give the same source, or choose another --out")
        saved_config = json.loads(json.dumps(metadata.get("qat_config", {})))
        if _without_steps(saved_config) != _without_steps(json.loads(json.dumps(asdict(self.config)))):
            raise HearmaskError(f"--resume needs the QAT settings the run started with (only --qat-steps may change); "
                                f"the checkpoint has {saved_config}")
        load_qat_state(self.qat_system, tensors, str(checkpoint))
        self.optimizer = self._new_optimizer()
        optimizer_from_checkpoint(self.optimizer, tensors, metadata["optimizer_param_groups"])
        progress = metadata["progress"]
        self.step = int(progress["step"])
        self.calibrated = bool(progress["calibrated"])
        self.elapsed_s = float(progress["elapsed_s"])
        self.last_loss = math.nan if progress.get("loss") is None else float(progress["loss"])


def load_qat_state(qat_system: HearingAidSystem, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``model/…`` tensors of a QAT checkpoint into ``qat_system`` (strictly)."""
    from hearmask.model.system_io import without_derived_buffers

    state = {name[len(MODEL_PREFIX):]: tensor for name, tensor in tensors.items() if name.startswith(MODEL_PREFIX)}
    missing, unexpected = qat_system.load_state_dict(without_derived_buffers(qat_system, state), strict=False)
    if missing or unexpected:
        raise HearmaskError(f"{source}: QAT weights do not fit the model (missing {sorted(missing)[:5]}, "
                            f"unexpected {sorted(unexpected)[:5]})")


def load_qat_system(path: str | Path) -> tuple[HearingAidSystem, HearingAidSystem, dict]:
    """``(qat_system, float_system, metadata)`` from a QAT checkpoint (a folder holding
    ``qat_checkpoint.json``, or the file); the float system is the one QAT started from."""
    from hearmask.model.system_io import system_from_description, without_derived_buffers

    path = Path(path)
    if path.is_dir():
        path = path / QAT_CHECKPOINT_NAME
    tensors, metadata = load_checkpoint(path)
    if metadata.get("kind") != "hearmask-qat":
        raise HearmaskError(f"{path} is not a hearmask QAT checkpoint (written by hearmask quantize)")
    float_system = system_from_description(metadata["system"], str(path))
    float_state = {name[len(FLOAT_PREFIX):]: tensor for name, tensor in tensors.items() if name.startswith(FLOAT_PREFIX)}
    try:
        float_system.load_state_dict(without_derived_buffers(float_system, float_state))
    except RuntimeError as error:
        raise HearmaskError(f"{path}: the float weights do not fit the described model ({error})") from None
    float_system.eval()
    qat_system = build_qat_system(float_system)
    load_qat_state(qat_system, tensors, str(path))
    return qat_system.eval(), float_system, metadata
