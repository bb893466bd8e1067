"""The model shipped inside the package, used when no ``--model`` is given.

It lives in ``model/default_model/`` (package data): ``checkpoint.json`` +
``checkpoint.safetensors`` and ``MODEL_CARD.md``. Later stages add the int8 ``.tflite``
and its manifest beside it.
"""

from __future__ import annotations

from pathlib import Path

from hearmask.errors import HearmaskError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"


def default_model_checkpoint() -> Path | None:
    """The shipped checkpoint's JSON path, or None when this build ships no model."""
    path = DEFAULT_MODEL_DIR / "checkpoint.json"
    return path if path.is_file() else None


def resolve_model_path(model_path: str | Path | None) -> Path:
    """``model_path`` as given, or the shipped default; a clear error when neither exists."""
    if model_path is not None:
        return Path(model_path)
    shipped = default_model_checkpoint()
    if shipped is None:
        raise HearmaskError(
            f"no model given and no default model shipped in {DEFAULT_MODEL_DIR}; give a model "
            "(a RUN_DIR or CHECKPOINT written by `hearmask train`)"
        )
    return shipped
