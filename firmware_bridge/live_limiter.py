"""The output safety limiter of the live loop: a hard ceiling on the output level (numpy only).

A hearing-aid prototype must never blast the listener, whatever the model emits. The
per-bin gain cap (``max_gain_db``) is applied by :class:`hearmask.firmware_bridge.live_processor.LiveProcessor`
before synthesis; this module holds the shared settings and the level limiter applied to
every finished hop:

- peak ceiling ``max_output_dbfs`` (dB re digital full scale, 1.0): the gain of a hop is at
  most ``ceiling / peak(hop)``, so no output sample exceeds the ceiling (no lookahead, so
  no added latency: the whole hop is known before it is played);
- after a loud hop the gain recovers with a first-order release (``release_ms`` time
  constant), never faster than the ceiling allows;
- a hop with NaN or infinite samples is muted (a broken model or runtime).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hearmask.errors import HearmaskError

DEFAULT_MAX_OUTPUT_DBFS = -6.0
DEFAULT_MAX_GAIN_DB = 40.0
DEFAULT_RELEASE_MS = 50.0


@dataclass(frozen=True)
class LimiterConfig:
    """Safety limits of the live output. On by default; ``enabled=False`` is for measurements only."""

    max_output_dbfs: float = DEFAULT_MAX_OUTPUT_DBFS  # sample-peak ceiling, dB re full scale (1.0); <= 0
    max_gain_db: float = DEFAULT_MAX_GAIN_DB  # most gain any bin may get, dB, whatever the model asks
    release_ms: float = DEFAULT_RELEASE_MS  # time constant of the gain recovery after a loud hop, ms
    enabled: bool = True

    def __post_init__(self) -> None:
        for field in ("max_output_dbfs", "max_gain_db", "release_ms"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HearmaskError(f"limiter {field} must be a finite number, got {value!r}")
        if self.max_output_dbfs > 0.0 or self.max_output_dbfs < -60.0:
            raise HearmaskError(f"limiter max_output_dbfs must be in [-60, 0] dBFS, got {self.max_output_dbfs}")
        if not 0.0 <= self.max_gain_db <= 80.0:
            raise HearmaskError(f"limiter max_gain_db must be in [0, 80] dB, got {self.max_gain_db}")
        if self.release_ms <= 0.0:
            raise HearmaskError(f"limiter release_ms must be > 0 ms, got {self.release_ms}")

    @property
    def ceiling(self) -> float:
        """The peak ceiling as a linear amplitude (full scale = 1)."""
        return 10.0 ** (self.max_output_dbfs / 20.0)

    def to_dict(self) -> dict:
        return asdict(self)


class OutputLimiter:
    """Per-hop peak limiter with instant attack and first-order release; stateful across hops."""

    def __init__(self, config: LimiterConfig, sample_rate_hz: int):
        self.config = config
        self.ceiling = config.ceiling
        # Per-sample decay of the gain's distance to 1 (time constant release_ms).
        self._release_factor = math.exp(-1000.0 / (config.release_ms * sample_rate_hz))
        self.gain = 1.0  # gain of the last sample of the previous hop
        self.limited_hops = 0  # hops whose gain went below 1
        self.muted_hops = 0  # hops with non-finite samples, replaced by silence
        self._decay_cache: dict[int, np.ndarray] = {}

    def reset(self) -> None:
        self.gain = 1.0

    def process(self, hop: np.ndarray) -> np.ndarray:
        """``hop`` float ``(R,)`` -> limited float32 ``(R,)``, every ``|sample| <= ceiling`` when enabled."""
        hop = np.asarray(hop, dtype=np.float64)
        if not np.all(np.isfinite(hop)):
            self.muted_hops += 1
            self.gain = 0.0  # recover by the release, not with a jump
            return np.zeros(hop.shape, np.float32)
        if not self.config.enabled:
            return hop.astype(np.float32)
        peak = float(np.max(np.abs(hop))) if hop.size else 0.0
        if peak <= self.ceiling and self.gain == 1.0:  # the usual hop: nothing to do
            return hop.astype(np.float32)
        target = min(1.0, self.ceiling / peak) if peak > 0.0 else 1.0
        decay = self._decay_cache.get(hop.size)
        if decay is None:
            decay = self._release_factor ** np.arange(1, hop.size + 1)
            self._decay_cache[hop.size] = decay
        # The release curve rises from the last gain towards 1; the ceiling caps it for the whole hop.
        gain = np.minimum(1.0 - (1.0 - self.gain) * decay, target)
        if target < 1.0:
            self.limited_hops += 1
        self.gain = float(gain[-1]) if gain.size else self.gain
        if self.gain > 1.0 - 1e-6:  # -0.00001 dB: recovered; take the fast path again
            self.gain = 1.0
        # The clip only removes float rounding above the ceiling (gain·peak may exceed it by an ulp).
        return np.clip(hop * gain, -self.ceiling, self.ceiling).astype(np.float32)
