"""Fixtures shared across test areas."""

import numpy as np
import pytest
import soundfile


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Two folders of short synthetic files: modulated harmonic 'speech' and noise for training-style tests."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for folder in ("clean", "noise"):
        (root / folder).mkdir()
    for i in range(4):
        f0 = 100 + 30 * i
        voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
        envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t + i))
        soundfile.write(root / "clean" / f"s{i}.wav", (0.1 * voiced * envelope).astype(np.float32), 16000)
        soundfile.write(root / "noise" / f"n{i}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    return root
