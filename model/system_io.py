"""Rebuild a :class:`HearingAidSystem` from a checkpoint (the model half of the artifact contract).

The checkpoint JSON carries ``system``: the variant, the STFT config and each network's
config, so a model is rebuilt from the file alone, with no configuration read elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hearmask.errors import HearmaskError
from hearmask.model.checkpoint import load_checkpoint, save_checkpoint
from hearmask.model.network import MaskNetConfig
from hearmask.model.stft_config import StftConfig
from hearmask.model.system import HearingAidSystem

MODEL_PREFIX = "model/"


def system_description(system: HearingAidSystem) -> dict[str, Any]:
    """Everything needed to rebuild ``system`` (JSON-serialisable)."""
    return {
        "variant": system.variant,
        "stft": system.stft_config.to_dict(),
        "networks": [network.config.to_dict() for network in system.networks],
        "feature": system.feature_config.to_dict(),
        "parameters": system.count_parameters(),
        "macs_per_second": system.macs_per_second(),
        "algorithmic_latency_ms": system.stft_config.algorithmic_latency_ms,
        "sample_rate_hz": system.stft_config.sample_rate_hz,
    }


def system_from_description(description: dict[str, Any], source: str = "checkpoint") -> HearingAidSystem:
    try:
        stft_config = StftConfig.from_dict(description["stft"])
        networks = [MaskNetConfig.from_dict(values) for values in description["networks"]]
        return HearingAidSystem(description["variant"], stft_config, networks)
    except (KeyError, TypeError) as error:
        raise HearmaskError(f"{source}: the model description is incomplete or malformed ({error!r})") from None


def model_tensors(system: HearingAidSystem) -> dict[str, torch.Tensor]:
    return {MODEL_PREFIX + name: tensor for name, tensor in system.state_dict().items()}


def save_system(json_path: str | Path, system: HearingAidSystem, metadata: dict[str, Any] | None = None,
                extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``system`` as a checkpoint :func:`load_system` reads back (plus any extra metadata/tensors)."""
    tensors = {**model_tensors(system), **(extra_tensors or {})}
    return save_checkpoint(json_path, tensors, {"system": system_description(system), **(metadata or {})})


def without_derived_buffers(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` minus the module's non-persistent buffers (derived from its config, rebuilt, never
    read), so a checkpoint written while such a buffer was persistent loads the same."""
    derived = {name for name, _ in module.named_buffers()} - set(module.state_dict())
    return {name: tensor for name, tensor in state.items() if name not in derived}


def load_system(path: str | Path) -> tuple[HearingAidSystem, dict[str, Any]]:
    """Load a checkpoint (run folder, ``.json`` or ``.safetensors``) into an eval-mode system."""
    tensors, metadata = load_checkpoint(path)
    if "system" not in metadata:
        raise HearmaskError(f"{path}: checkpoint has no model description ('system'); is it a hearmask model?")
    system = system_from_description(metadata["system"], str(path))
    state = {name[len(MODEL_PREFIX):]: tensor for name, tensor in tensors.items() if name.startswith(MODEL_PREFIX)}
    missing, unexpected = system.load_state_dict(without_derived_buffers(system, state), strict=False)
    if missing or unexpected:
        raise HearmaskError(
            f"{path}: weights do not fit the described model (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    return system.eval(), metadata
