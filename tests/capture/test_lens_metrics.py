"""kl_to_final and top1_agreement of a whole trace (capture: LensEngine.reduce_all, the top-k route, the NDIF body)
against an independent logit lens: the model's own forward with hooks on its blocks, final norm + lm_head, float64
log-softmax, prompt by prompt without padding; means and delete-a-group replicates over the scored positions."""
import numpy as np
import pytest
import torch
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.capture.architectures import get_path, resolve_architecture

G = 4


def reference(model, tok, prompts, T=1.0, skip_first=1):
    """Per layer: KL(p_L || p_l) and agreement per scored position, with the position's prompt group."""
    arch = resolve_architecture(model)
    blocks = get_path(model, arch.blocks)
    norm, head = get_path(model, arch.final_norm), get_path(model, arch.unembed)
    proj = get_path(model, arch.output_proj) if arch.output_proj else None  # OPT's project_out
    if proj is not None:
        head = torch.nn.Sequential(proj, head)
    kls, agrees, groups = [], [], []
    for i, text in enumerate(prompts):
        ids = torch.tensor([tok(text)["input_ids"]])
        states = []
        hooks = [blocks[0].register_forward_pre_hook(
            lambda m, a, kw, st=states: st.append(a[0] if a else kw["hidden_states"]), with_kwargs=True)]
        hooks += [b.register_forward_hook(
            lambda m, a, out, st=states: st.append(out[0] if isinstance(out, tuple) else out)) for b in blocks]
        with torch.no_grad():
            model(ids)
            for h in hooks:
                h.remove()
            cap = getattr(model.config, "final_logit_softcapping", None)  # Gemma 2's soft-capped logits
            zs = [head(norm(s[0, skip_first:])).double() for s in states]
            lp = [torch.log_softmax((torch.tanh(z / cap) * cap if cap else z) / T, -1) for z in zs]
        lf = lp[-1]
        kls.append(torch.stack([(lf.exp() * (lf - x)).sum(-1) for x in lp]))
        agrees.append(torch.stack([x.argmax(-1) == lf.argmax(-1) for x in lp]))
        groups += [i % G] * lf.shape[0]
    return torch.cat(kls, 1).numpy(), torch.cat(agrees, 1).double().numpy(), np.array(groups)


def check(frame, kl, agree, groups, tol):
    assert frame.data["n_tokens"][0] == kl.shape[1]
    for col, ref in (("kl_to_final", kl), ("top1_agreement", agree)):
        np.testing.assert_allclose(frame.data[col].to_numpy(), ref.mean(1), rtol=tol, atol=tol)
        loo = np.array([[ref[layer, groups != g].mean() for g in range(G)] for layer in range(ref.shape[0])])
        np.testing.assert_allclose(np.array(frame.data[f"{col}_jk"].to_list()), loo, rtol=tol, atol=tol)
    last = frame.data.filter(frame.data["layer"] == frame.data["layer"].max())
    assert last["kl_to_final"][0] == 0.0 and last["top1_agreement"][0] == 1.0  # exact endpoints
    assert last["kl_to_final_lo"][0] == last["kl_to_final_hi"][0] == 0.0


@pytest.mark.parametrize("family,kw", [("llama", {}), ("gemma2", {"temperature": 0.7}), ("gpt2", {"top_k": 5}),
                                       ("opt", {})])
def test_lens_metrics_equal_an_independent_logit_lens(family, kw):
    model, tok, prompts = make_model(family), make_tokenizer(), make_prompts(14, seed=3)
    frame = trace(model, prompts, tokenizer=tok, batch_size=5, progress=False, n_groups=G, **kw)
    kl, agree, groups = reference(model, tok, prompts, T=kw.get("temperature", 1.0))
    assert (kl[:-1].mean(1) > 1e-3).all() and (agree[:-1].mean(1) < 1).all()  # the lens really differs below L
    check(frame, kl, agree, groups, tol=2e-5)
    # the same through nnsight's simulation of the NDIF request: torch only on the "server"
    sim = trace(model, prompts, tokenizer=tok, batch_size=5, progress=False, n_groups=G, remote="local", **kw)
    check(sim, kl, agree, groups, tol=2e-5)


def test_lens_metrics_off_leaves_null_columns_and_the_rest_unchanged():
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(10, seed=4)
    on = trace(model, prompts, tokenizer=tok, batch_size=4, progress=False, n_groups=G)
    off = trace(model, prompts, tokenizer=tok, batch_size=4, progress=False, n_groups=G, lens_metrics=False)
    assert off.data["kl_to_final"].null_count() == off.data.height
    assert off.data["top1_agreement"].null_count() == off.data.height
    assert off.params.lens_metrics is False and on.params.lens_metrics is True
    for col in ("transport", "entropy", "contraction", "effective_rank"):
        np.testing.assert_allclose(off.data[col].to_numpy().astype(float), on.data[col].to_numpy().astype(float),
                                   rtol=1e-12, equal_nan=True)


def test_intervals_stay_inside_the_metrics_range():
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(12, seed=9)
    f = trace(model, prompts, tokenizer=tok, batch_size=6, progress=False, n_groups=G).data
    from spinal_nb.scores import jackknife_interval

    raw = [jackknife_interval(v, jk, 0.95) for v, jk in zip(f["top1_agreement"], f["top1_agreement_jk"], strict=True)]
    assert any(lo is not None and (lo < 0 or hi > 1) for lo, hi in raw)  # the t interval alone would leave [0, 1]
    assert (f["top1_agreement_lo"] >= 0).all() and (f["top1_agreement_hi"] <= 1).all()
    assert (f["kl_to_final_lo"] >= 0).all()
    d = model.config.hidden_size
    assert (f["effective_rank_lo"] >= 1).all() and (f["effective_rank_hi"] <= d).all()
