"""The on-disk cache for decoded and synthesised audio.

Location, first match wins: an explicit ``cache_dir`` argument, the environment variable
``HEARMASK_CACHE_DIR``, then ``~/.cache/hearmask``.

Keys are content addresses: the SHA-256 of the canonical JSON of everything that
determines an entry (input bytes' hash, program, parameters, format version). Equal
parameters give the same key, so a second run finds every entry and does no work; any
change of parameters gives a new key, so stale entries are never read.

Every write goes to a temporary file in the destination folder and is then renamed over
the final name with :func:`os.replace`, which is atomic on one file system: a reader (or a
run interrupted half-way) never sees a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from hearmask.errors import HearmaskError

CACHE_DIR_ENV = "HEARMASK_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/hearmask")
# Hex digits of SHA-256 kept in a key: 128 bits, collision-free for any realistic cache.
KEY_HEX_DIGITS = 32


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache root: ``cache_dir`` if given, else ``$HEARMASK_CACHE_DIR``, else ``~/.cache/hearmask``."""
    if cache_dir is not None and str(cache_dir) != "":
        return Path(cache_dir).expanduser()
    from_env = os.environ.get(CACHE_DIR_ENV, "")
    if from_env:
        return Path(from_env).expanduser()
    return DEFAULT_CACHE_DIR.expanduser()


def _canonical(value: Any) -> Any:
    """Map tuples to lists and paths to strings so equal parameters serialise equally."""
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def cache_key(params: Mapping[str, Any]) -> str:
    """Content address of ``params``: SHA-256 of its canonical JSON (sorted keys), 32 hex digits.

    ``params`` must be JSON-serialisable after tuples/paths/numpy scalars are converted.
    """
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes (the content part of a content address)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ensure_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HearmaskError(
            f"cannot create cache folder {folder}: {error.strerror}; "
            f"set {CACHE_DIR_ENV} or pass --cache-dir to a writable folder"
        ) from error


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    The temporary name keeps ``path``'s suffix so that tools which infer the format from
    the extension (soundfile, ffmpeg) still work. On an exception the temporary file is
    removed and ``path`` is left untouched.
    """
    path = Path(path)
    _ensure_folder(path.parent)
    handle, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then :func:`os.replace`)."""
    with atomic_target(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def atomic_write_wav(path: Path, audio: np.ndarray, sample_rate_hz: int, subtype: str) -> None:
    """Write ``audio`` (shape ``(num_samples,)``) as a wav file atomically.

    ``subtype`` is a soundfile subtype, e.g. ``"FLOAT"`` (exact float32) or ``"PCM_16"``.
    """
    with atomic_target(path) as temporary:
        sf.write(temporary, audio, int(sample_rate_hz), subtype=subtype, format="WAV")


class DiskCache:
    """One namespace (sub-folder) of the cache, with hit/miss counters.

    Args:
        namespace: sub-folder name, e.g. ``"asterisk"`` or ``"tts"``.
        cache_dir: cache root; see :func:`resolve_cache_dir`.

    ``hits`` and ``misses`` count :meth:`get_or_create_audio` and :meth:`get_or_create_json`
    look-ups made through this object (so tests and progress messages can tell a warm cache).
    """

    def __init__(self, namespace: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_cache_dir(cache_dir) / namespace
        self.hits = 0
        self.misses = 0

    def path(self, key: str, suffix: str) -> Path:
        """Where the entry ``key`` lives (it may not exist yet)."""
        return self.root / f"{key}{suffix}"

    def get_or_create_audio(
        self, key: str, create: Callable[[], tuple[np.ndarray, int]], subtype: str = "PCM_16"
    ) -> tuple[np.ndarray, int]:
        """Return ``(audio float32, sample_rate_hz)`` for ``key``, calling ``create`` on a miss.

        ``create`` returns ``(audio, sample_rate_hz)``; it is stored as a wav of ``subtype``
        and read back, so a hit and a miss return identical samples.
        """
        path = self.path(key, ".wav")
        if not path.exists():
            self.misses += 1
            audio, sample_rate_hz = create()
            atomic_write_wav(path, audio, sample_rate_hz, subtype)
        else:
            self.hits += 1
        audio, sample_rate_hz = sf.read(path, dtype="float32", always_2d=False)
        return audio, int(sample_rate_hz)

    def get_or_create_json(self, key: str, create: Callable[[], Any]) -> Any:
        """Return the JSON entry ``key``, calling ``create`` (JSON-serialisable result) on a miss."""
        path = self.path(key, ".json")
        if path.exists():
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                value = None  # A foreign or damaged file: rebuild it rather than fail.
            if value is not None:
                self.hits += 1
                return value
        self.misses += 1
        value = create()
        atomic_write_json(path, value)
        return value

    @contextlib.contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        """A temporary folder inside the cache root (same file system, so renames are atomic)."""
        _ensure_folder(self.root)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".scratch-") as folder:
            yield Path(folder)
