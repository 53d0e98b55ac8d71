"""Fixtures of the frame tests: a base / DPO pair of synthetic traces with a planted late change."""
import pytest

from spinal_nb.synthetic import synthetic_trace


@pytest.fixture(scope="module")
def pair():
    base = synthetic_trace("base", n_layers=20, n_prompts=30, alpha=lambda d: 0.6, step=lambda d: 0.3, seed=1)
    dpo = synthetic_trace("dpo", n_layers=20, n_prompts=30, seed=1,
                          alpha=lambda d: 0.6 + (0.4 if d >= 0.75 else 0.0),
                          step=lambda d: 0.3 - (0.15 if d >= 0.75 else 0.0))
    return base, dpo
