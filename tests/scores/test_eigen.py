"""The eigen-solvers of finalize (spinal_nb.scores.eigen) give the serial numpy path's spectra within float64 rounding.

Tolerance: every eigenvalue λ = σ² within 1e-12 · λ_max of the serial one (backward-stable solvers differ by
O(d · eps · λ_max); d ≤ 64 here, so this is ~100x that bound's constant), α within 1e-9 relative.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spinal_nb.errors import InputError
from spinal_nb.params import SpinalParams
from spinal_nb.scores import GramAccumulator, TransportAccumulator, eigen, finalize, fit_tail
from spinal_nb.scores.eigen import ThreadSolver, TorchSolver

TOL = 1e-12


def _acc(n_rows: int, d: int = 48, groups: int = 6, seed: int = 0) -> GramAccumulator:
    """Rows with a power-law spectrum (the shape finalize fits) and a large shared mean, fed in several batches."""
    rng = np.random.default_rng(seed)
    acc = GramAccumulator(n_layers=3, d=d, n_groups=groups)
    scale = np.arange(1, d + 1) ** -0.8
    for layer in range(3):
        x = rng.standard_normal((n_rows, d)) * scale * (layer + 1) + 50.0
        g = rng.integers(0, groups, n_rows)
        for part in np.array_split(np.arange(n_rows), 3):
            acc.update(layer, x[part], g[part])
    return acc


def _assert_close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    lam_a, lam_b = a**2, b**2
    assert np.max(np.abs(lam_a - lam_b), initial=0.0) <= TOL * max(float(lam_b.max(initial=0.0)), 1e-300)


def _all_spectra(acc: GramAccumulator, solver) -> list:
    out = []
    with solver:
        for layer in range(acc.n_layers):
            out.append(acc.spectra(layer, acc.nonempty_groups(layer), solver=solver))
    return out


# 600 rows: every group stored as its Gram; 30: the kernel route (N < d); 150: groups of ~25 rows < d, total > d
@pytest.mark.parametrize("n_rows", [600, 30, 150])
@pytest.mark.parametrize("make", [lambda: ThreadSolver(2), lambda: ThreadSolver(3), lambda: TorchSolver(batch=3),
                                  lambda: TorchSolver()], ids=["threads2", "threads3", "torch-batch3", "torch-auto"])
def test_solvers_match_the_serial_numpy_path(n_rows, make):
    acc = _acc(n_rows)
    ref = _all_spectra(acc, ThreadSolver(1))
    new = _all_spectra(acc, make())
    for (w0, p0), (w1, p1) in zip(ref, new, strict=True):
        _assert_close(w1, w0)
        assert len(p1) == len(p0) == 6
        for a, b in zip(p1, p0, strict=True):
            _assert_close(a, b)
    # and the serial path is the pre-solver one: σ² are the eigenvalues of the centered Gram, computed here directly
    assert ref[0][0].size == min(n_rows - 1, acc.d)


def test_serial_solver_is_the_direct_computation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 32)) * np.arange(1, 33) ** -0.5
    acc = GramAccumulator(n_layers=1, d=32, n_groups=4)
    g = np.arange(200) % 4
    acc.update(0, x, g)
    whole, parts = acc.spectra(0, [0, 1, 2, 3], solver=TorchSolver(batch=2))
    xc = x - x.mean(0)
    _assert_close(whole, np.linalg.svd(xc, compute_uv=False))
    keep = x[g != 2]
    _assert_close(parts[2], np.linalg.svd(keep - keep.mean(0), compute_uv=False))


@pytest.mark.parametrize("workers", [2, 4])
def test_finalize_on_threads_equals_serial(workers):
    acc = _acc(900, d=64, groups=10, seed=1)
    tr = TransportAccumulator(3, 10)
    rng = np.random.default_rng(2)
    for layer in range(3):
        if layer < 2:
            tr.update(layer, rng.random(90), np.arange(90) % 10)
        tr.update_entropy(layer, rng.random(90), np.arange(90) % 10)
    params = SpinalParams(n_groups=10)
    a = finalize(acc, tr, params, workers=1)
    b = finalize(acc, tr, params, workers=workers)
    assert a["contraction"][0] is not None
    np.testing.assert_allclose(b["contraction"], a["contraction"], rtol=1e-9)
    np.testing.assert_allclose(np.array(b["contraction_jk"]), np.array(a["contraction_jk"]), rtol=1e-9)
    np.testing.assert_allclose(b["contraction_lo"], a["contraction_lo"], rtol=1e-9)
    assert b["transport"] == a["transport"] and b["entropy_jk"] == a["entropy_jk"]  # untouched by the solver


def test_cuda_out_of_memory_falls_back_to_the_cpu(monkeypatch):
    acc = _acc(600)
    ref = _all_spectra(acc, ThreadSolver(1))

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
    monkeypatch.setattr(torch.linalg, "eigvalsh", oom)
    with pytest.warns(RuntimeWarning, match="Out of device memory"):
        new = _all_spectra(acc, TorchSolver(batch=4))
    for (w0, p0), (w1, p1) in zip(ref, new, strict=True):
        _assert_close(w1, w0)
        for a, b in zip(p1, p0, strict=True):
            _assert_close(a, b)


def test_thread_solver_caps_blas_threads_inside_the_pool():
    if not eigen.blas_limit_available():
        pytest.skip("no threadpoolctl and no OpenBLAS entry point in this numpy: ThreadSolver stays serial")
    fns = eigen._openblas_setter()
    if fns is None:
        pytest.skip("threadpoolctl caps BLAS; numpy's OpenBLAS entry points are not exposed to check it")
    get, _ = fns
    before = get()
    solver = ThreadSolver(2)
    with solver:
        inside = get()
    assert inside == max(1, eigen.cpu_count() // 2)
    assert get() == before


def test_bad_workers_are_refused():
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(InputError, match="workers"):
            ThreadSolver(bad)


def test_eigenvalues_below_the_gram_resolution_are_reported_zero():
    """resolved_sqrt: an eigenvalue at most n·ε·Σ|λ| (what a float64 Gram resolves) is 0, of either sign; every
    other one is its exact square root (the cut removes rounding, never data)."""
    n, eps = 50, np.finfo(np.float64).eps
    ev = np.r_[np.geomspace(4.0, 1e-3, 40), np.zeros(10)]
    ev[40:] = n * eps * ev[:40].sum() * np.linspace(0.9, -0.9, 10)  # rounding-level values, as a solver returns them
    tol = n * eps * np.abs(ev).sum()
    got = eigen.resolved_sqrt(ev)
    np.testing.assert_array_equal(got[:40], np.sqrt(ev[:40]))
    assert (got[40:] == 0.0).all() and ev[40] > 0.8 * tol  # the largest rounding value is near the cut, still 0
    above = ev.copy()
    above[40] = 1.01 * tol * (1 + 1e-3)
    assert eigen.resolved_sqrt(above)[40] == np.sqrt(above[40])
    batch = eigen.resolved_sqrt(np.stack([ev, above]))  # the batched (torch solver) path cuts row by row
    np.testing.assert_array_equal(batch[0], got)
    assert batch[1][40] > 0


@pytest.mark.parametrize("n_rows", [90, 300])  # kernel route (N < d) and Gram route
def test_repeated_rows_leave_exact_zeros_and_the_alpha_of_an_svd(n_rows):
    """Rows repeated exactly (a prompt prefix shared by several prompts): the spectrum beyond the distinct rows' rank
    is 0, not rounding, and α equals that of a float64 SVD of the centered rows."""
    d, rng = 128, np.random.default_rng(n_rows)
    distinct = rng.standard_normal((n_rows // 3, d)) * np.arange(1, d + 1) ** -0.3 + 20.0
    x = np.repeat(distinct, 3, axis=0).astype(np.float32)[rng.permutation(n_rows)]
    acc = GramAccumulator(n_layers=1, d=d, n_groups=5)
    for part in np.array_split(np.arange(n_rows), 4):
        acc.update(0, torch.from_numpy(x[part]), torch.from_numpy(part % 5))
    got = acc.spectrum(0)
    h = x.astype(np.float64)
    ref = np.linalg.svd(h - h.mean(0), compute_uv=False)[:got.size]
    true_rank = min(n_rows // 3 - 1, d)
    assert (got[true_rank:] == 0.0).all()
    np.testing.assert_allclose(got[:true_rank], ref[:true_rank], rtol=1e-8)
    a, b = fit_tail(got).alpha, fit_tail(ref).alpha
    assert a is not None and abs(a - b) <= 1e-9 * abs(b)
