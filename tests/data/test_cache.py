"""User cache folder resolution and atomic folder writes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spinal_nb.data.cache import recipe_hash, user_cache_dir
from spinal_nb.io import atomic_dir, clean_stale


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINAL_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert user_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SPINAL_CACHE")
    if sys.platform.startswith("linux"):
        assert user_cache_dir() == tmp_path / "xdg" / "spinal-nb"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert user_cache_dir() == tmp_path / "home" / ".cache" / "spinal-nb"


def test_recipe_hash_is_order_free_and_sensitive():
    assert recipe_hash({"a": 1, "b": [1, 2]}) == recipe_hash({"b": [1, 2], "a": 1})
    assert recipe_hash({"a": 1}) != recipe_hash({"a": 2}) and len(recipe_hash({})) == 12


def test_atomic_dir_success_and_failure(tmp_path):
    final = tmp_path / "sub" / "ckpt"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("interrupted mid-write")
    assert not final.exists() and list(final.parent.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(final) as tmp:
            raise KeyboardInterrupt
    assert list(final.parent.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "w.bin").write_bytes(b"ok")
        assert not final.exists()  # nothing at the final path until the block completes
    assert (final / "w.bin").read_bytes() == b"ok" and [p.name for p in final.parent.iterdir()] == ["ckpt"]


def test_atomic_dir_keeps_a_folder_someone_else_completed(tmp_path):
    final = tmp_path / "ckpt"
    with atomic_dir(final) as tmp:
        (tmp / "mine").write_text("mine")
        final.mkdir()
        (final / "theirs").write_text("theirs")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"] and (final / "theirs").exists()
    assert not (final / "mine").exists()


def test_clean_stale_removes_only_dead_writers(tmp_path):
    final = tmp_path / "ckpt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tmp-ckpt-{dead.pid}-abcd1234"
    live = tmp_path / f".tmp-ckpt-{os.getppid()}-abcd1234"
    other = tmp_path / f".tmp-other-{dead.pid}-abcd1234"
    for p in (stale, live, other):
        p.mkdir()
    clean_stale(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    assert Path(live).is_dir()
