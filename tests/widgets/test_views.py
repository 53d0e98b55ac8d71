"""Widget state without a browser: traits, validation, Python <-> front-end sync over a recording comm, linking."""
import comm
import numpy as np
import polars as pl
import pytest
from ipywidgets.widgets.widget_link import Link
from support import make_frame

from spinal_nb.errors import InputError
from spinal_nb.widgets import Dashboard, DepthPathView, LayerScrubber, link, show
from spinal_nb.widgets._base import STATIC
from spinal_nb.widgets._payload import unpack


class RecordingComm(comm.base_comm.BaseComm):
    """Stands in for the kernel's comm: records what Python sends to the front end (apis.md §3.3)."""

    sent: list = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.sent.append((msg_type, data, buffers))


@pytest.fixture
def recorded(monkeypatch):
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda **kw: RecordingComm(**kw))
    return RecordingComm.sent


def front_end_update(widget, **state):
    """What the browser sends when the user moves the slider or clicks a trace."""
    widget.comm.handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                            "buffers": []})


def updates(sent, key):
    return [d["state"][key] for t, d, _ in sent if t == "comm_msg" and d.get("method") == "update"
            and key in d.get("state", {})]


def test_defaults(frame3):
    view = show(frame3)
    assert isinstance(view, Dashboard)
    assert view.reference == "base" and view.checkpoint == "dpo"
    assert view.layer == 29  # the deepest layer that has a transport step
    assert view.mode == "path" and view.terminal_depth == 0.7
    assert view.traceframe is frame3
    assert view._esm == (STATIC / "dashboard.js").read_text(encoding="utf-8")  # the built bundle, inline
    assert view._css == (STATIC / "spinal.css").read_text(encoding="utf-8")


def test_accepts_a_polars_frame_and_refuses_other_things(frame3):
    assert DepthPathView(frame3.data).traceframe.checkpoints == frame3.checkpoints
    with pytest.raises(InputError, match="TraceFrame"):
        DepthPathView({"layer": [0]})


@pytest.mark.parametrize("kw, match", [
    ({"layer": 31}, r"layer must be in 0\.\.30"),
    ({"layer": -1}, r"layer must be in 0\.\.30"),
    ({"checkpoint": "rlhf"}, "No checkpoint 'rlhf'"),
    ({"reference": "rlhf"}, "No checkpoint 'rlhf'"),
    ({"mode": "heatmap"}, "mode must be one of"),
    ({"terminal_depth": 1.5}, r"terminal_depth is a depth in \[0, 1\]"),
    ({"spectrum_points": 1}, "spectrum_points"),
])
def test_bad_arguments_say_what_is_allowed(frame3, kw, match):
    with pytest.raises(InputError, match=match):
        LayerScrubber(frame3, **kw)


def test_setting_traits_later_is_validated_too(frame3):
    view = LayerScrubber(frame3)
    with pytest.raises(InputError):
        view.layer = 99
    with pytest.raises(InputError):
        view.checkpoint = "nope"
    assert view.layer == 29


def test_python_sets_layer_and_the_front_end_is_told(frame3, recorded):
    view = Dashboard(frame3)
    view._repr_mimebundle_()
    recorded.clear()
    view.layer = 24
    assert updates(recorded, "layer") == [24]
    # the detail buffers for layer 24 go out with it, as binary buffers (not JSON)
    spectra_msgs = [(d, b) for t, d, b in recorded if t == "comm_msg" and "_spectra_header" in d.get("state", {})]
    assert spectra_msgs and spectra_msgs[-1][0]["state"]["_spectra_header"]["layer"] == 24
    assert ["_spectra"] in spectra_msgs[-1][0]["buffer_paths"]


def test_front_end_moves_update_python(frame3, recorded):
    view = Dashboard(frame3)
    view._repr_mimebundle_()
    seen = []
    view.observe(lambda ch: seen.append(ch["new"]), names=["layer"])
    front_end_update(view, layer=7)  # slider / arrow key
    assert view.layer == 7 and seen == [7]
    assert view._spectra_header["layer"] == 7
    front_end_update(view, checkpoint="sft", layer=12)  # click on a point of another trace
    assert (view.checkpoint, view.layer) == ("sft", 12)


def test_changing_the_reference_recomputes_the_comparison(frame3, recorded):
    view = Dashboard(frame3, reference="base")
    view._repr_mimebundle_()
    before = dict(view._summaries)
    front_end_update(view, reference="sft")
    assert set(view._summaries) == {"base", "dpo"}
    assert view._summaries["dpo"]["onset_layer"] == frame3.compare("sft", "dpo").summary["onset_layer"]
    d = unpack(view._deltas_header, view._deltas)
    rows = (frame3.data.get_column("checkpoint") == "base").to_numpy()
    expect = frame3.compare("sft", "base").layers.get_column("d_contraction").to_numpy()
    np.testing.assert_allclose(d["d_contraction"][rows], expect.astype(np.float32))
    assert before != view._summaries
    view.terminal_depth = 0.5
    assert view._summaries["dpo"]["terminal_depth"] == 0.5


def test_separate_views_link_in_the_browser(frame3):
    path, scrub = DepthPathView(frame3), LayerScrubber(frame3)
    links = link(path, scrub)
    assert len(links) == 2 and all(isinstance(x, Link) for x in links)
    assert {(x.source[1], x.target[1]) for x in links} == {("layer", "layer"), ("checkpoint", "checkpoint")}
    assert all(x.source[0] is path and x.target[0] is scrub for x in links)


def test_many_checkpoints_with_different_depths(frame3):
    shallow = make_frame(1, 12, names=["tiny"], seed=3)
    both = type(frame3).concat([frame3.select(["base"]), shallow])
    view = Dashboard(both, reference="base", checkpoint="tiny")
    assert view._header["n_layers"] == {"base": 30, "tiny": 12}
    assert view._header["max_layer"] == 30
    assert view._summaries["tiny"]["aligned"] == "depth"  # compared on depth, as layers differ
    d = unpack(view._deltas_header, view._deltas)
    assert np.isnan(d["d_contraction"]).all()  # per-layer Δ only between equal depths


def test_unfitted_layers_carry_their_reason(frame3):
    df = frame3.data.with_columns(
        contraction=pl.when(pl.col("layer") == 0).then(None).otherwise(pl.col("contraction")),
        contraction_reason=pl.when(pl.col("layer") == 0).then(pl.lit("only 5 spectrum points")).otherwise(None))
    view = DepthPathView(type(frame3)(df, frame3.meta))
    t = unpack(view._header, view._data)
    assert np.isnan(t["contraction"][t["layer"] == 0]).all()
    reasons = view._header["reasons"]
    assert {int(k) for k in reasons} == set(np.flatnonzero(t["layer"] == 0).tolist())
    assert set(reasons.values()) == {"only 5 spectrum points"}
