"""Turn the streamed accumulators of one checkpoint into per-layer score rows (the TraceFrame columns)."""
from __future__ import annotations

import warnings
from typing import Any

from ..params import SpinalParams
from .companions import effective_rank
from .contraction import GramAccumulator
from .eigen import solver_for
from .intervals import jackknife_interval
from .tail import fit_tail, tail_gap
from .transport import TransportAccumulator

COMPANIONS = ("effective_rank", "kl_to_final", "top1_agreement")
# a drop this large (decades) between neighbouring fit points is no power-law tail: see tail.tail_gap
GAP_DECADES = 3.0


def finalize(gram: GramAccumulator, transport: TransportAccumulator, params: SpinalParams,
             keep_spectra: bool = True, workers: int | None = None) -> dict[str, list[Any]]:
    """Per-layer scores with jackknife replicates and intervals, as columns (layer 0..L; L = n_layers - 1).

    Contraction, transport, entropy and the companions (effective rank from the same spectra; KL to the final layer
    and top-1 agreement, null when the trace did not accumulate them) are recomputed with each non-empty prompt group
    left out. The eigen-solves
    run where the accumulators are (spinal_nb.scores.eigen): batched on their GPU, or on `workers` CPU threads
    (None: every core; 1: serial).
    """
    with solver_for(gram.device, workers) as solver:
        return _finalize(gram, transport, params, keep_spectra, solver)


def _finalize(gram: GramAccumulator, transport: TransportAccumulator, params: SpinalParams, keep_spectra: bool,
              solver: Any) -> dict[str, list[Any]]:
    if gram.n_layers != transport.n_layers:
        raise ValueError("gram and transport accumulators disagree on the number of layers")
    n_layers = gram.n_layers
    L = n_layers - 1
    cols: dict[str, list[Any]] = {k: [] for k in (
        "layer", "depth", "contraction", "contraction_lo", "contraction_hi", "contraction_r2", "contraction_points",
        "contraction_reason", "transport", "transport_lo", "transport_hi", "entropy", "entropy_lo", "entropy_hi",
        "n_tokens", "contraction_jk", "transport_jk", "entropy_jk", "spectrum",
        *(f"{m}{s}" for m in COMPANIONS for s in ("", "_lo", "_hi", "_jk")))}
    fit_kw = dict(tail_window=params.tail_window, floor=params.floor, min_points=params.min_points)
    gaps: list[tuple[int, float, int]] = []
    for layer in range(n_layers):
        groups = gram.nonempty_groups(layer)
        # one call: the layer's rows are joined and its total Gram formed once for all 1 + G spectra
        sigma, left_out = gram.spectra(layer, groups if len(groups) >= 2 else [], center=params.center, solver=solver)
        fit = fit_tail(sigma, **fit_kw)
        decades, k = tail_gap(sigma, fit, params.floor)
        if decades >= GAP_DECADES:
            gaps.append((layer, decades, k))
        jk_a: list[float | None] = []
        if fit.alpha is not None and len(groups) >= 2:
            jk_a = [fit_tail(sg, **fit_kw).alpha for sg in left_out]
        lo, hi = jackknife_interval(fit.alpha, jk_a, params.confidence)
        cols["contraction"].append(fit.alpha)
        cols["contraction_lo"].append(lo)
        cols["contraction_hi"].append(hi)
        cols["contraction_r2"].append(fit.r2)
        cols["contraction_points"].append(fit.n_points)
        cols["contraction_reason"].append(fit.reason)
        cols["contraction_jk"].append([float("nan") if a is None else a for a in jk_a])

        t = transport.transport(layer) if layer < L else None
        jk_t = [transport.transport(layer, g) for g in groups] if t is not None and len(groups) >= 2 else []
        tlo, thi = jackknife_interval(t, jk_t, params.confidence)
        cols["transport"] += [t]
        cols["transport_lo"] += [tlo]
        cols["transport_hi"] += [thi]
        cols["transport_jk"].append([float("nan") if v is None else v for v in jk_t])

        e = transport.entropy(layer)
        jk_e = [transport.entropy(layer, g) for g in groups] if e is not None and len(groups) >= 2 else []
        elo, ehi = jackknife_interval(e, jk_e, params.confidence)
        cols["entropy"] += [e]
        cols["entropy_lo"] += [elo]
        cols["entropy_hi"] += [ehi]
        cols["entropy_jk"].append([float("nan") if v is None else v for v in jk_e])

        er = effective_rank(sigma)
        jk_er = [effective_rank(sg) for sg in left_out] if er is not None and len(groups) >= 2 else []
        _add(cols, "effective_rank", er, jk_er, params.confidence, (1.0, float(gram.d)))
        for name, mean, bounds in (("kl_to_final", transport.kl_to_final, (0.0, float("inf"))),
                                   ("top1_agreement", transport.top1_agreement, (0.0, 1.0))):
            v = mean(layer)
            _add(cols, name, v, [mean(layer, g) for g in groups] if v is not None and len(groups) >= 2 else [],
                 params.confidence, bounds)

        cols["layer"].append(layer)
        cols["depth"].append(layer / L if L > 0 else 0.0)
        cols["n_tokens"].append(gram.n_rows(layer))
        cols["spectrum"].append([float(x) for x in sigma] if keep_spectra else [])
    if gaps:
        worst = max(gaps, key=lambda g: g[1])
        warnings.warn(
            f"At {len(gaps)} layer(s) ({', '.join(str(g[0]) for g in gaps[:8])}{', ...' if len(gaps) > 8 else ''}) "
            f"the contraction fit's tail window crosses a drop of {worst[1]:.1f} decades between two neighbouring "
            f"ranks (layer {worst[0]}, after rank {worst[2]}): "
            "the states repeat up to rounding (prompts sharing a long prefix?) and α there is read partly from "
            "rounding-level values. Trace more distinct tokens: more or more varied prompts, or only the positions "
            "after the shared prefix.", UserWarning, stacklevel=3)
    return cols


def _add(cols: dict[str, list[Any]], name: str, value: float | None, jk: list[float | None], confidence: float,
         bounds: tuple[float, float]) -> None:
    """A companion's value, interval and replicates; the interval is cut to the metric's range (a share below 0 or a
    KL below 0 is no possible value; the replicates, which compare reads, are kept as they are)."""
    lo, hi = jackknife_interval(value, jk, confidence)
    lo = None if lo is None else max(lo, bounds[0])
    hi = None if hi is None else min(hi, bounds[1])
    cols[name].append(value)
    cols[f"{name}_lo"].append(lo)
    cols[f"{name}_hi"].append(hi)
    cols[f"{name}_jk"].append([float("nan") if v is None else v for v in jk])
