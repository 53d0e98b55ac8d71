"""TrainingView without a browser: the (step, layer) selection traits, the payload, in-place updates, the watcher.

Live data comes from a real training-trace folder written with the monitor's own writer (the format SpinalCallback
uses), with points built by spinal_nb.synthetic.synthetic_trace (real accumulators), so the view reads what a run
writes.
"""
from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
from support import XSS, make_frame, make_training_frame

from spinal_nb.errors import InputError
from spinal_nb.frame import TraceFrame
from spinal_nb.monitor import TraceWatcher, TrainingTraceWriter, checkpoint_name, read_training_trace
from spinal_nb.scores import jackknife_interval
from spinal_nb.synthetic import synthetic_trace
from spinal_nb.widgets import TrainingView, show_training
from spinal_nb.widgets._payload import unpack

from .test_views import front_end_update, recorded, updates  # noqa: F401 - `recorded` is a fixture

KW = dict(n_layers=4, d=16, vocab=32, n_prompts=20, tokens_per_prompt=8)


@pytest.fixture(scope="module")
def run():
    """14 evaluations every 50 steps, 24 layers, alerts at 550..650 whose message is an HTML-looking string."""
    return make_training_frame(14, 24, alert_steps=(550, 600, 650), message=XSS)


def point(step: int, late: float = 0.0) -> TraceFrame:
    """One evaluation as SpinalCallback writes it: synthetic_trace with α rising `late` in the terminal layers."""
    name = checkpoint_name(step)
    f = synthetic_trace(name, seed=0, alpha=lambda d: 0.6 + 0.2 * d + late * max(0.0, d - 0.7), **KW)
    return TraceFrame(f.data.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")), f.meta)


@pytest.fixture(scope="module")
def points():
    return {s: point(s, late=0.01 * s) for s in (0, 10, 20, 30)}


def test_defaults_select_the_newest_step_against_the_first(run):
    view = show_training(run)
    assert isinstance(view, TrainingView)
    assert view.reference == "step-000000" and view.checkpoint == "step-000650" and view.step == 650
    assert view.layer == 23 and view.heat == "contraction" and view.delta is False and view.mode == "contraction"
    assert view._alerts == {"steps": [550, 600, 650], "messages": [f"{XSS} at step {s}" for s in (550, 600, 650)]}
    st = view._status
    assert (st["evaluations"], st["first_step"], st["last_step"], st["alerts"], st["live"]) == (14, 0, 650, 3, False)


def test_step_and_checkpoint_are_one_choice(run):
    view = TrainingView(run, step=300, layer=5)
    assert view.checkpoint == "step-000300"
    view.step = 450
    assert view.checkpoint == "step-000450"
    view.checkpoint = "step-000100"
    assert view.step == 100
    with pytest.raises(InputError, match="No evaluation at step 451"):
        view.step = 451
    with pytest.raises(InputError, match="heat must be one of"):
        view.heat = "alpha"
    with pytest.raises(InputError, match="No evaluation at step 7"):
        TrainingView(run, step=7)


def test_the_browser_selects_a_cell_and_python_follows(run, recorded):  # noqa: F811
    view = TrainingView(run)
    view._repr_mimebundle_()
    recorded.clear()
    front_end_update(view, checkpoint="step-000200", layer=18)  # a click on the heatmap cell (step 200, layer 18)
    assert (view.step, view.layer) == (200, 18)
    assert updates(recorded, "step") == [200]  # Python tells the front end the derived step
    recorded.clear()
    view.step = 600  # and Python moves the browser
    assert updates(recorded, "checkpoint") == ["step-000600"]


def test_a_frame_without_steps_is_refused_with_a_pointer_to_show():
    with pytest.raises(InputError, match=r"training `step`.*show\(frame\)"):
        TrainingView(make_frame(3, 6))
    f = make_frame(2, 4, steps=True, step_values=[5, 5])
    with pytest.raises(InputError, match="share one training step"):
        TrainingView(f)


def test_payload_is_columnar_and_holds_the_scores(run):
    view = TrainingView(run)
    t = unpack(view._header, view._data)
    df = run.data
    np.testing.assert_array_equal(t["layer"], df.get_column("layer").to_numpy())
    np.testing.assert_allclose(t["contraction"], df.get_column("contraction").to_numpy().astype(np.float32))
    assert view._header["steps"] == [50 * i for i in range(14)]
    sizes = view.payload_bytes
    assert sizes["_spectra"] == 0 and sizes["_lens"] == 0  # not drawn by this view, so not sent
    # 14 evaluations × 25 layers: binary columns, about 50 bytes a row of scores (+ 24 for the 3 companion
    # metrics: value + half-width), Δ + half-width of 6 scores (at most 48 bytes a row), headers small
    assert sizes["_data"] < 14 * 25 * (64 + 24) and sizes["_deltas"] <= 14 * 25 * 48 + 12 * 8
    assert sum(sizes.values()) < 60_000, sizes


def test_deltas_against_the_reference_step(run):
    view = TrainingView(run, reference="step-000100")
    d = unpack(view._deltas_header, view._deltas)
    df = run.data
    rows = (df.get_column("checkpoint") == "step-000650").to_numpy()
    comp = run.compare("step-000100", "step-000650").layers
    np.testing.assert_allclose(d["d_contraction"][rows], comp.get_column("d_contraction").to_numpy().astype(np.float32))
    ref_rows = (df.get_column("checkpoint") == "step-000100").to_numpy()
    assert np.all(d["d_contraction"][ref_rows] == 0)  # the reference against itself
    # entropy: paired jackknife on the replicate differences, recomputed here independently
    a = df.filter(pl.col("checkpoint") == "step-000650").sort("layer")
    b = df.filter(pl.col("checkpoint") == "step-000100").sort("layer")
    layer = 20
    ea, eb = a.row(layer, named=True), b.row(layer, named=True)
    diff = ea["entropy"] - eb["entropy"]
    lo, hi = jackknife_interval(diff, [x - y for x, y in zip(ea["entropy_jk"], eb["entropy_jk"], strict=True)], 0.95)
    i = int(np.flatnonzero(rows)[layer])
    np.testing.assert_allclose(d["d_entropy"][i], diff, rtol=1e-6)
    # the ends are the float32 Δ ∓ its half-width sent in 16 bits (lq16, parameters a, b): within 1.5 codes of it
    code, _, _, _, b = view._deltas_header["columns"]["d_entropy_hw"]
    assert code == "lq16"
    np.testing.assert_allclose([d["d_entropy_lo"][i], d["d_entropy_hi"][i]], [lo, hi], rtol=0,
                               atol=np.expm1(1.5 * b) * (hi - lo) / 2 + 1e-7 * abs(diff))


def test_update_in_place_follows_the_newest_step(run, recorded):  # noqa: F811
    first = TraceFrame(run.data.filter(pl.col("step") <= 300), run.meta)
    view = TrainingView(first, layer=20)
    view._repr_mimebundle_()
    assert view.step == 300 and view._status["evaluations"] == 7
    recorded.clear()
    assert view.update(run) is view
    assert (view.step, view.layer, view.reference) == (650, 20, "step-000000")
    assert view._header["steps"][-1] == 650 and view._status["evaluations"] == 14
    t = unpack(view._header, view._data)
    assert len(t["layer"]) == run.data.height
    # one comm message carries the new data with the new selection (hold_sync), the bytes as a binary buffer
    msgs = [d for k, d, _ in recorded if k == "comm_msg" and ["_data"] in d.get("buffer_paths", [])]
    assert len(msgs) == 1 and {"checkpoint", "step", "_header", "_status"} <= set(msgs[0]["state"])
    assert ["_deltas"] in msgs[0]["buffer_paths"]
    # a selection that is not on the newest step stays where it is
    view.step = 100
    view.update(run)
    assert view.step == 100


def test_update_refuses_a_frame_without_steps(run):
    view = TrainingView(run)
    with pytest.raises(InputError):
        view.update(make_frame(2, 4))
    assert view.step == 650  # untouched


def test_static_export_carries_the_training_state(run, tmp_path):
    import json
    import re

    view = TrainingView(run, heat="transport", delta=True, step=450)
    path = view.to_html(tmp_path / "training.html")
    text = path.read_text(encoding="utf-8")
    state = json.loads(re.search(r'id="spinal-state">(.*?)</script>', text, re.S).group(1))
    assert (state["heat"], state["delta"], state["step"]) == ("transport", True, 450)
    assert state["_alerts"]["steps"] == [550, 600, 650]
    assert "<img" not in text  # the alert message's markup is escaped inside the JSON (\u003c)


def test_a_training_folder_refreshes_the_view(points, tmp_path):
    folder = tmp_path / "spinal-trace"
    w = TrainingTraceWriter(folder)
    w.prepare(0, overwrite=False)
    for s in (0, 10):
        w.write(points[s], s)
    view = TrainingView.from_folder(folder)
    assert view._header["steps"] == [0, 10] and view._status["source"] == str(folder)
    got = []
    watcher = TraceWatcher(folder, lambda f: (got.append(f.checkpoints), view.update(f)), interval=0.05)
    assert watcher.poll() is True and watcher.poll() is False  # nothing new on the second look
    w.write(points[20], 20)
    w.event({"event": "alert", "step": 20, "message": "α rose beyond its interval"})
    assert watcher.poll() is True
    assert got[-1] == ["step-000000", "step-000010", "step-000020"]
    assert view.step == 20 and view._alerts["steps"] == [20]
    np.testing.assert_allclose(unpack(view._header, view._data)["contraction"][-5:],
                               read_training_trace(folder).data.get_column("contraction").to_numpy()[-5:]
                               .astype(np.float32))


def test_watch_runs_on_a_thread_until_stopped(points, tmp_path):
    folder = tmp_path / "run"
    w = TrainingTraceWriter(folder)
    w.prepare(0, overwrite=False)
    w.write(points[0], 0)
    w.write(points[10], 10)
    view = TrainingView(read_training_trace(folder))
    watcher = view.watch(folder, interval=0.05)
    try:
        assert watcher.running and view._status["live"] is True
        w.write(points[30], 30)
        deadline = time.time() + 20
        while view.step != 30 and time.time() < deadline:
            time.sleep(0.05)
        assert view.step == 30 and view._header["steps"] == [0, 10, 30]
    finally:
        watcher.stop()
    assert not watcher.running and view._status["live"] is False
    assert watcher.last_error is None


def test_watcher_survives_a_failing_refresh_and_bad_arguments(points, tmp_path):
    with pytest.raises(InputError, match="interval"):
        TraceWatcher(tmp_path, print, interval=0)
    with pytest.raises(InputError, match="callable"):
        TraceWatcher(tmp_path, None)
    missing = TraceWatcher(tmp_path / "not-yet", print)
    assert missing.poll() is False  # a run that has not started writing yet
    folder = tmp_path / "r"
    w = TrainingTraceWriter(folder)
    w.prepare(0, overwrite=False)
    w.write(points[0], 0)

    def boom(frame):
        raise RuntimeError("widget closed")

    bad = TraceWatcher(folder, boom)
    assert bad.poll() is False and isinstance(bad.last_error, RuntimeError)
    assert bad.poll() is False  # the same state is not retried forever
