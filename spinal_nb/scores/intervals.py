"""Intervals by resampling prompts: the delete-a-group jackknife.

Prompts are dealt round-robin into G groups (prompt i -> group i % G). Every score is recomputed with one group
left out (for alpha that is one eigen-decomposition of the Gram minus that group's Gram: no second pass over data).
With leave-one-out estimates theta_(g), the jackknife standard error is
    se^2 = (G - 1) / G * sum_g (theta_(g) - mean)^2
and the interval is theta_hat +- t_{G-1, (1+c)/2} * se (Student t with G - 1 degrees of freedom, which keeps
coverage honest for G ~ 10). The replicates are stored in the TraceFrame so that differences between checkpoints
traced on the same prompts can be paired (the replicate of a difference is the difference of replicates).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def assign_groups(prompt_indices, n_groups: int) -> np.ndarray:
    """Jackknife group of each prompt, from its global index (batching never changes membership)."""
    return np.asarray(prompt_indices, dtype=np.int64) % n_groups


def jackknife_se(replicates: Sequence[float]) -> float | None:
    r = np.asarray([x for x in replicates if x is not None], dtype=np.float64)
    g = r.size
    if g < 2 or g != len(replicates) or not np.all(np.isfinite(r)):
        return None
    return float(math.sqrt((g - 1) / g * ((r - r.mean()) ** 2).sum()))


def jackknife_interval(estimate: float | None, replicates: Sequence[float | None],
                       confidence: float = 0.95) -> tuple[float | None, float | None]:
    """(lo, hi) around `estimate`; (None, None) when there are fewer than 2 replicates or any is missing.

    >>> lo, hi = jackknife_interval(1.0, [0.9, 1.1, 1.0, 1.05, 0.95])
    >>> lo < 1.0 < hi
    True
    """
    if estimate is None or not math.isfinite(estimate):
        return None, None
    se = jackknife_se(replicates)
    if se is None:
        return None, None
    t = float(stats.t.ppf(0.5 + confidence / 2, df=len(replicates) - 1))
    return estimate - t * se, estimate + t * se
