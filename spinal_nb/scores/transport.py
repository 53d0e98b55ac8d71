"""Transport score: the Fisher–Rao step between adjacent layers' logit-lens distributions (docs/method.md).

L = 2 arccos(BC(p, q)) is computed in the equivalent stable form 4 asin(||sqrt p - sqrt q||_2 / 2): the arccos form
loses all precision for small steps in float32. sqrt p comes from exp(0.5 log_softmax(z)), so nothing underflows.
Everything here works on one layer pair and one batch of positions at a time: callers stream sums and counts.

Streaming over layers (the tracer): `lens_point(z_l)` gives sqrt p_l and the entropy of layer l from one log_softmax,
and `fisher_rao_sqrt(sqrt p_l, sqrt p_l+1)` the step, so each layer's [rows x vocab] logits are normalised once
(`lens_step` and `lens_entropy` on a pair would do it three times). The two routes give the same numbers.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError, NumericsError


def fisher_rao(p, q) -> np.ndarray | torch.Tensor:
    """Fisher–Rao distance between probability vectors along the last axis, in [0, pi].

    >>> d = float(fisher_rao(np.array([1.0, 0.0]), np.array([0.5, 0.5])))
    >>> abs(d - np.pi / 2) < 1e-12  # 2·arccos(1/√2) = π/2, up to the last bits of arccos
    True
    """
    is_np = not isinstance(p, torch.Tensor)
    pt, qt = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    if pt.shape != qt.shape:
        raise InputError(f"p and q must have the same shape, got {tuple(pt.shape)} and {tuple(qt.shape)}.")
    if (pt < 0).any() or (qt < 0).any():
        raise InputError("Probabilities must be non-negative.")
    h = torch.linalg.vector_norm(pt.sqrt() - qt.sqrt(), dim=-1)
    d = _hellinger_to_fisher_rao(h)
    return d.numpy() if is_np else d


def _hellinger_to_fisher_rao(h: torch.Tensor) -> torch.Tensor:
    """4 asin(h / 2) for h = ||sqrt p - sqrt q||_2 (float64), clamped to the exact range [0, pi].

    h <= sqrt 2 for probability vectors, but rounding can push 4 asin(sqrt(2)/2) to pi + 4e-16 on disjoint supports.
    """
    return (4.0 * torch.asin((h / 2.0).clamp(max=1.0))).clamp(0.0, math.pi)


def fisher_rao_sqrt(sqrt_a: torch.Tensor, sqrt_b: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """Per-position Fisher–Rao step (float64, [N]) from square-root probabilities [N, V] (as from `lens_point`).

    The difference and its squares are taken in the inputs' dtype and summed with torch's cascade summation (relative
    error a few ulps of that dtype, far below the error of sqrt p itself; no float64 copy of [N, V]); the square root
    and the arcsine are float64. `scratch` (a tensor like `sqrt_a`) receives the difference instead of a new one.
    """
    d = torch.sub(sqrt_a, sqrt_b, out=scratch) if scratch is not None else sqrt_a - sqrt_b
    h = d.square_().sum(-1).to(torch.float64).sqrt()
    return _hellinger_to_fisher_rao(h)


def _float(logits: torch.Tensor) -> torch.Tensor:
    """float64 stays float64, float32 stays float32, half precisions (and anything else) go to float32."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    z = _float(logits)
    if temperature != 1.0:
        z = z / temperature
    return torch.log_softmax(z, dim=-1)


def _check_finite(logits: torch.Tensor, what: str) -> None:
    if not torch.isfinite(logits).all():
        raise NumericsError(f"NaN or Inf in the logit-lens logits of {what}; "
                            "the model may overflow in float16 — try float32 or bfloat16.")


def _topk_union_mask(za: torch.Tensor, zb: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, za.shape[-1])
    mask = torch.zeros_like(za, dtype=torch.bool)
    mask.scatter_(-1, za.topk(k, dim=-1).indices, True)
    mask.scatter_(-1, zb.topk(k, dim=-1).indices, True)
    return mask


def lens_step(logits_a, logits_b, temperature: float = 1.0, top_k: int | None = None,
              what: str = "a layer pair") -> torch.Tensor:
    """Per-position Fisher–Rao step (float64, [N]) between the lens distributions of two logit tensors [N, V].

    With `top_k`, both distributions are restricted to the union of their top-k tokens and renormalized (in the
    logits' precision: float64 stays float64, half precisions are computed in float32).
    """
    za, zb = torch.as_tensor(logits_a), torch.as_tensor(logits_b)
    if za.shape != zb.shape or za.ndim != 2:
        raise InputError(f"lens_step expects two [N, V] tensors of equal shape, got {tuple(za.shape)}, {tuple(zb.shape)}.")
    _check_finite(za, what)
    _check_finite(zb, what)
    if top_k is not None:
        mask = _topk_union_mask(za, zb, top_k)
        za, zb = _float(za), _float(zb)
        neg = torch.finfo(za.dtype).min
        za = za.masked_fill(~mask, neg)
        zb = zb.masked_fill(~mask, neg)
    sa = _log_probs(za, temperature).mul_(0.5).exp_()  # sqrt p, in place on the fresh log-probabilities
    sb = _log_probs(zb, temperature).mul_(0.5).exp_()
    return fisher_rao_sqrt(sa, sb, scratch=sa)


def lens_entropy(logits, temperature: float = 1.0, what: str = "a layer") -> torch.Tensor:
    """Per-position Shannon entropy (nats, float64, [N]) of softmax(logits / T)."""
    z = torch.as_tensor(logits)
    _check_finite(z, what)
    lp = _log_probs(z, temperature)
    return -(lp.exp() * lp).sum(-1).to(torch.float64)


def lens_point(logits, temperature: float = 1.0,
               scratch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sqrt p [N, V], entropy [N] float64) of softmax(logits / T) from a single log_softmax.

    sqrt p = exp(log_softmax / 2) is in the logits' precision (float64 stays float64, half precisions go to float32)
    and feeds `fisher_rao_sqrt` for the steps to both neighbouring layers. No finiteness scan over [N, V]: a NaN or
    Inf anywhere in a row of logits makes that row's entropy NaN (inf - inf or 0 * -inf), so checking the [N]
    entropies with `check_entropy_finite` is the same test at no cost. `scratch` (a tensor of the shape and dtype of
    sqrt p) holds the p log p terms instead of a new tensor: the tracer reuses one per chunk of positions.
    """
    lp = _log_probs(torch.as_tensor(logits), temperature)
    s = lp.mul(0.5).exp_()
    plogp = torch.mul(s, s, out=scratch) if scratch is not None else s * s
    ent = -plogp.mul_(lp).sum(-1).to(torch.float64)
    return s, ent


def lens_point_(logits: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor,
                temperature: float = 1.0, log_z: torch.Tensor | None = None,
                z_max: torch.Tensor | None = None) -> torch.Tensor:
    """In-place `lens_point`: sqrt p of softmax(logits / T) into `out`, entropy [N] (float64) returned.

    One exponential per element instead of two (log_softmax's and exp's), and no allocation of [N, V]: `logits`
    (float32 or float64, [N, V]) is overwritten with y = (z - max z) / 2T, `out` receives e = exp(y) (so
    Z = sum e^2 is the partition sum relative to the max, e_max = 1), then e / sqrt(Z) = sqrt p. With
    log p = 2y - log Z, the entropy is H = log Z - 2 sum(e^2 y) / Z: both terms are >= 0 (y <= 0), so nothing
    cancels. `scratch` (like `out`) holds e^2 and e^2 y. A NaN or Inf logit makes its row's entropy NaN, as in
    `lens_point` (checked with `check_entropy_finite`). `log_z` ([N] float64) receives log Z, so that afterwards
    log p = 2 y - log Z (what `scores.companions.to_final_` reads); `z_max` ([N]) the rows' largest logit.
    """
    a = 0.5 / temperature
    m = logits.amax(-1, keepdim=True)
    if z_max is not None:
        z_max.copy_(m.squeeze(-1))
    y = torch.add(m.mul_(-a), logits, alpha=a, out=logits)  # a z - a max z, in place
    e = torch.exp(y, out=out)
    p = torch.mul(e, e, out=scratch)
    z_sum = p.sum(-1).to(torch.float64)
    ey = p.mul_(y).sum(-1).to(torch.float64)
    e.mul_(z_sum.rsqrt().to(e.dtype).unsqueeze(-1))
    lz = z_sum.log()
    if log_z is not None:
        log_z.copy_(lz)
    return lz - 2.0 * ey / z_sum


def check_entropy_finite(entropy: torch.Tensor, what: str = "a layer") -> None:
    """NumericsError (naming `what`) when any entropy from `lens_point` is NaN/Inf, i.e. its logits were not finite."""
    if not bool(torch.isfinite(entropy).all()):
        raise NumericsError(f"NaN or Inf in the logit-lens logits of {what}; "
                            "the model may overflow in float16 — try float32 or bfloat16.")


class TransportAccumulator:
    """Per-layer, per-group sums and counts of Fisher–Rao steps and lens entropies (streamed, float64), and of the
    lens's KL divergence from the final layer and top-1 agreement with it (`update_final`; scores.companions).

    Row l of the transport sums holds the step l -> l+1 (l = 0..L-1); entropy is kept for every layer 0..L.
    """

    ARRAYS = ("step_sum", "step_count", "ent_sum", "ent_count", "kl_sum", "agree_sum", "final_count")

    def __init__(self, n_layers: int, n_groups: int):
        if n_layers < 2 or n_groups < 1:
            raise InputError("TransportAccumulator needs n_layers >= 2 (L + 1 layer states) and n_groups >= 1.")
        self.n_layers, self.n_groups = n_layers, n_groups
        self.step_sum = np.zeros((n_layers, n_groups))
        self.step_count = np.zeros((n_layers, n_groups), dtype=np.int64)
        self.ent_sum = np.zeros((n_layers, n_groups))
        self.ent_count = np.zeros((n_layers, n_groups), dtype=np.int64)
        self.kl_sum = np.zeros((n_layers, n_groups))
        self.agree_sum = np.zeros((n_layers, n_groups))
        self.final_count = np.zeros((n_layers, n_groups), dtype=np.int64)  # stays 0 when the lens metrics are off

    @staticmethod
    def _add(sums, counts, layer, values, groups) -> None:
        v = torch.as_tensor(values, dtype=torch.float64).cpu().numpy().reshape(-1)
        g = torch.as_tensor(groups).cpu().numpy().astype(np.int64).reshape(-1)
        if v.shape != g.shape:
            raise InputError("values and groups must have the same length.")
        np.add.at(sums[layer], g, v)
        np.add.at(counts[layer], g, 1)

    def update(self, layer: int, steps, groups) -> None:
        if not 0 <= layer < self.n_layers - 1:
            raise InputError(f"transport layer must lie in [0, {self.n_layers - 2}], got {layer}.")
        self._add(self.step_sum, self.step_count, layer, steps, groups)

    def update_entropy(self, layer: int, entropy, groups) -> None:
        self._add(self.ent_sum, self.ent_count, layer, entropy, groups)

    def update_all(self, steps, entropies, groups) -> None:
        """One batch for every layer at once: `steps` [L, N] (row l = step l -> l+1), `entropies` [L+1, N].

        Same sums, in the same order, as `update` and `update_entropy` called layer by layer.
        """
        g = torch.as_tensor(groups).cpu().numpy().astype(np.int64).reshape(-1)
        for sums, counts, values, n_rows, what in ((self.step_sum, self.step_count, steps, self.n_layers - 1, "steps"),
                                                    (self.ent_sum, self.ent_count, entropies, self.n_layers,
                                                     "entropies")):
            v = torch.as_tensor(values, dtype=torch.float64).cpu().numpy()
            if v.shape != (n_rows, g.size):
                raise InputError(f"{what} must have shape [{n_rows}, {g.size}], got {v.shape}.")
            np.add.at(sums[:n_rows], (slice(None), g), v)
            np.add.at(counts[:n_rows], (slice(None), g), 1)

    def update_final(self, kl, agree, groups) -> None:
        """One batch's KL(p_L || p_l) and top-1 agreement (1/0) per layer and position, both [L + 1, N]."""
        g = torch.as_tensor(groups).cpu().numpy().astype(np.int64).reshape(-1)
        for sums, values, what in ((self.kl_sum, kl, "kl"), (self.agree_sum, agree, "agree")):
            v = torch.as_tensor(values).to(torch.float64).cpu().numpy()
            if v.shape != (self.n_layers, g.size):
                raise InputError(f"{what} must have shape [{self.n_layers}, {g.size}], got {v.shape}.")
            np.add.at(sums, (slice(None), g), v)
        np.add.at(self.final_count, (slice(None), g), 1)

    @staticmethod
    def _means(sums, counts, layer, leave_out=None):
        s, c = sums[layer].sum(), counts[layer].sum()
        if leave_out is not None:
            s, c = s - sums[layer, leave_out], c - counts[layer, leave_out]
        return float(s / c) if c > 0 else None

    def transport(self, layer: int, leave_out: int | None = None) -> float | None:
        return self._means(self.step_sum, self.step_count, layer, leave_out)

    def entropy(self, layer: int, leave_out: int | None = None) -> float | None:
        return self._means(self.ent_sum, self.ent_count, layer, leave_out)

    def kl_to_final(self, layer: int, leave_out: int | None = None) -> float | None:
        return self._means(self.kl_sum, self.final_count, layer, leave_out)

    def top1_agreement(self, layer: int, leave_out: int | None = None) -> float | None:
        return self._means(self.agree_sum, self.final_count, layer, leave_out)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).copy() for k in self.ARRAYS}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in self.ARRAYS:
            new = np.asarray(state[k])
            if new.shape != getattr(self, k).shape:
                raise InputError(f"Saved accumulator '{k}' has shape {new.shape}, expected {getattr(self, k).shape}.")
            setattr(self, k, new.astype(getattr(self, k).dtype).copy())
