"""Live view of a training trace being written: poll its folder and hand each new version to a callback.

SpinalCallback writes one Parquet file per evaluation (storage.py). `TraceWatcher(folder, on_frame)` checks the
folder every `interval` seconds on a daemon thread; when the set of evaluation files or the event log changed, it
reads the folder (`read_training_trace`) and calls `on_frame(frame)` — e.g. `TrainingView.update`, which redraws the
widget in place. Works for a run in another process (or on a shared disk) as well as in the same notebook; in the
same process, `SpinalCallback(on_evaluation=view.update)` does the same without polling.

>>> # w = watch("run/spinal-trace", view.update, interval=2.0); ...; w.stop()
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FrameError, InputError
from .storage import EVENTS, _points, read_training_trace

logger = logging.getLogger(__name__)


def folder_signature(folder: Path) -> tuple:
    """What changes when an evaluation or an event is added: (step, size, mtime) of every point + the log's size."""
    sig = []
    for step, path in _points(folder).items():
        try:
            st = path.stat()
        except OSError:  # replaced between listing and stat: the next poll sees the new one
            continue
        sig.append((step, st.st_size, st.st_mtime_ns))
    try:
        events = (folder / EVENTS).stat().st_size
    except OSError:
        events = -1
    return tuple(sig), events


class TraceWatcher:
    """Polls a training-trace folder on a daemon thread; calls `on_frame(TraceFrame)` after each change.

    `poll()` does one check in the caller's thread (returns True when it delivered a frame); `start()` / `stop()`
    run it every `interval` seconds. An empty folder (no evaluation yet) is waited for; an error raised while
    reading or in `on_frame` is logged, kept in `last_error`, and polling goes on. `on_state(running)` is told when
    the thread starts and stops.
    """

    def __init__(self, folder: str | os.PathLike, on_frame: Callable[[Any], Any], *, interval: float = 2.0,
                 on_state: Callable[[bool], Any] | None = None):
        if not callable(on_frame):
            raise InputError("on_frame must be callable (e.g. a TrainingView's update).")
        if not (isinstance(interval, (int, float)) and interval > 0):
            raise InputError(f"interval must be a positive number of seconds, got {interval!r}.")
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"{self.folder} is a file; watch the training-trace folder.")
        self.on_frame = on_frame
        self.on_state = on_state
        self.interval = float(interval)
        self.updates = 0
        self.last_error: BaseException | None = None
        self._seen: tuple | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def poll(self) -> bool:
        if not self.folder.is_dir():
            return False
        sig = folder_signature(self.folder)
        if sig == self._seen or not sig[0]:
            return False
        try:
            frame = read_training_trace(self.folder)
            self.on_frame(frame)
        except FrameError as e:  # e.g. the only point is unreadable yet: try again next time
            self.last_error = e
            return False
        except Exception as e:  # noqa: BLE001 - a failing refresh must not kill the watcher (or training)
            self.last_error = e
            logger.warning("spinal: refreshing from %s failed: %s", self.folder, e)
            self._seen = sig  # do not retry the same state forever
            return False
        self._seen = sig
        self.updates += 1
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.poll()
                self._stop.wait(self.interval)
        finally:
            self._state(False)

    def _state(self, running: bool) -> None:
        if self.on_state is not None:
            try:
                self.on_state(running)
            except Exception as e:  # noqa: BLE001
                logger.warning("spinal: watcher state callback failed: %s", e)

    def start(self) -> TraceWatcher:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"spinal-watch:{self.folder.name}", daemon=True)
        self._state(True)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self.interval))

    def __repr__(self) -> str:
        return (f"TraceWatcher({str(self.folder)!r}, every {self.interval:g} s, "
                f"{'running' if self.running else 'stopped'}, {self.updates} update(s))")


def watch(folder: str | os.PathLike, on_frame: Callable[[Any], Any], interval: float = 2.0) -> TraceWatcher:
    """Start polling `folder`; `on_frame(frame)` gets each new version of the training trace. Returns the watcher."""
    return TraceWatcher(folder, on_frame, interval=interval).start()
