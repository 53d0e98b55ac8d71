"""Property-based tests (hypothesis) of the score math: invariances and bounds over random inputs.

Every property is checked against an independent computation (numpy SVD, an explicit softmax, an analytic value),
never against the function itself. Examples are kept few (fast on a 2-core machine); deadline off (shared CPU).
"""
import math

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spinal_nb.errors import InputError
from spinal_nb.frame import LENS_SCHEMA, SCHEMA, TraceFrame
from spinal_nb.params import SpinalParams
from spinal_nb.scores import (
    GramAccumulator,
    TransportAccumulator,
    fisher_rao,
    fisher_rao_sqrt,
    fit_tail,
    jackknife_interval,
    lens_entropy,
    lens_point,
    lens_point_,
    lens_step,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=15, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def distributions(draw, n: int = 3, vmin: int = 2, vmax: int = 40):
    """n probability vectors over the same vocabulary, some with zeros (sparse supports)."""
    v = draw(st.integers(vmin, vmax))
    out = []
    for _ in range(n):
        w = draw(hnp.arrays(np.float64, v, elements=st.floats(0, 1, allow_nan=False, width=64)))
        zero = draw(hnp.arrays(np.bool_, v))
        w = np.where(zero, 0.0, w)
        if w.sum() <= 0:
            w[draw(st.integers(0, v - 1))] = 1.0
        out.append(w / w.sum())
    return out


@st.composite
def logit_pairs(draw, nmax: int = 6, vmax: int = 50, unique: bool = False):
    n, v = draw(st.integers(1, nmax)), draw(st.integers(2, vmax))
    a = draw(hnp.arrays(np.float64, (n, v), elements=finite, unique=unique))
    b = draw(hnp.arrays(np.float64, (n, v), elements=finite, unique=unique))
    return torch.as_tensor(a), torch.as_tensor(b)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _bc_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Independent form: 2 arccos(sum sqrt(p q)), clipped (loses precision near 0, fine at these tolerances)."""
    return 2.0 * np.arccos(np.clip(np.sqrt(p * q).sum(-1), -1.0, 1.0))


# ----------------------------------------------------------------------------------------------------------------
# Fisher–Rao distance
# ----------------------------------------------------------------------------------------------------------------
@FAST
@given(distributions())
def test_fisher_rao_is_a_metric_on_the_simplex(ps):
    p, q, r = ps
    d_pq, d_qp = float(fisher_rao(p, q)), float(fisher_rao(q, p))
    assert d_pq == d_qp  # exactly symmetric
    assert 0.0 <= d_pq <= math.pi + 1e-15  # the exact bound is tested below
    assert float(fisher_rao(p, p)) == 0.0
    assert float(fisher_rao(p, r)) <= d_pq + float(fisher_rao(q, r)) + 1e-12
    assert d_pq == pytest.approx(float(_bc_distance(p, q)), abs=1e-6)


@FAST
@given(distributions(n=2))
def test_fisher_rao_is_pi_exactly_for_disjoint_supports(ps):
    p, q = ps
    v = p.size
    assume(v >= 2)
    half = v // 2
    a = np.zeros(v)
    b = np.zeros(v)
    a[:half] = p[:half] + 1e-3
    b[half:] = q[half:] + 1e-3
    assert float(fisher_rao(a / a.sum(), b / b.sum())) == pytest.approx(math.pi, abs=1e-12)


def test_fisher_rao_never_exceeds_pi():
    # unclamped, 4 asin(sqrt(2)/2) rounds to pi + 4.4e-16 (and pi + 6e-8 on float32 top-k input): docs/method.md says [0, pi]
    assert float(fisher_rao(np.array([1.0, 0.0]), np.array([0.0, 1.0]))) == math.pi
    z = torch.tensor([[0.0, -1e30]], dtype=torch.float64)
    assert float(lens_step(z, z.flip(-1))) == math.pi
    s, _ = lens_point(z)
    assert float(fisher_rao_sqrt(s, s.flip(-1))) == math.pi
    za, zb = torch.tensor([[18.0, 0.5, 0.25]]), torch.tensor([[-17.0, 0.25, 0.1875]])  # float32 top-k path
    assert float(lens_step(za, zb, temperature=0.5, top_k=2)) <= math.pi
    assert float(lens_step(za, zb, temperature=0.5, top_k=2)) == pytest.approx(math.pi, abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# lens step / entropy
# ----------------------------------------------------------------------------------------------------------------
@FAST
@given(logit_pairs(), st.floats(0.25, 4.0))
def test_lens_step_is_fisher_rao_of_the_tempered_softmax(zs, temperature):
    za, zb = zs
    got = lens_step(za, zb, temperature=temperature).numpy()
    p, q = _softmax(za.numpy() / temperature), _softmax(zb.numpy() / temperature)
    np.testing.assert_allclose(got, fisher_rao(p, q), atol=1e-9)
    np.testing.assert_allclose(got, _bc_distance(p, q), atol=1e-6)
    assert np.all((got >= 0) & (got <= math.pi))
    # symmetric, and temperature is the same as dividing the logits
    np.testing.assert_allclose(lens_step(zb, za, temperature=temperature).numpy(), got, atol=1e-12)
    np.testing.assert_allclose(lens_step(za / temperature, zb / temperature).numpy(), got, atol=1e-9)


@FAST
@given(logit_pairs(), hnp.arrays(np.float64, 6, elements=finite))
def test_lens_step_ignores_a_per_position_shift_of_the_logits(zs, shift):
    za, zb = zs
    c = torch.as_tensor(shift[: za.shape[0], None])
    np.testing.assert_allclose(lens_step(za + c, zb - c).numpy(), lens_step(za, zb).numpy(), atol=1e-9)


@FAST
@given(logit_pairs(unique=True), st.integers(1, 60), st.floats(0.5, 2.0))
def test_top_k_step_equals_renormalized_union_and_is_bounded(zs, k, temperature):
    za, zb = zs  # distinct logits: top-k sets are unambiguous (ties would make the union depend on the sort)
    v = za.shape[1]
    got = lens_step(za, zb, temperature=temperature, top_k=k).numpy()
    assert np.all((got >= 0) & (got <= math.pi))
    kk = min(k, v)
    for i in range(za.shape[0]):
        a, b = za[i].numpy() / temperature, zb[i].numpy() / temperature
        union = set(np.argsort(-a)[:kk]) | set(np.argsort(-b)[:kk])
        idx = np.array(sorted(union))
        ref = float(fisher_rao(_softmax(a[idx]), _softmax(b[idx])))
        assert got[i] == pytest.approx(ref, abs=1e-9)  # float64 logits stay float64 on the top-k path
    if k >= v:  # the union is everything: the exact step
        np.testing.assert_allclose(got, lens_step(za, zb, temperature=temperature).numpy(), atol=1e-12)


def test_top_k_covering_the_vocabulary_equals_the_exact_step_in_float64():
    # a small step (1e-3 logit noise): a float32 cast on the top-k path used to lose ~1% of it
    rng = np.random.default_rng(3)
    a = torch.as_tensor(rng.uniform(-30, 30, (4, 47)))
    b = a + torch.as_tensor(rng.normal(0, 1e-3, (4, 47)))
    got = lens_step(a, b, top_k=47)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), lens_step(a, b).numpy(), rtol=1e-9)
    # half precisions are computed in float32, float32 stays float32 (same numbers as the exact float32 path)
    np.testing.assert_allclose(lens_step(a.float(), b.float(), top_k=47).numpy(),
                               lens_step(a.float(), b.float()).numpy(), rtol=1e-12)


@FAST
@given(st.integers(1, 5), st.integers(2, 50), st.data())
def test_top_1_with_the_same_argmax_is_zero(n, v, data):
    za = torch.as_tensor(data.draw(hnp.arrays(np.float64, (n, v), elements=finite, unique=True)))
    zb = torch.as_tensor(data.draw(hnp.arrays(np.float64, (n, v), elements=finite)))
    top = za.argmax(-1)
    zb[torch.arange(n), top] = zb.max(-1).values + 1.0  # the same unique argmax in b
    np.testing.assert_allclose(lens_step(za, zb, top_k=1).numpy(), 0.0, atol=1e-12)


@FAST
@given(logit_pairs(), st.floats(0.25, 4.0))
def test_entropy_bounds_and_temperature(zs, temperature):
    za, _ = zs
    v = za.shape[1]
    h = lens_entropy(za, temperature).numpy()
    p = _softmax(za.numpy() / temperature)
    ref = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    np.testing.assert_allclose(h, ref, atol=1e-9)
    assert np.all(h >= -1e-12) and np.all(h <= math.log(v) + 1e-9)
    np.testing.assert_allclose(lens_entropy(torch.zeros(3, v, dtype=torch.float64)).numpy(), math.log(v), atol=1e-12)


@FAST
@given(logit_pairs(), st.floats(0.25, 4.0))
def test_lens_point_is_the_tempered_softmax_and_its_steps_equal_lens_step(zs, temperature):
    """The fused route of the tracer (one log_softmax per layer) against explicit softmaxes and the pair route."""
    za, zb = zs
    sa, ha = lens_point(za, temperature)
    sb, _ = lens_point(zb, temperature)
    p = _softmax(za.numpy() / temperature)
    np.testing.assert_allclose(sa.numpy() ** 2, p, atol=1e-12)
    assert sa.dtype == torch.float64 and ha.dtype == torch.float64
    ref = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    np.testing.assert_allclose(ha.numpy(), ref, atol=1e-9)
    np.testing.assert_allclose(ha.numpy(), lens_entropy(za, temperature).numpy(), atol=1e-12)
    got = fisher_rao_sqrt(sa, sb)
    np.testing.assert_allclose(got.numpy(), fisher_rao(p, _softmax(zb.numpy() / temperature)), atol=1e-9)
    np.testing.assert_allclose(got.numpy(), lens_step(za, zb, temperature).numpy(), atol=1e-12)
    assert np.all((got.numpy() >= 0) & (got.numpy() <= math.pi))


@FAST
@given(logit_pairs(), st.floats(0.25, 4.0), st.sampled_from([torch.float64, torch.float32]))
def test_in_place_lens_point_equals_lens_point(zs, temperature, dtype):
    """The tracer's buffered route (one exp per element, H = log Z - 2 sum e^2 y / Z) against the log_softmax route."""
    za = zs[0].to(dtype)
    s, h = lens_point(za, temperature)
    out, scratch = torch.empty_like(za), torch.empty_like(za)
    z = za.clone()
    h2 = lens_point_(z, out, scratch, temperature)
    assert h2.dtype == torch.float64 and out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    np.testing.assert_allclose(out.double().numpy(), s.double().numpy(), rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(h2.numpy(), h.numpy(), rtol=tol, atol=tol * 10)


@FAST
@given(logit_pairs(), st.data(), st.sampled_from([float("nan"), float("inf"), float("-inf")]),
       st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]))
def test_a_non_finite_logit_makes_exactly_its_rows_entropy_non_finite(zs, data, bad, dtype):
    """The tracer checks the [N] entropies instead of scanning [N, V] logits: the two tests must agree."""
    z = zs[0].clone()
    n, v = z.shape
    rows = data.draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True))
    for r in rows:
        z[r, data.draw(st.integers(0, v - 1))] = bad
    z = z.to(dtype)  # (finite float64 values may overflow to inf in float16: that row must be caught too)
    _, ent = lens_point(z)
    np.testing.assert_array_equal(torch.isfinite(ent).numpy(), torch.isfinite(z).all(-1).numpy())
    zf = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z.clone()
    ent2 = lens_point_(zf, torch.empty_like(zf), torch.empty_like(zf))
    np.testing.assert_array_equal(torch.isfinite(ent2).numpy(), torch.isfinite(z).all(-1).numpy())


# ----------------------------------------------------------------------------------------------------------------
# tail fit
# ----------------------------------------------------------------------------------------------------------------
windows = st.tuples(st.floats(0.0, 0.45), st.floats(0.55, 1.0))


@FAST
@given(st.floats(0.0, 3.0), st.floats(1e-3, 1e3), st.integers(40, 600), windows)
def test_fit_tail_recovers_any_power_law_exactly(a, c, r, window):
    k = np.arange(1, r + 1, dtype=float)
    fit = fit_tail(c * k ** -a, tail_window=window, floor=0.0)
    lo, hi = max(1, math.ceil(window[0] * r)), min(r, math.floor(window[1] * r))
    assume(hi - lo + 1 >= 8)
    assert fit.alpha == pytest.approx(a, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert (fit.k_lo, fit.k_hi, fit.n_points) == (lo, hi, hi - lo + 1)


@FAST
@given(hnp.arrays(np.float64, st.integers(10, 200), elements=st.floats(1e-3, 1e3)), st.floats(1e-6, 1e6),
       st.floats(0.3, 3.0), windows)
def test_fit_tail_rescale_and_power_invariance(raw, c, power, window):
    s = np.sort(raw)[::-1]
    base = fit_tail(s, tail_window=window, floor=0.0, min_points=2)
    assume(base.alpha is not None)
    scaled = fit_tail(c * s, tail_window=window, floor=0.0, min_points=2)
    assert scaled.alpha == pytest.approx(base.alpha, abs=1e-9)
    assert scaled.r2 == pytest.approx(base.r2, abs=1e-9)
    # log-linear: sigma^p has exponent p * alpha
    assert fit_tail(s ** power, tail_window=window, floor=0.0, min_points=2).alpha == pytest.approx(power * base.alpha,
                                                                                                abs=1e-8)
    assert base.r2 <= 1.0 + 1e-12


@FAST
@given(st.floats(0.5, 3.0), st.integers(20, 300), st.floats(1e-6, 1e-2))
def test_fit_tail_floor_drops_points_and_never_fits_noise(a, r, floor):
    k = np.arange(1, r + 1, dtype=float)
    s = k ** -a
    fit = fit_tail(s, floor=floor)
    kept = int(((k >= max(1, math.ceil(0.1 * r))) & (k <= math.floor(0.9 * r)) & (s > floor)).sum())
    assert fit.n_points == kept
    if kept < 8:
        assert fit.alpha is None and fit.reason
    else:
        assert fit.alpha == pytest.approx(a, abs=1e-9)


# ----------------------------------------------------------------------------------------------------------------
# Gram accumulator
# ----------------------------------------------------------------------------------------------------------------
@st.composite
def state_sets(draw):
    n, d, g = draw(st.integers(3, 60)), draw(st.integers(1, 12)), draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    offset = draw(st.sampled_from([0.0, 1.0, 1e4]))  # large shared mean: the residual-stream case
    x = offset + scale * rng.standard_normal((n, d)) * (np.arange(1, d + 1) ** -rng.uniform(0, 2))
    groups = rng.integers(0, g, n)
    cuts = sorted(set(rng.integers(0, n + 1, draw(st.integers(0, 5))).tolist()))
    return x, groups, g, cuts


def _svd_centered(x: np.ndarray) -> np.ndarray:
    if x.shape[0] < 2:
        return np.zeros(0)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    return s[: min(x.shape[0] - 1, x.shape[1])]


def _close_spectra(a, b, x):
    """Agreement up to float64 round-off of the Gram route (relative to the largest row norm squared)."""
    assert a.shape == b.shape
    tol = 1e-6 * max(1.0, float(np.abs(x - x.mean(0)).max()))
    np.testing.assert_allclose(a, b, atol=tol, rtol=1e-6)


@FAST
@given(state_sets())
def test_gram_spectrum_is_batch_split_invariant_and_equals_svd(sets):
    x, groups, g, cuts = sets
    one = GramAccumulator(1, x.shape[1], g)
    one.update(0, x, groups)
    split = GramAccumulator(1, x.shape[1], g)
    for lo, hi in zip([0] + cuts, cuts + [x.shape[0]], strict=True):
        split.update(0, x[lo:hi], groups[lo:hi])
    _close_spectra(split.spectrum(0), one.spectrum(0), x)
    _close_spectra(one.spectrum(0), _svd_centered(x), x)
    assert split.n_rows(0) == one.n_rows(0) == x.shape[0]


@FAST
@given(state_sets())
def test_gram_leave_one_group_out_equals_svd_without_it(sets):
    x, groups, g, cuts = sets
    acc = GramAccumulator(1, x.shape[1], g)
    for lo, hi in zip([0] + cuts, cuts + [x.shape[0]], strict=True):
        acc.update(0, x[lo:hi], groups[lo:hi])
    for gid in range(g):
        rest = x[groups != gid]
        _close_spectra(acc.spectrum(0, leave_out=gid), _svd_centered(rest), x)
        assert acc.n_rows(0, leave_out=gid) == rest.shape[0]
    # all groups at once (what finalize uses): the same spectra, with the full one alongside
    whole, parts = acc.spectra(0, list(range(g)))
    _close_spectra(whole, _svd_centered(x), x)
    for gid, part in enumerate(parts):
        _close_spectra(part, _svd_centered(x[groups != gid]), x)
    assert acc.spectra(0, [0], full=False)[0] is None


@FAST
@given(state_sets(), st.integers(0, 2**31 - 1))
def test_gram_spectrum_ignores_row_order_and_translation(sets, seed):
    x, groups, g, _ = sets
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x.shape[0])
    shift = rng.normal(size=x.shape[1]) * 10
    a = GramAccumulator(1, x.shape[1], g)
    a.update(0, x, groups)
    b = GramAccumulator(1, x.shape[1], g)
    b.update(0, x[perm] + shift, groups[perm])
    _close_spectra(a.spectrum(0), b.spectrum(0), x)


@FAST
@given(state_sets())
def test_gram_state_dict_round_trip_mid_stream(sets):
    x, groups, g, cuts = sets
    assume(cuts)
    full = GramAccumulator(1, x.shape[1], g)
    full.update(0, x, groups)
    first = GramAccumulator(1, x.shape[1], g)
    first.update(0, x[: cuts[0]], groups[: cuts[0]])
    second = GramAccumulator(1, x.shape[1], g)
    second.load_state_dict({k: v.copy() for k, v in first.state_dict().items()})
    second.update(0, x[cuts[0]:], groups[cuts[0]:])
    _close_spectra(second.spectrum(0), full.spectrum(0), x)


# ----------------------------------------------------------------------------------------------------------------
# transport accumulator and jackknife
# ----------------------------------------------------------------------------------------------------------------
@FAST
@given(hnp.arrays(np.float64, st.integers(1, 80), elements=st.floats(0, math.pi)), st.integers(2, 6),
       st.integers(0, 2**31 - 1))
def test_transport_means_split_invariant_and_leave_one_out(steps, g, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, g, steps.size)
    acc = TransportAccumulator(3, g)
    for part in np.array_split(np.arange(steps.size), rng.integers(1, 5)):
        acc.update(1, steps[part], groups[part])
    assert acc.transport(1) == pytest.approx(steps.mean(), abs=1e-12)
    for gid in range(g):
        rest = steps[groups != gid]
        got = acc.transport(1, leave_out=gid)
        assert (got is None) if rest.size == 0 else got == pytest.approx(rest.mean(), abs=1e-12)
    assert acc.transport(0) is None  # nothing added there


@FAST
@given(st.integers(2, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_update_all_equals_layer_by_layer_updates_bit_for_bit(n_layers, g, seed):
    rng = np.random.default_rng(seed)
    by_layer, at_once = TransportAccumulator(n_layers, g), TransportAccumulator(n_layers, g)
    for n in rng.integers(0, 30, rng.integers(1, 4)):
        groups = rng.integers(0, g, n)
        steps, ents = rng.uniform(0, math.pi, (n_layers - 1, n)), rng.uniform(0, 9, (n_layers, n))
        for layer in range(n_layers):
            by_layer.update_entropy(layer, ents[layer], groups)
            if layer < n_layers - 1:
                by_layer.update(layer, steps[layer], groups)
        at_once.update_all(torch.as_tensor(steps), torch.as_tensor(ents), torch.as_tensor(groups))
    for k, v in by_layer.state_dict().items():
        np.testing.assert_array_equal(at_once.state_dict()[k], v)
    with pytest.raises(InputError):
        at_once.update_all(np.zeros((n_layers, 3)), np.zeros((n_layers, 3)), np.zeros(3, int))


@FAST
@given(st.floats(-10, 10), hnp.arrays(np.float64, st.integers(2, 20), elements=st.floats(-10, 10)),
       st.floats(0.5, 0.99))
def test_jackknife_interval_brackets_the_estimate_and_widens_with_confidence(est, reps, conf):
    lo, hi = jackknife_interval(est, list(reps), conf)
    assert lo <= est <= hi
    assert hi - est == pytest.approx(est - lo, abs=1e-9)  # symmetric
    lo2, hi2 = jackknife_interval(est, list(reps), min(0.999, conf + 0.005))
    assert hi2 - lo2 >= hi - lo - 1e-12
    lo3, hi3 = jackknife_interval(est, [1.0] * reps.size, conf)
    assert lo3 == hi3 == est


# ----------------------------------------------------------------------------------------------------------------
# TraceFrame Parquet round trip
# ----------------------------------------------------------------------------------------------------------------
maybe_float = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))
names = st.text(min_size=1, max_size=12)


@st.composite
def frames(draw):
    ckpts = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    rows: dict[str, list] = {c: [] for c in SCHEMA}
    for c in ckpts:
        L = draw(st.integers(0, 4))
        step = draw(st.one_of(st.none(), st.integers(0, 10**6)))
        for layer in range(L + 1):
            for col, dtype in SCHEMA.items():
                if col == "checkpoint":
                    v = c
                elif col == "layer":
                    v = layer
                elif col == "depth":
                    v = layer / L if L else 0.0
                elif col == "step":
                    v = step
                elif dtype == pl.Int64:
                    v = draw(st.one_of(st.none(), st.integers(-(2**40), 2**40)))
                elif dtype == pl.String:
                    v = draw(st.one_of(st.none(), st.text(max_size=20)))
                elif isinstance(dtype, pl.List):
                    v = draw(st.lists(st.floats(allow_nan=True, width=64), max_size=6))
                else:
                    v = draw(maybe_float)
                rows[col].append(v)
    data = pl.DataFrame(rows, schema=SCHEMA)
    params = SpinalParams(top_k=draw(st.one_of(st.none(), st.integers(1, 100))),
                          n_groups=draw(st.integers(2, 20)))
    meta = {"params": params.to_dict(),
            "checkpoints": {c: {"model": draw(st.text(max_size=10)), "n_prompts": draw(st.integers(0, 10**6)),
                                "extra": {"note": draw(st.text(max_size=10)),
                                          "values": draw(st.lists(st.floats(-1e6, 1e6), max_size=3))}}
                            for c in ckpts}}
    lens = None
    if draw(st.booleans()):
        n = draw(st.integers(1, 5))
        lens = pl.DataFrame({
            "checkpoint": [ckpts[0]] * n, "prompt_index": list(range(n)),
            "prompt": draw(st.lists(st.text(max_size=15), min_size=n, max_size=n)),
            "position": list(range(n)), "token": draw(st.lists(st.text(max_size=5), min_size=n, max_size=n)),
            "layer": [0] * n, "rank": [1] * n, "token_id": list(range(n)),
            "lens_token": draw(st.lists(st.text(max_size=5), min_size=n, max_size=n)),
            "prob": draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))}, schema=LENS_SCHEMA)
    return TraceFrame(data, meta, lens)


@SLOWER
@given(frames())
def test_parquet_round_trip_of_random_frames_is_exact(tmp_path, tf):
    path = tf.to_parquet(tmp_path / "f.parquet")
    back = TraceFrame.read_parquet(path)
    assert back == tf
    assert back.data.equals(tf.data, null_equal=True)  # NaN, ±inf, nulls and unicode survive bit for bit
    assert back.checkpoints == tf.checkpoints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]
