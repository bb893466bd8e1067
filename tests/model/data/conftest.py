"""Shared fixtures for the data-layer tests: an isolated cache and a fast fake speech source."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.model.data.sources import SpeechSource

SAMPLE_RATE_HZ = 16000


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Point the default cache at a temporary folder so no test touches ~/.cache."""
    cache_dir = tmp_path / "default-cache"
    monkeypatch.setenv("HEARMASK_CACHE_DIR", str(cache_dir))
    return cache_dir


class FakeSpeech(SpeechSource):
    """Speech-like test signals: voiced harmonic complexes with a gliding pitch and syllable
    envelope, 0.6-1.8 s each, followed by 0.1 s of silence. Fully deterministic per index."""

    def __init__(self, num_utterances: int = 40, name: str = "fake", evaluation_only: bool = False) -> None:
        self.name = name
        self.evaluation_only = evaluation_only
        self._ids = tuple(f"{name}/{index:03d}" for index in range(num_utterances))
        self.loads = 0

    def utterance_ids(self) -> tuple[str, ...]:
        return self._ids

    def load(self, utterance_id: str) -> np.ndarray:
        if utterance_id not in self._ids:
            raise HearmaskError(f"unknown id {utterance_id}")
        self.loads += 1
        index = self._ids.index(utterance_id)
        rng = np.random.default_rng([12345, index])
        num_samples = int(rng.uniform(0.6, 1.8) * SAMPLE_RATE_HZ)
        time_s = np.arange(num_samples) / SAMPLE_RATE_HZ
        f0_hz = rng.uniform(90, 220) * (1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * time_s))
        phase = 2 * np.pi * np.cumsum(f0_hz) / SAMPLE_RATE_HZ
        voiced = sum(np.sin(k * phase) / k for k in range(1, 25) if k * f0_hz.max() < 7000)
        envelope = np.maximum(0.0, np.sin(np.pi * 4.0 * time_s / (num_samples / SAMPLE_RATE_HZ))) ** 0.5
        audio = 0.1 * voiced * envelope + 0.003 * rng.standard_normal(num_samples)
        return np.concatenate([audio, np.zeros(SAMPLE_RATE_HZ // 10)]).astype(np.float32)


@pytest.fixture
def fake_speech() -> FakeSpeech:
    return FakeSpeech()


@pytest.fixture
def make_fake_speech():
    """Factory for more fake sources (other names, sizes, or marked evaluation-only)."""
    return FakeSpeech
