"""The on-disk cache: location precedence, content-addressed keys, atomic writes, hits."""

from __future__ import annotations

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.model.data.cache import (
    CACHE_DIR_ENV,
    DiskCache,
    atomic_target,
    atomic_write_json,
    cache_key,
    resolve_cache_dir,
)


def test_explicit_dir_beats_environment_which_beats_home(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "from-env"))
    assert resolve_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_cache_dir() == tmp_path / "from-env"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == tmp_path / "home" / ".cache" / "hearmask"


def test_key_depends_on_content_not_on_order_or_container_type():
    params = {"voice": "slt", "prosody": (("pitch", 50),), "rate_hz": 16000}
    reordered = {"rate_hz": 16000, "prosody": [["pitch", 50]], "voice": "slt"}
    assert cache_key(params) == cache_key(reordered)
    assert cache_key(params) != cache_key({**params, "voice": "awb"})
    assert len(cache_key(params)) == 32


def test_second_lookup_is_a_hit_and_returns_identical_samples(tmp_path):
    calls = []

    def create():
        calls.append(1)
        return np.linspace(-0.5, 0.5, 1000, dtype=np.float32), 16000

    cache = DiskCache("unit", tmp_path)
    first, rate_hz = cache.get_or_create_audio("k1", create, subtype="FLOAT")
    second, _ = DiskCache("unit", tmp_path).get_or_create_audio("k1", create, subtype="FLOAT")
    assert calls == [1]
    assert rate_hz == 16000
    np.testing.assert_array_equal(first, second)
    assert (cache.hits, cache.misses) == (0, 1)


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "entry.json"
    atomic_write_json(target, {"version": 1})
    with pytest.raises(RuntimeError):
        with atomic_target(target) as temporary:
            temporary.write_text("half written")
            raise RuntimeError("interrupted")
    assert target.read_text().strip().startswith("{")
    assert '"version": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json"]


def test_damaged_json_entry_is_rebuilt(tmp_path):
    cache = DiskCache("unit", tmp_path)
    cache.path("k", ".json").parent.mkdir(parents=True)
    cache.path("k", ".json").write_text("{not json")
    assert cache.get_or_create_json("k", lambda: {"ok": True}) == {"ok": True}
    assert cache.misses == 1


def test_unwritable_cache_location_names_the_setting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(HearmaskError, match=CACHE_DIR_ENV):
        DiskCache("unit", blocker / "cache").get_or_create_json("k", lambda: {})
