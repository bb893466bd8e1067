"""From sound-card blocks to model hops and back (numpy only: runs in the live audio callback).

The card delivers blocks of ``B`` samples at its rate; the model takes hops of ``R``
samples at its rate (16 kHz). Per block: resample down (when the rates differ), queue,
process every whole hop, resample the processed hops up, and hand back exactly ``B``
samples. The output queue starts with ``prefill`` zeros, the smallest number for which
it never runs dry (found by counting, :func:`plan_prefill`): 0 when the rates match and
``R`` divides ``B``; otherwise up to about one hop. That prefill is buffering latency on
top of the STFT's, and :meth:`BlockAdapter.latency_budget` lists every part.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.resample import StreamingResampler

PLAN_BLOCKS = 20000  # blocks counted to find the prefill; the pattern repeats far sooner for real rates

HopFunction = Callable[[np.ndarray], np.ndarray]


def plan_prefill(block_samples: int, hop_samples: int, down: StreamingResampler | None,
                 up: StreamingResampler | None, blocks: int = PLAN_BLOCKS) -> int:
    """Smallest output-queue prefill (card samples) such that every block finds ``block_samples`` ready."""
    k = np.arange(1, blocks + 1, dtype=np.int64)
    card_in = k * block_samples
    model_in = np.array([down.output_count(int(n)) for n in card_in]) if down else card_in
    model_out = (model_in // hop_samples) * hop_samples
    card_out = np.array([up.output_count(int(n)) for n in model_out]) if up else model_out
    # Before popping block k the queue holds prefill + card_out[k] − (k − 1)·B; it must hold B.
    return int(max(0, np.max(card_in - card_out)))


class BlockAdapter:
    """Blocks at the card's rate in, blocks of the same size out, hops through ``process_hop`` in between."""

    def __init__(self, process_hop: HopFunction, hop_samples: int, model_rate_hz: int, card_rate_hz: int,
                 block_samples: int):
        if isinstance(block_samples, bool) or not isinstance(block_samples, int) or not 1 <= block_samples <= 16384:
            raise HearmaskError(f"block size must be 1..16384 samples, got {block_samples!r}")
        if isinstance(card_rate_hz, bool) or not isinstance(card_rate_hz, int) or not 8000 <= card_rate_hz <= 384000:
            raise HearmaskError(f"sound card rate must be an integer in 8000..384000 Hz, got {card_rate_hz!r}")
        self.process_hop = process_hop
        self.hop_samples = hop_samples
        self.model_rate_hz = model_rate_hz
        self.card_rate_hz = card_rate_hz
        self.block_samples = block_samples
        resampling = card_rate_hz != model_rate_hz
        self.down = StreamingResampler(card_rate_hz, model_rate_hz) if resampling else None
        self.up = StreamingResampler(model_rate_hz, card_rate_hz) if resampling else None
        self.prefill_samples = plan_prefill(block_samples, hop_samples, self.down, self.up)
        self.underruns = 0  # blocks that found the output queue short (never, by the plan)
        self.reset_queues()

    def reset_queues(self) -> None:
        self._model_queue = np.zeros(0, np.float32)
        self._card_queue = np.zeros(self.prefill_samples, np.float32)
        if self.down:
            self.down.reset()
            self.up.reset()

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """``(B,)`` float samples at the card rate -> ``(B,)`` float32 processed samples."""
        samples = self.down.process(block) if self.down else block
        queue = np.concatenate([self._model_queue, np.asarray(samples, np.float32)])
        hop = self.hop_samples
        whole = len(queue) // hop * hop
        processed = [self.process_hop(queue[start:start + hop]) for start in range(0, whole, hop)]
        self._model_queue = queue[whole:]
        if processed:
            produced = np.concatenate(processed)
            produced = self.up.process(produced) if self.up else produced
            self._card_queue = np.concatenate([self._card_queue, np.asarray(produced, np.float32)])
        size = self.block_samples
        if len(self._card_queue) < size:
            self.underruns += 1
            self._card_queue = np.concatenate([self._card_queue, np.zeros(size - len(self._card_queue), np.float32)])
        out, self._card_queue = self._card_queue[:size], self._card_queue[size:]
        return out

    def latency_budget(self, hop_delay_samples: int) -> dict:
        """Delay from a sample entering :meth:`process_block` to it leaving, by cause, in ms.

        ``hop_delay_samples`` is the processor's ``N_s − R`` (STFT overlap). The sound card's
        own buffering (capture and playback periods) comes on top; JACK reports it per port.
        """
        parts = {
            "stft_overlap_ms": 1000.0 * hop_delay_samples / self.model_rate_hz,
            "block_queue_ms": 1000.0 * self.prefill_samples / self.card_rate_hz,
            "resample_down_ms": self.down.delay_ms if self.down else 0.0,
            "resample_up_ms": self.up.delay_ms if self.up else 0.0,
        }
        parts["total_ms"] = sum(parts.values())
        parts["total_card_samples"] = parts["total_ms"] * self.card_rate_hz / 1000.0
        return parts
