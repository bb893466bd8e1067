"""The checkpoint contract: tensors in safetensors, everything else in JSON, no pickle.

A checkpoint named ``NAME`` is two files in one folder:

- ``NAME.safetensors``: tensors only (model weights under ``model/``, optimizer state
  under ``optimizer/``, RNG states as uint8 tensors under ``rng/``).
- ``NAME.json``: ``{"format": "hearmask-checkpoint", "version": 1, "weights_file",
  "weights_sha256", ...metadata}``: the arguments that rebuild the model, the DSP config,
  software versions, training progress (asteroid's ``serialize`` contract, plus a content
  hash; STYLE.md "One artifact contract").

Writing is atomic: each file goes to a temporary name and is renamed into place, the
JSON last. The JSON holds the SHA-256 of the weights, so a torn or foreign pair is
detected on load instead of silently mixing two checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hearmask.errors import HearmaskError

CHECKPOINT_FORMAT = "hearmask-checkpoint"
CHECKPOINT_VERSION = 1


def sha256_of_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, write) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def save_checkpoint(json_path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``metadata`` as ``<stem>.safetensors`` + ``<stem>.json``; return the JSON path."""
    json_path = Path(json_path)
    if json_path.suffix != ".json":
        raise HearmaskError(f"a checkpoint path must end in .json, got {str(json_path)!r}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    weights_path = json_path.with_suffix(".safetensors")
    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    _atomic_write_bytes(weights_path, lambda temporary: save_file(contiguous, temporary))
    document = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "weights_file": weights_path.name,
        "weights_sha256": sha256_of_file(weights_path),
        **metadata,
    }
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    _atomic_write_bytes(json_path, lambda temporary: Path(temporary).write_text(text))
    return json_path


def resolve_checkpoint_path(path: str | Path) -> Path:
    """Accept ``NAME.json``, ``NAME.safetensors`` or a run folder holding ``checkpoint.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.json"
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise HearmaskError(
            f"no checkpoint at {str(path)!r}; give a run folder holding checkpoint.json, "
            "or the .json/.safetensors file of a checkpoint"
        )
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; return ``(tensors, metadata)``.

    Never unpickles: safetensors holds only tensors, the rest is JSON.
    """
    json_path = resolve_checkpoint_path(path)
    try:
        document = json.loads(json_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HearmaskError(f"checkpoint {str(json_path)!r} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise HearmaskError(
            f"{str(json_path)!r} is not a hearmask checkpoint (expected \"format\": \"{CHECKPOINT_FORMAT}\")"
        )
    if document.get("version") != CHECKPOINT_VERSION:
        raise HearmaskError(
            f"checkpoint {str(json_path)!r} has format version {document.get('version')!r}; "
            f"this hearmask reads version {CHECKPOINT_VERSION}"
        )
    weights_path = json_path.parent / str(document.get("weights_file", ""))
    if not weights_path.is_file():
        raise HearmaskError(f"checkpoint {str(json_path)!r} names weights {str(weights_path)!r}, which is missing")
    actual_sha = sha256_of_file(weights_path)
    if actual_sha != document.get("weights_sha256"):
        raise HearmaskError(
            f"weights {str(weights_path)!r} do not match {str(json_path)!r} (SHA-256 {actual_sha[:12]}… "
            f"vs recorded {str(document.get('weights_sha256'))[:12]}…): the pair is torn or mixed"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise HearmaskError(f"cannot read weights {str(weights_path)!r}: {error}") from None
    metadata = {key: value for key, value in document.items() if key not in ("format", "version", "weights_file")}
    return tensors, metadata


OPTIMIZER_PREFIX = "optimizer/"


def optimizer_to_checkpoint(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """An optimiser's state as checkpoint tensors (``optimizer/<param>/<key>``) plus its
    JSON-able param groups, so resuming needs no pickle."""
    state = optimizer.state_dict()
    tensors = {f"{OPTIMIZER_PREFIX}{index}/{key}": torch.as_tensor(value)
               for index, values in state["state"].items() for key, value in values.items()}
    return tensors, state["param_groups"]


def optimizer_from_checkpoint(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                              param_groups: list) -> None:
    """Inverse of :func:`optimizer_to_checkpoint`: load the saved state into ``optimizer``."""
    state: dict = {"state": {}, "param_groups": param_groups}
    for name, tensor in tensors.items():
        if name.startswith(OPTIMIZER_PREFIX):
            index, key = name[len(OPTIMIZER_PREFIX):].split("/", 1)
            state["state"].setdefault(int(index), {})[key] = tensor
    optimizer.load_state_dict(state)


def software_versions() -> dict[str, str]:
    """Versions recorded in every artifact."""
    import platform

    import numpy

    from hearmask import __version__

    return {
        "hearmask": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
