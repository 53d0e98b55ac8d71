import math

import numpy as np
import pytest
import torch

from spinal_nb.errors import InputError, NumericsError
from spinal_nb.scores import TransportAccumulator, fisher_rao, lens_entropy, lens_step


def test_analytic_values():
    assert fisher_rao(np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])) == pytest.approx(0.0, abs=1e-15)
    assert fisher_rao(np.array([0.5, 0.5, 0, 0]), np.array([0, 0, 0.3, 0.7])) == pytest.approx(math.pi)
    assert fisher_rao(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(math.pi / 2, abs=1e-14)


def test_equals_two_arccos_bhattacharyya_symmetric_and_triangle():
    rng = np.random.default_rng(0)
    p, q, r = (rng.dirichlet(np.ones(50) * 0.3, size=200) for _ in range(3))
    d_pq = fisher_rao(p, q)
    np.testing.assert_allclose(d_pq, 2 * np.arccos(np.clip(np.sqrt(p * q).sum(-1), 0, 1)), rtol=1e-10)
    np.testing.assert_allclose(d_pq, fisher_rao(q, p), rtol=0, atol=0)
    assert np.all(d_pq <= fisher_rao(p, r) + fisher_rao(r, q) + 1e-12)
    assert np.all((d_pq >= 0) & (d_pq <= math.pi))


def test_lens_step_equals_fisher_rao_of_softmax():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 300, generator=g, dtype=torch.float64) * 3, torch.randn(7, 300, generator=g, dtype=torch.float64)
    ref = fisher_rao(torch.softmax(a, -1), torch.softmax(b, -1))
    torch.testing.assert_close(lens_step(a, b), ref, rtol=1e-12, atol=1e-12)
    ref_t = fisher_rao(torch.softmax(a / 2.5, -1), torch.softmax(b / 2.5, -1))
    torch.testing.assert_close(lens_step(a, b, temperature=2.5), ref_t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("step", [1e-4, 3e-3])
def test_float32_small_steps_measured_to_one_percent(step):
    g = torch.Generator().manual_seed(1)
    v = 50_000
    z = torch.randn(16, v, generator=g, dtype=torch.float64) * 3
    direction = torch.randn(16, v, generator=g, dtype=torch.float64)
    z2 = z + step * direction / 0.9  # scale so the true step is near `step`
    a32, b32 = z.float(), z2.float()
    true = fisher_rao(torch.softmax(a32.double(), -1), torch.softmax(b32.double(), -1))  # exact for these inputs
    assert float(true.mean()) == pytest.approx(step, rel=0.5)
    got = lens_step(a32, b32)
    assert got.dtype == torch.float64
    assert torch.max(torch.abs(got - true) / true) < 0.01
    # the naive float32 arccos form fails here (what docs/method.md warns about), so the test would catch a regression to it
    naive = 2 * torch.arccos(torch.clamp((torch.softmax(a32, -1) * torch.softmax(b32, -1)).sqrt().sum(-1), max=1))
    if step < 1e-3:
        assert torch.max(torch.abs(naive.double() - true) / true) > 0.01


def test_top_k_union_renormalized():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 40, generator=g, dtype=torch.float64), torch.randn(5, 40, generator=g, dtype=torch.float64)
    torch.testing.assert_close(lens_step(a, b, top_k=40), lens_step(a, b), rtol=1e-6, atol=1e-7)
    k = 3
    got = lens_step(a, b, top_k=k)
    for i in range(5):
        idx = sorted(set(a[i].topk(k).indices.tolist()) | set(b[i].topk(k).indices.tolist()))
        p, q = torch.softmax(a[i, idx], -1), torch.softmax(b[i, idx], -1)
        assert float(got[i]) == pytest.approx(float(fisher_rao(p, q)), rel=1e-5)


def test_entropy():
    v = 1000
    assert float(lens_entropy(torch.zeros(1, v))[0]) == pytest.approx(math.log(v), rel=1e-6)
    z = torch.randn(4, 50, dtype=torch.float64)
    p = torch.softmax(z, -1)
    torch.testing.assert_close(lens_entropy(z), -(p * p.log()).sum(-1))


def test_nan_logits_and_bad_shapes():
    z = torch.zeros(2, 5)
    z[1, 2] = float("nan")
    with pytest.raises(NumericsError, match="layer 7"):
        lens_step(torch.zeros(2, 5), z, what="layer 7")
    with pytest.raises(InputError):
        lens_step(torch.zeros(2, 5), torch.zeros(2, 6))
    with pytest.raises(InputError):
        fisher_rao(np.array([0.5, 0.5]), np.array([1.0, 0.0, 0.0]))


def test_accumulator_means_and_leave_one_out():
    rng = np.random.default_rng(4)
    acc = TransportAccumulator(3, 4)
    vals, groups = rng.uniform(size=100), rng.integers(0, 4, 100)
    acc.update(0, vals[:60], groups[:60])
    acc.update(0, vals[60:], groups[60:])
    assert acc.transport(0) == pytest.approx(vals.mean())
    assert acc.transport(0, leave_out=2) == pytest.approx(vals[groups != 2].mean())
    assert acc.transport(1) is None
    acc.update_entropy(2, vals, groups)
    assert acc.entropy(2) == pytest.approx(vals.mean())
    with pytest.raises(InputError):
        acc.update(2, vals, groups)  # no step out of the last layer
    b = TransportAccumulator(3, 4)
    b.load_state_dict(acc.state_dict())
    assert b.transport(0, 1) == acc.transport(0, 1)
