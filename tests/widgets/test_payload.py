"""The binary payload the views send: exact round trips against the TraceFrame, and its size."""
import base64
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support import XSS, make_frame

from spinal_nb.params import SpinalParams
from spinal_nb.widgets import Dashboard, show
from spinal_nb.widgets._payload import (
    SCORE_COLUMNS,
    decode,
    encode,
    fit_line,
    intervals,
    log_spaced,
    pack,
    quantized,
    spectra_points,
    unpack,
)

F32 = 2.0 ** -24  # float32's relative rounding error


def _nan(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def f32_ends(values: np.ndarray) -> float:
    """Tolerance of an interval end sent as value ∓ half-width in float32: a few float32 steps of the column's scale."""
    return 4 * float(np.finfo(np.float32).eps) * float(np.nanmax(np.abs(values)))


def q16_bound(v: np.ndarray) -> np.ndarray:
    """The stated absolute error of a q16 column: half a step (max − min)/65534, plus float32 rounding."""
    fin = v[np.isfinite(v)]
    step = (fin.max() - fin.min()) / 65534 if fin.size else 0.0
    return step / 2 * (1 + 1e-9) + np.abs(v) * F32 * 1.01 + 1e-300


def lq16_bound(v: np.ndarray, steps: float = 0.5) -> np.ndarray:
    """The stated error of an lq16 column: relative expm1(steps · b), b = ln(max/min)/65533 over the positive values,
    plus float32 rounding (steps = 1.5 for a half-width moved one code to keep its interval's verdict)."""
    pos = v[np.isfinite(v) & (v > 0)]
    b = np.log(pos.max() / pos.min()) / 65533 if pos.size else 0.0
    return np.abs(v) * (np.expm1(steps * b) * (1 + 1e-9) + F32 * 1.01 + 1e-15)


def within(got: np.ndarray, want: np.ndarray, bound: np.ndarray, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), what
    ok = ~np.isnan(want)
    err = np.abs(got[ok] - want[ok])
    assert np.all(err <= np.broadcast_to(bound, want.shape)[ok]), (what, float(err.max()))


def excludes0(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) | (hi < 0))


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
    # depth = layer / L costs no bytes and comes back exact (float32 would not: 0.1 is 0.10000000149)
    assert view._header["columns"]["depth"][0] == "ratio"
    assert np.array_equal(t["depth"], _nan(df.get_column("depth")))
    for name, _ in SCORE_COLUMNS:
        want = _nan(df.get_column(name))
        if name in ("contraction", "transport", "entropy"):  # the scores bit for bit in float32
            np.testing.assert_array_equal(t[name], want.astype(np.float32), err_msg=name)
        elif name == "contraction_r2":  # display only: 16 bits, linear
            within(t[name], want, q16_bound(want), name)
        elif name != "depth":  # value ∓ half-width: float32 value, lq16 half-width moved at most one code
            score = name.rsplit("_", 1)[0]
            hw = (_nan(df.get_column(score + "_hi")) - _nan(df.get_column(score + "_lo"))) / 2
            within(t[name], want, f32_ends(want) + lq16_bound(hw, 1.5), name)
    # transport is null at the last layer and arrives as NaN, not 0
    last = df.get_column("layer").to_numpy() == 30
    assert np.isnan(t["transport"][last]).all()
    assert view._header["n_layers"] == {c: 30 for c in names}
    assert view._header["has_spectra"] and view._header["has_lens"]


def test_a_depth_that_is_not_layer_over_L_is_sent_as_it_is(frame3):
    from spinal_nb.frame import TraceFrame
    df = frame3.data.with_columns(pl.col("depth") * 0.5)
    view = Dashboard(TraceFrame(df, frame3.meta, lens=frame3.lens))
    assert view._header["columns"]["depth"][0] == "f32"
    np.testing.assert_array_equal(unpack(view._header, view._data)["depth"],
                                  _nan(df.get_column("depth")).astype(np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_quantized_columns_round_trip_within_the_stated_bound(seed):
    """Random columns with NaN, exact zeros, a constant, a single row and ranges up to 60 decades, against the exact
    values; the bounds are the module docstring's."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    cases = {
        "wide": np.exp(rng.uniform(-69, 69, n)),  # 1e-30 .. 1e30
        "narrow": 1 + rng.uniform(0, 1e-3, n),
        "constant": np.full(n, float(rng.uniform(0.1, 10))),
        "one": np.array([float(rng.uniform(0, 5))]),
        "zeros and NaN": np.where(rng.random(n) < 0.2, 0.0, np.where(rng.random(n) < 0.2, np.nan,
                                                                      rng.gamma(0.5, 2.0, n))),
        "all NaN": np.full(n, np.nan),
        "empty": np.zeros(0),
    }
    for what, v in cases.items():
        for code, bound in (("lq16", lq16_bound(v)), ("q16", q16_bound(v))):
            x = v if code == "lq16" else v * rng.choice([-1.0, 1.0], v.size)  # q16 takes any sign
            b = bound if code == "lq16" else q16_bound(x)
            header, blob = pack({"x": (code, x)})
            assert len(blob) == -(-2 * x.size // 8) * 8  # two bytes a value
            got = unpack(header, blob)["x"]
            assert got.dtype == np.float32
            within(got, x, b, f"{code} {what}")
            if code == "lq16":
                assert np.all(got[x == 0] == 0)  # exactly 0, not the smallest code
    with pytest.raises(ValueError):
        encode("lq16", [1.0, -1.0])
    with pytest.raises(ValueError):
        encode("q16", [1.0, np.inf])
    with pytest.raises(ValueError):  # a range past float64: no finite step
        encode("q16", [-1e308, 1e308])
    header, _ = pack({"x": quantized("lq16", [1.0, -1.0])})  # what cannot be coded travels as float32
    assert header["columns"]["x"][0] == "f32"


def test_the_bound_is_tight_so_the_check_has_teeth():
    """Half a step is reached (a coarser code would fail the round-trip test above): over a log-uniform column the
    worst relative error of lq16 is within 2 % of expm1(b/2), and q16's within 2 % of step/2."""
    v = np.exp(np.linspace(0, np.log(1e6), 200_001))
    got = decode("lq16", *(lambda c: (c.params, c.codes))(encode("lq16", v))).astype(np.float64)
    rel = np.abs(got / v - 1).max()
    assert 0.98 * np.expm1(np.log(1e6) / 65533 / 2) <= rel <= np.expm1(np.log(1e6) / 65533 / 2) + 2 * F32
    w = np.linspace(0, 1, 200_001)
    c = encode("q16", w)
    err = np.abs(decode("q16", c.params, c.codes).astype(np.float64) - w).max()
    assert 0.98 * (1 / 65534 / 2) <= err <= 1 / 65534 / 2 + F32


@pytest.mark.parametrize("seed", range(4))
def test_half_widths_keep_whether_the_interval_excludes_zero(seed):
    """Intervals built to sit on the edge (half-width = |value| · (1 ± 1e-6)): the decoded interval excludes 0
    exactly where the frame's does, and the half-width stays within 1.5 codes."""
    rng = np.random.default_rng(100 + seed)
    n = 4000
    value = rng.normal(0, 1, n) * np.exp(rng.uniform(-8, 3, n))
    hw = np.abs(value) * np.where(rng.random(n) < 0.5, 1 + rng.choice([-1, 1], n) * rng.uniform(0, 1e-6, n),
                                  rng.uniform(0.01, 3, n))
    hw[:5] = 0.0
    lo, hi = value - hw, value + hw
    lo[5:9] = hi[5:9] = value[5:9] = hw[5:9] = np.nan
    cols: dict = {}
    intervals(cols, "d", value, lo, hi, "lq16")
    assert cols["d_hw"][0] == "lq16"
    cols["d"] = ("f32", value)
    t = unpack(*pack(cols))
    assert np.array_equal(excludes0(t["d_lo"], t["d_hi"]), excludes0(lo, hi))
    got_hw = (t["d_hi"] - t["d_lo"]) / 2
    within(got_hw, hw, lq16_bound(hw, 1.5) + F32 * np.abs(value), "half-width")
    # the nearest code alone would have flipped some verdicts: the adjustment is doing work here
    plain = unpack(*pack({"d": ("f32", value), "d_hw": ("lq16", hw)}))
    assert not np.array_equal(excludes0(plain["d_lo"], plain["d_hi"]), excludes0(lo, hi))


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
    sp = spectra_points(view._spectra_header, view._spectra)
    layers = frame3.data.get_column("layer").to_numpy()
    # the selected layer and its neighbours (prefetch: a ←/→ step draws before the kernel replies), nothing else
    assert view._spectra_header["layer"] == 12 and view._spectra_header["span"] == [11, 13]
    assert set(sp["row"].tolist()) == set(np.flatnonzero(abs(layers - 12) <= 1))
    starts = np.concatenate([[0], np.cumsum(sp["count"].astype(np.int64))])
    params = frame3.params
    sent = np.concatenate([np.asarray(frame3.data.get_column("spectrum")[int(r)].to_list())[
        log_spaced(len(frame3.data.get_column("spectrum")[int(r)]), 48)] for r in sp["row"]])
    bound = lq16_bound(sent)  # σ travels as lq16 over the buffer's range
    for j, r in enumerate(sp["row"].tolist()):
        k = sp["k"][starts[j]:starts[j + 1]]
        sigma = sp["sigma"][starts[j]:starts[j + 1]]
        full = np.asarray(frame3.data.get_column("spectrum")[int(r)].to_list())
        within(sigma, full[k - 1], bound[starts[j]:starts[j + 1]], f"sigma of row {r}")
        assert k[0] == 1 and k[-1] == full.size and np.array_equal(k, log_spaced(full.size, 48) + 1)
        # the tail-fit line travels with the spectrum
        line = fit_line(full, params)
        np.testing.assert_allclose([sp["fit_intercept"][j], sp["fit_k_lo"][j], sp["fit_k_hi"][j]],
                                   np.asarray(line, dtype=np.float32))
    # every spectrum here has the same length: one pattern of ranks travels, once
    assert len(set(sp["pattern"].tolist())) == 1 and view._spectra_header["columns"]["k"][2] == sp["count"][0]
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
        np.testing.assert_array_equal(d["d_contraction"][rows],
                                      _nan(comp.layers.get_column("d_contraction")).astype(np.float32))
        for score in ("d_contraction", "d_transport"):
            lo, hi = (_nan(comp.layers.get_column(score + e)) for e in ("_lo", "_hi"))
            bound = f32_ends(lo) + f32_ends(hi) + lq16_bound((hi - lo) / 2, 1.5)
            within(d[score + "_lo"][rows], lo, bound, score + "_lo")
            within(d[score + "_hi"][rows], hi, bound, score + "_hi")
            # what the table and heatmap mark: the interval excludes 0, as in the frame
            assert np.array_equal(excludes0(d[score + "_lo"][rows], d[score + "_hi"][rows]), excludes0(lo, hi))
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
    """20 checkpoints × 64 layers: scores ≈ 52 kB binary, per-layer detail a few kB; per-row JSON is far larger."""
    view = show(frame_steps)
    sizes = view.payload_bytes
    n = 20 * 65
    # u8 checkpoint and layer (padded to 8 bytes); depth = layer / L (no bytes); R² in 16 bits; f32 value + 16-bit
    # half-width of each of the 3 scores and of the 3 companion metrics (symmetric intervals)
    assert sizes["_data"] == 2 * (n + 4) + 2 * n + 6 * (4 * n + 2 * n)
    # Δα and Δ𝓛: f32 value + 16-bit half-width
    assert sizes["_deltas"] == 2 * (4 * n + 2 * n)
    # the selected layer ± 1 (prefetch): 3 layers × 20 checkpoints × ≤ 48 points × 2 bytes of σ, one pattern of
    # ≤ 48 ranks (u16), per spectrum its row (u16), point count (u8), pattern (u8) and fit line (3 × f32), alignment
    assert sizes["_spectra"] <= 3 * 20 * 48 * 2 + 48 * 2 + 3 * 20 * 16 + 8 * 8
    total = sum(sizes.values())
    # one compare summary per candidate (verdict, design, localization interval, onset): under 2 kB each
    assert sizes["_summaries"] < 19 * 2_000
    assert total <= 100_000  # the first message of the widget (issue: first payload ≤ 100 kB)
    per_row_json = len(frame_steps.data.drop("spectrum", "contraction_jk", "transport_jk", "entropy_jk",
                                             "effective_rank_jk", "kl_to_final_jk", "top1_agreement_jk")
                       .write_json().encode())
    assert per_row_json > 3 * sizes["_data"]
    print(f"\npayload bytes, 20 checkpoints x 64 layers: {sizes}; total {total}; per-row JSON of scores {per_row_json}")


def test_a_frame_without_the_companions_sends_no_bytes_for_them():

    with_them, without = show(make_frame(2, 12)), show(make_frame(2, 12, companions=False))
    assert with_them._header["companions"] == ["effective_rank", "kl_to_final", "top1_agreement"]
    assert without._header["companions"] == []
    # per companion: f32 value (26 rows, padded to 8 bytes) + 16-bit half-width
    assert with_them.payload_bytes["_data"] - without.payload_bytes["_data"] == 3 * (26 * 4 + 56)
    cols = unpack(with_them._header, with_them._data)
    f = make_frame(2, 12).data
    np.testing.assert_array_equal(cols["kl_to_final"], f["kl_to_final"].to_numpy().astype(np.float32))
    hw = ((f["effective_rank_hi"] - f["effective_rank_lo"]) / 2).to_numpy()
    within(cols["effective_rank_hi"], f["effective_rank_hi"].to_numpy(),
           f32_ends(f["effective_rank_hi"].to_numpy()) + lq16_bound(hw, 1.5), "effective_rank_hi")


NODE = shutil.which("node")
JS_PAYLOAD = Path(__file__).resolve().parents[2] / "js" / "src" / "lib" / "payload.js"
DECODE_IN_NODE = """
import { decodeColumns, spectraByRow } from %s;
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const { header, blob, spectra } of JSON.parse(input)) {
  const bytes = new Uint8Array(Buffer.from(blob, "base64")); // a plain Uint8Array, as the browser has (a Buffer's
  // slice() is a view into a shared pool)
  const t = spectra ? spectraByRow(header, bytes, spectra) : decodeColumns(header, bytes);
  const cols = {};
  for (const [name, a] of Object.entries(t)) {
    if (ArrayBuffer.isView(a)) cols[name] = [a.constructor.name, Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64")];
  }
  out.push(cols);
}
process.stdout.write(JSON.stringify(out));
"""


def _decode_in_node(payloads: list[dict]) -> list[dict[str, np.ndarray]]:
    script = DECODE_IN_NODE % json.dumps(JS_PAYLOAD.as_uri())
    r = subprocess.run([NODE, "--input-type=module", "-e", script], input=json.dumps(payloads), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    kinds = {"Float32Array": np.float32, "Float64Array": np.float64, "Uint8Array": np.uint8,
             "Uint16Array": np.uint16, "Uint32Array": np.uint32, "Int32Array": np.int32}
    return [{name: np.frombuffer(base64.b64decode(b), dtype=kinds[kind]) for name, (kind, b) in cols.items()}
            for cols in json.loads(r.stdout)]


@pytest.mark.skipif(NODE is None, reason="node is not installed: the JS decoder (js/src/lib/payload.js) needs node")
def test_the_browser_decoder_gives_the_same_numbers_as_unpack(frame3):
    """js/src/lib/payload.js on the bytes Python sends: every column (quantized ones included, lo/hi rebuilt from
    half-widths, depth from layer / L, spectra's ranks from their patterns) equals `unpack`'s bit for bit, in the
    same float width."""
    rng = np.random.default_rng(7)
    v = np.where(rng.random(500) < 0.1, np.nan, rng.normal(0, 1, 500))
    hw = np.where(np.isnan(v), np.nan, np.abs(rng.normal(0, 1, 500)) * np.exp(rng.uniform(-20, 5, 500)))
    hw[:7] = 0.0
    cols: dict = {"v": ("f32", v)}
    intervals(cols, "v", v, v - hw, v + hw, "lq16")
    cols["r2"] = ("q16", rng.uniform(-3, 1, 500))
    cols["one"] = ("lq16", np.full(500, 0.37))
    view = Dashboard(frame3, layer=7, reference="base")
    payloads = [pack(cols), (view._header, view._data), (view._deltas_header, view._deltas)]
    sent = [{"header": h, "blob": base64.b64encode(b).decode()} for h, b in payloads]
    sent.append({"header": view._spectra_header, "blob": base64.b64encode(view._spectra).decode(),
                 "spectra": frame3.data.height})
    decoded = _decode_in_node(sent)
    for (h, b), js in zip(payloads, decoded, strict=False):
        py = unpack(h, b)
        assert set(js) == set(py), (set(js) ^ set(py))
        for name, a in py.items():
            assert js[name].dtype.itemsize >= a.dtype.itemsize or a.dtype.kind in "iu", name
            np.testing.assert_array_equal(js[name].astype(a.dtype), a, err_msg=name)
            if a.dtype.kind == "f":  # same float width, same bits
                assert js[name].dtype == a.dtype, name
    sp = spectra_points(view._spectra_header, view._spectra)
    js = decoded[-1]
    starts = np.concatenate([[0], np.cumsum(sp["count"].astype(np.int64))])
    for j, r in enumerate(sp["row"].tolist()):
        a = js["start"][r]
        np.testing.assert_array_equal(js["k"][a:a + js["count"][r]], sp["k"][starts[j]:starts[j + 1]])
        np.testing.assert_array_equal(js["sigma"][a:a + js["count"][r]], sp["sigma"][starts[j]:starts[j + 1]])


def fmt(v: float, digits: int = 3) -> str:
    """js/src/lib/scales.js `fmt` (significant digits; exponent form outside [1e-3, 1e4)), as the readouts print."""
    if not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        m, e = f"{v:.{max(0, digits - 1)}e}".split("e")
        return f"{m}e{int(e)}"
    return f"{v:.{min(max(0, digits - 1 - math.floor(math.log10(abs(v)))), 6)}f}"


def test_readouts_print_the_frames_digits(frame_steps):
    """The table, tooltips and captions print R² and every interval end to 3 significant digits: over the 20 × 64
    frame, the decoded numbers print as the frame's exact ones except where the exact value sits on a rounding
    boundary, within the stated error of it (then the last digit differs by one): under 0.1 % of the readouts."""
    view = show(frame_steps)
    t = unpack(view._header, view._data)
    df = frame_steps.data
    pairs = [(name, _nan(df.get_column(name)), t[name]) for name in ["contraction_r2"] + [
        s + e for s in ("contraction", "transport", "entropy", "effective_rank", "kl_to_final", "top1_agreement")
        for e in ("_lo", "_hi")]]
    shown = differ = 0
    for name, exact, got in pairs:
        for a, b in zip(exact.tolist(), got.astype(np.float64).tolist(), strict=True):
            shown += 1
            sa, sb = fmt(a), fmt(b)
            if sa != sb:
                differ += 1
                edge = (float(sa) + float(sb)) / 2  # the rounding boundary between the two prints
                assert min(a, b) <= edge <= max(a, b) and abs(a - b) <= 2e-4 * abs(a), (name, a, b, sa, sb)
    assert shown > 15_000 and differ <= 0.001 * shown, (differ, shown)
