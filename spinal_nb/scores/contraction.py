"""Contraction score: the power-law tail exponent of a layer's singular-value spectrum (SPEC.md).

The singular values of the stacked, column-centered state matrix H (N x d) are obtained exactly without keeping H:
per layer we stream the Gram matrix, the column sum and the row count in float64. States are shifted by a reference
row (the first batch's mean) before accumulating, so that centering later does not subtract two huge numbers
(residual streams have a large shared mean direction). One Gram is kept per jackknife group of prompts so that
leave-one-group-out spectra, and with them intervals, come at no extra pass over the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError, NumericsError


def _as_float64(x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise InputError(f"States must be floating point, got dtype {t.dtype}.")
    return t.to(torch.float64)


class GramAccumulator:
    """Streams per-layer, per-group Gram matrices of hidden states (float64).

    >>> acc = GramAccumulator(n_layers=1, d=4, n_groups=2)
    >>> acc.update(0, np.random.default_rng(0).normal(size=(50, 4)), np.arange(50) % 2)
    >>> acc.spectrum(0).shape
    (4,)
    """

    def __init__(self, n_layers: int, d: int, n_groups: int, *, row_normalize: bool = False,
                 device: str | torch.device = "cpu"):
        if n_layers < 1 or d < 1 or n_groups < 1:
            raise InputError(f"GramAccumulator needs n_layers, d, n_groups >= 1, got {n_layers}, {d}, {n_groups}.")
        self.n_layers, self.d, self.n_groups = n_layers, d, n_groups
        self.row_normalize = row_normalize
        self.device = torch.device(device)
        z = dict(dtype=torch.float64, device=self.device)
        self.gram = torch.zeros(n_layers, n_groups, d, d, **z)
        self.colsum = torch.zeros(n_layers, n_groups, d, **z)
        self.count = torch.zeros(n_layers, n_groups, dtype=torch.int64, device=self.device)
        self.shift = torch.zeros(n_layers, d, **z)
        self.has_shift = torch.zeros(n_layers, dtype=torch.bool, device=self.device)

    # -- accumulation -------------------------------------------------------------------------------------------
    def update(self, layer: int, states, groups) -> None:
        """Add rows `states` [N, d] belonging to jackknife groups `groups` [N] to layer `layer`."""
        x = _as_float64(states).to(self.device)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise InputError(f"States for layer {layer} must have shape [N, {self.d}], got {tuple(x.shape)}.")
        g = torch.as_tensor(groups, device=self.device).long()
        if g.shape != (x.shape[0],):
            raise InputError(f"groups must have shape [{x.shape[0]}], got {tuple(g.shape)}.")
        if x.shape[0] == 0:
            return
        if not torch.isfinite(x).all():
            raise NumericsError(f"NaN or Inf in the hidden states of layer {layer}; "
                                "try float32 instead of float16, or check the model's weights.")
        if g.min() < 0 or g.max() >= self.n_groups:
            raise InputError(f"group ids must lie in [0, {self.n_groups}).")
        if self.row_normalize:
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
        if not self.has_shift[layer]:
            self.shift[layer] = x.mean(0)
            self.has_shift[layer] = True
        x = x - self.shift[layer]
        for gid in torch.unique(g).tolist():
            xg = x[g == gid]
            self.gram[layer, gid] += xg.T @ xg
            self.colsum[layer, gid] += xg.sum(0)
            self.count[layer, gid] += xg.shape[0]

    # -- results ------------------------------------------------------------------------------------------------
    def n_rows(self, layer: int, leave_out: int | None = None) -> int:
        c = self.count[layer]
        return int(c.sum() - (c[leave_out] if leave_out is not None else 0))

    def nonempty_groups(self, layer: int = 0) -> list[int]:
        return [i for i in range(self.n_groups) if int(self.count[layer, i]) > 0]

    def spectrum(self, layer: int, leave_out: int | None = None, center: bool = True) -> np.ndarray:
        """Singular values (descending) of the stacked state matrix, column-centered if `center`.

        Only the first r = min(N - 1, d) (centered) or min(N, d) values are returned: the rest are exactly zero.
        """
        if leave_out is None:
            return self.spectra(layer, center=center)[0]
        return self.spectra(layer, [leave_out], center=center, full=False)[1][0]

    def spectra(self, layer: int, leave_out: list[int] | tuple[int, ...] = (), center: bool = True,
                full: bool = True) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """(spectrum of all rows, [spectrum with group g left out for g in leave_out]) of one layer.

        The same numbers as `spectrum` called once per group, with the layer's total Gram summed once. Eigenvalues
        come from LAPACK's symmetric solver through numpy (float64): on one CPU thread it is 1.5-3x faster than
        torch's for these d x d matrices, and finalize does (L + 1) x (1 + n_groups) of them.
        """
        gram, s, n = self.gram[layer].sum(0), self.colsum[layer].sum(0), self.n_rows(layer)
        whole = self._spectrum_of(layer, gram, s, n, center) if full else None
        parts = [self._spectrum_of(layer, gram - self.gram[layer, g], s - self.colsum[layer, g],
                                   self.n_rows(layer, g), center) for g in leave_out]
        return whole, parts

    def _spectrum_of(self, layer: int, gram: torch.Tensor, s: torch.Tensor, n: int, center: bool) -> np.ndarray:
        if n < 2:
            return np.zeros(0)
        if center:
            m = s / n
            c = gram - n * torch.outer(m, m)
            rank = min(n - 1, self.d)
        else:  # undo the shift: sum (x+c)(x+c)^T = G + c s^T + s c^T + n c c^T
            sh = self.shift[layer]
            c = gram + torch.outer(sh, s) + torch.outer(s, sh) + n * torch.outer(sh, sh)
            rank = min(n, self.d)
        c = 0.5 * (c + c.T)
        ev = np.linalg.eigvalsh(c.cpu().numpy())[::-1].clip(min=0.0)  # ascending -> descending
        return np.sqrt(ev[:rank])

    # -- resume -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).cpu().numpy() for k in ("gram", "colsum", "count", "shift", "has_shift")}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in ("gram", "colsum", "count", "shift", "has_shift"):
            cur = getattr(self, k)
            new = torch.as_tensor(np.asarray(state[k]))
            if tuple(new.shape) != tuple(cur.shape):
                raise InputError(f"Saved accumulator '{k}' has shape {tuple(new.shape)}, expected {tuple(cur.shape)}.")
            setattr(self, k, new.to(dtype=cur.dtype, device=self.device).clone())


@dataclass(frozen=True)
class TailFit:
    """Result of the weighted power-law tail fit; `alpha` is None (with `reason`) when there is too little tail."""

    alpha: float | None
    r2: float | None
    k_lo: int
    k_hi: int
    n_points: int
    reason: str | None = None


def fit_tail(sigma, window: tuple[float, float] = (0.1, 0.9), floor: float = 1e-7, min_points: int = 8) -> TailFit:
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
    a, b = window
    k_lo, k_hi = max(1, math.ceil(a * r)), min(r, math.floor(b * r))
    if r == 0 or s[0] <= 0:
        return TailFit(None, None, k_lo, k_hi, 0, "empty or all-zero spectrum")
    k = np.arange(k_lo, k_hi + 1, dtype=np.float64)
    y = s[k_lo - 1:k_hi]
    keep = y > floor * s[0]
    k, y = k[keep], y[keep]
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
    return TailFit(float(-slope), float(r2), k_lo, k_hi, int(k.size), None)
