"""Spill folders: finished jackknife groups of the Gram accumulators, on disk, so memory holds about one group.

`trace()` runs prompts group by group (positions.group_major); once all of a group's prompts have run and it holds
at least `SPILL_MIN_BYTES`, its rows / Grams leave memory for `group-<g>.npz` in a spill folder (uncompressed,
float64 as is, one array per layer: the spectra stay bit-identical, and finalize reads one layer at a time). The
folder is `save_to/spill/` when the trace saves its partial results (the resume state names the files by digest),
else a private `run-<host>-<pid>-<random>` folder under `$SPINAL_SPILL_DIR` or the user cache's `spill/` (not the
system temp folder, often RAM-backed tmpfs), removed when the call ends.
"""
from __future__ import annotations

import os
import shutil
import socket
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..data.cache import user_cache_dir
from ..io import atomic_file, file_sha256
from ..scores import GramAccumulator

SPILL_MIN_BYTES = 16 << 20  # a finished group holding at least this much goes to disk (smaller ones stay: no IO)


class SpillFolder:
    """A folder of spilled groups, `group-<g>.npz`: the store `GramAccumulator(store=...)` writes finished groups to.

    Files are written atomically (spinal_nb.io), with fsync unless `fsync=False` (a private folder that dies with the
    run: no point waiting for the disk). A folder that cannot be written (read-only, full disk) warns once and takes
    no more groups: they stay in memory, which is better than losing the run.
    """

    def __init__(self, folder: str | os.PathLike, *, fsync: bool = True):
        self.folder = Path(folder)
        self.fsync = fsync
        self._failed = False
        self._sha: dict[int, str] = {}  # sha256 of a written file, computed when a saved state first needs it

    def __str__(self) -> str:
        return str(self.folder)

    def path(self, group: int) -> Path:
        return self.folder / f"group-{group}.npz"

    def put(self, group: int, arrays: Iterator[tuple[str, np.ndarray]]) -> bool:
        if self._failed:
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_npz(self.path(group), arrays, fsync=self.fsync)
        except OSError as e:
            self._failed = True
            warnings.warn(f"Could not spill finished accumulator groups to {self.folder} ({e}); keeping them in "
                          "memory. Set SPINAL_SPILL_DIR to a writable folder on disk to bound memory.", stacklevel=3)
            return False
        self._sha.pop(group, None)
        return True

    def get(self, group: int, name: str) -> np.ndarray:
        with np.load(self.path(group), allow_pickle=False) as z:  # reads only this member
            return z[name]

    def nbytes(self, group: int) -> int:
        return os.path.getsize(self.path(group))

    def digest(self, group: int) -> str:
        if group not in self._sha:
            self._sha[group] = file_sha256(self.path(group))
        return self._sha[group]

    def holds(self, group: int, digest: str) -> bool:
        path = self.path(group)
        if not path.exists() or file_sha256(path) != digest:
            return False
        self._sha[group] = digest
        return True

    def where(self, group: int) -> str:
        return str(self.path(group))


def write_npz(path: Path, arrays: Iterator[tuple[str, np.ndarray]], fsync: bool = True) -> None:
    """Write (name, array) pairs as an uncompressed .npz, one array at a time (a generator keeps only one joined
    array alive), atomically."""
    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, a in arrays:
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)

    atomic_file(path, write, fsync=fsync)


def spill_root() -> Path:
    """Where a trace without `save_to` spills finished groups: $SPINAL_SPILL_DIR, else the user cache folder
    (on disk; not the system temp folder, which is RAM-backed tmpfs on many Linux systems)."""
    return Path(os.environ["SPINAL_SPILL_DIR"]).expanduser() if os.environ.get("SPINAL_SPILL_DIR") \
        else user_cache_dir() / "spill"


def private_spill_dir() -> Path:
    """A new run-<host>-<pid>-<random> folder name under the spill root (created only if a group spills); folders
    of this host's dead processes (runs killed outright) are removed first (POSIX only: on Windows os.kill(pid, 0)
    would terminate the process)."""
    root = spill_root()
    host = socket.gethostname().replace("-", "_")
    for old in root.glob(f"run-{host}-*") if root.is_dir() and os.name == "posix" else []:
        try:
            os.kill(int(old.name.split("-")[2]), 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:  # alive but not ours (PermissionError) or undecidable: leave it
            continue
    return root / f"run-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def spill_finished(gram: GramAccumulator, last: dict[int, int], end: int) -> None:
    """Spill every group whose prompts all ran (positions < end) and that holds at least SPILL_MIN_BYTES."""
    for g, pos in last.items():
        if pos < end and g not in gram.spilled_groups() and gram.storage_bytes(group=g) >= SPILL_MIN_BYTES:
            gram.spill(g)
