"""Batches built by worker processes: the same arrays as in-process, robust to group signals."""

import os
import signal

import numpy as np

from hearmask.model.data.batches import BatchPrefetcher, batch_arrays
from hearmask.model.data.corpora import WavFolder
from hearmask.model.data.stream import TrainingMixtureStream


def test_workers_build_the_in_process_batches_and_survive_a_process_group_sigterm(corpus):
    stream = TrainingMixtureStream([WavFolder(corpus / "clean")], 4, segment_seconds=0.25, split="train")
    prefetcher = BatchPrefetcher(stream, 4, 3, lambda step: 3 * step, workers=1, depth=2)
    try:
        first = prefetcher.get(0)
        expected = batch_arrays(stream, 4, 0, 3)
        assert all(np.array_equal(getattr(first, name), getattr(expected, name))
                   for name in ("noisy", "clean", "audiograms_db_hl"))
        # What `timeout` or Ctrl-C does to the whole group: the worker must not die of it.
        for process in prefetcher._pool._processes.values():
            os.kill(process.pid, signal.SIGTERM)
        later = prefetcher.get(5)
        assert np.array_equal(later.noisy, batch_arrays(stream, 4, 15, 3).noisy)
    finally:
        prefetcher.close()
