"""Coverage of the delete-a-group jackknife intervals on synthetic data whose true value is known."""
import numpy as np
import pytest

from spinal_nb.scores import (
    GramAccumulator,
    TransportAccumulator,
    assign_groups,
    fit_tail,
    jackknife_interval,
    jackknife_se,
)


def test_jackknife_se_of_a_mean_is_the_textbook_standard_error():
    # For the mean, the leave-one-out jackknife se equals s / sqrt(n) exactly.
    x = np.random.default_rng(0).normal(size=25)
    reps = [(x.sum() - xi) / (len(x) - 1) for xi in x]
    assert jackknife_se(reps) == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=1e-12)
    assert jackknife_interval(1.0, [1.0]) == (None, None)
    assert jackknife_interval(None, [1.0, 2.0]) == (None, None)
    assert jackknife_interval(1.0, [1.0, None, 2.0]) == (None, None)


def test_transport_interval_coverage():
    rng = np.random.default_rng(11)
    mu, hits, reps = 0.4, 0, 300
    for _ in range(reps):
        acc = TransportAccumulator(2, 10)
        for i in range(40):
            t = rng.integers(5, 40)
            values = mu + 0.1 * rng.standard_normal() + 0.2 * rng.standard_normal(t)
            acc.update(0, values, assign_groups(np.full(t, i), 10))
        est = acc.transport(0)
        lo, hi = jackknife_interval(est, [acc.transport(0, g) for g in range(10)])
        hits += lo <= mu <= hi
    print("transport coverage", hits / reps)
    assert 0.90 <= hits / reps <= 0.99, hits / reps


def test_contraction_interval_coverage():
    rng = np.random.default_rng(12)
    d, a, pe, n_prompts, tokens = 16, 0.8, 0.05, 30, 60
    lam = np.arange(1, d + 1.0) ** (-2 * a) + pe**2  # population covariance: power law + prompt offsets
    truth = fit_tail(np.sqrt(lam)).alpha  # the estimator's large-sample limit, known analytically
    hits, reps = 0, 200
    for _ in range(reps):
        basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
        acc = GramAccumulator(1, d, 10)
        for i in range(n_prompts):
            x = rng.standard_normal((tokens, d)) * np.arange(1, d + 1.0) ** -a + pe * rng.standard_normal(d)
            acc.update(0, x @ basis.T, assign_groups(np.full(tokens, i), 10))
        est = fit_tail(acc.spectrum(0)).alpha
        lo, hi = jackknife_interval(est, [fit_tail(acc.spectrum(0, leave_out=g)).alpha for g in range(10)])
        hits += lo <= truth <= hi
    print("contraction coverage", hits / reps)
    assert 0.88 <= hits / reps <= 0.995, hits / reps
