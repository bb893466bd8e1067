"""Frozen configuration dataclasses from plain dicts (JSON, TOML), with key-naming errors."""

from __future__ import annotations

from typing import Any, TypeVar

from hearmask.errors import HearmaskError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], values: dict[str, Any], what: str) -> T:
    """``cls(**values)``, refusing unknown keys with the accepted ones listed (a typo must
    not silently fall back to a default). ``what`` names the config in the message."""
    if not isinstance(values, dict):
        raise HearmaskError(f"{what} must be a table of fields, got {values!r}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise HearmaskError(f"unknown {what} field(s) {unknown}; accepted: {sorted(known)}")
    return cls(**values)
