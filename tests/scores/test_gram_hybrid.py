"""GramAccumulator's hybrid storage (rows while a group has fewer than d, its Gram from then on) changes no number
beyond float64 rounding, round-trips through numpy arrays mid-stream, and holds min(N_g, d) * d values per group.

The reference is the pre-hybrid math written out in numpy: shift by the first batch's mean, one float64 Gram per
group summed batch by batch, centered (or unshifted) Gram, eigvalsh. Spectra are compared at the accuracy any float64
Gram or kernel eigen-solver has: |sigma_k^2 - ref_k^2| <= 1e-12 * ref_1^2 for every k, 1e-10 relative on the top
value; for centered spectra also 1e-9 relative over the fit's tail window and on alpha.
"""
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinal_nb.errors import InputError
from spinal_nb.scores import GramAccumulator, fit_tail


def dense_reference(batches, d, n_groups, center=True, row_normalize=False):
    """(whole, [leave group g out for every g]) spectra by the per-group Gram math, in numpy."""
    gram, colsum, count, shift = np.zeros((n_groups, d, d)), np.zeros((n_groups, d)), np.zeros(n_groups, int), None
    for x, g in batches:
        x = np.asarray(x, np.float64)
        if x.shape[0] == 0:
            continue
        if row_normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
        shift = x.mean(0) if shift is None else shift
        x = x - shift
        for gid in np.unique(g):
            xg = x[g == gid]
            gram[gid] += xg.T @ xg
            colsum[gid] += xg.sum(0)
            count[gid] += xg.shape[0]

    def spectrum(keep):
        gm, s, n = gram[keep].sum(0), colsum[keep].sum(0), int(count[keep].sum())
        if n < 2:
            return np.zeros(0)
        if center:
            m = s / n
            c, r = gm - n * np.outer(m, m), min(n - 1, d)
        else:
            c = gm + np.outer(shift, s) + np.outer(s, shift) + n * np.outer(shift, shift)
            r = min(n, d)
        return np.sqrt(np.linalg.eigvalsh(0.5 * (c + c.T))[::-1].clip(0)[:r])

    every = np.ones(n_groups, bool)
    return spectrum(every), [spectrum(np.arange(n_groups) != g) for g in range(n_groups)]


def residual_like(rng, n, d, alpha=1.0, offset=1e3):
    """Power-law spectrum in a random basis on top of a large shared mean (the residual-stream case), float32."""
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    x = offset + (rng.standard_normal((n, d)) * np.arange(1, d + 1) ** -alpha) @ basis
    return x.astype(np.float32).astype(np.float64)


def skewed_groups(rng, n, n_groups):
    """Group sizes halving from group to group: some groups pass d while others stay below."""
    p = 0.5 ** np.arange(n_groups)
    return rng.choice(n_groups, size=n, p=p / p.sum())


def split(x, groups, cuts):
    edges = [0, *sorted(cuts), x.shape[0]]
    return [(x[a:b], groups[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def assert_same_spectrum(got, ref, center):
    assert got.shape == ref.shape
    if ref.size == 0:
        return
    assert abs(got[0] - ref[0]) <= 1e-10 * ref[0]
    np.testing.assert_array_less(np.abs(got**2 - ref**2), 1e-12 * ref[0] ** 2 + 1e-300)
    if center:
        r = ref.size
        lo, hi = max(1, math.ceil(0.1 * r)), math.floor(0.9 * r)
        tail = slice(lo - 1, hi)
        np.testing.assert_allclose(got[tail], ref[tail], rtol=1e-9, atol=0)
        a, b = fit_tail(got).alpha, fit_tail(ref).alpha
        assert (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-9)


def feed(acc, batches, layer=0):
    for x, g in batches:
        acc.update(layer, x, g)


def storage_kinds(acc, layer=0):
    """'rows' / 'gram' / 'empty' per group, from the accumulator's own layout."""
    return ["gram" if acc._gram[layer][g] is not None else ("rows" if acc._n[layer][g] else "empty")
            for g in range(acc.n_groups)]


# (n rows, d, n groups): N < d (kernel route everywhere), groups crossing d mid-stream next to groups that do not,
# every group past d, and N just below / at d
SCENARIOS = [(60, 96, 5), (300, 96, 5), (700, 96, 10), (95, 96, 3), (96, 96, 3), (2000, 64, 10)]


@pytest.mark.parametrize("n,d,n_groups", SCENARIOS)
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("row_normalize", [False, True])
def test_hybrid_spectra_equal_the_dense_reference(n, d, n_groups, center, row_normalize):
    rng = np.random.default_rng(n * 7 + d + n_groups)
    x = residual_like(rng, n, d)
    groups = skewed_groups(rng, n, n_groups)
    batches = split(x, groups, rng.choice(np.arange(1, n), size=7, replace=False))
    ref_whole, ref_parts = dense_reference(batches, d, n_groups, center, row_normalize)
    for kernel in (True, False):
        acc = GramAccumulator(1, d, n_groups, row_normalize=row_normalize, kernel=kernel)
        feed(acc, batches)
        whole, parts = acc.spectra(0, list(range(n_groups)), center=center)
        assert_same_spectrum(whole, ref_whole, center)
        for got, ref in zip(parts, ref_parts, strict=True):
            assert_same_spectrum(got, ref, center)
        for g in (0, n_groups - 1):  # the one-group call gives the same numbers
            np.testing.assert_array_equal(acc.spectrum(0, leave_out=g, center=center), parts[g])
        kinds = storage_kinds(acc)
        sizes = np.bincount(groups, minlength=n_groups)
        assert kinds == ["gram" if s >= d else ("rows" if s else "empty") for s in sizes]
    if n >= 300:
        assert {"rows", "gram"} <= set(kinds)  # these scenarios really mix both forms


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 40), st.integers(1, 400), st.integers(1, 6), st.lists(st.integers(1, 399), max_size=8),
       st.integers(0, 2**31 - 1), st.booleans())
def test_hybrid_equals_reference_for_any_split(d, n, n_groups, cuts, seed, center):
    rng = np.random.default_rng(seed)
    x = residual_like(rng, n, d, alpha=rng.uniform(0.3, 1.5), offset=float(rng.choice([0.0, 10.0, 1e3])))
    groups = skewed_groups(rng, n, n_groups) if seed % 2 else rng.integers(0, n_groups, n)
    batches = split(x, groups, sorted({c for c in cuts if c < n}))
    ref_whole, ref_parts = dense_reference(batches, d, n_groups, center)
    acc = GramAccumulator(1, d, n_groups)
    feed(acc, batches)
    whole, parts = acc.spectra(0, list(range(n_groups)), center=center)
    assert_same_spectrum(whole, ref_whole, center)
    for got, ref in zip(parts, ref_parts, strict=True):
        assert_same_spectrum(got, ref, center)
    assert acc.n_rows(0) == n


def test_hybrid_equals_the_svd_of_the_stacked_rows():
    rng = np.random.default_rng(11)
    d, n, n_groups = 48, 150, 4  # groups of ~37 rows (rows) and one of > 48 (Gram)
    x = residual_like(rng, n, d, offset=50.0)
    groups = np.r_[np.zeros(60, int), rng.integers(1, n_groups, n - 60)]
    acc = GramAccumulator(1, d, n_groups)
    feed(acc, split(x, groups, [7, 61, 100]))
    assert storage_kinds(acc) == ["gram", "rows", "rows", "rows"]
    for out in [None, *range(n_groups)]:
        keep = x if out is None else x[groups != out]
        ref = np.linalg.svd(keep - keep.mean(0), compute_uv=False)[: min(keep.shape[0] - 1, d)]
        np.testing.assert_allclose(acc.spectrum(0, leave_out=out), ref, rtol=1e-9, atol=1e-9 * ref[0])


def test_a_group_switches_to_its_gram_at_exactly_d_rows_even_inside_one_batch():
    d = 8
    rng = np.random.default_rng(2)
    acc = GramAccumulator(1, d, 2)
    acc.update(0, rng.normal(size=(5, d)), np.zeros(5, int))
    assert storage_kinds(acc) == ["rows", "empty"]
    acc.update(0, rng.normal(size=(3, d)), np.zeros(3, int))  # 5 + 3 = d: the Gram from now on
    assert storage_kinds(acc) == ["gram", "empty"]
    acc.update(0, rng.normal(size=(9, d)), np.r_[np.ones(7, int), np.zeros(2, int)])  # group 1 jumps 0 -> 7
    assert storage_kinds(acc) == ["gram", "rows"]
    assert acc.storage_bytes(0) == (d * d + 7 * d) * 8


def _saved(acc):
    """state_dict -> np.savez -> np.load(allow_pickle=False): what the tracer's checkpoint does."""
    buf = io.BytesIO()
    np.savez(buf, **acc.state_dict())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("cut", [40, 130, 260])  # all rows / mixed / all Grams at the interruption
@pytest.mark.parametrize("row_normalize", [False, True])
def test_state_dict_round_trip_mid_stream_equals_no_interruption(cut, row_normalize):
    rng = np.random.default_rng(cut)
    d, n_layers, n_groups = 24, 2, 4
    xs = [residual_like(rng, 300, d) for _ in range(n_layers)]
    groups = rng.integers(0, n_groups, 300)
    cuts = [17, cut, 200, 251]
    full = GramAccumulator(n_layers, d, n_groups, row_normalize=row_normalize)
    first = GramAccumulator(n_layers, d, n_groups, row_normalize=row_normalize)
    for layer in range(n_layers):
        feed(full, split(xs[layer], groups, cuts), layer)
        feed(first, split(xs[layer][:cut], groups[:cut], [17]), layer)
    state = _saved(first)
    assert all(v.dtype != object for v in state.values())
    second = GramAccumulator(n_layers, d, n_groups, row_normalize=row_normalize)
    second.load_state_dict(state)
    assert storage_kinds(second, 1) == storage_kinds(first, 1)
    assert second.storage_bytes() == first.storage_bytes()
    for layer in range(n_layers):
        feed(second, split(xs[layer][cut:], groups[cut:], [c - cut for c in cuts if c > cut]), layer)
    # The two runs cut the stream into different batches, so their Gram sums add the same products in another order:
    # equal to float64 rounding, not bit for bit (BLAS kernels, hence summation orders, differ between CPUs; the
    # AVX-512 kernels gave 5e-15 relative here). A Gram eigen-solver is accurate to eps * sigma_1^2 on every
    # sigma_k^2, so: |sigma_k^2 - ref_k^2| <= 1e-13 * ref_1^2 (tests/scores/test_blas_paths.py reruns this on
    # other kernels), and the state to 1e-13 relative.
    for layer in range(n_layers):
        for center in (True, False):
            a, pa = full.spectra(layer, list(range(n_groups)), center=center)
            b, pb = second.spectra(layer, list(range(n_groups)), center=center)
            for u, v in zip([a, *pa], [b, *pb], strict=True):
                assert u.shape == v.shape
                np.testing.assert_array_less(np.abs(v**2 - u**2), 1e-13 * u[0] ** 2 + 1e-300)
    state_full, state_second = full.state_dict(), second.state_dict()
    assert state_full.keys() == state_second.keys()
    for k, v in state_full.items():
        if v.dtype.kind in "biu":  # storage kinds and counts are exact integers
            np.testing.assert_array_equal(state_second[k], v, err_msg=k)
        else:
            np.testing.assert_allclose(state_second[k], v, rtol=1e-13, atol=1e-13 * max(np.abs(v).max(initial=0), 1e-300),
                                       err_msg=k)


def _held_bytes(acc, layer):
    """Bytes of the storages behind the accumulator's row and Gram tensors (catches views of larger buffers)."""
    tensors = [t for g in range(acc.n_groups) for t in acc._rows[layer][g]]
    tensors += [t for t in acc._gram[layer] if t is not None]
    return sum(t.untyped_storage().nbytes() for t in tensors)


def test_memory_is_n_times_d_below_d_rows_per_group_and_never_above_the_old_grams():
    rng = np.random.default_rng(5)
    d, n_layers, n_groups = 64, 3, 10
    acc = GramAccumulator(n_layers, d, n_groups)
    n = 0
    for step in range(12):  # 12 batches of 8 prompts x 3..7 tokens: every group stays below d = 64 rows
        prompts = np.arange(step * 8, step * 8 + 8)
        groups = np.repeat(prompts % n_groups, rng.integers(3, 8, 8))
        x = torch.randn(groups.size, d, dtype=torch.float32) + 30
        for layer in range(n_layers):
            acc.update(layer, x, groups)
        n += groups.size
    assert max(acc.count[0].tolist()) < d
    for layer in range(n_layers):
        assert acc.storage_bytes(layer) == _held_bytes(acc, layer) == n * d * 8
    acc.spectra(1, list(range(n_groups)))  # joining the chunks at finalize keeps the same amount
    assert acc.storage_bytes(1) == _held_bytes(acc, 1) == n * d * 8
    assert acc.state_dict()["rows"].shape == (n_layers * n, d)
    x = torch.randn(700, d) + 30
    groups = torch.arange(700) % 7  # groups 0-6 cross d, 7-9 stay below
    for layer in range(n_layers):
        acc.update(layer, x, groups)
    per_group = acc.count[0].tolist()
    expect = sum(d * d if c >= d else c * d for c in per_group) * 8
    for layer in range(n_layers):
        assert acc.storage_bytes(layer) == _held_bytes(acc, layer) == expect
    assert expect < n_groups * d * d * 8  # the pre-hybrid layout: one d x d Gram per group


def test_old_or_inconsistent_state_is_refused_with_a_clear_error():
    acc = GramAccumulator(2, 4, 3)
    old = {"gram": np.zeros((2, 3, 4, 4)), "colsum": np.zeros((2, 3, 4)), "count": np.zeros((2, 3), np.int64),
           "shift": np.zeros((2, 4)), "has_shift": np.zeros(2, bool)}  # the layout before hybrid storage
    with pytest.raises(InputError, match="delete the folder"):
        acc.load_state_dict(old)
    good = GramAccumulator(2, 4, 3)
    good.update(0, np.random.default_rng(0).normal(size=(5, 4)), np.arange(5) % 3)
    state = good.state_dict()
    with pytest.raises(InputError, match="inconsistent"):
        acc.load_state_dict({**state, "rows": state["rows"][:-1]})
    with pytest.raises(InputError, match="inconsistent"):
        acc.load_state_dict({**state, "is_gram": np.ones((2, 3), bool)})
    acc.load_state_dict(state)
    np.testing.assert_array_equal(acc.spectrum(0), good.spectrum(0))


def test_switching_groups_hand_their_freed_rows_back(monkeypatch):
    """Every _TRIM_AFTER bytes of switched rows the freed heap goes back to the OS (glibc: malloc_trim)."""
    import sys

    import spinal_nb.scores.contraction as contraction

    calls = []
    monkeypatch.setattr(contraction, "_TRIM_AFTER", 3 * 8 * 8 * 8)  # three switched 8 x 8 groups
    monkeypatch.setattr(contraction, "_TRIM_EVERY", 1e9)  # the periodic trim later in this test
    real = contraction._return_freed_heap
    monkeypatch.setattr(contraction, "_return_freed_heap", lambda: calls.append(1) or real())
    acc = GramAccumulator(1, 8, 7)
    for g in range(7):  # one group switches per update; the trim comes at the end of an update
        acc.update(0, np.random.default_rng(g).normal(size=(8, 8)), np.full(8, g))
    assert storage_kinds(acc) == ["gram"] * 7 and len(calls) == 2 and acc._freed == 8 * 8 * 8
    monkeypatch.setattr(contraction, "_TRIM_EVERY", 0.0)  # once groups have switched, later updates trim too
    acc.update(0, np.ones((2, 8)), np.zeros(2, int))
    assert len(calls) == 3 and acc._freed == 0
    fresh = GramAccumulator(1, 8, 7)  # ... but not before any group has switched
    fresh.update(0, np.ones((2, 8)), np.zeros(2, int))
    assert len(calls) == 3
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert contraction._malloc_trim  # found, and called above without error
