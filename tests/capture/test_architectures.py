"""The architecture table: per family, the logit lens of the last block's raw output IS the model's own output."""
import pytest
import torch
import transformers as T
from support import FAMILIES, make_model

from spinal_nb.capture.architectures import (
    ARCHITECTURES,
    block_state,
    get_path,
    lens_logits,
    resolve_architecture,
)
from spinal_nb.errors import ArchitectureError

from .reference import hidden_states


def _last_block_output(model, arch, ids):
    got = {}
    hook = get_path(model, arch.blocks)[-1].register_forward_hook(lambda m, i, o: got.setdefault("h", o))
    try:
        with torch.no_grad():
            logits = model(ids).logits
    finally:
        hook.remove()
    return got["h"], logits


@pytest.mark.parametrize("family", FAMILIES)
def test_lens_at_last_layer_equals_model_output(family):
    model = make_model(family)
    arch = resolve_architecture(model)
    ids = torch.randint(4, 140, (2, 9), generator=torch.Generator().manual_seed(1))
    out, logits = _last_block_output(model, arch, ids)
    assert type(out).__name__.lower() == arch.block_output, "table's block_output disagrees with transformers"
    with torch.no_grad():
        z = lens_logits(model, arch, block_state(out))
    p_lens = torch.softmax(z.double(), -1)
    p_model = torch.softmax(logits.double(), -1)
    assert (p_lens - p_model).abs().max().item() < 1e-6
    assert p_model.std() > 1e-4  # the comparison is not between two uniform distributions


@pytest.mark.parametrize("family", FAMILIES)
def test_layer0_is_the_input_of_block_1(family):
    """Layer 0 = what block 1 reads: for Gemma that includes the sqrt(d) scaling, for GPT-2/OPT the positions."""
    model = make_model(family)
    ids = [2, 10, 11, 12, 13]
    h0 = hidden_states(model, ids)[0]
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    assert torch.allclose(h0, out.hidden_states[0][0], atol=0, rtol=0)
    if family.startswith("gemma"):
        emb = model.get_input_embeddings().weight[ids]
        assert torch.allclose(h0, emb * (model.config.hidden_size ** 0.5), rtol=1e-3)


@pytest.mark.parametrize("family,broken", [
    ("gemma2", "softcap_attr"), ("gemma3", "softcap_attr"), ("opt", "output_proj"),
    ("granite", "logit_divisor_attr"), ("cohere", "logit_scale_attr"), ("llama", "final_norm"),
])
def test_each_table_entry_matters(family, broken):
    """Dropping one piece of a family's recipe breaks the invariant: the test above can fail."""
    import dataclasses
    model = make_model(family)
    arch = resolve_architecture(model)
    wrong = dataclasses.replace(arch, **{broken: None})
    ids = torch.randint(4, 140, (1, 7), generator=torch.Generator().manual_seed(2))
    out, logits = _last_block_output(model, arch, ids)
    try:
        with torch.no_grad():
            z = lens_logits(model, wrong, block_state(out))
    except RuntimeError as e:  # OPT without project_out: hidden 32 cannot meet the 16-wide unembedding
        assert "shapes cannot be multiplied" in str(e)
        return
    assert (torch.softmax(z.double(), -1) - torch.softmax(logits.double(), -1)).abs().max() > 1e-4


def test_norm_is_applied_exactly_once():
    model = make_model("llama")
    arch = resolve_architecture(model)
    ids = torch.randint(4, 140, (1, 7), generator=torch.Generator().manual_seed(3))
    out, logits = _last_block_output(model, arch, ids)
    with torch.no_grad():
        twice = model.lm_head(model.model.norm(model.model.norm(out)))
        once = lens_logits(model, arch, out)
    assert torch.allclose(once, logits)
    assert not torch.allclose(twice, logits, atol=1e-4)


def test_table_covers_the_required_families():
    required = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gpt_neox", "opt", "phi", "phi3",
                "mixtral", "qwen2_moe"}
    assert required <= set(ARCHITECTURES)


def test_nnsight_wrapper_resolves_like_the_module():
    import nnsight
    model = make_model("gpt2")
    assert resolve_architecture(nnsight.NNsight(model)) is resolve_architecture(model)


def test_encoder_only_model_is_refused():
    cfg = T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64)
    for cls in (T.BertModel, T.BertForMaskedLM):
        with pytest.raises(ArchitectureError, match="not a causal decoder"):
            resolve_architecture(cls(cfg))


def test_encoder_decoder_is_refused():
    cfg = T.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    with pytest.raises(ArchitectureError, match="encoder-decoder"):
        resolve_architecture(T.T5ForConditionalGeneration(cfg))


def test_bare_backbone_names_the_missing_unembedding():
    cfg = T.LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4)
    with pytest.raises(ArchitectureError, match="unembedding 'lm_head'") as e:
        resolve_architecture(T.LlamaModel(cfg))
    assert "AutoModelForCausalLM" in str(e.value)


def test_unknown_decoder_family_says_what_is_unknown():
    cfg = T.BloomConfig(vocab_size=100, hidden_size=32, n_layer=2, n_head=4)
    with pytest.raises(ArchitectureError, match="bloom.*not in spinal-nb's architecture table") as e:
        resolve_architecture(T.BloomForCausalLM(cfg))
    assert "final norm" in str(e.value) and "architecture=Architecture(" in str(e.value)


def test_custom_architecture_override_is_checked():
    from spinal_nb.capture.architectures import Architecture
    model = T.BloomForCausalLM(T.BloomConfig(vocab_size=100, hidden_size=32, n_layer=2, n_head=4))
    ok = Architecture("bloom", ("bloom",), blocks="transformer.h", final_norm="transformer.ln_f", unembed="lm_head",
                      embedding="transformer.word_embeddings")
    assert resolve_architecture(model, ok) is ok
    bad = Architecture("bloom", ("bloom",), blocks="transformer.layers", final_norm="transformer.ln_f",
                       unembed="lm_head", embedding="transformer.word_embeddings")
    with pytest.raises(ArchitectureError, match="decoder block list 'transformer.layers'"):
        resolve_architecture(model, bad)
