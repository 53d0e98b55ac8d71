"""Depth-aware views (issue 13): checkpoints of different depth are compared on depth, labelled, or refused — never
by layer index — and every view shows N and N/d. Checked against independent computations, not the views' own code."""
import base64
import html
import json
import re

import numpy as np
import pytest
from support import make_frame

from spinal_nb.errors import FrameError
from spinal_nb.frame import TraceFrame
from spinal_nb.frame.traceframe import N_PER_D_CAUTION
from spinal_nb.scores.verdict import VERDICT_KEYS
from spinal_nb.widgets import chart, show
from spinal_nb.widgets import pairs as pairs_module
from spinal_nb.widgets._payload import unpack
from spinal_nb.widgets.dashboard import report


@pytest.fixture(scope="module")
def mixed() -> TraceFrame:
    """A 30-layer reference and a 4-layer candidate (the shape of lab-base vs SmolLM2 in `spinal demo --smollm2`),
    plus a 30-layer candidate of the same depth; widths recorded so that N/d exists (4096 positions each)."""
    deep = make_frame(2, 30, names=["deep", "deep-dpo"], seed=0)
    shallow = make_frame(1, 4, names=["shallow"], seed=5, effects=[0.0])
    frame = TraceFrame.concat([deep, shallow])
    frame.meta["checkpoints"]["deep"]["d_model"] = 512        # N/d = 8
    frame.meta["checkpoints"]["deep-dpo"]["d_model"] = 512
    frame.meta["checkpoints"]["shallow"]["d_model"] = 2048    # N/d = 2: below the caution threshold
    return frame


def _by_hand_on_depth(frame, reference, candidate, score="contraction"):
    """Candidate − reference with the candidate interpolated linearly in depth onto the reference's depths."""
    r, c = frame.checkpoint(reference), frame.checkpoint(candidate)
    rd, cd = r.get_column("depth").to_numpy(), c.get_column("depth").to_numpy()
    rv = r.get_column(score).cast(float).fill_null(np.nan).to_numpy()
    cv = c.get_column(score).cast(float).fill_null(np.nan).to_numpy()
    ok = np.isfinite(cv)
    return rd, np.interp(rd, cd[ok], cv[ok]) - rv


def test_a_different_depth_candidate_gets_no_per_index_delta(mixed):
    view = show(mixed, reference="deep", checkpoint="shallow")
    d = unpack(view._deltas_header, view._deltas)
    rows = {c: (mixed.data.get_column("checkpoint") == c).to_numpy() for c in mixed.checkpoints}
    for col in d:
        assert np.isnan(d[col][rows["shallow"]]).all(), col  # no Δ at the shallow model's layer indices
    # the same-depth candidate keeps its per-layer Δ, equal to compare's
    same = mixed.compare("deep", "deep-dpo").layers.get_column("d_contraction").to_numpy()
    np.testing.assert_allclose(d["d_contraction"][rows["deep-dpo"]], same.astype(np.float32), equal_nan=True)
    assert view._summaries["deep-dpo"]["aligned"] == "layer" and "label" not in view._summaries["deep-dpo"]


def test_a_different_depth_pair_is_compared_on_depth_and_labelled(mixed):
    view = show(mixed, reference="deep", checkpoint="shallow")
    s = view._summaries["shallow"]
    assert s["aligned"] == "depth" and "interpolated on depth" in s["label"]
    assert s["verdict"]["text"].startswith("Interpolated on depth (L = 4 onto L = 30)")
    # the curve is the candidate interpolated on the reference's depths, by hand
    depth, want = _by_hand_on_depth(mixed, "deep", "shallow")
    np.testing.assert_allclose(s["curve"]["depth"], depth)
    got = np.array([np.nan if v is None else v for v in s["curve"]["d_contraction"]])
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    # window mean: the mean of that curve over the reference's terminal window, not of a per-index difference
    inside = depth >= 0.7 - 1e-12
    # (the browser's summaries carry 7 significant digits)
    assert s["window_contraction"]["mean"] == pytest.approx(np.nanmean(want[inside]), rel=1e-6)
    first_last = np.flatnonzero(inside)[[0, -1]].tolist()
    assert s["window_layers"] == first_last == mixed.compare("deep", "shallow", on="depth").summary["window_layers"][::len(
        np.flatnonzero(inside)) - 1]
    json.dumps(view._summaries)  # a synced trait: JSON-safe


def test_the_verdict_shown_is_the_comparisons_own(mixed):
    view = show(mixed, reference="deep")
    comp = mixed.compare("deep", "deep-dpo")
    want = comp.verdict(mixed.window_means("deep"))
    assert view._summaries["deep-dpo"]["verdict"] == {"key": want["key"], "text": want["text"]}
    on_depth = mixed.compare("deep", "shallow", on="depth").verdict(mixed.window_means("deep"))
    assert view._summaries["shallow"]["verdict"]["text"].endswith(on_depth["text"])


def test_a_pair_compare_refuses_is_refused_with_its_message(mixed, monkeypatch):
    def refuse(frame, reference, candidate, **kw):
        raise FrameError(f"{reference!r} and {candidate!r} are not comparable: widths differ.")
    monkeypatch.setattr(pairs_module, "compute_comparison", refuse)
    view = show(mixed, reference="deep")
    d = unpack(view._deltas_header, view._deltas)
    assert all(np.isnan(v).all() for v in d.values())
    assert view._summaries["shallow"]["error"] == "'deep' and 'shallow' are not comparable: widths differ."
    assert "verdict" not in view._summaries["shallow"]
    page = report(mixed, reference="deep")
    assert "shallow − deep: not compared. &#x27;deep&#x27; and &#x27;shallow&#x27; are not comparable" in page
    with pytest.raises(FrameError, match="not comparable"):
        chart(mixed, "delta", reference="deep", candidate="shallow")


def _embedded_state(page: str) -> dict:
    state = json.loads(re.search(r'<script type="application/json" id="spinal-state">(.*?)</script>', page,
                                 re.S).group(1))
    for k in state["__bytes__"]:
        state[k] = base64.b64decode(state[k])
    return state


def test_the_report_of_a_different_depth_pair_says_interpolated_and_holds_no_per_index_delta(mixed, tmp_path):
    path = report(mixed, tmp_path / "r.html", reference="deep")
    page = path.read_text()
    head = page[page.index("<section class='spinal-report'>"):page.index("</section>")]
    view = show(mixed, reference="deep")
    for cand in ("deep-dpo", "shallow"):
        text = view._summaries[cand]["verdict"]["text"]
        assert html.escape(f"{cand} − deep: {text}") in head  # the panel's verdict, word for word
    assert "shallow − deep: Interpolated on depth (L = 4 onto L = 30)" in head
    # each verdict paragraph's class is the verdict's CSS-safe key (the labels hold spaces and an apostrophe)
    classes = re.findall(r"<p class='verdict ([^']*)'>", head)
    assert classes and set(classes) <= set(VERDICT_KEYS.values())
    assert classes == [view._summaries[c]["verdict"]["key"] for c in ("deep-dpo", "shallow")]
    assert "interpolated on depth: shallow (L = 4) onto the depths of deep (L = 30)" in head
    state = _embedded_state(page)
    d = unpack(state["_deltas_header"], state["_deltas"])
    rows = (mixed.data.get_column("checkpoint") == "shallow").to_numpy()
    assert all(np.isnan(v[rows]).all() for v in d.values())
    assert state["_summaries"]["shallow"]["aligned"] == "depth"


def test_the_report_carries_provenance_with_n_and_n_over_d(mixed):
    page = report(mixed, reference="deep")
    head = page[page.index("<section class='spinal-report'>"):page.index("</section>")]
    rows = re.findall(r"<tr>(.*?)</tr>", head)
    cells = {re.findall(r"<td>(.*?)</td>", r)[0]: re.findall(r"<td>(.*?)</td>", r) for r in rows[1:]}
    n = int(mixed.checkpoint("shallow").get_column("n_tokens")[0])
    assert cells["shallow"][3:7] == ["4", "2048", f"{n:,}", f"<span class='caution'>{n / 2048:.2f} (caution)</span>"]
    assert cells["deep"][3:7] == ["30", "512", f"{n:,}", f"{n / 512:.2f}"]
    assert cells["deep"][8] == "same-prompts"
    assert "Caution (shallow): N/d &lt; 4" in head
    assert "spinal-nb" in head


def test_the_delta_chart_of_a_different_depth_pair_is_labelled(mixed):
    spec = chart(mixed, "delta", reference="deep", candidate="shallow").to_dict()
    assert "interpolated on depth" in json.dumps(spec["title"], ensure_ascii=False)
    spec = chart(mixed, "delta", reference="deep", candidate="deep-dpo").to_dict()
    assert "interpolated" not in json.dumps(spec["title"], ensure_ascii=False)


def test_n_and_n_over_d_in_the_header_and_the_repr(mixed):
    view = show(mixed)
    n = int(mixed.checkpoint("deep").get_column("n_tokens")[0])
    samples = view._header["samples"]
    assert samples["deep"]["n"] == n and samples["deep"]["d"] == 512
    assert samples["deep"]["n_per_d"] == pytest.approx(n / 512) and not samples["deep"]["caution"]
    assert samples["shallow"]["n_per_d"] == pytest.approx(n / 2048) and samples["shallow"]["caution"]
    assert "docs/method.md" in view._header["n_per_d_note"]
    text = repr(mixed)
    line = {ln.split()[0]: ln.split() for ln in text.splitlines()[2:5]}
    assert line["deep"][1:4] == ["30", f"{n:,}", f"{n / 512:.2f}"]
    assert line["shallow"][1:5] == ["4", f"{n:,}", f"{n / 2048:.2f}", "!"]
    assert "caution (shallow): N/d < 4" in text and "docs/method.md" in text
    assert f"{n / 2048:.2f} !" in mixed._repr_html_() and "caution (shallow)" in mixed._repr_html_()


def test_the_caution_follows_the_threshold_and_missing_widths_show_no_ratio():
    frame = make_frame(1, 6, names=["m"])
    n = int(frame.checkpoint("m").get_column("n_tokens")[0])
    assert frame.sample_size("m") == {"n": n, "n_max": n, "d": None, "n_per_d": None, "caution": False}
    assert "caution" not in repr(frame)
    for d, caution in ((int(n / N_PER_D_CAUTION), False), (int(n / N_PER_D_CAUTION) + 1, True)):
        frame.meta["checkpoints"]["m"]["d_model"] = d
        assert frame.sample_size("m")["caution"] is caution, d
        assert ("caution" in repr(frame)) is caution


@pytest.fixture(scope="module")
def seeded() -> TraceFrame:
    """A base and three training seeds of one DPO model (different draws, similar effects), marked as seeds."""
    frame = make_frame(4, 12, names=["base", "dpo-s0", "dpo-s1", "dpo-s2"], seed=11, effects=[0.0, 0.9, 1.0, 1.1])
    return frame.mark_seeds(["dpo-s0", "dpo-s1", "dpo-s2"])


def test_seed_groups_survive_parquet_and_rename(seeded, tmp_path):
    assert seeded.seed_groups() == {"dpo-s0": ["dpo-s0", "dpo-s1", "dpo-s2"]}
    again = TraceFrame.read_parquet(seeded.to_parquet(tmp_path / "s.parquet"))
    assert again.seed_groups() == seeded.seed_groups()
    renamed = seeded.rename({"dpo-s0": "first", "dpo-s2": "third"})
    assert renamed.seed_groups() == {"first": ["first", "dpo-s1", "third"]}
    assert seeded.select(["base", "dpo-s1"]).seed_groups() == {}  # one seed left: no group
    for bad in (["dpo-s0"], ["dpo-s0", "dpo-s0"], ["dpo-s0", "nope"]):
        with pytest.raises(FrameError, match="mark_seeds"):
            seeded.mark_seeds(bad)


def test_views_compare_with_the_seeds_mean_and_keep_each_rows_own_delta(seeded):
    """Every view of a seed's pair shows compare(reference, seeds) — the numbers the demo prints — while the table's
    rows keep each seed's own Δ (computed here by hand from the table)."""
    expect = seeded.compare("base", ["dpo-s0", "dpo-s1", "dpo-s2"]).summary
    view = show(seeded, reference="base", checkpoint="dpo-s1")
    for cand in ("dpo-s0", "dpo-s1", "dpo-s2"):
        s = view._summaries[cand]
        assert "mean of 3 training seeds" in s["label"]
        for score in ("contraction", "transport"):
            for k in ("mean", "lo", "hi"):
                assert s[f"window_{score}"][k] == pytest.approx(expect[f"window_{score}"][k], rel=1e-6)
        assert s["verdict"]["text"].count("over 3 seeds") == 2
        assert len(s["curve"]["d_contraction"]) == 13
    d = unpack(view._deltas_header, view._deltas)
    col = seeded.data.get_column("checkpoint").to_numpy()
    base = seeded.checkpoint("base").get_column("contraction").to_numpy()
    for cand in ("dpo-s0", "dpo-s1", "dpo-s2"):
        own = seeded.checkpoint(cand).get_column("contraction").to_numpy() - base
        np.testing.assert_allclose(d["d_contraction"][col == cand], own, rtol=1e-6, atol=1e-7)
    page = report(seeded, reference="base")
    assert html.escape(view._summaries["dpo-s0"]["verdict"]["text"]) in page
    # the delta chart draws the seeds' mean
    spec = chart(seeded, "delta", reference="base", candidate="dpo-s0").to_dict()
    assert "mean of 3 seeds of dpo-s0 − base" in json.dumps(spec, ensure_ascii=False)
