"""Progress on stderr, readable wherever it goes: one place decides how progress is shown.

* a terminal: tqdm's redrawn bar (carriage returns);
* a notebook: tqdm's widget (tqdm.auto);
* anything else (a log file, CI, nohup, a pipe): whole lines, one when a bar starts, at most one every
  ``LINE_INTERVAL_S`` seconds while it runs and one when it ends: never carriage-return redraws, and a log line
  (:func:`write`) is never glued onto a progress fragment.

:func:`quiet_transformers` silences transformers' own bars ("Loading weights") for a block: when progress is off,
and when stderr is not a terminal.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import tqdm.auto  # first: it imports tqdm.autonotebook with its notebook warning silenced
import tqdm.autonotebook
import tqdm.std

LINE_INTERVAL_S = 5.0


def _stream(file: TextIO | None) -> TextIO:
    return file if file is not None else sys.stderr


def is_terminal(file: TextIO | None = None) -> bool:
    try:
        return bool(_stream(file).isatty())
    except (AttributeError, ValueError, OSError):
        return False


def in_notebook() -> bool:
    """tqdm chose its notebook widget (an IPython kernel is running; tqdm.auto's class always subclasses the choice)."""
    return tqdm.autonotebook.tqdm is not tqdm.std.tqdm


def line_based(file: TextIO | None = None) -> bool:
    return not in_notebook() and not is_terminal(file)


class LineBar:
    """The part of tqdm's interface spinal-nb uses, printed as whole lines (see the module docstring)."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str | None = None,
                 unit: str = "it", initial: float = 0, disable: bool = False, file: TextIO | None = None,
                 interval: float = LINE_INTERVAL_S, **_ignored: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n = total, desc or "", unit, initial
        self.disable, self.file, self.interval = disable, file, interval
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.printed_n: float | None = None
        self.closed = False
        self._line()

    def _line(self) -> None:
        if self.disable:
            return
        elapsed = time.monotonic() - self.t0
        of = f"/{self.total:g}" if self.total is not None else ""
        post = f" {self.postfix}" if self.postfix else ""
        what = f"{self.desc}: " if self.desc else ""
        print(f"{what}{self.n:g}{of} {self.unit} [{elapsed:.0f} s]{post}", file=_stream(self.file), flush=True)
        self.last, self.printed_n = time.monotonic(), self.n

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._line()

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(ordered_dict or {}), **kw}.items())

    def write(self, s: str, file: TextIO | None = None, end: str = "\n") -> None:
        print(s, file=_stream(file if file is not None else self.file), end=end, flush=True)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.printed_n != self.n:
            self._line()

    def __enter__(self) -> LineBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(iterable: Iterable[Any] | None = None, **kw: Any) -> Any:
    """A progress bar on stderr (or ``file=``): tqdm in a terminal or a notebook, a :class:`LineBar` elsewhere.
    Takes tqdm's keywords (``total``, ``desc``, ``unit``, ``initial``, ``disable``, ``leave``, ...)."""
    if kw.get("disable") or not line_based(kw.get("file")):
        return tqdm.auto.tqdm(iterable, **kw)
    return LineBar(iterable, **kw)


@contextlib.contextmanager
def quiet_transformers(quiet: bool = True) -> Iterator[None]:
    """Silence transformers' own progress bars (weight loading/writing) for the block, then restore them."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if quiet and was:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was:
            hf_logging.enable_progress_bar()
