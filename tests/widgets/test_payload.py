"""The binary payload the views send: exact round trips against the TraceFrame, and its size."""
import json

import numpy as np
import polars as pl
import pytest
from support import XSS, make_frame

from spinal_nb.params import SpinalParams
from spinal_nb.widgets import Dashboard, show
from spinal_nb.widgets._payload import SCORE_COLUMNS, fit_line, log_spaced, pack, unpack


def _nan(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def f32_ends(values: np.ndarray) -> float:
    """Tolerance of an interval end sent as value ∓ half-width in float32: a few float32 steps of the column's scale."""
    return 4 * float(np.finfo(np.float32).eps) * float(np.nanmax(np.abs(values)))


def test_pack_round_trip_and_alignment():
    cols = {"a": ("f32", [1.5, np.nan, -2.0]), "b": ("u16", [0, 65535, 7]), "c": ("f64", [1e300, 0.0, -1.0])}
    header, blob = pack(cols)
    assert header["n"] == 3
    assert all(spec[1] % 8 == 0 for spec in header["columns"].values())
    out = unpack(header, blob)
    np.testing.assert_array_equal(out["a"], np.array([1.5, np.nan, -2.0], dtype=np.float32))
    assert out["b"].tolist() == [0, 65535, 7]
    assert out["c"].tolist() == [1e300, 0.0, -1.0]
    with pytest.raises(ValueError):
        pack({"rows": ("u8", [1])})


def test_main_table_equals_the_frame(frame3):
    view = Dashboard(frame3)
    t = unpack(view._header, view._data)
    df = frame3.data
    names = view._header["checkpoints"]
    assert names == frame3.checkpoints
    assert [names[i] for i in t["checkpoint"]] == df.get_column("checkpoint").to_list()
    assert t["layer"].tolist() == df.get_column("layer").to_list()
    for name, _ in SCORE_COLUMNS:
        # values bit for bit in float32; a symmetric interval travels as a half-width, so its ends come back to
        # float32 precision (value ∓ half-width)
        want = _nan(df.get_column(name)).astype(np.float32)
        atol = f32_ends(want) if name.endswith(("_lo", "_hi")) else 0
        np.testing.assert_allclose(t[name], want, rtol=0, atol=atol, equal_nan=True, err_msg=name)
    # transport is null at the last layer and arrives as NaN, not 0
    last = df.get_column("layer").to_numpy() == 30
    assert np.isnan(t["transport"][last]).all()
    assert view._header["n_layers"] == {c: 30 for c in names}
    assert view._header["has_spectra"] and view._header["has_lens"]


def test_fit_line_is_the_weighted_least_squares_line(frame3):
    """Independent check: np.polyfit with weights sqrt(1/k) over the same window gives slope -α and intercept b."""
    p = SpinalParams()
    row = frame3.data.row(17, named=True)
    s = np.asarray(row["spectrum"])
    b, k_lo, k_hi = fit_line(s, p)
    k = np.arange(k_lo, k_hi + 1)
    slope, intercept = np.polyfit(np.log(k), np.log(s[k - 1]), 1, w=np.sqrt(1.0 / k))
    assert -slope == pytest.approx(row["contraction"], abs=1e-10)
    assert b == pytest.approx(intercept, abs=1e-10)
    assert fit_line(np.array([]), p) is None
    assert fit_line(np.ones(5), p) is None  # too few points: no line, as no α


def test_log_spaced_keeps_the_ends_and_is_sorted():
    idx = log_spaced(1000, 48)
    assert idx[0] == 0 and idx[-1] == 999 and len(idx) <= 48
    assert np.all(np.diff(idx) > 0)
    assert log_spaced(10, 48).tolist() == list(range(10))


def test_spectra_follow_the_selected_layer(frame3):
    view = Dashboard(frame3, layer=12)
    sp = unpack(view._spectra_header, view._spectra)
    layers = frame3.data.get_column("layer").to_numpy()
    # the selected layer and its neighbours (prefetch: a ←/→ step draws before the kernel replies), nothing else
    assert view._spectra_header["layer"] == 12 and view._spectra_header["span"] == [11, 13]
    assert set(sp["row"].tolist()) == set(np.flatnonzero(abs(layers - 12) <= 1))
    starts = np.concatenate([[0], np.cumsum(sp["count"].astype(np.int64))])
    params = frame3.params
    for j, r in enumerate(sp["row"].tolist()):
        k = sp["k"][starts[j]:starts[j + 1]]
        sigma = sp["sigma"][starts[j]:starts[j + 1]]
        full = np.asarray(frame3.data.get_column("spectrum")[int(r)].to_list())
        np.testing.assert_allclose(sigma, full[k - 1].astype(np.float32))
        assert k[0] == 1 and k[-1] == full.size
        # the tail-fit line travels with the spectrum
        line = fit_line(full, params)
        np.testing.assert_allclose([sp["fit_intercept"][j], sp["fit_k_lo"][j], sp["fit_k_hi"][j]],
                                   np.asarray(line, dtype=np.float32))
    view.layer = 0  # at the edge the span reaches past it; the rows are those that exist
    assert view._spectra_header["span"] == [-1, 1]
    assert set(unpack(view._spectra_header, view._spectra)["row"].tolist()) == set(np.flatnonzero(layers <= 1))
    every = view.detail_payload(None)
    assert sorted(unpack(every["_spectra_header"], every["_spectra"])["row"].tolist()) == list(range(len(layers)))


def test_lens_rows_and_untrusted_strings_round_trip(frame3):
    view = Dashboard(frame3, layer=30)
    hdr = view._lens_header
    lens = unpack(hdr, view._lens)
    expect = frame3.lens.filter(pl.col("layer").is_between(29, 31))  # the frame's own row order
    assert hdr["n"] == expect.height and hdr["span"] == [29, 31] and set(lens["layer"]) == {29, 30}
    assert [hdr["strings"][i] for i in lens["lens_token"]] == expect.get_column("lens_token").to_list()
    np.testing.assert_allclose(lens["prob"], expect.get_column("prob").to_numpy().astype(np.float32))
    assert XSS in hdr["strings"]  # the string is carried verbatim; the browser renders it as text
    toks = {p["index"]: [t for _, t in p["tokens"]] for p in hdr["prompts"]}
    assert toks[1] == ["a", " token", " " + XSS, " inside"]


def test_deltas_and_summaries_are_the_comparison(frame3):
    view = Dashboard(frame3, reference="base")
    d = unpack(view._deltas_header, view._deltas)
    df = frame3.data
    for cand in ("sft", "dpo"):
        comp = frame3.compare("base", cand)
        rows = (df.get_column("checkpoint") == cand).to_numpy()
        for col in ("d_contraction", "d_contraction_lo", "d_transport_hi"):
            want = _nan(comp.layers.get_column(col)).astype(np.float32)
            np.testing.assert_allclose(d[col][rows], want, rtol=0, atol=f32_ends(want), equal_nan=True, err_msg=col)
        s = view._summaries[cand]
        assert s["onset_layer"] == comp.summary["onset_layer"]
        assert s["window_contraction"]["mean"] == pytest.approx(comp.summary["window_contraction"]["mean"])
        assert s["localization"] == pytest.approx(comp.summary["localization"])
    assert np.isnan(d["d_contraction"][(df.get_column("checkpoint") == "base").to_numpy()]).all()
    assert "base" not in view._summaries
    json.dumps(view._summaries)  # JSON-safe: it is a synced trait
    # a planted late-layer effect: the aligned checkpoint's change sits in the terminal window
    assert view._summaries["dpo"]["localization"]["contraction"] > 0.7


def test_payload_of_a_training_run_stays_small(frame_steps):
    """20 checkpoints × 64 layers: scores ≈ 80 kB binary, per-layer detail a few kB; per-row JSON is far larger."""
    view = show(frame_steps)
    sizes = view.payload_bytes
    # u8 checkpoint and layer; f32 depth, R², and value + half-width of each of the 3 scores and of the 3 companion
    # metrics (symmetric intervals)
    companions = 3 * 2 * (20 * 65 * 4)  # what the companion metrics add: 31,200 bytes, nothing else
    assert sizes["_data"] == 2 * (20 * 65 + 4) + 8 * (20 * 65 * 4) + companions  # u8 columns padded to 8 bytes
    assert sizes["_data"] < 50_000 + companions
    # the selected layer ± 1 (prefetch): 3 layers × 20 checkpoints × ≤ 48 points × (u16 k + f32 σ), plus, per
    # spectrum, its row (u16), point count (u8) and fit line (3 × f32), plus alignment
    assert sizes["_spectra"] <= 3 * 20 * 48 * 6 + 3 * 20 * 15 + 7 * 8
    total = sum(sizes.values())
    # one compare summary per candidate (verdict, design, localization interval, onset): under 2 kB each
    assert sizes["_summaries"] < 19 * 2_000
    assert total < 100_000 + companions  # the first message of the widget
    per_row_json = len(frame_steps.data.drop("spectrum", "contraction_jk", "transport_jk", "entropy_jk",
                                             "effective_rank_jk", "kl_to_final_jk", "top1_agreement_jk")
                       .write_json().encode())
    assert per_row_json > 3 * sizes["_data"]
    print(f"\npayload bytes, 20 checkpoints x 64 layers: {sizes}; total {total}; per-row JSON of scores {per_row_json}")


def test_a_frame_without_the_companions_sends_no_bytes_for_them():

    with_them, without = show(make_frame(2, 12)), show(make_frame(2, 12, companions=False))
    assert with_them._header["companions"] == ["effective_rank", "kl_to_final", "top1_agreement"]
    assert without._header["companions"] == []
    assert with_them.payload_bytes["_data"] - without.payload_bytes["_data"] == 3 * 2 * 26 * 4
    cols = unpack(with_them._header, with_them._data)
    f = make_frame(2, 12).data
    np.testing.assert_allclose(cols["kl_to_final"], f["kl_to_final"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(cols["effective_rank_hi"], f["effective_rank_hi"].to_numpy(), rtol=1e-5)
