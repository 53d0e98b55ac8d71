"""The companion metrics' math (scores.companions): effective rank on analytic spectra and against eigvalsh of the
covariance of raw states streamed through the real accumulators; KL to the final layer and top-1 agreement from
log-probabilities against an independent float64 computation; the α-ReQ cross-check (α-ReQ = 2 α)."""
import math

import numpy as np
import pytest
import torch

from spinal_nb.params import SpinalParams
from spinal_nb.scores import (
    GramAccumulator,
    TransportAccumulator,
    effective_rank,
    finalize,
    fit_tail,
    lens_point_,
    to_final,
    to_final_,
)


def numpy_effective_rank(states: np.ndarray) -> float:
    """exp(entropy) of the normalized eigenvalues of the centered covariance, straight from the rows."""
    x = states - states.mean(0)
    lam = np.linalg.eigvalsh(x.T @ x / len(x))
    lam = lam[lam > 1e-12 * lam.max()]
    p = lam / lam.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def test_effective_rank_endpoints():
    d = 12
    iso = np.concatenate([np.eye(d), -np.eye(d)]) * 3.0  # centered covariance proportional to the identity
    assert numpy_effective_rank(iso) == pytest.approx(d, rel=1e-12)
    assert effective_rank(np.linalg.svd(iso - iso.mean(0), compute_uv=False)) == pytest.approx(d, rel=1e-12)
    line = np.outer(np.random.default_rng(0).normal(size=40), np.arange(1.0, d + 1))  # rank one
    assert effective_rank(np.linalg.svd(line - line.mean(0), compute_uv=False)) == pytest.approx(1.0, abs=1e-9)
    # two equal directions: exactly 2; an unequal pair lies strictly between 1 and 2
    assert effective_rank([1.0, 1.0, 0.0]) == pytest.approx(2.0, rel=1e-14)
    assert 1.0 < effective_rank([2.0, 1.0]) < 2.0
    assert effective_rank([]) is None and effective_rank([0.0, 0.0]) is None


def _accumulate(states_by_layer, groups, n_groups):
    n_layers, d = len(states_by_layer), states_by_layer[0].shape[1]
    gram = GramAccumulator(n_layers, d, n_groups)
    trans = TransportAccumulator(n_layers, n_groups)
    for layer, x in enumerate(states_by_layer):
        for start in range(0, len(x), 37):  # several batches, as the tracer streams them
            gram.update(layer, x[start:start + 37], groups[start:start + 37])
    return gram, trans


@pytest.mark.parametrize("n", [20, 300])  # fewer rows than d (kernel route) and more (Gram route)
def test_effective_rank_column_equals_numpy_from_raw_states_with_jackknife(n):
    rng = np.random.default_rng(n)
    d, G = 24, 5
    scales = np.exp(-0.15 * np.arange(d))
    states = [rng.normal(size=(n, d)) * scales + 4.0, rng.normal(size=(n, d)) @ rng.normal(size=(d, d))]
    groups = np.arange(n) % G
    gram, trans = _accumulate(states, groups, G)
    cols = finalize(gram, trans, SpinalParams(n_groups=G), workers=1)
    for layer, x in enumerate(states):
        assert cols["effective_rank"][layer] == pytest.approx(numpy_effective_rank(x), rel=1e-8)
        loo = [numpy_effective_rank(x[groups != g]) for g in range(G)]
        np.testing.assert_allclose(cols["effective_rank_jk"][layer], loo, rtol=1e-8)
        assert cols["effective_rank_lo"][layer] < cols["effective_rank"][layer] < cols["effective_rank_hi"][layer]
        assert 1.0 <= cols["effective_rank"][layer] <= d
    # no lens metrics accumulated: the columns are null, not zero
    assert cols["kl_to_final"] == [None, None] and cols["top1_agreement"] == [None, None]


def reptrix_alpha_req(eigen: np.ndarray, trange: np.ndarray) -> float:
    """α-ReQ as the PyPI package reptrix 0.1.0 computes it (reptrix/alpha.py, get_powerlaw: weighted least squares of
    log λ on -log k with weights 1/k, k = trange + 1), re-typed here: the package is not installable with our lock
    (it requires torchvision, scikit-learn and matplotlib and imports the last two at import time)."""
    logss = np.log(np.abs(eigen))
    y = logss[trange][:, np.newaxis]
    trange = trange + 1
    x = np.concatenate((-np.log(trange)[:, np.newaxis], np.ones((trange.size, 1))), axis=1)
    w = 1.0 / trange.astype(np.float32)[:, np.newaxis]
    b = np.linalg.solve(x.T @ (x * w), (w * x).T @ y).flatten()
    return float(b[0])


def test_alpha_req_is_twice_alpha_on_the_same_eigenvalues_and_ranks():
    rng = np.random.default_rng(3)
    d = 64
    states = rng.normal(size=(400, d)) * np.arange(1, d + 1) ** -0.8 * np.exp(0.1 * rng.normal(size=d))
    sigma = np.linalg.svd(states - states.mean(0), compute_uv=False)
    fit = fit_tail(sigma)
    trange = np.arange(fit.k_lo - 1, fit.k_hi)  # reptrix's 0-based indices of the ranks fit_tail used
    assert fit.n_points == trange.size  # no rank dropped by the floor here
    # reptrix weights in float32 (1/k rounded): equal to 2 alpha to float32 precision, not to the last bit
    assert reptrix_alpha_req(sigma**2, trange) == pytest.approx(2 * fit.alpha, rel=1e-6)
    assert abs(reptrix_alpha_req(sigma**2, trange) - fit.alpha) > 0.3  # and not to alpha itself


def _reference_to_final(z_final: torch.Tensor, z: torch.Tensor, T: float):
    lf = torch.log_softmax(z_final.double() / T, -1)
    lp = torch.log_softmax(z.double() / T, -1)
    kl = torch.nn.functional.kl_div(lp, lf, log_target=True, reduction="none").sum(-1)
    return kl, z.double().argmax(-1) == z_final.double().argmax(-1)


@pytest.mark.parametrize("T", [1.0, 0.7])
def test_to_final_forms_equal_an_independent_float64_kl_and_argmax(T):
    g = torch.Generator().manual_seed(5)
    z_final = 3.0 * torch.randn(40, 500, generator=g)
    z = z_final + 1.0 * torch.randn(40, 500, generator=g)
    ref_kl, ref_agree = _reference_to_final(z_final, z, T)
    assert 0.05 < ref_agree.double().mean() < 0.95  # both outcomes occur
    # allocating form, from log-probabilities
    kl, agree = to_final(torch.log_softmax(z_final / T, -1), torch.log_softmax(z / T, -1))
    torch.testing.assert_close(kl, ref_kl, rtol=1e-5, atol=1e-5)
    assert torch.equal(agree, ref_agree)
    # in-place form, from what lens_point_ leaves behind (float32 buffers)
    zf, zl = z_final.clone(), z.clone()
    s_f, scratch = torch.empty_like(zf), torch.empty_like(zf)
    ent_f = lens_point_(zf, s_f, scratch, T)
    p_f = s_f * s_f
    log_z, z_max = torch.empty(40, dtype=torch.float64), torch.empty(40)
    lens_point_(zl, torch.empty_like(zl), scratch, T, log_z, z_max)
    torch.testing.assert_close(z_max, z.amax(-1))
    kl_ = to_final_(zl, log_z, p_f, ent_f, scratch)
    assert kl_.dtype == torch.float64
    torch.testing.assert_close(kl_, ref_kl, rtol=1e-4, atol=2e-5)
    # at the final layer itself: KL 0 and agreement 1
    kl0, agree0 = to_final(torch.log_softmax(z_final, -1), torch.log_softmax(z_final, -1))
    assert kl0.abs().max() == 0.0 and bool(agree0.all())


def test_transport_accumulator_final_means_and_leave_one_out():
    acc = TransportAccumulator(3, 4)
    rng = np.random.default_rng(1)
    kl = rng.random((3, 50))
    agree = rng.random((3, 50)) < 0.5
    groups = rng.integers(0, 4, 50)
    acc.update_final(torch.from_numpy(kl[:, :20]), torch.from_numpy(agree[:, :20]), groups[:20])
    acc.update_final(torch.from_numpy(kl[:, 20:]), torch.from_numpy(agree[:, 20:]), groups[20:])
    for layer in range(3):
        assert math.isclose(acc.kl_to_final(layer), kl[layer].mean(), rel_tol=1e-12)
        assert math.isclose(acc.top1_agreement(layer, leave_out=2), agree[layer, groups != 2].mean(), rel_tol=1e-12)
    state = acc.state_dict()
    other = TransportAccumulator(3, 4)
    other.load_state_dict(state)
    assert other.kl_to_final(1) == acc.kl_to_final(1)
    assert TransportAccumulator(3, 4).kl_to_final(0) is None  # never updated: null


def test_lens_metrics_must_be_a_bool():
    from spinal_nb.errors import InputError

    with pytest.raises(InputError, match="lens_metrics must be True or False"):
        SpinalParams(lens_metrics="yes")
