"""Comparing two checkpoints: per-layer deltas with pointwise and family-wise intervals, the audit summary
(docs/method.md, "Comparing checkpoints") and its verdict. `TraceFrame.compare` (and `spinal_nb.compare` for two
frames) is the API; this module reads a frame's rows and provenance, and the statistics come from
spinal_nb.scores.inference (window means, the simultaneous band, onset, localization) and spinal_nb.scores.verdict
(the N policy and the one verdict vocabulary), both calibrated in benchmarks/stat_calibration.py.

Intervals come from the delete-a-group jackknife replicates stored in the frame. When both checkpoints were traced on
the same prompts with the same grouping (same prompt hash and number of groups), the difference is *paired*: the
replicate of any statistic of the difference is that statistic of the replicate differences, so prompt-to-prompt
variation common to both checkpoints cancels. Otherwise the two checkpoints' jackknife variances add.

Contraction deltas are read only between traces of the same design (same width d, same number of scored positions N
at every layer, same number of prompts): α̂'s bias depends on N/d, so a different N alone would read as a Δα. Such a
comparison is "not comparable": its Δα keeps its estimates but no interval, onset or localization claim.
"""
from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..errors import FrameError, InputError
from ..scores import inference as inf
from ..scores import verdict as vd

SCORES = ("contraction", "transport")
# read next to Δα and Δ𝓛 (paired Δ, intervals, window mean) but never part of the verdict (docs/method.md)
COMPANIONS = ("effective_rank", "kl_to_final", "top1_agreement")
TERMINAL_DEPTH = 0.7  # the paper's terminal window: layers with depth >= 0.7
ONSET_PROCEDURE = "sequence"  # fixed-sequence test from the deepest layer: power 50 % vs 10 % for the band at +2 %
SYMBOL = {"contraction": "α", "transport": "𝓛"}
BAND_SIMULATIONS = 4000  # Monte Carlo draws of the band's critical value, as calibrated (benchmarks/stat_calibration.py)


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
    for s in SCORES + COMPANIONS:
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


def _none(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _ci(iv: inf.Interval) -> dict[str, float | None]:
    return {"mean": iv.estimate, "lo": iv.lo, "hi": iv.hi}


def _interval(v: dict[str, Any]) -> inf.Interval:
    return inf.Interval(v.get("mean"), v.get("lo"), v.get("hi"))


@dataclass
class Comparison:
    """Candidate minus reference, per layer and summarized (terminal window, localization, onset, verdict)."""

    reference: str
    candidate: str
    layers: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.summary
        on = s["onset"]["contraction"]
        lines = [
            f"Comparison {self.candidate!r} − {self.reference!r} ({'paired' if s['paired'] else 'unpaired'} "
            f"intervals, {int(s['confidence'] * 100)}%, on {s['on']})",
            f"  design: {_design_text(s['design'])}",
            f"  terminal window: depth ≥ {s['terminal_depth']} → layers {s['window_layers'][0]}–{s['window_layers'][-1]}"
            if s["window_layers"] else "  terminal window: empty",
            f"  window mean Δα (contraction): {format_interval(s['window_contraction'])}"
            + ("" if s["comparable"] else " (no interval: the designs differ)"),
            f"  window mean Δ𝓛 (transport):   {format_interval(s['window_transport'])}",
            "  localization (share of Σ|Δ| in the window, against the share if spread evenly): "
            + ", ".join(f"{SYMBOL[k]} {_loc_text(s['localization_interval'][k])}" for k in SCORES),
            "  onset (deepest one-sign run of layers whose Δα excludes 0, tested from the last layer down): "
            + ("none" if on["layer"] is None else
               f"layer {on['layer']} (depth {on['depth']:.2f}), Δα {'>' if on['sign'] > 0 else '<'} 0"),
            *([_seeds_text(s["seeds"])] if s.get("seeds") else []),
            "  companions, window mean Δ (not part of the verdict): " + ", ".join(
                f"{k} {format_interval(v['window'])}" for k, v in s.get("companions", {}).items()),
            f"  verdict: {s['verdict']['status']} — {s['verdict']['reason']}",
            *(f"  warning: {w}" for w in s.get("warnings", [])),
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre class='spinal-comparison'>{html.escape(repr(self))}</pre>"

    def to_json(self) -> str:
        """The summary and the per-layer table as JSON (what `spinal compare --json` prints)."""
        return json.dumps({"reference": self.reference, "candidate": self.candidate, "summary": self.summary,
                           "layers": self.layers.to_dicts()}, indent=1, default=_json_default)

    def verdict(self, reference_means: dict[str, float | None] | None = None) -> dict[str, Any]:
        """The verdict of this comparison (`verdict`): "status" (one of spinal_nb.scores.verdict.VERDICTS), "text",
        "reason", the relative changes. `reference_means`: the reference's own window means (default: those of
        this comparison, `TraceFrame.window_means`)."""
        return verdict(self.summary, self.summary["reference_window_means"] if reference_means is None
                       else reference_means)


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _design_text(design: dict[str, Any]) -> str:
    a, b = design["reference"], design["candidate"]

    def two(key, f):
        va, vb = a.get(key), b.get(key)
        return "?" if va is None and vb is None else f(va) if va == vb else f"{f(va)} / {f(vb)}"
    num = lambda v: "?" if v is None else f"{v:,}"  # noqa: E731
    ratio = lambda v: "?" if v is None else f"{v:.2f}"  # noqa: E731
    return (f"N = {two('n', num)} scored positions, N/d = {two('n_per_d', ratio)}, d = {two('d', num)}, "
            f"{two('prompts', num)} prompts — " + ("comparable" if design["comparable"] else "NOT comparable: "
                                                    + design["reason"]))


def _seeds_text(seeds: dict[str, Any]) -> str:
    def one(k):
        v = seeds[k]
        return "—" if v is None else f"{v['mean']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}] (sd {v['sd']:.4f})"
    return (f"  seed spread of the window means ({seeds['n']} training seeds, t-interval over seeds): "
            f"Δα {one('contraction')}, Δ𝓛 {one('transport')}")


def _loc_text(v: dict[str, Any]) -> str:
    if v["share"] is None:
        return "—"
    s = f"{v['share']:.2f}"
    if v["lo"] is not None:
        s += f" [{v['lo']:.2f}, {v['hi']:.2f}]"
    return s + f" vs {v['baseline']:.2f}" + (" (localized)" if v["localized"] else " (not localized)")


def _split(x: str | None) -> str | list[str] | None:
    if x is None or "," not in x:
        return x
    return [n.strip() for n in x.split(",") if n.strip()]


def pick_pair(names: list[str], reference: str | None, candidate: str | None
              ) -> tuple[str | list[str], str | list[str]]:
    """(reference, candidate) among checkpoint `names`: the first one and the other one unless named. A
    comma-separated name ("dpo-s0,dpo-s1,dpo-s2") is a list of training-seed replicates of one checkpoint."""
    if len(names) < 2:
        raise InputError(f"A comparison needs two checkpoints; this trace holds only {names}. Trace another "
                         "checkpoint into the same file with `spinal trace ... --append`, or pass a second file.")
    ref, candidate = _split(reference) or names[0], _split(candidate)
    ref_names = [ref] if isinstance(ref, str) else ref
    # a name that is not there is the first thing to say (before "say which two")
    for n in ([] if reference is None else ref_names) + ([] if candidate is None else
                                                         [candidate] if isinstance(candidate, str) else candidate):
        if n not in names:
            raise FrameError(f"No checkpoint {n!r} in the trace; it holds {names}.")
    if candidate is None:
        rest = [n for n in names if n not in ref_names]
        if len(rest) > 1:
            raise InputError(f"The trace holds {len(names)} checkpoints {names}: say which two with --reference "
                             "and --candidate.")
        candidate = rest[0]
    cand_names = [candidate] if isinstance(candidate, str) else candidate
    for n in ref_names + cand_names:
        if n not in names:
            raise FrameError(f"No checkpoint {n!r} in the trace; it holds {names}.")
    if set(ref_names) & set(cand_names):
        raise InputError(f"--reference and --candidate both name {sorted(set(ref_names) & set(cand_names))}; pick "
                         "different checkpoints.")
    return ref, candidate


def _design(df: pl.DataFrame, info: dict[str, Any]) -> dict[str, Any]:
    """N (scored positions per layer, the most at any layer), d and the prompt count of one checkpoint's trace. d
    comes from the provenance; without it, the longest stored spectrum (its rank min(N − 1, d)) stands in."""
    n = df.get_column("n_tokens").to_numpy().astype(np.int64)
    d = info.get("d_model")
    if d is None:
        d = max((len(x) for x in df.get_column("spectrum").to_list() if x), default=0) or None
    nmax = int(n.max())
    return {"n": nmax, "n_per_layer": n, "d": d, "prompts": info.get("n_prompts"),
            "n_per_d": None if not d else nmax / d}


def _n_policy(da: dict[str, Any], db: dict[str, Any], same_depth: bool) -> vd.NCheck:
    """scores.verdict.comparable_n on two designs: N layer by layer (one N per trace across depths), d, prompts."""
    d_a = da["d"] or db["d"] or 1
    d_b = db["d"] or d_a
    na, nb = ((da["n_per_layer"], db["n_per_layer"]) if same_depth else ([da["n"]], [db["n"]]))
    return vd.comparable_n(na, nb, int(d_a), int(d_b), prompts_a=da["prompts"], prompts_b=db["prompts"])


def _delta_core(a: _Side, b: _Side, name: str, paired_: bool, conf: float, inside: np.ndarray,
                terminal_depth: float):
    """(Δ per layer, its replicate sets, simultaneous band, pointwise lo and hi, window mean) of one score or
    companion metric: what Δα, Δ𝓛 and the companions share."""
    est = b.value[name] - a.value[name]
    sets = inf.difference_replicates(a.value[name], a.reps[name], b.value[name], b.reps[name], paired_)
    band = inf.simultaneous_band(est, sets, conf, n_sim=BAND_SIMULATIONS)
    with np.errstate(invalid="ignore"):
        lo, hi = est - band.pointwise_crit * band.se, est + band.pointwise_crit * band.se
    window = (inf.window_mean(est, sets, a.depth, terminal_depth, conf) if inside.any()
              else inf.Interval(None, None, None))
    return est, sets, band, lo, hi, window


def _score_summary(a: _Side, b: _Side, score: str, paired_: bool, conf: float, inside: np.ndarray,
                   layers: np.ndarray, terminal_depth: float, readable: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-layer columns and summary entries of one score's delta. `readable` False (contraction between traces of
    different designs): estimates only, no interval, band, onset or localization."""
    est, sets, band, lo, hi, window = _delta_core(a, b, score, paired_, conf, inside, terminal_depth)
    if window.estimate is None:  # no replicates to read: the plain mean of the finite deltas, without interval
        v = est[inside & np.isfinite(est)]
        window = inf.Interval(float(v.mean()) if v.size else None, None, None)
    loc = inf.localization(est, sets, a.depth, terminal_depth, conf)
    ons = inf.onset(est, sets, conf, layers=layers, band=band, procedure=ONSET_PROCEDURE)
    if not readable:
        nan = np.full(est.shape, np.nan)
        lo = hi = band_lo = band_hi = nan
        window = inf.Interval(window.estimate, None, None)
        loc = inf.Localization(None, None, None, loc.baseline, False, loc.n_window, loc.n_layers)
        ons = inf.Onset(None, 0, (), band, ONSET_PROCEDURE)
    else:
        band_lo, band_hi = band.lo, band.hi
    cols = {f"d_{score}": est, f"d_{score}_lo": lo, f"d_{score}_hi": hi,
            f"d_{score}_band_lo": band_lo, f"d_{score}_band_hi": band_hi}
    depth_of = dict(zip(layers.tolist(), a.depth.tolist(), strict=True))
    summ = {
        "window": _ci(window),
        "localization": {"share": loc.share, "lo": loc.lo, "hi": loc.hi, "baseline": loc.baseline,
                         "localized": loc.localized},
        "onset": {"layer": ons.layer, "depth": None if ons.layer is None else depth_of[ons.layer],
                  "sign": ons.sign, "last": ons.run[-1] if ons.run else None},
        "band_critical_value": band.crit if readable else None,
    }
    return cols, summ


def _companion_delta(a: _Side, b: _Side, name: str, paired_: bool, conf: float, inside: np.ndarray,
                     terminal_depth: float) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A companion metric's Δ per layer with its pointwise interval and band, and its window mean: the machinery
    of Δα / Δ𝓛 without onset, localization or verdict. All null when either side lacks the metric."""
    est = b.value[name] - a.value[name]
    nan = np.full(est.shape, np.nan)
    if not np.isfinite(est).any():
        return ({f"d_{name}{k}": nan for k in ("", "_lo", "_hi", "_band_lo", "_band_hi")},
                {"window": {"mean": None, "lo": None, "hi": None}})
    est, _, band, lo, hi, window = _delta_core(a, b, name, paired_, conf, inside, terminal_depth)
    cols = {f"d_{name}": est, f"d_{name}_lo": lo, f"d_{name}_hi": hi,
            f"d_{name}_band_lo": band.lo, f"d_{name}_band_hi": band.hi}
    return cols, {"window": _ci(window)}


def _label(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"mean of {', '.join(names)}"


def _replicates(frame, names: list[str]) -> tuple[pl.DataFrame, list[_Side], dict[str, Any]]:
    """Rows of the first checkpoint, one side per checkpoint and the first one's provenance; several names are
    training-seed replicates of one checkpoint and must share prompts, parameters, depth and N."""
    if len(set(names)) != len(names):
        raise InputError(f"Replicate checkpoints {names} name one checkpoint twice.")
    rows = [frame.checkpoint(n) for n in names]
    info = frame.meta.get("checkpoints", {})
    if len(names) > 1:
        first = info.get(names[0], {})
        for n, r in zip(names[1:], rows[1:], strict=True):
            other = info.get(n, {})
            if first.get("prompts_sha256") is None or other.get("prompts_sha256") != first.get("prompts_sha256"):
                raise InputError(f"Replicate checkpoints {names[0]!r} and {n!r} were traced on different prompts; "
                                 "trace every training seed on the same prompts.")
            if other.get("params") != first.get("params"):
                raise InputError(f"Replicate checkpoints {names[0]!r} and {n!r} were traced with different SPINAL "
                                 "parameters; trace every training seed with the same parameters.")
            if r.height != rows[0].height or not r.get_column("n_tokens").equals(rows[0].get_column("n_tokens")):
                raise InputError(f"Replicate checkpoints {names[0]!r} and {n!r} differ in depth or in scored "
                                 "positions; replicates are training seeds of one model traced on the same prompts.")
    return rows[0], [_side(r) for r in rows], info.get(names[0], {})


def _mean_side(sides: list[_Side]) -> _Side:
    """The replicate checkpoints' mean score per layer; its jackknife replicates are the mean replicates (same
    prompts and groups: the jackknife of a mean over seeds)."""
    if len(sides) == 1:
        return sides[0]
    return _Side(sides[0].depth, {s: np.mean([x.value[s] for x in sides], axis=0) for s in sides[0].value},
                 {s: np.mean([x.reps[s] for x in sides], axis=0) for s in sides[0].reps})


def _names(x: str | Sequence[str], role: str) -> list[str]:
    if isinstance(x, str):
        return [x]
    names = [str(n) for n in x]
    if len(names) < 2:
        raise InputError(f"A seed spread needs at least 2 replicate checkpoints as {role}, got {names}; pass one "
                         "name for a comparison without seeds.")
    return names


def _seed_spreads(a_sides: list[_Side], b_sides: list[_Side], inside: np.ndarray, conf: float,
                  check: vd.NCheck) -> dict[str, Any]:
    """Per training seed, the window-mean Δ; their t-interval over seeds (`seed_spread`). Seeds on both sides pair
    by position; seeds on one side are each compared with the other side's single checkpoint."""
    n = max(len(a_sides), len(b_sides))
    if len(a_sides) > 1 and len(b_sides) > 1 and len(a_sides) != len(b_sides):
        raise InputError(f"{len(a_sides)} reference and {len(b_sides)} candidate replicates: with seeds on both "
                         "sides, pass as many of each (paired by position).")
    out: dict[str, Any] = {"n": n}
    for s in SCORES:
        per = []
        for i in range(n):
            a, b = a_sides[min(i, len(a_sides) - 1)], b_sides[min(i, len(b_sides) - 1)]
            d = (b.value[s] - a.value[s])[inside]
            d = d[np.isfinite(d)]
            per.append(float(d.mean()) if d.size else float("nan"))
        ok = (check.ok or s != "contraction") and np.all(np.isfinite(per))
        sp = vd.seed_spread(per, conf) if ok else None
        out[s] = None if sp is None else {"mean": sp.mean, "sd": sp.sd, "lo": sp.lo, "hi": sp.hi, "n": sp.n}
        out[f"per_seed_{s}"] = per
    return out


def compute_comparison(frame, reference: str | Sequence[str], candidate: str | Sequence[str],
                       terminal_depth: float = TERMINAL_DEPTH, on: str = "layer",
                       confidence: float | None = None) -> Comparison:
    """What `TraceFrame.compare` returns: candidate − reference of `frame` (see the module docstring).

    Per layer: Δ with its pointwise interval (`d_*_lo/hi`) and the simultaneous band (`d_*_band_lo/hi`, valid for
    all layers at once). Summary: window means with intervals, localization with its interval and no-localization
    baseline, onset (fixed-sequence, one sign), the design check (`comparable`, `comparable_reason`) and the
    verdict. A list of names on either side is training-seed replicates of that checkpoint (same prompts and
    parameters): the comparison is of their mean, and `seeds` holds the seed-to-seed spread of the window means
    (`spinal_nb.scores.verdict.seed_spread`), which the verdict requires to exclude 0 as well."""
    if on not in ("layer", "depth"):
        raise FrameError(f"on must be 'layer' or 'depth', got {on!r}.")
    if not 0.0 <= terminal_depth <= 1.0:
        raise FrameError(f"terminal_depth is a depth in [0, 1], got {terminal_depth}.")
    refs, cands = _names(reference, "reference"), _names(candidate, "candidate")
    if set(refs) & set(cands):
        raise InputError(f"The reference and the candidate share checkpoints {sorted(set(refs) & set(cands))}.")
    ra, a_sides, ia = _replicates(frame, refs)
    rb, b_sides, ib = _replicates(frame, cands)
    reference, candidate = _label(refs), _label(cands)
    la, lb = int(ra.get_column("layer").max()), int(rb.get_column("layer").max())
    if la != lb:
        if on != "depth":
            raise FrameError(f"{reference!r} has {la} layers and {candidate!r} has {lb}; compare them on depth with "
                             "on='depth' (the candidate is interpolated onto the reference's depths).")
        b_sides = [_interp_side(b, a_sides[0].depth) for b in b_sides]
    a, b = _mean_side(a_sides), _mean_side(b_sides)
    pa = ia.get("params", frame.meta.get("params")) or {}
    pb = ib.get("params", frame.meta.get("params")) or {}
    is_paired = bool(paired(ia, ib, pa, pb) and la == lb
                     and all(a.reps[s].shape[1] == b.reps[s].shape[1] for s in SCORES))
    conf = confidence or pa.get("confidence") or 0.95
    da, db = _design(ra, ia), _design(rb, ib)
    check = _n_policy(da, db, la == lb)
    layers = ra.get_column("layer").to_numpy()
    inside = in_terminal_window(a.depth, terminal_depth)
    cols: dict[str, Any] = {"layer": layers, "depth": a.depth}
    per: dict[str, dict[str, Any]] = {}
    for s in SCORES:
        c, per[s] = _score_summary(a, b, s, is_paired, conf, inside, layers, terminal_depth,
                                   readable=check.ok or s != "contraction")
        cols.update(c)
    companions = {}
    for s in COMPANIONS:
        c, companions[s] = _companion_delta(a, b, s, is_paired, conf, inside, terminal_depth)
        cols.update(c)
    df = pl.DataFrame(cols, schema_overrides={"layer": pl.Int64}, strict=False).with_columns(
        pl.col(c).fill_nan(None) for c in cols if c.startswith("d_"))

    ref_means = {}
    for s in SCORES:
        v = a.value[s][inside & np.isfinite(a.value[s])]
        ref_means[s] = float(v.mean()) if v.size else None
    design = {"reference": {k: v for k, v in da.items() if k != "n_per_layer"},
              "candidate": {k: v for k, v in db.items() if k != "n_per_layer"},
              "comparable": check.ok, "reason": check.reason}
    on_a = per["contraction"]["onset"]
    summary: dict[str, Any] = {
        "terminal_depth": terminal_depth, "window_layers": layers[inside].tolist(), "paired": is_paired,
        "confidence": conf, "on": on if la != lb else "layer",
        "comparable": check.ok, "comparable_reason": check.reason, "design": design,
        **{f"window_{s}": per[s]["window"] for s in SCORES},
        "localization": {s: per[s]["localization"]["share"] for s in SCORES},
        "localization_interval": {s: per[s]["localization"] for s in SCORES},
        "onset_layer": on_a["layer"], "onset_depth": on_a["depth"], "onset_sign": on_a["sign"],
        "onset": {s: per[s]["onset"] for s in SCORES}, "onset_procedure": ONSET_PROCEDURE,
        "band_critical_value": {s: per[s]["band_critical_value"] for s in SCORES},
        "reference_window_means": ref_means,
        "companions": companions,
        "warnings": ([f"{candidate!r} has {lb} layers, {reference!r} {la}: the candidate is interpolated linearly "
                      "in depth onto the reference's layers (unpaired)."] if la != lb else []),
    }
    if len(refs) > 1 or len(cands) > 1:
        summary["seeds"] = {"reference": refs, "candidate": cands,
                            **_seed_spreads(a_sides, b_sides, inside, conf, check)}
    v = verdict(summary, ref_means)
    summary["verdict"] = {"status": v["status"], "key": v["key"], "reason": v["reason"]}
    return Comparison(reference, candidate, df, summary)


def verdict(summary: dict[str, Any], reference_means: dict[str, float | None]) -> dict[str, Any]:
    """THE verdict of one comparison summary, in the one vocabulary of spinal_nb.scores.verdict (VERDICTS):
    "the paper's signature" (window Δα > 0 and Δ𝓛 < 0, both intervals excluding 0), "reversed", "no detectable
    change", "mixed / inconclusive", "not comparable" (designs differ: `summary["comparable"]` False). Strength = the
    window-mean change relative to the reference's own window mean of that score (`reference_means`).

    Returns "status" (the label), "text" (one sentence with the numbers), "reason", per score the sign read from
    its interval ("contraction", "transport": +1, -1, or 0 when the interval touches 0 or is missing) and
    "relative_change"."""
    wa, wt = _interval(summary["window_contraction"]), _interval(summary["window_transport"])
    check = vd.NCheck(bool(summary.get("comparable", True)), summary.get("comparable_reason", ""))
    seeds = summary.get("seeds") or {}
    spread = {k: None if not seeds.get(k) else vd.SeedSpread(**{f: seeds[k][f] for f in ("mean", "sd", "lo", "hi", "n")})
              for k in SCORES}
    v = vd.verdict(wa, wt, comparable=check, seeds_contraction=spread["contraction"],
                   seeds_transport=spread["transport"])
    rel = {}
    for key, iv in (("contraction", wa), ("transport", wt)):
        base = reference_means.get(key)
        rel[key] = None if (iv.estimate is None or not base) else iv.estimate / abs(base)
    head = v.label[0].upper() + v.label[1:]
    conf = int(round(summary.get("confidence", 0.95) * 100))
    where = f"terminal window depth ≥ {summary['terminal_depth']}, {conf}% intervals"
    if v.label == vd.NOT_COMPARABLE:
        text = (f"{head}: {v.reason} Δα is not read; window Δ𝓛 {format_interval(summary['window_transport'])} "
                f"({where}).")
    else:
        pct = [f"{SYMBOL[k]} {rel[k] * 100:+.1f}%" for k in SCORES if rel[k] is not None]
        text = f"{head}: {v.reason}" + (f" Relative to the reference's window means: {', '.join(pct)}" if pct
                                        else "") + f" ({where})."
    return {"status": v.label, "key": vd.VERDICT_KEYS[v.label], "text": text, "reason": v.reason,
            "contraction": wa.sign if check.ok else 0,
            "transport": wt.sign, "relative_change": rel}
