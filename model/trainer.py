"""Training loop: reproducible, resumable, distributed-ready (``hearmask train``).

- **Data order** is a pure function of ``(seed, example index)``: step ``s`` on rank ``r``
  of ``W`` uses examples ``(s·W + r)·B … (s·W + r)·B + B − 1``. A resumed run therefore
  sees exactly the batches the uninterrupted run would have seen.
- **Checkpoints** (``RUN_DIR/checkpoint.json`` + ``.safetensors``, atomic) hold the model,
  the loss weights, the optimiser state and the progress; ``best.json`` holds the weights
  with the lowest validation loss; ``[train] keep_every = N`` also keeps the weights every
  N steps in ``snapshots/``. ``--resume`` continues from ``checkpoint.json``.
- **Log**: ``RUN_DIR/log.csv``, one row per epoch, appended as it goes.
- **Non-finite loss** stops training with a clear error; the last good checkpoint stays.
- **Distributed**: under ``torchrun`` (``WORLD_SIZE`` > 1) the loss module is wrapped in
  DDP (gloo on CPU, NCCL on GPUs); rank 0 writes files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hearmask.errors import HearmaskError
from hearmask.model.auditory import AuditoryModel
from hearmask.model.checkpoint import (
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    software_versions,
)
from hearmask.model.data.batches import BatchArrays, BatchPrefetcher, batch_arrays
from hearmask.model.data.stream import TrainingMixtureStream
from hearmask.model.losses import MultiTaskLoss
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs
from hearmask.model.system_io import MODEL_PREFIX, save_system, without_derived_buffers
from hearmask.model.train_config import TrainConfig, auditory_model_config, train_config_from_dict
from hearmask.profiles.audiogram import MODEL_AUDIOGRAM_FREQUENCIES_HZ, MODEL_INPUT_SCALE_DB
from hearmask.profiles.interpolate import interpolate_db_hl
from hearmask.profiles.standard import STANDARD_FREQUENCIES_HZ

LOG_COLUMNS = ("step", "epoch", "train_loss", "train_nr_loss", "train_hlc_loss", "val_loss", "val_nr_loss",
               "val_hlc_loss", "elapsed_s", "audio_s_per_s")
# The validation stream uses its own seed namespace so it never repeats training draws.
_VALIDATION_SEED_OFFSET = 1_000_003


def training_device_name(device: torch.device, threads: int) -> str:
    """What trained the run, for the model card: ``"cuda: NVIDIA H200"`` or ``"cpu: 2 threads of 16 cores"``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {threads or torch.get_num_threads()} threads of {os.cpu_count()} cores"


def build_speech_sources(config: TrainConfig) -> tuple[list, object | None]:
    """Speech sources and optional noise recordings named by ``[data]``."""
    data = config.data
    if data.clean_dir:
        from hearmask.model.data.corpora import WavFolder

        noise = WavFolder(data.noise_dir, name="noise", role="noise") if data.noise_dir else None
        return [WavFolder(data.clean_dir, name="clean", role="clean speech")], noise
    if data.speech_pack:
        from hearmask.model.data.pack import read_speech_pack

        return read_speech_pack(data.speech_pack), None
    from hearmask.model.data.synth import build_speech_sources as embedded_sources

    return embedded_sources(data.sources, progress=False), None


def _without_steps(config_dict) -> dict | None:
    """A config dict minus ``train.steps`` (a resumed run may extend it) and ``train.data_workers``.

    Re-read through :func:`train_config_from_dict`, so a checkpoint written before a section
    or key existed compares equal to the same recipe with that key at its default.
    """
    if not isinstance(config_dict, dict):
        return None
    try:
        normalized = json.loads(json.dumps(train_config_from_dict(config_dict).to_dict()))
    except HearmaskError:
        return config_dict
    # data_workers only changes speed: the batches are the same (model/data/batches.py).
    train = {k: v for k, v in normalized.get("train", {}).items() if k not in ("steps", "data_workers")}
    return {**normalized, "train": train}


@contextmanager
def _stop_requests(trainer: "Trainer"):
    """SIGINT (Ctrl-C) and SIGTERM (``kill``, a scheduler pre-empting the job) ask the loop
    to stop at the next step boundary, where it saves a checkpoint that resumes exactly.
    (A background job ignores SIGINT, so SIGTERM is the polite way to stop it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum, frame):
        trainer.stop_requested = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class TrainingModule(nn.Module):
    """System + loss in one module, so DDP sees every trainable parameter."""

    def __init__(self, system: HearingAidSystem, loss: MultiTaskLoss):
        super().__init__()
        self.system = system
        self.loss = loss

    def forward(self, noisy, clean, audiogram, channel_loss_db) -> torch.Tensor:
        terms = self.loss(self.system, noisy, clean, audiogram, channel_loss_db)
        return torch.stack([terms.total, terms.nr, terms.hlc])


@dataclass
class Batch:
    noisy: torch.Tensor  # (B, T)
    clean: torch.Tensor  # (B, T)
    audiogram: torch.Tensor  # (B, 8) network input, dB HL / 100
    channel_loss_db: torch.Tensor  # (B, C) loss at the auditory channels


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 streams: tuple[TrainingMixtureStream, TrainingMixtureStream] | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")

        torch.manual_seed(config.train.seed)  # identical initial weights on every rank
        stft_config = shipped_stft_config(config.stft.name)
        networks = build_masknet_configs(config.task.variant, stft_config, config.model.size, config.model.overrides)
        self.system = HearingAidSystem(config.task.variant, stft_config, networks)
        self.auditory_model = AuditoryModel(auditory_model_config(config, stft_config.sample_rate_hz))
        task = config.task
        loss = MultiTaskLoss(self.auditory_model, task.variant, task.weighting, task.nr_weight, task.hlc_weight,
                             task.distance, task.nr_mask_weight, task.combined_weight)
        if config.train.init_from and not resume:
            self._warm_start(config.train.init_from)
        self.module = TrainingModule(self.system, loss).to(self.device)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=config.train.learning_rate)
        self.step = 0
        self.best_val_loss = math.inf
        self.elapsed_s = 0.0
        self.devices = [training_device_name(self.device, config.train.threads)]
        if resume:
            self._restore()
        elif (self.run_dir / "checkpoint.json").exists():
            raise HearmaskError(f"{self.run_dir} already holds a run; pass --resume to continue it, "
                                "or choose another --out")
        self.wrapped = self.module
        if self.world_size > 1:
            self.wrapped = nn.parallel.DistributedDataParallel(self.module)
        self.train_stream, self.validation_stream = streams or self._build_streams()
        self._validation_batches: list[Batch] | None = None
        self._prefetcher: BatchPrefetcher | None = None

    # ----- data -----

    def _build_streams(self) -> tuple[TrainingMixtureStream, TrainingMixtureStream]:
        data, seed = self.config.data, self.config.train.seed
        if data.noisy_dir:  # paired folders: the corpus's own mixtures, nothing is mixed
            from hearmask.model.data.corpora import PairedCorpus
            from hearmask.model.data.paired_stream import PairedSegmentStream

            corpus = PairedCorpus(data.noisy_dir, data.clean_dir)
            return (PairedSegmentStream(corpus, seed, data.segment_seconds, split="train"),
                    PairedSegmentStream(corpus, seed + _VALIDATION_SEED_OFFSET, data.segment_seconds,
                                        split="validation"))
        speech, noise_recordings = build_speech_sources(self.config)
        kinds = {"noise_kinds": ("recorded",), "noise_recordings": noise_recordings} if noise_recordings else {}
        common = dict(segment_seconds=data.segment_seconds, snr_range_db=tuple(data.snr_db), **kinds)
        return (TrainingMixtureStream(speech, seed, split="train", **common),
                TrainingMixtureStream(speech, seed + _VALIDATION_SEED_OFFSET, split="validation", **common))

    def _first_index(self, step: int) -> int:
        return (step * self.world_size + self.rank) * self.config.train.batch_size

    def _to_batch(self, arrays: BatchArrays) -> Batch:
        network_input = interpolate_db_hl(STANDARD_FREQUENCIES_HZ, arrays.audiograms_db_hl,
                                          MODEL_AUDIOGRAM_FREQUENCIES_HZ)
        channel_loss = self.auditory_model.channel_loss_db(STANDARD_FREQUENCIES_HZ, arrays.audiograms_db_hl)
        to = dict(device=self.device, dtype=torch.float32)
        return Batch(
            noisy=torch.as_tensor(arrays.noisy, **to),
            clean=torch.as_tensor(arrays.clean, **to),
            audiogram=torch.as_tensor(network_input / MODEL_INPUT_SCALE_DB, **to),
            channel_loss_db=channel_loss.to(**to),
        )

    def _batch(self, stream: TrainingMixtureStream, first_index: int, seed: int) -> Batch:
        return self._to_batch(batch_arrays(stream, seed, first_index, self.config.train.batch_size))

    def train_batch(self, step: int) -> Batch:
        config = self.config.train
        if not config.data_workers:
            return self._batch(self.train_stream, self._first_index(step), config.seed)
        if self._prefetcher is None:
            self._prefetcher = BatchPrefetcher(self.train_stream, config.seed, config.batch_size, self._first_index,
                                               config.data_workers)
        return self._to_batch(self._prefetcher.get(step))

    def close(self) -> None:
        """Stop the batch workers (if any); :meth:`run` does this when it returns."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def validation_batches(self) -> list[Batch]:
        if self._validation_batches is None:
            size = self.config.train.batch_size
            seed = self.config.train.seed + _VALIDATION_SEED_OFFSET
            self._validation_batches = [self._batch(self.validation_stream, i * size, seed)
                                        for i in range(self.config.train.validation_batches)]
        return self._validation_batches

    # ----- loop -----

    def validate(self) -> np.ndarray:
        self.module.eval()
        with torch.no_grad():
            values = [self.module(b.noisy, b.clean, b.audiogram, b.channel_loss_db).cpu().numpy()
                      for b in self.validation_batches()]
        self.module.train()
        return np.mean(values, axis=0)

    def run(self) -> dict:
        """Train to ``[train] steps``; on SIGINT/SIGTERM save a checkpoint and raise KeyboardInterrupt."""
        config = self.config.train
        bar = None
        if self.progress and self.rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=config.steps, initial=self.step, unit="step", desc="train", dynamic_ncols=True)
        started = time.perf_counter() - self.elapsed_s
        epoch_values: list[np.ndarray] = []
        self.stop_requested = False
        try:
            with _stop_requests(self):
                while self.step < config.steps:
                    if self.stop_requested:
                        if self.rank == 0:
                            self.elapsed_s = time.perf_counter() - started
                            self._save("checkpoint.json")
                        raise KeyboardInterrupt(f"stopped at step {self.step}; resume with --resume")
                    epoch_values.append(self._train_step(bar))
                    if self.step % config.steps_per_epoch == 0 or self.step == config.steps:
                        self.elapsed_s = time.perf_counter() - started
                        audio_s = self.step * config.batch_size * self.world_size * self.config.data.segment_seconds
                        self._end_epoch(np.mean(epoch_values, axis=0), audio_s / max(self.elapsed_s, 1e-9))
                        epoch_values.clear()
        finally:
            self.close()
            if bar is not None:
                bar.close()
        return {"step": self.step, "best_val_loss": self.best_val_loss, "elapsed_s": self.elapsed_s,
                "run_dir": str(self.run_dir)}

    def _train_step(self, bar) -> np.ndarray:
        """One optimiser step on batch ``self.step``; returns [total, nr, hlc] losses."""
        batch = self.train_batch(self.step)
        values = self.wrapped(batch.noisy, batch.clean, batch.audiogram, batch.channel_loss_db)
        if not torch.isfinite(values[0]):
            raise HearmaskError(
                f"training loss became {float(values[0].detach())} at step {self.step}; stopped. The last good "
                f"checkpoint (step {self._saved_step()}) is kept in {self.run_dir}; lower [train] "
                "learning_rate or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        values[0].backward()
        nn.utils.clip_grad_norm_(self.module.parameters(), self.config.train.gradient_clip)
        self.optimizer.step()
        self.step += 1
        values = values.detach().cpu().numpy()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{values[0]:.4f}")
        return values

    def _end_epoch(self, train_values: np.ndarray, audio_s_per_s: float) -> None:
        val_values = self.validate()
        if self.rank != 0:
            return
        epoch = self.step // self.config.train.steps_per_epoch
        row = [self.step, epoch, *[float(v) for v in train_values], *[float(v) for v in val_values],
               round(self.elapsed_s, 2), round(audio_s_per_s, 2)]
        self._append_log(row)
        if val_values[0] < self.best_val_loss:
            self.best_val_loss = float(val_values[0])
            self._save("best.json", with_optimizer=False)
        keep_every = self.config.train.keep_every
        if keep_every and self.step % keep_every == 0:
            # The validation loss may not rank checkpoints as listening metrics do: keep some to evaluate.
            (self.run_dir / "snapshots").mkdir(parents=True, exist_ok=True)
            self._save(f"snapshots/step{self.step:06d}.json", with_optimizer=False)
        self._save("checkpoint.json")

    # ----- files -----

    def _append_log(self, row: list) -> None:
        path = self.run_dir / "log.csv"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(LOG_COLUMNS)
            writer.writerow(row)

    def _metadata(self) -> dict:
        return {
            "train_config": self.config.to_dict(),
            "progress": {"step": self.step, "best_val_loss": self.best_val_loss, "elapsed_s": self.elapsed_s,
                         "world_size": self.world_size, "devices": self.devices},
            "versions": software_versions(),
        }

    def _save(self, name: str, with_optimizer: bool = True) -> None:
        tensors, metadata = {}, self._metadata()
        if self.module.loss.log_variances is not None:
            tensors["loss/log_variances"] = self.module.loss.log_variances.detach()
        if with_optimizer:
            optimizer_tensors, metadata["optimizer_param_groups"] = optimizer_to_checkpoint(self.optimizer)
            tensors.update(optimizer_tensors)
        save_system(self.run_dir / name, self.system, metadata, tensors)

    def _saved_step(self) -> int:
        path = self.run_dir / "checkpoint.json"
        return json.loads(path.read_text())["progress"]["step"] if path.exists() else 0

    def _restore(self) -> None:
        tensors, metadata = load_checkpoint(self.run_dir / "checkpoint.json")
        if _without_steps(metadata.get("train_config")) != _without_steps(self.config.to_dict()):
            raise HearmaskError(f"{self.run_dir}: --resume needs the configuration the run started with "
                                "([train] steps may grow); the given config differs from the checkpoint's train_config")
        state = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
        self.system.load_state_dict(without_derived_buffers(self.system, state))
        if "loss/log_variances" in tensors:
            with torch.no_grad():
                self.module.loss.log_variances.copy_(tensors["loss/log_variances"])
        optimizer_from_checkpoint(self.optimizer, tensors, metadata["optimizer_param_groups"])
        progress = metadata["progress"]
        self.step = int(progress["step"])
        self.best_val_loss = float(progress["best_val_loss"])
        self.elapsed_s = float(progress["elapsed_s"])
        # A run resumed elsewhere (CPU, then a GPU machine) lists every device it trained on.
        self.devices = list(dict.fromkeys([*progress.get("devices", []), *self.devices]))
        self._truncate_log()

    def _warm_start(self, path: str) -> None:
        """Start from the model weights of another checkpoint (fine-tuning: fresh optimiser, step 0).

        The checkpoint must describe the same model (variant, STFT, network sizes); the heads'
        output ranges (NR floor, HLC range and ceiling) may differ, since they scale the heads'
        sigmoids without weights of their own: fine-tuning a trained model to a new range is
        what a changed range in a warm start is for.
        """
        from hearmask.model.network import OUTPUT_RANGE_FIELDS
        from hearmask.model.system_io import load_system, system_description

        initial, _ = load_system(path)

        def architecture(system) -> dict:
            description = system_description(system)
            networks = [{key: value for key, value in network.items() if key not in OUTPUT_RANGE_FIELDS}
                        for network in description["networks"]]
            return {"variant": description["variant"], "stft": description["stft"], "networks": networks}

        ours, theirs = architecture(self.system), architecture(initial)
        differing = [key for key in ours if json.dumps(ours[key], sort_keys=True) != json.dumps(theirs[key], sort_keys=True)]
        if differing:
            raise HearmaskError(f"[train] init_from {path!r}: that checkpoint's model differs from this config's "
                                f"in {differing}; a warm start needs the same variant, STFT and network sizes "
                                f"(only the output ranges {', '.join(OUTPUT_RANGE_FIELDS)} may differ)")
        self.system.load_state_dict(initial.state_dict())

    def _truncate_log(self) -> None:
        """Drop log rows written after the checkpoint (an interruption between the two writes)."""
        path = self.run_dir / "log.csv"
        if not path.exists():
            return
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= self.step]
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)
