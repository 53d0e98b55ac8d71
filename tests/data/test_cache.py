"""User cache folder resolution and recipe hashes (the atomic folder writes are tests/test_io.py)."""
from __future__ import annotations

import sys

from spinal_nb.data.cache import recipe_hash, user_cache_dir


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
