"""Comparing two checkpoints: per-layer deltas with intervals, the audit summary (docs/method.md, "Comparing
checkpoints") and its plain reading (`verdict`). `TraceFrame.compare` (and `spinal_nb.compare` for two frames) is the
API; everything about a comparison lives here: the terminal window, the one pairing rule, window means of a
difference, the interval text.

Intervals come from the delete-a-group jackknife replicates stored in the frame. When both checkpoints were traced on
the same prompts with the same grouping (same prompt hash and number of groups), the difference is *paired*: the
replicate of any statistic of the difference is that statistic of the replicate differences, so prompt-to-prompt
variation common to both checkpoints cancels. Otherwise the two checkpoints' standard errors add in quadrature.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from ..errors import FrameError, InputError
from ..scores.intervals import jackknife_se

SCORES = ("contraction", "transport")
TERMINAL_DEPTH = 0.7  # the paper's terminal window: layers with depth >= 0.7


def in_terminal_window(depth, terminal_depth: float = TERMINAL_DEPTH):
    """The rows of the terminal window: depth ≥ `terminal_depth` (numpy arrays and polars expressions alike)."""
    return depth >= terminal_depth - 1e-12


def paired(info_a: dict[str, Any], info_b: dict[str, Any], params_a: dict[str, Any] | None,
           params_b: dict[str, Any] | None) -> bool:
    """THE pairing rule: two checkpoints' jackknife replicates pair when they were traced on the same prompts (same
    prompt hash) with the same number of prompt groups (`info_*`: meta["checkpoints"][name]; `params_*`: their
    parameters as dicts)."""
    same_prompts = info_a.get("prompts_sha256") is not None and info_a.get("prompts_sha256") == info_b.get(
        "prompts_sha256")
    return bool(same_prompts and (params_a or {}).get("n_groups") == (params_b or {}).get("n_groups"))


def window_mean(values: np.ndarray, inside: np.ndarray) -> float | None:
    """Mean of the finite `values` inside the window (None when there are none): the statistic of a difference."""
    v = values[inside]
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def format_interval(v: dict[str, Any], digits: int = 4) -> str:
    """'+0.0123 [+0.0045, +0.0201]' for {"mean", "lo", "hi"}; '—' without a mean; the mean alone without an interval."""
    if v.get("mean") is None:
        return "—"
    s = f"{v['mean']:+.{digits}f}"
    if v.get("lo") is not None and v.get("hi") is not None:
        s += f" [{v['lo']:+.{digits}f}, {v['hi']:+.{digits}f}]"
    return s


@dataclass
class _Side:
    depth: np.ndarray  # [n] depths of the rows used
    value: dict[str, np.ndarray]  # score -> [n] (nan where null)
    reps: dict[str, np.ndarray]  # score -> [n, G] (nan where missing)


def _side(df: pl.DataFrame) -> _Side:
    value, reps = {}, {}
    for s in SCORES:
        value[s] = df.get_column(s).fill_null(float("nan")).to_numpy().astype(float)
        lists = df.get_column(f"{s}_jk").to_list()
        g = max((len(x) for x in lists if x), default=0)
        arr = np.full((len(lists), g), np.nan)
        for i, x in enumerate(lists):
            if x and len(x) == g:
                arr[i] = np.asarray(x, dtype=float)
        reps[s] = arr
    return _Side(df.get_column("depth").to_numpy().astype(float), value, reps)


def _interp_side(src: _Side, depths: np.ndarray) -> _Side:
    """Values of `src` at other depths, linear in depth (for checkpoints of different depth)."""
    def interp(y):
        ok = np.isfinite(y)
        if ok.sum() < 2:
            return np.full(depths.shape, np.nan)
        out = np.interp(depths, src.depth[ok], y[ok], left=np.nan, right=np.nan)
        # a target depth beyond the last finite source depth stays nan
        return np.where((depths < src.depth[ok].min() - 1e-12) | (depths > src.depth[ok].max() + 1e-12), np.nan, out)
    value = {s: interp(v) for s, v in src.value.items()}
    reps = {s: (np.stack([interp(r[:, j]) for j in range(r.shape[1])], 1) if r.shape[1] else
                np.zeros((len(depths), 0))) for s, r in src.reps.items()}
    return _Side(depths, value, reps)


def _t(confidence: float, g: int) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df=max(g - 1, 1)))


class _Stat:
    """A statistic f(values) of the difference, with its jackknife interval (paired or unpaired)."""

    def __init__(self, a: _Side, b: _Side, score: str, paired: bool, confidence: float):
        self.a, self.b, self.score, self.paired, self.conf = a, b, score, paired, confidence

    def __call__(self, f) -> tuple[float | None, float | None, float | None]:
        va, vb = self.a.value[self.score], self.b.value[self.score]
        est = f(vb - va)
        if est is None or not math.isfinite(est):
            return None, None, None
        ra, rb = self.a.reps[self.score], self.b.reps[self.score]
        if self.paired:
            if ra.shape[1] < 2:
                return est, None, None
            reps = [f(rb[:, j] - ra[:, j]) for j in range(ra.shape[1])]
            se = jackknife_se(reps)
            if se is None:
                return est, None, None
            t = _t(self.conf, len(reps))
        else:
            # unpaired: f must be linear for this to hold; se of f(B) and f(A) add in quadrature
            if ra.shape[1] < 2 or rb.shape[1] < 2:
                return est, None, None
            se_a = jackknife_se([f(ra[:, j]) for j in range(ra.shape[1])])
            se_b = jackknife_se([f(rb[:, j]) for j in range(rb.shape[1])])
            if se_a is None or se_b is None:
                return est, None, None
            se = math.hypot(se_a, se_b)
            t = _t(self.conf, min(ra.shape[1], rb.shape[1]))
        return est, est - t * se, est + t * se


@dataclass
class Comparison:
    """Candidate minus reference, per layer and summarized (terminal window, localization, onset)."""

    reference: str
    candidate: str
    layers: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.summary

        def ci(key):
            return format_interval(s[key])
        loc = s["localization"]
        onset = s["onset_layer"]
        return "\n".join([
            f"Comparison {self.candidate!r} − {self.reference!r} ({'paired' if s['paired'] else 'unpaired'} "
            f"intervals, {int(s['confidence'] * 100)}%, on {s['on']})",
            f"  terminal window: depth ≥ {s['terminal_depth']} → layers {s['window_layers'][0]}–{s['window_layers'][-1]}"
            if s["window_layers"] else "  terminal window: empty",
            f"  window mean Δα (contraction): {ci('window_contraction')}",
            f"  window mean Δ𝓛 (transport):   {ci('window_transport')}",
            f"  localization (share of Σ|Δ| in window): α {_fmt(loc['contraction'])}, 𝓛 {_fmt(loc['transport'])}",
            "  onset (first layer from which Δα excludes 0 through the last layer): "
            + ("none" if onset is None else f"layer {onset} (depth {s['onset_depth']:.2f})"),
            *(f"  warning: {w}" for w in s.get("warnings", [])),
        ])

    def _repr_html_(self) -> str:
        return f"<pre class='spinal-comparison'>{html.escape(repr(self))}</pre>"

    def to_json(self) -> str:
        """The summary and the per-layer table as JSON (what `spinal compare --json` prints)."""
        return json.dumps({"reference": self.reference, "candidate": self.candidate, "summary": self.summary,
                           "layers": self.layers.to_dicts()}, indent=1, default=_json_default)

    def verdict(self, reference_means: dict[str, float | None]) -> dict[str, Any]:
        """The plain reading of this comparison (`verdict`); `reference_means`: the reference's own window means
        (`TraceFrame.window_means`)."""
        return verdict(self.summary, reference_means)


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _share(d: np.ndarray, inside: np.ndarray) -> float | None:
    a = np.abs(d)
    ok = np.isfinite(a)
    tot = a[ok].sum()
    return None if tot <= 0 else float(a[ok & inside].sum() / tot)


def pick_pair(names: list[str], reference: str | None, candidate: str | None) -> tuple[str, str]:
    """(reference, candidate) among checkpoint `names`: the first one and the other one unless named."""
    if len(names) < 2:
        raise InputError(f"A comparison needs two checkpoints; this trace holds only {names}. Trace another "
                         "checkpoint into the same file with `spinal trace ... --append`, or pass a second file.")
    for n in (reference, candidate):
        if n is not None and n not in names:
            raise FrameError(f"No checkpoint {n!r} in the trace; it holds {names}.")
    ref = reference or names[0]
    if candidate is None:
        rest = [n for n in names if n != ref]
        if len(rest) > 1:
            raise InputError(f"The trace holds {len(names)} checkpoints {names}: say which two with --reference "
                             "and --candidate.")
        candidate = rest[0]
    for n in (ref, candidate):
        if n not in names:
            raise FrameError(f"No checkpoint {n!r} in the trace; it holds {names}.")
    if ref == candidate:
        raise InputError(f"--reference and --candidate are both {ref!r}; pick two different checkpoints.")
    return ref, candidate


def compute_comparison(frame, reference: str, candidate: str, terminal_depth: float = TERMINAL_DEPTH,
                       on: str = "layer", confidence: float | None = None) -> Comparison:
    """What `TraceFrame.compare` returns: candidate − reference of `frame` (see the module docstring)."""
    if on not in ("layer", "depth"):
        raise FrameError(f"on must be 'layer' or 'depth', got {on!r}.")
    if not 0.0 <= terminal_depth <= 1.0:
        raise FrameError(f"terminal_depth is a depth in [0, 1], got {terminal_depth}.")
    ra, rb = frame.checkpoint(reference), frame.checkpoint(candidate)
    la, lb = int(ra.get_column("layer").max()), int(rb.get_column("layer").max())
    a, b = _side(ra), _side(rb)
    if la != lb:
        if on != "depth":
            raise FrameError(f"{reference!r} has {la} layers and {candidate!r} has {lb}; compare them on depth with "
                             "on='depth' (the candidate is interpolated onto the reference's depths).")
        b = _interp_side(b, a.depth)
    info = frame.meta.get("checkpoints", {})
    ia, ib = info.get(reference, {}), info.get(candidate, {})
    pa, pb = ia.get("params", frame.meta.get("params")) or {}, ib.get("params", frame.meta.get("params")) or {}
    is_paired = bool(paired(ia, ib, pa, pb) and la == lb
                     and all(a.reps[s].shape[1] == b.reps[s].shape[1] for s in SCORES))
    conf = confidence or pa.get("confidence") or 0.95

    layers = ra.get_column("layer").to_numpy()
    inside = in_terminal_window(a.depth, terminal_depth)
    cols: dict[str, Any] = {"layer": layers, "depth": a.depth}
    for s in SCORES:
        stat = _Stat(a, b, s, is_paired, conf)
        rows = [stat(lambda d, i=i: float(d[i])) for i in range(len(layers))]
        cols[f"d_{s}"] = [r[0] for r in rows]
        cols[f"d_{s}_lo"] = [r[1] for r in rows]
        cols[f"d_{s}_hi"] = [r[2] for r in rows]
    df = pl.DataFrame(cols, schema_overrides={"layer": pl.Int64}, strict=False).with_columns(
        pl.col(c).fill_nan(None) for c in cols if c.startswith("d_"))

    summary: dict[str, Any] = {"terminal_depth": terminal_depth, "window_layers": layers[inside].tolist(), "paired": is_paired,
                               "confidence": conf, "on": on if la != lb else "layer"}
    for s in SCORES:
        stat = _Stat(a, b, s, is_paired, conf)
        if inside.any():
            m, lo, hi = stat(lambda d: window_mean(d, inside))
        else:
            m = lo = hi = None
        summary[f"window_{s}"] = {"mean": m, "lo": lo, "hi": hi}
    summary["localization"] = {s: _share(b.value[s] - a.value[s], inside) for s in SCORES}

    # onset: the longest run of deepest layers whose delta-alpha interval excludes 0
    lo_, hi_ = df.get_column("d_contraction_lo").to_list(), df.get_column("d_contraction_hi").to_list()
    onset = None
    for i in range(len(layers) - 1, -1, -1):
        if lo_[i] is None or hi_[i] is None or lo_[i] <= 0 <= hi_[i]:
            break
        onset = int(layers[i])
    summary["onset_layer"] = onset
    summary["onset_depth"] = None if onset is None else float(a.depth[list(layers).index(onset)])
    summary["warnings"] = _token_count_caveat(ra, rb, ia, ib, reference, candidate)
    return Comparison(reference, candidate, df, summary)


def _token_count_caveat(ra: pl.DataFrame, rb: pl.DataFrame, ia: dict, ib: dict, reference: str,
                        candidate: str) -> list[str]:
    """α depends on how many positions N were scored, not only on the model: the centered spectrum has rank
    min(N - 1, d) and its tail carries sampling noise that changes with N / d (BENCHMARKS.md, "Speed knobs": halving N
    at N < d moved α by 5 half-widths). A Δα between traces of very different N is partly that."""
    na, nb = int(ra.get_column("n_tokens")[0]), int(rb.get_column("n_tokens")[0])
    if min(na, nb) <= 0 or max(na, nb) <= 1.05 * min(na, nb):
        return []
    d = ia.get("d_model") or ib.get("d_model")
    rank = f" (with N ≤ d = {d} the spectrum's rank is N − 1 itself)" if d and min(na, nb) <= d else ""
    return [f"α depends on the number of scored positions N{rank}: {reference!r} has N = {na:,}, {candidate!r} "
            f"N = {nb:,}. Part of Δα may be that difference; trace both on the same prompts and position stride."]


def direction(v: dict[str, Any]) -> str:
    """How a window mean with its interval moved: rise / fall (the interval excludes 0), no clear change, ..."""
    if v.get("mean") is None:
        return "undetermined"
    if v.get("lo") is None or v.get("hi") is None:
        return "no interval"
    if v["lo"] > 0:
        return "rise"
    if v["hi"] < 0:
        return "fall"
    return "no clear change"


def verdict(summary: dict[str, Any], reference_means: dict[str, float | None]) -> dict[str, Any]:
    """THE plain reading of one comparison: does the paper's signature (terminal-window rise of α, fall of 𝓛)
    appear? Each direction counts only when its interval excludes 0. Strength = the window-mean change relative to
    the reference's own window mean of that score (`reference_means`, from `TraceFrame.window_means`)."""
    da, dl = summary["window_contraction"], summary["window_transport"]
    a_dir, l_dir = direction(da), direction(dl)
    rel = {}
    for key, v in (("contraction", da), ("transport", dl)):
        base = reference_means.get(key)
        rel[key] = None if (v.get("mean") is None or not base) else v["mean"] / abs(base)
    if a_dir == "rise" and l_dir == "fall":
        status, head = "present", "Signature present"
    elif a_dir == "rise" or l_dir == "fall":
        status, head = "partial", "Signature partly present"
    elif a_dir == "fall" and l_dir == "rise":
        status, head = "reversed", "Signature reversed"
    else:
        status, head = "absent", "Signature not found"

    def part(sym, v, d, r):
        pct = "" if r is None else f", {r * 100:+.1f}% of the base's window mean"
        return f"{sym} {d} {format_interval(v)}{pct}"
    text = (f"{head}: in the terminal window (depth ≥ {summary['terminal_depth']}) "
            f"{part('α', da, a_dir, rel['contraction'])}; {part('𝓛', dl, l_dir, rel['transport'])} "
            f"({int(summary['confidence'] * 100)}% intervals).")
    return {"status": status, "contraction": a_dir, "transport": l_dir, "relative_change": rel, "text": text}
