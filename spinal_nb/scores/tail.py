"""The power-law fit of a spectrum's tail (the contraction score α) and the check that its window holds no cliff."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, NumericsError


@dataclass(frozen=True)
class TailFit:
    """Result of the weighted power-law tail fit; `alpha` is None (with `reason`) when there is too little tail."""

    alpha: float | None
    r2: float | None
    k_lo: int
    k_hi: int
    n_points: int
    reason: str | None = None
    intercept: float | None = None  # log σ at k = 1 of the fitted line log σ_k = intercept − α log k (for drawing it)


def _window_points(s: np.ndarray, k_lo: int, k_hi: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(ranks k, σ_k) of the window [k_lo, k_hi] that the fit uses: those above floor · σ₁."""
    k = np.arange(k_lo, k_hi + 1, dtype=np.float64)
    y = s[k_lo - 1:k_hi]
    keep = y > floor * s[0]
    return k[keep], y[keep]


def tail_gap(sigma, fit: TailFit, floor: float = 1e-7) -> tuple[float, int]:
    """(decades, k) of the largest drop between two neighbouring points the tail fit used: σ_k / σ_k' over log 10,
    k' the next kept rank. A power-law tail drops a tiny step from one rank to the next ((k+1)/k)^α; a drop of
    several decades means the window reaches past the states' real rank into values at rounding level (rows that
    repeat up to float32 rounding: prompts sharing a long prefix), where α is not a property of the model."""
    s = np.asarray(sigma, dtype=np.float64)
    if fit.alpha is None or s.size == 0:
        return 0.0, 0
    k, y = _window_points(s, fit.k_lo, fit.k_hi, floor)
    if y.size < 2:
        return 0.0, 0
    drops = np.log10(y[:-1] / y[1:])
    i = int(np.argmax(drops))
    return float(drops[i]), int(k[i])


def fit_tail(sigma, tail_window: tuple[float, float] = (0.1, 0.9), floor: float = 1e-7,
             min_points: int = 8) -> TailFit:
    """Power-law exponent of the spectrum tail: alpha = -slope of log sigma_k on log k, weights 1/k.

    `sigma` are singular values, descending, already truncated to the rank r. Ranks k (1-based) in
    [ceil(a r), floor(b r)] are used, minus any sigma_k <= floor * sigma_1.

    >>> k = np.arange(1, 101.0); round(fit_tail(3.0 * k ** -0.7).alpha, 12)
    0.7
    """
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim != 1:
        raise InputError("fit_tail expects a 1-D spectrum.")
    if not np.all(np.isfinite(s)):
        raise NumericsError("The spectrum contains NaN or Inf.")
    r = s.size
    a, b = tail_window
    k_lo, k_hi = max(1, math.ceil(a * r)), min(r, math.floor(b * r))
    if r == 0 or s[0] <= 0:
        return TailFit(None, None, k_lo, k_hi, 0, "empty or all-zero spectrum")
    k, y = _window_points(s, k_lo, k_hi, floor)
    if k.size < min_points:
        return TailFit(None, None, k_lo, k_hi, int(k.size),
                       f"only {k.size} spectrum points in the tail window (need {min_points}); "
                       f"rank {r} is too small: trace more tokens")
    x, ly, w = np.log(k), np.log(y), 1.0 / k
    w = w / w.sum()
    xm, ym = (w * x).sum(), (w * ly).sum()
    sxx = (w * (x - xm) ** 2).sum()
    slope = (w * (x - xm) * (ly - ym)).sum() / sxx
    resid = ly - (ym + slope * (x - xm))
    ss_tot = (w * (ly - ym) ** 2).sum()
    ss_res = (w * resid**2).sum()
    # residuals at rounding level (w sums to 1) mean an exact power law, flat spectra included: R² = 1
    # rather than the ratio of two rounding errors
    noise = (1e-13 * max(1.0, float(np.abs(ly).max()))) ** 2
    r2 = 1.0 if ss_res <= noise else 1.0 - ss_res / ss_tot
    return TailFit(float(-slope), float(r2), k_lo, k_hi, int(k.size), None, float(ym - slope * xm))
