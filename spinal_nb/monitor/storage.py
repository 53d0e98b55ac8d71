"""On-disk training trace: one Parquet file per evaluation in a folder, plus an append-only event log.

Layout of a training-trace folder::

    step-000000.parquet   one evaluation = one ordinary single-checkpoint TraceFrame (checkpoint "step-000000",
    step-000050.parquet   `step` column set); its monitor record (timings, alert state) is in
    ...                   meta["checkpoints"][name]["extra"]["monitor"]
    monitor.jsonl         events, one JSON object a line: start, skip (overhead budget), alert, numerics, end

Why one file per evaluation rather than rewriting one growing file: a write touches only the new point, so its cost
does not grow with the run, and a crash can only hit the point being written. Each file is written under a temporary
name, flushed to disk (fsync), then renamed into place (atomic on POSIX), and the folder is fsynced: a crash at any
moment leaves either the complete new file or none, and every earlier point untouched. Leftover temporary files
(names starting with ".") are ignored by the reader and removed when a run starts. The event log is appended with
fsync; a torn last line (a crash mid-append) is ignored on reading.

`read_training_trace(folder)` stacks the points in step order into one ordinary TraceFrame (one checkpoint per
evaluated step), with `meta["monitor"]` = {"evaluations": [...], "events": [...], "alerts": [...]}.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import FrameError, InputError
from ..frame import TraceFrame
from ..io import fsync_dir

POINT_RE = re.compile(r"^step-(\d+)\.parquet$")
EVENTS = "monitor.jsonl"


def checkpoint_name(step: int) -> str:
    """The checkpoint name of a training step: 'step-000120' (zero-padded so names sort like steps)."""
    return f"step-{int(step):06d}"


def _points(folder: Path) -> dict[int, Path]:
    out = {}
    for p in folder.iterdir() if folder.is_dir() else ():
        m = POINT_RE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


class TrainingTraceWriter:
    """Writes evaluations of one run into `folder` (see the module docstring for the format and its guarantees)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"The training-trace path {str(self.folder)!r} is a file; pass a folder.")

    def steps(self) -> list[int]:
        return list(_points(self.folder))

    def prepare(self, start_step: int, overwrite: bool) -> list[int]:
        """Make the folder ready for a run starting at `start_step`; returns the steps kept from an earlier run.

        A fresh run (start_step 0) refuses a folder that already holds points unless `overwrite`; a resumed run
        (start_step > 0) keeps the points up to its step and removes later ones (they belong to the abandoned
        future of the run being resumed). Temporary leftovers of a crash are removed.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for p in self.folder.iterdir():
            if p.name.startswith(".") and "step-" in p.name and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
        points = _points(self.folder)
        if points and start_step == 0 and not overwrite:
            raise InputError(f"{self.folder} already holds a training trace ({len(points)} evaluations). Pass "
                             "another path, or overwrite=True to replace it.")
        drop = [s for s in points if start_step == 0 or s > start_step]
        for s in drop:
            points.pop(s).unlink()
        if start_step == 0:
            (self.folder / EVENTS).unlink(missing_ok=True)
        fsync_dir(self.folder)
        return list(points)

    def write(self, frame: TraceFrame, step: int) -> Path:
        """Write one evaluation atomically and durably (`TraceFrame.to_parquet`: temp file, fsync, rename, fsync of
        the folder)."""
        return frame.to_parquet(self.folder / f"{checkpoint_name(step)}.parquet")

    def event(self, record: dict[str, Any]) -> None:
        """Append one event to monitor.jsonl (one line, flushed and fsynced)."""
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(self.folder / EVENTS, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_events(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The events of monitor.jsonl; a torn (incomplete) last line from a crash is skipped."""
    path = Path(folder) / EVENTS
    if not path.exists():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i >= len(lines) - 2:  # the last line (file ends with "\n" when complete): a torn append
                continue
            raise FrameError(f"{path} line {i + 1} is not JSON ({e}); the event log is corrupt.") from e
    return out


def read_training_trace(folder: str | os.PathLike) -> TraceFrame:
    """The training trace in `folder` as one TraceFrame: one checkpoint per evaluated step, in step order.

    A point that cannot be read is skipped with a warning (only a crash outside the atomic write protocol, e.g. a
    file copied half-way, can produce one). `meta["monitor"]` holds the evaluation records, events and alerts.

    >>> # frame = read_training_trace("out/spinal-trace"); frame.checkpoints -> ['step-000000', 'step-000050', ...]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FrameError(f"No training-trace folder at {folder}.")
    frames = []
    for step, path in _points(folder).items():
        try:
            f = TraceFrame.read_parquet(path)
        except FrameError as e:
            warnings.warn(f"Skipping unreadable evaluation {path.name}: {e}", stacklevel=2)
            continue
        steps = f.data.get_column("step").unique().to_list()
        if steps != [step]:
            warnings.warn(f"Skipping {path.name}: its step column says {steps}, not {step}.", stacklevel=2)
            continue
        frames.append(f)
    if not frames:
        raise FrameError(f"{folder} holds no readable evaluations (step-*.parquet) yet.")
    frame = TraceFrame.concat(frames)
    evaluations = [frame.meta["checkpoints"][c].get("extra", {}).get("monitor", {}) | {"checkpoint": c}
                   for c in frame.checkpoints]
    events = read_events(folder)
    frame.meta["monitor"] = {"evaluations": evaluations, "events": events,
                             "alerts": [e for e in events if e.get("event") == "alert"]}
    return frame


def ordered_by_step(frame: TraceFrame) -> bool:
    """True when every checkpoint has one step and checkpoints appear in increasing step order."""
    per = frame.data.group_by("checkpoint", maintain_order=True).agg(pl.col("step").n_unique().alias("n"),
                                                                    pl.col("step").first())
    steps = per.get_column("step").to_list()
    return bool((per.get_column("n") == 1).all()) and None not in steps and steps == sorted(set(steps))
