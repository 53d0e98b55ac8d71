"""The on-disk training trace: one atomic file per evaluation, crash safety, the event log, resume rules."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from spinal_nb.errors import FrameError, InputError
from spinal_nb.frame import TraceFrame
from spinal_nb.monitor import TrainingTraceWriter, checkpoint_name, ordered_by_step, read_events, read_training_trace
from spinal_nb.synthetic import synthetic_trace

KW = dict(n_layers=4, d=16, vocab=32, n_prompts=20, tokens_per_prompt=12)


def point(step: int, seed: int = 0) -> TraceFrame:
    name = checkpoint_name(step)
    f = synthetic_trace(name, seed=seed, **KW)
    f.meta["checkpoints"][name]["extra"] = {"monitor": {"step": step, "trace_seconds": 0.1 * step}}
    return TraceFrame(f.data.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")), f.meta)


def test_names_sort_like_steps():
    assert checkpoint_name(120) == "step-000120"
    assert sorted(checkpoint_name(s) for s in (5, 40, 300, 1000)) == [checkpoint_name(s) for s in (5, 40, 300, 1000)]


def test_round_trip_in_step_order(tmp_path):
    w = TrainingTraceWriter(tmp_path / "run")
    assert w.prepare(0, overwrite=False) == []
    points = {s: point(s) for s in (0, 50, 100)}
    for s in (100, 0, 50):  # written out of order: the reader orders by step
        w.write(points[s], s)
    w.event({"event": "alert", "step": 100, "message": "x"})
    f = read_training_trace(tmp_path / "run")
    assert f.checkpoints == ["step-000000", "step-000050", "step-000100"]
    assert ordered_by_step(f)
    assert f.data.get_column("step").unique(maintain_order=True).to_list() == [0, 50, 100]
    for s, p in points.items():  # every number survives the round trip
        assert f.checkpoint(checkpoint_name(s)).equals(p.data, null_equal=True)
    assert [e["step"] for e in f.meta["monitor"]["evaluations"]] == [0, 50, 100]
    assert f.meta["monitor"]["alerts"] == [{"event": "alert", "step": 100, "message": "x"}]
    # the result is an ordinary TraceFrame: Parquet round trip and compare work
    f.to_parquet(tmp_path / "all.parquet")
    assert TraceFrame.read_parquet(tmp_path / "all.parquet") == f
    assert f.compare("step-000000", "step-000100").summary["paired"]


def test_failed_write_leaves_earlier_points_and_no_partial_file(tmp_path, monkeypatch):
    w = TrainingTraceWriter(tmp_path)
    w.prepare(0, overwrite=False)
    w.write(point(0), 0)
    w.write(point(10), 10)

    real = pl.DataFrame.write_parquet

    def crash(self, file, **kw):  # half a file, then the "crash"
        real(self, file, **kw)
        Path(file).write_bytes(Path(file).read_bytes()[:200])
        raise OSError("disk full")
    monkeypatch.setattr(pl.DataFrame, "write_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        w.write(point(20), 20)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000.parquet", "step-000010.parquet"]
    assert read_training_trace(tmp_path).checkpoints == ["step-000000", "step-000010"]


def test_killed_process_mid_write_loses_only_the_last_point(tmp_path):
    """A real process dies (os._exit, no cleanup) half-way through writing its third point."""
    script = textwrap.dedent(f"""
        import os, polars as pl
        from pathlib import Path
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_storage import point
        from spinal_nb.monitor import TrainingTraceWriter
        w = TrainingTraceWriter({str(tmp_path)!r}); w.prepare(0, overwrite=False)
        w.write(point(0), 0); w.write(point(5), 5); w.event({{"event": "start", "step": 0}})
        real = pl.DataFrame.write_parquet
        def die(self, file, **kw):
            real(self, file, **kw)
            Path(file).write_bytes(Path(file).read_bytes()[:300])
            os._exit(9)
        pl.DataFrame.write_parquet = die
        w.write(point(10), 10)
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers and all(n.endswith(".tmp") for n in leftovers)  # the torn write, under a temporary name
    f = read_training_trace(tmp_path)
    assert f.checkpoints == ["step-000000", "step-000005"]
    assert f.meta["monitor"]["events"] == [{"event": "start", "step": 0}]
    # a resumed run (from step 5) cleans the leftovers and keeps the points up to its step
    assert TrainingTraceWriter(tmp_path).prepare(5, overwrite=False) == [0, 5]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_torn_event_line_is_ignored_but_a_corrupt_middle_line_is_an_error(tmp_path):
    w = TrainingTraceWriter(tmp_path)
    w.prepare(0, overwrite=False)
    w.event({"event": "start", "step": 0})
    w.event({"event": "skip", "step": 5})
    with open(tmp_path / "monitor.jsonl", "a") as f:
        f.write('{"event": "alert", "st')  # crash mid-append
    assert [e["event"] for e in read_events(tmp_path)] == ["start", "skip"]
    lines = (tmp_path / "monitor.jsonl").read_text().split("\n")
    (tmp_path / "monitor.jsonl").write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(FrameError, match="line 2"):
        read_events(tmp_path)


def test_a_damaged_point_is_skipped_with_a_warning(tmp_path):
    w = TrainingTraceWriter(tmp_path)
    w.prepare(0, overwrite=False)
    w.write(point(0), 0)
    w.write(point(1), 1)
    p = tmp_path / "step-000001.parquet"
    p.write_bytes(p.read_bytes()[:100])  # e.g. a half-finished copy of the folder
    with pytest.warns(UserWarning, match="step-000001"):
        f = read_training_trace(tmp_path)
    assert f.checkpoints == ["step-000000"]


def test_prepare_refuses_an_earlier_run_unless_overwrite_and_resume_drops_the_future(tmp_path):
    w = TrainingTraceWriter(tmp_path)
    w.prepare(0, overwrite=False)
    for s in (0, 5, 10, 15):
        w.write(point(s), s)
    w.event({"event": "start", "step": 0})
    with pytest.raises(InputError, match="overwrite=True"):
        w.prepare(0, overwrite=False)
    assert w.prepare(10, overwrite=False) == [0, 5, 10]  # resumed at step 10: step 15 belonged to the lost future
    assert w.steps() == [0, 5, 10]
    assert read_events(tmp_path)  # the log of a resumed run continues
    assert w.prepare(0, overwrite=True) == []
    assert w.steps() == [] and read_events(tmp_path) == []


def test_errors(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        TrainingTraceWriter(tmp_path / "f")
    with pytest.raises(FrameError, match="No training-trace folder"):
        read_training_trace(tmp_path / "nope")
    with pytest.raises(FrameError, match="no readable evaluations"):
        read_training_trace(tmp_path)
    # a point whose step column disagrees with its name is not silently mixed in
    w = TrainingTraceWriter(tmp_path / "r")
    w.prepare(0, overwrite=False)
    w.write(point(0), 0)
    w.write(point(3), 4)
    with pytest.warns(UserWarning, match="step column says"):
        assert read_training_trace(tmp_path / "r").checkpoints == ["step-000000"]
    assert json.loads(json.dumps(read_events(tmp_path / "r"))) == []
