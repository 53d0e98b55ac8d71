"""LensEngine (capture/lens.py): the buffered, layer-stacked lens equals the plain per-layer lens, whatever the
chunking, and its buffers do not grow with the batch."""
import pytest
import torch
from support import make_model

import spinal_nb.capture.lens as lens_mod
from spinal_nb.capture.architectures import lens_logits, resolve_architecture
from spinal_nb.capture.lens import LensEngine

FAMILIES = ("llama", "gpt2", "gemma2", "cohere", "granite", "opt", "phi")  # plain, softcap, scale, divisor, proj, bias


def _reference(model, arch, rows, temperature=1.0):
    """Per layer, in float64: softmax of the model's own lens logits, steps as 2 arccos(BC), entropies."""
    ps = [torch.softmax(lens_logits(model, arch, h).double() / temperature, -1) for h in rows]
    ents = torch.stack([-(p * p.clamp_min(1e-300).log()).sum(-1) for p in ps])
    steps = torch.stack([2 * torch.acos((a * b).sqrt().sum(-1).clamp(max=1.0)) for a, b in zip(ps[:-1], ps[1:], strict=True)])
    return steps, ents


def _rows(model, n, seed=0, dtype=None):
    g = torch.Generator().manual_seed(seed)
    d = model.config.hidden_size
    n_layers = model.config.num_hidden_layers + 1
    return [(3.0 * torch.randn(n, d, generator=g)).to(dtype or next(model.parameters()).dtype)
            for _ in range(n_layers)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("rows_budget,mm_rows", [(1 << 22, 256), (7 * 256, 16), (5 * 256, 11)])
def test_engine_equals_the_per_layer_lens(family, rows_budget, mm_rows, monkeypatch):
    """Several chunks of positions and several layers per matmul (k not dividing L + 1) change nothing."""
    monkeypatch.setitem(lens_mod._ROWS_BUDGET, "cpu", rows_budget)
    monkeypatch.setattr(lens_mod, "_MATMUL_ROWS", mm_rows)
    model = make_model(family)
    arch = resolve_architecture(model)
    rows = _rows(model, 23)
    vocab = lens_logits(model, arch, rows[0][:1]).shape[-1]
    chunk, k = LensEngine(model, arch)._plan(23, len(rows), vocab, torch.device("cpu"))
    if rows_budget < 1 << 22:
        assert chunk < 23 and 1 < k < len(rows)  # the test really splits positions and stacks layers unevenly
    with torch.no_grad():
        steps, ents = LensEngine(model, arch, temperature=0.7).reduce(rows)
        want_s, want_e = _reference(model, arch, rows, temperature=0.7)
    assert steps.dtype == ents.dtype == torch.float64
    assert steps.shape == (len(rows) - 1, 23) and ents.shape == (len(rows), 23)
    torch.testing.assert_close(ents, want_e, rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(steps, want_s, rtol=1e-4, atol=2e-5)  # the reference's arccos form is the coarse one


def test_float64_model_is_exact():
    model = make_model("llama", dtype=torch.float64)
    arch = resolve_architecture(model)
    rows = _rows(model, 17, seed=3)
    with torch.no_grad():
        steps, ents = LensEngine(model, arch).reduce(rows)
        ps = [torch.softmax(lens_logits(model, arch, h), -1) for h in rows]
    torch.testing.assert_close(ents, torch.stack([-(p * p.log()).sum(-1) for p in ps]), rtol=1e-12, atol=1e-13)
    hell = torch.stack([(a.sqrt() - b.sqrt()).norm(dim=-1) for a, b in zip(ps[:-1], ps[1:], strict=True)])
    torch.testing.assert_close(steps, 4 * torch.asin(hell / 2), rtol=1e-11, atol=1e-13)


def test_half_precision_model_takes_the_generic_route_in_float32():
    model = make_model("llama", dtype=torch.bfloat16)
    arch = resolve_architecture(model)
    engine = LensEngine(model, arch)
    assert not engine.linear and engine.dtype == torch.float32
    rows = _rows(model, 9, seed=5)
    with torch.no_grad():
        steps, ents = engine.reduce(rows)
        want_s, want_e = _reference(model, arch, rows)  # the bf16 logits, softmax in float64
    torch.testing.assert_close(ents, want_e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(steps, want_s, rtol=1e-4, atol=2e-5)


def test_buffers_are_reused_and_do_not_grow_with_the_batch(monkeypatch):
    monkeypatch.setitem(lens_mod._ROWS_BUDGET, "cpu", 8 * 256)
    model = make_model("llama")
    arch = resolve_architecture(model)
    engine = LensEngine(model, arch)
    with torch.no_grad():
        engine.reduce(_rows(model, 40, seed=1))
        sizes = {k: (b.numel(), b.data_ptr()) for k, b in engine._buf.items()}
        assert set(sizes) == {"z", "s0", "s1", "scratch"}
        steps, ents = engine.reduce(_rows(model, 400, seed=2))  # 10x wider batch: same buffers, same memory
        assert {k: (b.numel(), b.data_ptr()) for k, b in engine._buf.items()} == sizes
        s1, e1 = LensEngine(model, arch).reduce(_rows(model, 400, seed=2))  # and the same numbers as a fresh one
    torch.testing.assert_close(steps, s1, rtol=0, atol=0)
    torch.testing.assert_close(ents, e1, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_state_makes_exactly_its_rows_entropy_non_finite(bad):
    """The tracer's NaN/Inf check reads the entropies: a bad logit must show there, and only in its own row."""
    model = make_model("llama")
    arch = resolve_architecture(model)
    rows = _rows(model, 6, seed=4)
    for layer, r in ((0, 0), (1, 2), (2, 2), (2, 5)):
        rows[layer][r, 3] = bad
    with torch.no_grad():
        _, ents = LensEngine(model, arch).reduce(rows)
        z = torch.stack([lens_logits(model, arch, h) for h in rows])
    finite = torch.isfinite(z).all(-1)
    assert finite.sum() == finite.numel() - 4
    assert torch.equal(torch.isfinite(ents), finite)
