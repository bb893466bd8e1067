"""Training batches as numpy arrays, built in this process or ahead of time in worker processes.

Each batch is a pure function of ``(stream, seed, first example index, batch size)``, so
building batches ahead in other processes changes nothing but speed: a run with
``[train] data_workers = N`` sees bit-identical batches to one with ``0`` (tested), and
resume stays exact.

Why processes: one 2 s example costs ~12 ms of numpy/scipy work on this machine
(segment draw, augmentation, reverberation, noise, mixing), ~0.4 s for a batch of 32,
which would leave a GPU idle most of the time. Workers start with ``spawn`` (never
``fork``, which is unsafe once CUDA is initialised) and import no torch.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from hearmask.profiles.sampling import AudiogramSampler


@dataclass(frozen=True)
class BatchArrays:
    noisy: np.ndarray  # (B, T) float32, noisy mixture
    clean: np.ndarray  # (B, T) float32, clean speech
    audiograms_db_hl: np.ndarray  # (B, F) dB HL at STANDARD_FREQUENCIES_HZ (F = 11)


def example_audiogram_db_hl(seed: int, index: int) -> np.ndarray:
    """The training audiogram of example ``index``: a pure function of ``(seed, index)``.

    Uniform over NH, N1–N7, S1–S3 with ±10 dB jitter (DESIGN.md), on STANDARD_FREQUENCIES_HZ.
    """
    child_seed = int(np.random.SeedSequence([seed, index, 0xA0D1]).generate_state(1)[0])
    return AudiogramSampler(child_seed).sample_batch(1)[0]


def batch_arrays(stream, seed: int, first_index: int, batch_size: int) -> BatchArrays:
    """Examples ``first_index … first_index + batch_size − 1`` of ``stream`` and their audiograms."""
    examples = [stream.at(first_index + j) for j in range(batch_size)]
    return BatchArrays(
        noisy=np.stack([e.noisy for e in examples]).astype(np.float32),
        clean=np.stack([e.clean for e in examples]).astype(np.float32),
        audiograms_db_hl=np.stack([example_audiogram_db_hl(seed, first_index + j) for j in range(batch_size)]),
    )


_worker_stream = None


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


def _init_worker(stream, parent_pid: int) -> None:
    global _worker_stream
    _worker_stream = stream
    # Ctrl-C and `timeout`/schedulers signal the whole process group. Only the training
    # process decides how to stop (it saves a checkpoint, then shuts the pool down); a worker
    # killed by the same signal breaks the pool under it, and on Python 3.12 a run hung there.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Ignoring SIGTERM must not leave orphans if the training process is killed outright.
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _worker_batch(seed: int, first_index: int, batch_size: int) -> BatchArrays:
    return batch_arrays(_worker_stream, seed, first_index, batch_size)


class BatchPrefetcher:
    """Batches of steps ``step … step + depth − 1`` built ahead by ``workers`` processes.

    Args:
        stream: the (picklable) example stream; each worker gets a copy.
        seed: the audiogram seed.
        batch_size: examples per batch.
        first_index_of: maps a step to its first example index.
        workers: worker processes (>= 1).
        depth: batches kept in flight (default 2 per worker).
    """

    def __init__(self, stream, seed: int, batch_size: int, first_index_of: Callable[[int], int], workers: int,
                 depth: int | None = None) -> None:
        self.seed, self.batch_size, self.first_index_of = seed, batch_size, first_index_of
        self.depth = depth or 2 * workers
        # Workers inherit these: one BLAS/OpenMP thread each, so N workers use N cores.
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(stream, os.getpid()))
        self._pending: dict[int, Future] = {}

    def get(self, step: int) -> BatchArrays:
        """The batch of ``step``; schedules the following ``depth`` steps."""
        for stale in [s for s in self._pending if s < step]:
            self._pending.pop(stale).cancel()
        for ahead in range(step, step + self.depth):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(_worker_batch, self.seed, self.first_index_of(ahead),
                                                         self.batch_size)
        return self._pending.pop(step).result()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
