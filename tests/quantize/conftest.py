"""Shared fixtures: a tiny random network, calibrated, its int8/float ``.tflite``, and a tiny trained run.

Built once per test session: TensorFlow conversion and QAT dominate the cost of this folder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hearmask.model.network import MaskNet
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import build_masknet_configs

TINY = {"hidden_size": 16, "encoder_size": 16}


def tiny_config(**overrides):
    return build_masknet_configs("joint", shipped_stft_config("default"), "default", {**TINY, **overrides})[0]


def feature_sequence(frames: int, num_features: int, seed: int) -> np.ndarray:
    """Speech-like feature trajectories (K, F) in about [-1, 1]: slowly varying band levels plus noise."""
    rng = np.random.default_rng(seed)
    drift = np.cumsum(rng.standard_normal((frames, 1)) * 0.08, axis=0)
    tilt = np.linspace(0.3, -0.3, num_features)[None]
    values = 0.4 * np.tanh(drift) + tilt + 0.15 * rng.standard_normal((frames, num_features))
    return np.clip(values, -1.0, 1.0).astype(np.float32)


AUDIOGRAM = np.array([[0.10, 0.15, 0.25, 0.40, 0.50, 0.55, 0.65, 0.70]], dtype=np.float32)  # dB HL / 100


def calibrated_network(config, seed: int = 0):
    """A random :class:`MaskNet` and its calibrated :class:`QuantMaskNet` (eval mode)."""
    from brevitas.graph.calibrate import calibration_mode

    from hearmask.quantize.qat_model import QuantMaskNet

    torch.manual_seed(seed)
    network = MaskNet(config).eval()
    # Random nets start near identity (small head weights); larger heads exercise the ranges.
    with torch.no_grad():
        network.nr_head.weight.mul_(10.0)
        network.hlc_head.weight.mul_(10.0)
    quantized = QuantMaskNet(network)
    features = torch.as_tensor(np.stack([feature_sequence(60, config.num_features, seed + i) for i in range(4)]))
    audiogram = torch.as_tensor(np.repeat(AUDIOGRAM, 4, axis=0) * np.array([[0.5], [1.0], [1.3], [0.2]], np.float32))
    with torch.no_grad(), calibration_mode(quantized):
        quantized(features, audiogram)
    return network, quantized.eval()


@pytest.fixture(scope="session")
def tiny_networks():
    """``(float MaskNet, calibrated QuantMaskNet)`` of the tiny joint configuration."""
    return calibrated_network(tiny_config())


@pytest.fixture(scope="session")
def int8_model(tiny_networks):
    from hearmask.quantize.convert import convert_int8

    return convert_int8(tiny_networks[1])


@pytest.fixture(scope="session")
def float_model(tiny_networks):
    from hearmask.quantize.convert import convert_float

    return convert_float(tiny_networks[0])


def fast_qat_config(**fields):
    """QAT settings small enough for tests (one-tenth-second segments, batch 1)."""
    from hearmask.quantize.qat_training import QatConfig

    values = {"steps": 2, "calibration_batches": 1, "batch_size": 1, "segment_seconds": 0.1, "checkpoint_every": 1}
    return QatConfig(**{**values, **fields})


def snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """10·log10(Σ reference² / Σ (estimate − reference)²)."""
    error = np.sum((np.asarray(estimate, np.float64) - reference) ** 2)
    return float(10 * np.log10(np.sum(np.asarray(reference, np.float64) ** 2) / max(error, 1e-30)))


@pytest.fixture(scope="session")
def helpers():
    """The helpers above, for test modules (``--import-mode=importlib`` cannot import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(tiny_config=tiny_config, feature_sequence=feature_sequence, audiogram=AUDIOGRAM,
                           calibrated_network=calibrated_network, fast_qat_config=fast_qat_config, snr_db=snr_db)
