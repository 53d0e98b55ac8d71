"""What the widgets send to the browser: columns as little-endian binary, described by a small JSON header.

One buffer per table, `{"n": rows, "columns": {name: [code, byte_offset, length, *parameters]}}` beside it; the front
end (js/src/lib/payload.js) takes a typed-array view per column. No per-row JSON: 20 checkpoints × 65 layers of scores
is about 50 kB. Integer columns take the narrowest unsigned type that holds them, and an interval symmetric about its
estimate (the jackknife's) travels as a half-width `<name>_hw` instead of `<name>_lo` and `<name>_hi` (the front end,
and `unpack`, give back lo and hi). Spectra (with their tail-fit lines) and lens detail are separate buffers holding
only the selected layer and its neighbours (all layers in a static export), so scrubbing costs a few kB per step
whatever the size of the trace.

Display-only columns travel as 16-bit codes, decoded once on arrival (to float32, as the other columns):
- `q16` (linear; parameters lo, step): u16 q → lo + q·step, 65535 = NaN; lo and step = (max − min)/65534 from the
  column's finite values, so the absolute error is at most step/2 = (max − min)/131068 (plus float32 rounding). Used
  for contraction_r2 (printed to 3 digits) — an R² range of 1 keeps 7.6e-6.
- `lq16` (logarithmic, non-negative; parameters a, b): u16 q → 0 for q = 0 (exactly 0), NaN for 65535, else
  exp(a + (q − 1)·b), with a = ln(min positive), b = ln(max/min)/65533: the relative error is at most
  expm1(b/2) (plus float32 rounding) — 1.05e-4 for six decades. Used for every symmetric interval's half-width
  (the value itself stays float32) and for the spectrum points σ_k (drawn on a log axis only), with their ranks k
  sent once per distinct pattern (spectra_payload).
  A half-width keeps whether its interval excludes 0: where the nearest code would change that (the verdict the
  tables and heatmaps mark), the next code towards the frame's verdict is taken, so its error is at most
  expm1(3b/2).
- `ratio` (no bytes; parameters num, by, den): column[i] = num[i] / den[by[i]] (0 where den is 0), computed in
  float64 by both ends. depth travels so when it equals layer / L exactly (every traced frame): exact, where float32
  would put 0.7 below a terminal-window edge at 0.7.
The score values (α, 𝓛, entropy), the companion metrics' values (printed to 3–4 digits: 16 bits would change a
printed last digit in a few % of readouts), the Δ values and the lens probabilities stay float32. A column with a
negative or infinite value where `lq16` wants non-negative finite ones, or an infinite one for `q16`, travels as
float32 instead.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ..errors import FrameError
from ..frame.traceframe import N_PER_D_NOTE
from ..params import SpinalParams
from ..scores import fit_tail
from .pairs import compare_pair, summary_of

CODES = {"f32": "<f4", "f64": "<f8", "i32": "<i4", "u32": "<u4", "u16": "<u2", "u8": "u1", "q16": "<u2", "lq16": "<u2"}
ALIGN = 8

# (column, code) of the main table, in the TraceFrame's own names (the front end sees all of them; lo/hi may travel
# as a half-width, see intervals())
SCORE_COLUMNS = [
    ("depth", "f32"),
    ("contraction", "f32"), ("contraction_lo", "f32"), ("contraction_hi", "f32"), ("contraction_r2", "f32"),
    ("transport", "f32"), ("transport_lo", "f32"), ("transport_hi", "f32"),
    ("entropy", "f32"), ("entropy_lo", "f32"), ("entropy_hi", "f32"),
]
SCORES = ("contraction", "transport", "entropy")
# sent only when the frame has them (older traces and lens_metrics=False leave them null: no bytes for nothing)
COMPANIONS = ("effective_rank", "kl_to_final", "top1_agreement")
DELTA_COLUMNS = ["d_contraction", "d_contraction_lo", "d_contraction_hi",
                 "d_transport", "d_transport_lo", "d_transport_hi"]


Q_NAN = 65535  # the NaN code of q16 and lq16


class Coded:
    """A column already encoded: (parameters, u16 codes) of a q16 / lq16 column (see `encode`)."""

    def __init__(self, params: list, codes: np.ndarray):
        self.params, self.codes = params, codes


def encode(code: str, values: Any) -> Coded:
    """Float values -> the u16 codes of a `q16` or `lq16` column and its parameters (module docstring). Raises
    ValueError for values the code cannot hold (infinite; negative for lq16)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if np.isinf(v).any():
        raise ValueError(f"{code} columns hold finite values or NaN")
    q = np.full(v.shape, Q_NAN, dtype=np.uint16)
    ok = np.isfinite(v)
    if code == "q16":
        lo, hi = (float(v[ok].min()), float(v[ok].max())) if ok.any() else (0.0, 0.0)
        step = (hi - lo) / (Q_NAN - 1) if hi > lo else 0.0
        if not np.isfinite(step):
            raise ValueError("q16 columns need a finite range (max − min)")
        q[ok] = np.clip(np.rint((v[ok] - lo) / step), 0, Q_NAN - 1) if step else 0
        return Coded([lo, step], q)
    if code == "lq16":
        if (v[ok] < 0).any():
            raise ValueError("lq16 columns hold non-negative values")
        pos = ok & (v > 0)
        q[ok & (v == 0)] = 0
        a = float(np.log(v[pos].min())) if pos.any() else 0.0
        b = (float(np.log(v[pos].max())) - a) / (Q_NAN - 2) if pos.any() else 0.0
        q[pos] = 1 + (np.clip(np.rint((np.log(v[pos]) - a) / b), 0, Q_NAN - 2) if b else 0)
        return Coded([a, b], q)
    raise ValueError(f"unknown quantized code {code!r}")


def decode(code: str, params: list, codes: np.ndarray) -> np.ndarray:
    """Inverse of `encode`, as float32 (js/src/lib/payload.js computes the same float64 expression and rounds it to
    float32 the same way)."""
    q = np.asarray(codes, dtype=np.uint16)
    x = q.astype(np.float64)
    if code == "q16":
        out = params[0] + x * params[1]
    elif code == "lq16":
        out = np.where(q == 0, 0.0, np.exp(params[0] + (x - 1) * params[1]))
    else:
        raise ValueError(f"unknown quantized code {code!r}")
    return np.where(q == Q_NAN, np.nan, out).astype(np.float32)


def quantized(code: str, values: Any) -> tuple[str, Any]:
    """(code, Coded) for `pack`, or ("f32", values) when the code cannot hold them."""
    try:
        return code, encode(code, values)
    except ValueError:
        return "f32", values


def pack(columns: dict[str, tuple[str, Any]], n: int | None = None) -> tuple[dict[str, Any], bytes]:
    """Columns {name: (code, array)} -> (header, bytes). Nulls must already be NaN (floats). `q16` / `lq16` columns
    take float values (encoded here) or a `Coded`; a `ratio` column takes {"num", "by", "den"} and costs no bytes."""
    parts, spec, offset = [], {}, 0
    for name, (code, values) in columns.items():
        if name == "rows":
            raise ValueError("'rows' is reserved for the row count (js/src/lib/payload.js)")
        if code == "ratio":
            if values["num"] not in columns or values["by"] not in columns:
                raise ValueError(f"ratio column {name} needs its columns {values['num']} and {values['by']}")
            length = len(np.asarray(columns[values["num"]][1]))
            spec[name] = [code, 0, length, values["num"], values["by"], [float(d) for d in values["den"]]]
            continue
        params: list = []
        if code in ("q16", "lq16"):
            coded = values if isinstance(values, Coded) else encode(code, values)
            params, values = coded.params, coded.codes
        arr = np.ascontiguousarray(np.asarray(values), dtype=CODES[code])
        if arr.ndim != 1:
            raise ValueError(f"column {name} must be 1-D")
        raw = arr.tobytes()
        spec[name] = [code, offset, int(arr.size), *params]
        pad = (-len(raw)) % ALIGN
        parts.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = {"n": int(n if n is not None else (next(iter(spec.values()))[2] if spec else 0)), "columns": spec}
    return header, b"".join(parts)


def unpack(header: dict[str, Any], blob: bytes) -> dict[str, np.ndarray]:
    """Inverse of `pack`, with quantized columns decoded and half-widths given back as lo and hi (what the browser
    does), for tests and for reading a widget's state back."""
    buf = memoryview(bytes(blob))
    out = {}
    ratios = {}
    for name, (code, offset, length, *params) in header["columns"].items():
        if code == "ratio":
            ratios[name] = params
            continue
        dt = np.dtype(CODES[code])
        out[name] = np.frombuffer(buf[offset:offset + length * dt.itemsize], dtype=dt).copy()
        if code in ("q16", "lq16"):
            out[name] = decode(code, params, out[name])
    for name, (num, by, den) in ratios.items():
        d = np.asarray(den, dtype=np.float64)[out[by].astype(np.int64)]
        n = out[num].astype(np.float64)
        out[name] = np.divide(n, d, out=np.zeros_like(n), where=d != 0)
    for name in [n for n in out if n.endswith("_hw") and n[:-3] in out]:
        value, hw = out[name[:-3]].astype(np.float64), out.pop(name).astype(np.float64)
        out[name[:-3] + "_lo"], out[name[:-3] + "_hi"] = value - hw, value + hw
    return out


def uint(values: Any) -> tuple[str, np.ndarray]:
    """(code, array) of non-negative integers in the narrowest unsigned type that holds them."""
    arr = np.asarray(values, dtype=np.int64)
    top = int(arr.max()) if arr.size else 0
    if arr.size and int(arr.min()) < 0:
        raise ValueError("uint columns hold non-negative integers")
    return ("u8" if top < 1 << 8 else "u16" if top < 1 << 16 else "u32"), arr


def intervals(cols: dict[str, tuple[str, Any]], name: str, value: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              code: str = "f32") -> None:
    """Add `name`'s interval to `cols`: as a half-width `<name>_hw` when it is symmetric about the value wherever
    either is defined (the jackknife's t interval is), else as `<name>_lo` and `<name>_hi`. A third of the bytes of
    an interval, and the same numbers to float32 precision; with code="lq16" the half-width takes 16 bits (module
    docstring), keeping whether the interval excludes 0 as the browser reads it (float32 value ∓ half-width)."""
    value, lo, hi = (np.asarray(a, dtype=np.float64) for a in (value, lo, hi))
    defined = np.isfinite(lo) | np.isfinite(hi)
    hw = (hi - lo) / 2
    symmetric = bool(np.all(np.isfinite(value[defined]) & np.isfinite(lo[defined]) & np.isfinite(hi[defined]))) and \
        np.allclose((lo + hi)[defined] / 2, value[defined], rtol=1e-9, atol=1e-12 * float(np.nanmax(np.abs(
            value[defined]), initial=1.0)))
    if not symmetric:
        cols[name + "_lo"] = ("f32", lo)
        cols[name + "_hi"] = ("f32", hi)
        return
    hw = np.where(defined, hw, np.nan)
    if code == "lq16":
        coded = _keep_verdict(hw, value, defined & ((lo > 0) | (hi < 0)))
        if coded is not None:
            cols[name + "_hw"] = ("lq16", coded)
            return
    cols[name + "_hw"] = ("f32", hw)


def _keep_verdict(hw: np.ndarray, value: np.ndarray, excludes: np.ndarray) -> Coded | None:
    """lq16 codes of the half-widths `hw` such that |float32 value| > decoded half-width exactly where the frame's
    interval excludes 0 (`excludes`): the nearest code, or the next one towards that verdict. None when the column
    cannot be coded so (negative or infinite half-widths)."""
    try:
        coded = encode("lq16", hw)
    except ValueError:
        return None
    v = np.abs(value.astype(np.float32).astype(np.float64))
    q = coded.codes.astype(np.int64)
    for _ in range(3):
        dec = decode("lq16", coded.params, q).astype(np.float64)
        finite = np.isfinite(dec) & np.isfinite(v)
        shrink = finite & excludes & ~(v > dec)
        grow = finite & ~excludes & (v > dec)
        if not (shrink.any() or grow.any()):
            return Coded(coded.params, q.astype(np.uint16))
        q = np.where(shrink, np.maximum(q - 1, 0), np.where(grow & (q < Q_NAN - 1), q + 1, q))
    return None


def _floats(df: pl.DataFrame, name: str) -> np.ndarray:
    return df.get_column(name).cast(pl.Float64).fill_null(float("nan")).to_numpy()


def fit_line(sigma: np.ndarray, params: SpinalParams) -> tuple[float, int, int] | None:
    """(intercept, k_lo, k_hi) of the weighted tail fit (`spinal_nb.scores.fit_tail`, which also gives the
    intercept), for drawing its line; None when the spectrum gives no α."""
    s = np.asarray(sigma, dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)):
        return None
    fit = fit_tail(s, tuple(params.tail_window), params.floor, params.min_points)
    if fit.alpha is None:
        return None
    return fit.intercept, int(fit.k_lo), int(fit.k_hi)


def log_spaced(r: int, m: int) -> np.ndarray:
    """At most m distinct 0-based indices into a length-r spectrum, evenly spaced in log rank, ends included."""
    if r <= m:
        return np.arange(r)
    idx = np.unique(np.round(np.geomspace(1, r, m)).astype(np.int64)) - 1
    return idx


def frame_payload(frame, spectrum_points: int = 48) -> tuple[dict[str, Any], list]:
    """Main table (+ tail-fit line per row) of a TraceFrame, and each row's log-spaced spectrum points."""
    df = frame.data
    names = frame.checkpoints
    if len(names) > 65535:
        raise FrameError("Too many checkpoints to display (more than 65535).")
    params = frame.params or SpinalParams()
    code = {n: i for i, n in enumerate(names)}
    checkpoint = np.asarray([code[c] for c in df.get_column("checkpoint").to_list()], dtype=np.int64)
    layer = df.get_column("layer").to_numpy()
    cols: dict[str, tuple[str, Any]] = {
        "checkpoint": uint(checkpoint),
        "layer": uint(layer),
        "depth": _depth(df, names, checkpoint, layer, frame),
        "contraction_r2": quantized("q16", _floats(df, "contraction_r2")),
    }
    for name in SCORES:
        cols[name] = ("f32", _floats(df, name))
        intervals(cols, name, _floats(df, name), _floats(df, name + "_lo"), _floats(df, name + "_hi"), "lq16")
    companions = [c for c in COMPANIONS if np.isfinite(_floats(df, c)).any()]
    for name in companions:
        cols[name] = ("f32", _floats(df, name))
        intervals(cols, name, _floats(df, name), _floats(df, name + "_lo"), _floats(df, name + "_hi"), "lq16")

    # per row: the log-spaced spectrum points and the tail-fit line (intercept, k_lo, k_hi), sent with the spectra
    spectra = df.get_column("spectrum").to_list()
    points: list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]] | None] = [None] * df.height
    for i, s in enumerate(spectra):
        if not s:
            continue
        s = np.asarray(s, dtype=np.float64)
        line = fit_line(s, params)
        positive = s[s > 0]
        idx = log_spaced(positive.size, spectrum_points)
        points[i] = (idx + 1, positive[idx], line or (np.nan, np.nan, np.nan))  # ranks are 1-based
    header, blob = pack(cols, df.height)

    steps = [frame.checkpoint(c).get_column("step")[0] for c in names]
    reasons = {str(i): r for i, r in enumerate(df.get_column("contraction_reason").to_list()) if r}
    n_layers = {c: frame.n_layers(c) for c in names}
    header.update({
        "checkpoints": names,
        "steps": [None if s is None else int(s) for s in steps],
        "n_layers": n_layers,
        "max_layer": max(n_layers.values()),
        "reasons": reasons,
        "confidence": float(params.confidence),
        "has_spectra": any(p is not None for p in points),
        "has_lens": frame.lens is not None and frame.lens.height > 0,
        "companions": companions,
        # N (scored positions), d and N/d per checkpoint, and the caution shown below N_PER_D_CAUTION
        "samples": {c: frame.sample_size(c) for c in names},
        "n_per_d_note": N_PER_D_NOTE,
    })
    return {"_header": header, "_data": blob}, points


def _depth(df: pl.DataFrame, names: list[str], checkpoint: np.ndarray, layer: np.ndarray, frame) -> tuple[str, Any]:
    """depth as a `ratio` column (layer / L of its checkpoint, no bytes) when it is exactly that, else float32."""
    depth = _floats(df, "depth")
    den = np.asarray([frame.n_layers(c) for c in names], dtype=np.float64)
    d = den[checkpoint] if len(checkpoint) else np.zeros(0)
    exact = np.divide(layer.astype(np.float64), d, out=np.zeros(len(d)), where=d != 0)
    if np.array_equal(depth, exact):
        return "ratio", {"num": "layer", "by": "checkpoint", "den": den.tolist()}
    return "f32", depth


def _span(layer: int | None, around: int) -> list[int] | None:
    return None if layer is None else [layer - around, layer + around]


def _in_span(values: np.ndarray, span: list[int] | None) -> np.ndarray:
    v = np.asarray(values)
    return np.ones(v.shape, dtype=bool) if span is None else (v >= span[0]) & (v <= span[1])


def spectra_payload(points: list, layers: np.ndarray, layer: int | None, around: int = 0) -> dict[str, Any]:
    """Downsampled spectra of the rows at layers `layer` ± `around` (all rows when `layer` is None: the static
    export). Per spectrum: its row of the main table, its point count, its tail-fit line (intercept, k_lo, k_hi; NaN
    without a fit) and which rank pattern it uses; per point: σ_k (`lq16`), one spectrum after the other. The ranks
    k are the same for every spectrum of the same length (log_spaced), so each distinct pattern travels once
    (`k`, starting at `k_start[pattern]`); `spectra_points` (and the front end) give every spectrum its own k again.
    The header's `span` [lo, hi] tells the front end which layers the buffer holds, so a scrub step inside it draws at
    once, before the kernel's reply (≈ 2 bytes × points × checkpoints per layer)."""
    if not any(p is not None for p in points):
        return {"_spectra_header": {}, "_spectra": b""}
    span = _span(layer, around)
    keep = _in_span(layers, span)
    rows = [i for i, p in enumerate(points) if p is not None and keep[i]]
    empty = np.zeros(0, dtype=np.int64)
    fits = np.asarray([points[i][2] for i in rows], dtype=np.float64).reshape(len(rows), 3)
    patterns: dict[bytes, int] = {}  # ranks (int64 bytes) -> pattern index, in order of first use
    first: list[np.ndarray] = []
    use = []
    for i in rows:
        key = points[i][0].tobytes()
        if key not in patterns:
            patterns[key] = len(first)
            first.append(points[i][0])
        use.append(patterns[key])
    starts = np.cumsum([0] + [len(p) for p in first])[:-1]
    header, blob = pack({"row": uint(rows), "count": uint([points[i][0].size for i in rows]),
                         "fit_intercept": ("f32", fits[:, 0]), "fit_k_lo": ("f32", fits[:, 1]),
                         "fit_k_hi": ("f32", fits[:, 2]),
                         "pattern": uint(use),
                         "k_start": uint(starts if rows else empty),
                         "k": uint(np.concatenate(first) if rows else empty),
                         "sigma": quantized("lq16", np.concatenate([points[i][1] for i in rows]) if rows else empty)},
                        len(rows))
    header.update({"layer": layer, "span": span})
    return {"_spectra_header": header, "_spectra": blob}


def spectra_points(header: dict[str, Any], blob: bytes) -> dict[str, Any]:
    """The spectra buffer decoded as the front end reads it: `unpack`'s columns, with `k` given per point again
    (each spectrum's own pattern, one spectrum after the other, aligned with `sigma`)."""
    sp = unpack(header, blob)
    if not header:
        return sp
    sp["k"] = np.concatenate([sp["k"][int(sp["k_start"][p]):int(sp["k_start"][p]) + int(c)]
                              for p, c in zip(sp["pattern"], sp["count"], strict=True)] or [np.zeros(0, np.uint16)])
    return sp


def lens_detail(frame) -> dict[str, Any] | None:
    """Top-k lens tokens as numeric columns (strings interned once each), ready to be cut by layer."""
    lens = frame.lens
    if lens is None or lens.height == 0:
        return None
    names = frame.checkpoints
    code = {n: i for i, n in enumerate(names)}
    lens = lens.filter(pl.col("checkpoint").is_in(names))
    strings: list[str] = []
    where: dict[str, int] = {}

    def intern(x: str | None) -> int:
        x = "" if x is None else x
        if x not in where:
            where[x] = len(strings)
            strings.append(x)
        return where[x]

    cols = {
        "checkpoint": uint([code[c] for c in lens.get_column("checkpoint").to_list()]),
        "prompt": uint(lens.get_column("prompt_index").to_numpy()),
        "position": uint(lens.get_column("position").to_numpy()),
        "layer": uint(lens.get_column("layer").to_numpy()),
        "rank": uint(lens.get_column("rank").to_numpy()),
        "lens_token": uint([intern(t) for t in lens.get_column("lens_token").to_list()]),
        "prob": ("f32", _floats(lens, "prob")),
    }
    prompts = []
    tok = (lens.select("prompt_index", "prompt", "checkpoint", "position", "token").unique(maintain_order=True)
           .sort("prompt_index", "position"))
    for (pi,), g in tok.group_by("prompt_index", maintain_order=True):
        # checkpoints with different tokenizers split a prompt differently: one token list per tokenization, with
        # the checkpoints that share it (the front end lines positions up by the text they end)
        split: dict[tuple, list[int]] = {}
        for (c,), gc in g.group_by("checkpoint", maintain_order=True):
            gc = gc.unique("position", keep="first", maintain_order=True)
            toks = tuple((int(p), t or "") for p, t in zip(gc.get_column("position").to_list(),
                                                         gc.get_column("token").to_list(), strict=True))
            split.setdefault(toks, []).append(code[c])
        groups = sorted((sorted(cs), [list(t) for t in toks]) for toks, cs in split.items())
        entry = {"index": int(pi), "text": g.get_column("prompt")[0] or "", "tokens": groups[0][1]}
        if len(groups) > 1:
            entry["tokenizations"] = [{"checkpoints": cs, "tokens": toks} for cs, toks in groups]
        prompts.append(entry)
    return {"columns": cols, "strings": strings, "prompts": prompts}


def lens_payload(detail: dict[str, Any] | None, layer: int | None, around: int = 0) -> dict[str, Any]:
    """The lens rows at layers `layer` ± `around` (all when `layer` is None), with the same `span` as
    spectra_payload. Token strings travel as JSON strings and are shown as text."""
    if detail is None:
        return {"_lens_header": {}, "_lens": b""}
    cols = detail["columns"]
    span = _span(layer, around)
    keep = _in_span(cols["layer"][1], span)
    header, blob = pack({name: (code, np.asarray(v)[keep]) for name, (code, v) in cols.items()}, int(keep.sum()))
    header.update({"strings": detail["strings"], "prompts": detail["prompts"], "layer": layer, "span": span})
    return {"_lens_header": header, "_lens": blob}


def compare_payload(frame, reference: str, terminal_depth: float, hw_code: str = "lq16") -> dict[str, Any]:
    """Every checkpoint against the reference, by the views' one rule (widgets/pairs.py): per-row Δ columns (+
    intervals, their half-widths as `hw_code`) for checkpoints of the reference's depth only, and one summary per
    candidate (with its verdict; on depth, labelled and with its Δ curve)."""
    df = frame.data
    n = df.height
    cols = {c: np.full(n, np.nan) for c in DELTA_COLUMNS}
    summaries: dict[str, Any] = {}
    row_of = {(c, layer): i for i, (c, layer) in enumerate(zip(df.get_column("checkpoint").to_list(),
                                                                 df.get_column("layer").to_list(), strict=True))}
    for cand in frame.checkpoints:
        if cand == reference:
            continue
        pair = compare_pair(frame, reference, cand, terminal_depth)
        summaries[cand] = summary_of(pair)
        if pair.seeds:  # the panel shows the seeds' mean; the table's row keeps this seed's own Δ
            pair = compare_pair(frame, reference, cand, terminal_depth, seeds=False)
        if pair.comparison is None or pair.aligned != "layer":
            continue  # never a per-index Δ between checkpoints of different depth
        layers = pair.comparison.layers
        for name in DELTA_COLUMNS:
            vals = _floats(layers, name)
            for layer, v in zip(layers.get_column("layer").to_list(), vals, strict=True):
                cols[name][row_of[(cand, layer)]] = v
    packed: dict[str, tuple[str, Any]] = {}
    for score in ("d_contraction", "d_transport"):
        packed[score] = ("f32", cols[score])
        intervals(packed, score, cols[score], cols[score + "_lo"], cols[score + "_hi"], hw_code)
    header, blob = pack(packed, n)
    return {"_deltas_header": header, "_deltas": blob, "_summaries": summaries}
