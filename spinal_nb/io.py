"""Files, written one way: the one atomic file writer, atomic folders, and file digests.

Every file spinal-nb writes for you (a trace's Parquet file, an HTML report, the demo's summary, the resume state
and spilled accumulator groups of `trace(save_to=...)`, the training monitor's evaluations) goes through
:func:`atomic_path` (or :func:`atomic_file`, its form for a writer of file objects): it is written under a temporary name in the same folder, flushed to disk, given the permissions
your umask asks for (0644 under the usual ``umask 022``), and renamed into place. A reader sees the old file or the
whole new one, never a part; nothing is left behind on failure (KeyboardInterrupt included).

>>> import tempfile; d = Path(tempfile.mkdtemp())
>>> atomic_file(d / "a.txt", lambda f: f.write(b"x")).read_bytes()
b'x'
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status); elsewhere
    set and restored at once, under a lock (os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in `folder` survive a power loss (POSIX; best effort: not every file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory file descriptors (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """THE atomic writer: yield a temporary path next to ``path``; when the block succeeds, give the file the mode
    ``0o666 & ~umask`` (a temporary file is created 0600, and a rename keeps that, so it is set explicitly), flush it
    to disk and rename it to ``path``. On any failure the temporary file is removed and ``path`` is untouched.

    With ``fsync`` (the default) the bytes, and then the rename, reach the disk before the call returns; use
    ``fsync=False`` only for files that die with the process anyway.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_file(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, fsync: bool = True) -> Path:
    """`atomic_path` for a writer that takes a binary file object: ``write(f)``. Returns ``path``."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


def atomic_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> Path:
    """`atomic_file` for a UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_file(path, lambda f: f.write(data), fsync=fsync)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine runs with that id (POSIX; "alive" when it cannot be told)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
