"""The tuned lens (capture/tuned_lens.py, capture/tuned_fit.py): identity translators are the logit lens, training
lowers the held-out KL to the final layer (checked with an independent computation on fresh text), files round-trip
and are refused when damaged or for another model, and traces under different lenses never combine."""
import pytest
import torch
import transformers as T
from support import make_model, make_prompts, make_tokenizer

import spinal_nb
from spinal_nb.capture import TunedLens, fit_tuned_lens, trace
from spinal_nb.capture.architectures import lens_logits, resolve_architecture
from spinal_nb.capture.lens import LensEngine
from spinal_nb.errors import FrameError, InputError, ModelLoadError
from spinal_nb.params import SpinalParams

LENS_COLS = ("transport", "transport_lo", "transport_hi", "entropy", "entropy_lo", "entropy_hi")


@pytest.fixture(scope="module")
def fitted():
    """(model, tokenizer, lens fitted on 300 texts) — shared: fitting takes ~1 s."""
    model, tok = make_model("llama"), make_tokenizer()
    lens = fit_tuned_lens(model, make_prompts(300, seed=1, lo=8, hi=30), tok, max_tokens=3000, heldout_tokens=400,
                          epochs=3, progress=False)
    return model, tok, lens


def _random_lens(model, seed=0, scale=0.2):
    arch = resolve_architecture(model)
    ident = TunedLens.identity(model, arch)
    g = torch.Generator().manual_seed(seed)
    return TunedLens(scale * torch.randn(ident.weight.shape, generator=g),
                     scale * torch.randn(ident.bias.shape, generator=g), ident.facts)


def test_identity_translators_reproduce_the_logit_lens_trace_bit_for_bit():
    model, tok = make_model("llama"), make_tokenizer()
    prompts = make_prompts(30, seed=3)
    plain = trace(model, prompts, tokenizer=tok, n_groups=5, progress=False, lens_prompts=2)
    ident = TunedLens.identity(model)
    tuned = trace(model, prompts, tokenizer=tok, n_groups=5, progress=False, lens_prompts=2, lens=ident)
    for c in LENS_COLS + ("contraction",):
        assert plain.data.get_column(c).equals(tuned.data.get_column(c), null_equal=True), c
    assert plain.lens.get_column("prob").equals(tuned.lens.get_column("prob"))
    assert "lens" not in plain.meta["params"] and tuned.meta["params"]["lens"] == ident.tag
    assert tuned.params == SpinalParams(n_groups=5, lens=ident.tag)


def test_engine_applies_the_translators_before_norm_and_unembedding():
    """LensEngine with a (random, non-identity) tuned lens equals the plain lens of h + A h + b computed by hand."""
    model = make_model("gpt2")  # LayerNorm final norm, separate unembedding
    arch = resolve_architecture(model)
    lens = _random_lens(model)
    g = torch.Generator().manual_seed(1)
    rows = [torch.randn(9, 32, generator=g) for _ in range(3)]
    with torch.no_grad():
        _, ents = LensEngine(model, arch, tuned=lens).reduce(rows)
        want = []
        for layer, h in enumerate(rows):
            x = h + h @ lens.weight[layer].T + lens.bias[layer] if layer < 2 else h
            p = torch.softmax(lens_logits(model, arch, x).double(), -1)
            want.append(-(p * p.log()).sum(-1))
        _, plain = LensEngine(model, arch).reduce(rows)
    torch.testing.assert_close(ents, torch.stack(want), rtol=2e-5, atol=2e-6)
    assert not torch.allclose(ents[:2], plain[:2], atol=1e-3)  # the translators really changed layers 0..L-1
    torch.testing.assert_close(ents[2], plain[2], rtol=0, atol=0)  # layer L is the model's own output


def _heldout_kl(model, tok, texts, lens):
    """Independent of the fit code: transformers' own hidden states (embedding output = layer 0, block outputs) and
    the model's own logits; mean over positions ≥ 1 of KL(p_L ‖ p_ℓ) for ℓ < L, logit lens and tuned lens."""
    arch = resolve_architecture(model)
    L = model.config.num_hidden_layers
    sums, n = torch.zeros(L, 2, dtype=torch.float64), 0
    with torch.no_grad():
        for t in texts:
            ids = tok(t, return_tensors="pt")["input_ids"]
            out = model(input_ids=ids, output_hidden_states=True)
            logp = torch.log_softmax(out.logits[0, 1:].double(), -1)
            for layer in range(L):
                h = out.hidden_states[layer][0, 1:]
                for j, x in enumerate((h, h + h @ lens.weight[layer].T + lens.bias[layer])):
                    q = torch.log_softmax(lens_logits(model, arch, x).double(), -1)
                    sums[layer, j] += (logp.exp() * (logp - q)).sum()
            n += ids.shape[1] - 1
    return sums / n


def test_identity_start_trained_in_kl_alone_also_beats_the_logit_lens():
    """The paper's start (identity) with KL steps only, no least squares: held-out KL still drops."""
    model, tok = make_model("llama"), make_tokenizer()
    lens = fit_tuned_lens(model, make_prompts(300, seed=1, lo=8, hi=30), tok, max_tokens=3000, heldout_tokens=400,
                          epochs=3, init="identity", lr=1e-3, progress=False)
    assert lens.recipe["init"] == "identity" and "kl_init" not in lens.fit[0]
    kl = _heldout_kl(model, tok, make_prompts(60, seed=99, lo=8, hi=30), lens)
    assert (kl[:, 1] < 0.8 * kl[:, 0]).all(), kl


def test_training_reduces_heldout_kl_against_the_logit_lens(fitted):
    model, tok, lens = fitted
    table = lens.fit_table()
    assert table.get_column("layer").to_list() == [0, 1, 2]
    for layer in range(2):
        assert table["kl_tuned"][layer] < 0.8 * table["kl_logit"][layer]
        assert table["kl_tuned"][layer] <= table["kl_init"][layer]  # the KL steps refine the least-squares start
    fresh = make_prompts(60, seed=99, lo=8, hi=30)  # text the fit never saw
    kl = _heldout_kl(model, tok, fresh, lens)
    assert (kl[:, 0] > 0).all()
    assert (kl[:, 1] < 0.8 * kl[:, 0]).all(), kl
    assert lens.recipe["n_train_tokens"] >= 512 and lens.recipe["n_heldout_tokens"] >= 400


def test_save_load_round_trip_and_trace_with_the_loaded_lens(fitted, tmp_path):
    model, tok, lens = fitted
    path = lens.save(tmp_path / "tiny.lens.safetensors")
    back = TunedLens.load(path)
    assert torch.equal(back.weight, lens.weight) and torch.equal(back.bias, lens.bias)
    assert (back.sha256, back.tag, back.facts, back.fit) == (lens.sha256, lens.tag, lens.facts, lens.fit)
    assert back.recipe == lens.recipe
    prompts = make_prompts(20, seed=4)
    a = trace(model, prompts, tokenizer=tok, n_groups=4, progress=False, lens=lens)
    b = trace(model, prompts, tokenizer=tok, n_groups=4, progress=False, lens=back)
    assert a.data.equals(b.data, null_equal=True) and a.meta["params"] == b.meta["params"]
    plain = trace(model, prompts, tokenizer=tok, n_groups=4, progress=False)
    # the tuned lens reads the early layers closer to the final distribution: lower entropy gap to layer L is not
    # guaranteed, but the readout must differ from the logit lens at layers < L and agree at L
    assert not plain.data["entropy"][:2].equals(a.data["entropy"][:2])
    assert plain.data["entropy"][2] == pytest.approx(a.data["entropy"][2], rel=1e-12)


def test_damaged_or_foreign_files_are_refused(fitted, tmp_path):
    _, _, lens = fitted
    path = lens.save(tmp_path / "l.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # one byte of the bias tensor
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError, match="fails its checksum"):
        TunedLens.load(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="not a readable safetensors"):
        TunedLens.load(junk)
    with pytest.raises(ModelLoadError, match="No tuned lens file"):
        TunedLens.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"weight": lens.weight}, str(other))
    with pytest.raises(ModelLoadError, match="not a spinal-nb tuned lens"):
        TunedLens.load(other)


def _llama(**kw):
    torch.manual_seed(kw.pop("seed", 0))
    cfg = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=128, bos_token_id=2, eos_token_id=3, pad_token_id=1)
    return T.LlamaForCausalLM(T.LlamaConfig(**{**cfg, **kw})).eval()


@pytest.mark.parametrize("other,what", [
    (dict(hidden_size=64), "d_model 32 \\(lens\\) vs 64"),
    (dict(vocab_size=300), "vocab 256 \\(lens\\) vs 300"),
    (dict(num_hidden_layers=3), "n_layers 2 \\(lens\\) vs 3"),
    (dict(seed=7), "final norm / unembedding weights differ by 1.* relative"),
])
def test_a_lens_for_another_model_is_refused(other, what):
    lens = TunedLens.identity(_llama())
    with pytest.raises(InputError, match=f"fitted for another model.*{what}"):
        trace(_llama(**other), ["the man was here"] * 4, tokenizer=make_tokenizer(), n_groups=2, progress=False,
              lens=lens)


def test_too_little_text_says_how_much_is_needed():
    model, tok = make_model("llama"), make_tokenizer()
    with pytest.raises(InputError, match=r"needs at least 1,536 scored token positions .*give 4\b"):
        fit_tuned_lens(model, ["the man was here"], tok, progress=False)


def test_traces_under_different_lenses_are_refused_by_compare_and_combine(fitted):
    model, tok, lens = fitted
    prompts = make_prompts(20, seed=5)
    plain = trace(model, prompts, tokenizer=tok, checkpoint="a", n_groups=4, progress=False)
    tuned = trace(model, prompts, tokenizer=tok, checkpoint="b", n_groups=4, progress=False, lens=lens)
    ident = trace(model, prompts, tokenizer=tok, checkpoint="c", n_groups=4, progress=False,
                  lens=TunedLens.identity(model))
    for x, y in ((plain, tuned), (tuned, plain), (tuned, ident)):
        with pytest.raises(FrameError, match="different lenses"):
            spinal_nb.compare(x, y)


def test_bad_lens_arguments_are_refused():
    model, tok = make_model("llama"), make_tokenizer()
    with pytest.raises(InputError, match="lens must be None"):
        trace(model, ["a b c d"] * 4, tokenizer=tok, n_groups=2, progress=False, lens="tuned")
    with pytest.raises(InputError, match="runs locally only"):
        trace(model, ["a b c d"] * 4, tokenizer=tok, n_groups=2, progress=False, lens=TunedLens.identity(model),
              remote="local")
    with pytest.raises(InputError, match="no lens was passed"):
        trace(model, ["a b c d"] * 4, tokenizer=tok, n_groups=2, progress=False, lens=None,
              params=SpinalParams(lens="tuned-0123456789abcdef"))
    with pytest.raises(InputError, match="Bad SPINAL parameter: lens"):
        SpinalParams(lens="tuned")
    assert "lens" not in SpinalParams().to_dict()  # logit-lens records are those of earlier versions
    assert SpinalParams.from_dict(SpinalParams(lens="tuned-ab").to_dict()).lens == "tuned-ab"


def test_cached_lens_is_reused_and_refitted_when_the_recipe_or_file_changes(tmp_path):
    from spinal_nb.capture.tuned_fit import cached_tuned_lens

    model, tok = make_model("llama"), make_tokenizer()
    texts = make_prompts(120, seed=2, lo=8, hi=20)
    kw = dict(max_tokens=600, heldout_tokens=200, min_tokens=300, epochs=1, progress=False)
    a, path, hit = cached_tuned_lens(model, texts, tok, name="tiny", cache_dir=tmp_path, **kw)
    assert not hit and path.parent == tmp_path / "tuned-lens" and path.name.startswith("tiny-")
    b, path_b, hit_b = cached_tuned_lens(model, texts, tok, name="tiny", cache_dir=tmp_path, **kw)
    assert hit_b and path_b == path and b.sha256 == a.sha256
    c, path_c, hit_c = cached_tuned_lens(model, texts, tok, name="tiny", cache_dir=tmp_path, **{**kw, "epochs": 2})
    assert not hit_c and path_c != path and c.sha256 != a.sha256  # another recipe: another key, another lens
    path.write_bytes(b"damaged")
    d, path_d, hit_d = cached_tuned_lens(model, texts, tok, name="tiny", cache_dir=tmp_path, **kw)
    assert not hit_d and path_d == path and d.sha256 == a.sha256  # refitted (deterministic) and rewritten
    assert TunedLens.load(path).sha256 == a.sha256


def test_max_steps_caps_the_kl_steps_and_zero_steps_is_the_least_squares_start():
    model, tok = make_model("llama"), make_tokenizer()
    texts = make_prompts(120, seed=2, lo=8, hi=20)
    kw = dict(max_tokens=600, heldout_tokens=200, min_tokens=300, progress=False)
    two = fit_tuned_lens(model, texts, tok, epochs=3, max_steps=2, **kw)
    assert two.recipe["steps"] == 2 and len(two.recipe["train_kl_first_last"]) == 2
    ls = fit_tuned_lens(model, texts, tok, epochs=0, **kw)
    zero = fit_tuned_lens(model, texts, tok, epochs=3, max_steps=0, **kw)
    assert ls.recipe["steps"] == zero.recipe["steps"] == 0
    assert torch.equal(ls.weight, zero.weight) and torch.equal(ls.bias, zero.bias)
    assert not torch.equal(two.weight, ls.weight)  # the two steps moved the start
    with pytest.raises(InputError, match="max_steps"):
        fit_tuned_lens(model, texts, tok, max_steps=-1, **kw)


def test_method_md_fit_table_is_the_benchmarks_output():
    """docs/method.md's tuned-lens table is benchmarks/tuned_lens_fit.py's table of its stored result (no retyping)."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("tuned_lens_fit", root / "benchmarks" / "tuned_lens_fit.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(root / "benchmarks"))
    result = json.loads((root / "benchmarks" / "results" / "tuned_lens_fit.json").read_text())
    rows = mod.method_table(result).splitlines()
    method = (root / "docs" / "method.md").read_text()
    assert len(rows) == result["fit"][-1]["layer"] + 3
    assert [r for r in rows if r not in method.splitlines()] == []
    assert "python benchmarks/tuned_lens_fit.py" in method


def test_the_lens_parameter_survives_parquet_and_still_refuses_mixing(fitted, tmp_path):
    model, tok, lens = fitted
    prompts = make_prompts(16, seed=6)
    tuned = trace(model, prompts, tokenizer=tok, checkpoint="t", n_groups=4, progress=False, lens=lens)
    tuned.to_parquet(tmp_path / "t.parquet")
    back = spinal_nb.read_parquet(tmp_path / "t.parquet")
    assert back.params.lens == lens.tag and back.meta["params"] == tuned.meta["params"]
    plain = trace(model, prompts, tokenizer=tok, checkpoint="p", n_groups=4, progress=False)
    with pytest.raises(FrameError, match="different lenses"):
        spinal_nb.TraceFrame.concat([plain, back])
    mixed = spinal_nb.TraceFrame.concat([plain, back], force=True)
    assert mixed.meta.get("mixed_params") is True


def test_the_top_k_route_reads_through_the_translators_too():
    """top_k = the whole vocabulary is the exact lens by another route (scores.lens_step): with a tuned lens both
    routes agree, and differ from the logit lens."""
    model, tok = make_model("llama"), make_tokenizer()
    lens = _random_lens(model, seed=3)
    prompts = make_prompts(12, seed=7)
    exact = trace(model, prompts, tokenizer=tok, n_groups=3, progress=False, lens=lens)
    topk = trace(model, prompts, tokenizer=tok, n_groups=3, progress=False, lens=lens, top_k=256)
    plain = trace(model, prompts, tokenizer=tok, n_groups=3, progress=False, top_k=256)
    for c in ("transport", "entropy"):
        a, b = exact.data[c].drop_nulls().to_numpy(), topk.data[c].drop_nulls().to_numpy()
        assert abs(a - b).max() < 1e-5, c
    assert abs(topk.data["entropy"].to_numpy()[:2] - plain.data["entropy"].to_numpy()[:2]).min() > 1e-3


def test_a_fine_tuned_copy_is_read_by_its_base_models_lens():
    """The base's lens reads a copy whose unembedding moved a little (as DPO moves it), recording by how much; the
    sketch's estimate of that relative change matches the true one."""
    base = _llama()
    lens = TunedLens.identity(base)
    tuned = _llama()
    with torch.no_grad():
        w = tuned.lm_head.weight
        noise = torch.randn(w.shape, generator=torch.Generator().manual_seed(3))
        w.add_(noise * (1e-3 * w.norm() / noise.norm()))  # a 1e-3 relative change
    frame = trace(tuned, ["the man was here"] * 4, tokenizer=make_tokenizer(), n_groups=2, progress=False, lens=lens)
    change = next(iter(frame.meta["checkpoints"].values()))["extra"]["lens_unembed_change"]
    assert 3e-4 < change < 3e-3
    same = trace(base, ["the man was here"] * 4, tokenizer=make_tokenizer(), n_groups=2, progress=False, lens=lens)
    assert next(iter(same.meta["checkpoints"].values()))["extra"]["lens_unembed_change"] == 0.0
