"""spinal_nb.progress: a terminal gets tqdm's bar, anything else whole lines at a bounded rate (issue 20: a 3.5-min
demo wrote 1,174 carriage-return redraws into its log)."""
from __future__ import annotations

import io

import pytest
import tqdm.std

from spinal_nb import progress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "monotonic", c)
    return c


def test_a_log_gets_lines_and_a_terminal_gets_tqdm():
    log = io.StringIO()
    assert isinstance(progress.bar(total=3, file=log), progress.LineBar)
    b = progress.bar(total=3, file=Terminal())
    assert isinstance(b, tqdm.std.tqdm)
    b.close()
    assert not isinstance(progress.bar(total=3, file=log, disable=True), progress.LineBar)


def test_at_most_one_line_per_interval_and_a_last_line(clock):
    log = io.StringIO()
    b = progress.bar(total=1000, desc="spinal trace x", unit="prompt", file=log)
    for i in range(1000):  # 1000 updates over 50 s of fake time: one line at the start, at most one per 5 s, the end
        clock.t += 0.05
        b.update(1)
        if i == 500:
            b.write("a log line")
    b.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "spinal trace x: 0/1000 prompt [0 s]"
    assert lines[-1] == "spinal trace x: 1000/1000 prompt [50 s]"
    assert "a log line" in lines  # a whole line of its own, never glued onto a progress fragment
    progress_lines = [s for s in lines if s.startswith("spinal trace x")]
    assert 50 / progress.LINE_INTERVAL_S <= len(progress_lines) <= 50 / progress.LINE_INTERVAL_S + 2


def test_iterating_postfix_and_close_once(clock):
    log = io.StringIO()
    seen = []
    b = progress.bar(range(4), desc="pre-train", file=log)
    for x in b:
        seen.append(x)
        b.set_postfix(loss="1.234")
    b.close()  # already closed by the end of the loop: no second last line
    assert seen == [0, 1, 2, 3]
    assert log.getvalue().splitlines() == ["pre-train: 0/4 it [0 s]", "pre-train: 4/4 it [0 s] loss=1.234"]


def test_nothing_when_disabled_and_no_line_when_nothing_moved(clock):
    log = io.StringIO()
    progress.LineBar(total=5, desc="x", file=log, disable=True).close()
    assert log.getvalue() == ""
    b = progress.LineBar(total=5, desc="x", initial=2, file=log)
    b.close()
    assert log.getvalue().splitlines() == ["x: 2/5 it [0 s]"]


def test_quiet_transformers_restores_the_bars():
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    with progress.quiet_transformers(True):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    with progress.quiet_transformers(False):
        assert hf_logging.is_progress_bar_enabled()
