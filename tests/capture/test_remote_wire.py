"""The lighter NDIF wire format (capture.batch.capture_remote / unpack_wire), through nnsight's offline simulation of
the remote request (remote="local"): the states come back as XOR-with-previous-layer byte planes and the lens as
float32 squared Hellinger sums and entropies; what is rebuilt locally must be the very bits the previous format
carried — the model's own states (equal to the local capture) and the float64 steps/entropies computed with the
server's operations in the server's order (an independent re-computation here). Tolerance: none (bit equality; the
same operations run in the same order on the same device).
"""
from __future__ import annotations

import io
import math

import nnsight
import pytest
import torch
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture.architectures import lens_logits, resolve_architecture
from spinal_nb.capture.batch import capture_local, capture_remote
from spinal_nb.capture.load import forward_kwargs
from spinal_nb.capture.positions import make_batch
from spinal_nb.params import SpinalParams


def _batch(tok, n=7, seed=4):
    ids = [tok(t)["input_ids"] for t in make_prompts(n, seed=seed)]
    return make_batch(ids, list(range(n)), pad_id=1, skip_first=1, stride=1, n_groups=10)


def _old_lens(raw, arch, rows):
    """The previous server body's float64 steps and entropies, recomputed here with the same operations."""
    steps, ents, prev_sq = [], [], None
    for h in rows:
        z = lens_logits(raw, arch, h)
        z = z if z.dtype in (torch.float32, torch.float64) else z.float()
        lp = torch.log_softmax(z, dim=-1)
        sq = lp.mul(0.5).exp_()
        ents.append(-(sq * sq).mul_(lp).sum(-1).to(torch.float64))
        if prev_sq is not None:
            hell = (prev_sq - sq).square_().sum(-1).to(torch.float64).sqrt()
            steps.append((4.0 * torch.asin((hell / 2.0).clamp(max=1.0))).clamp(0.0, math.pi))
        prev_sq = sq
    return steps, ents


@pytest.mark.parametrize("family,dtype", [("llama", torch.float32), ("llama", torch.bfloat16),
                                          ("gpt2", torch.float16), ("qwen2", torch.float64)])
def test_the_wire_rebuilds_the_states_and_the_float64_lens_bit_for_bit(family, dtype):
    raw, tok = make_model(family, dtype=dtype), make_tokenizer()
    arch, batch = resolve_architecture(raw), _batch(tok)
    sim = nnsight.TransformersModel(raw, tokenizer=tok)
    with torch.no_grad():
        rows, steps, ents, _ = capture_remote(sim, arch, batch, forward_kwargs(raw), SpinalParams(), "local")
        local = capture_local(nnsight.NNsight(raw), arch, batch, forward_kwargs(raw), torch.device("cpu"))
        old_steps, old_ents = _old_lens(raw, arch, local)
    assert len(rows) == len(local) == raw.config.num_hidden_layers + 1
    for a, b in zip(rows, local, strict=True):
        assert a.dtype == dtype and torch.equal(a, b)  # the model's own states, every bit
    assert len(steps) == len(old_steps) and len(ents) == len(old_ents)
    for a, b in zip(steps + ents, old_steps + old_ents, strict=True):
        assert a.dtype == torch.float64 and torch.equal(a, b)


def test_the_wire_is_one_record_per_kind_and_smaller_than_one_tensor_per_layer():
    raw, tok = make_model("llama", dtype=torch.bfloat16), make_tokenizer()
    arch, batch = resolve_architecture(raw), _batch(tok, n=12)
    import spinal_nb.capture.batch as b
    seen, unpack = {}, b.unpack_wire
    b.unpack_wire = lambda wire: seen.setdefault("wire", wire) and unpack(wire)
    try:
        with torch.no_grad():
            rows, steps, ents, _ = capture_remote(nnsight.TransformersModel(raw, tokenizer=tok), arch, batch,
                                               forward_kwargs(raw), SpinalParams(), "local")
    finally:
        b.unpack_wire = unpack

    def size(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return len(buf.getvalue())

    wire = seen["wire"]
    assert wire["planes"].dtype == torch.uint8 and wire["planes"].shape == (2, len(rows) * rows[0].numel())
    assert wire["hell2"].dtype == wire["ents"].dtype == torch.float32
    assert size(wire) < size({"rows": rows, "steps": steps, "ents": ents})
