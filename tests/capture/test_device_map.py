"""Models placed by accelerate (`device_map`, models bigger than one device), on CPU: blocks kept on "cpu" or
offloaded to "disk" (accelerate's hooks load their weights for each call and leave meta tensors in the module).

The forward runs the same operations in the same order and the lens takes the same matmul, so the TraceFrame must
equal the plain single-device trace bit for bit. Before the fix the lens read the offloaded unembedding's meta
weight (garbage logits: NumericsError or wrong transport). Offloaded input embeddings are refused with a clear
error: nnsight 0.8 runs them with their meta weight.
"""
from __future__ import annotations

import pytest
import torch
import transformers as T
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.errors import InputError

accelerate = pytest.importorskip("accelerate")

SPLIT = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
         "model.norm": "disk", "lm_head": "disk"}
FIRST_ON_DISK = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "disk",
                 "model.layers.1": "cpu", "model.norm": "cpu", "lm_head": "disk"}


def _same(a, b):
    assert a.data.columns == b.data.columns
    for col in a.data.columns:
        assert a.data[col].to_list() == b.data[col].to_list(), col


@pytest.mark.parametrize("dmap", [SPLIT, FIRST_ON_DISK], ids=["last-on-disk", "first-on-disk"])
def test_a_dispatched_model_traces_like_the_plain_model(tmp_path, dmap):
    tok, prompts = make_tokenizer(), make_prompts(30, seed=5)
    plain = trace(make_model("llama"), prompts, tokenizer=tok, batch_size=6, progress=False, n_groups=5,
                  lens_prompts=2)
    model = accelerate.dispatch_model(make_model("llama"), device_map=dmap, offload_dir=str(tmp_path / "off"))
    assert model.lm_head.weight.device.type == "meta"  # really offloaded: the weight lives on disk between calls
    split = trace(model, prompts, tokenizer=tok, batch_size=6, progress=False, n_groups=5, lens_prompts=2)
    _same(split, plain)
    assert split.lens.equals(plain.lens)  # the top-k lens tokens of two prompts, through the offloaded head too
    assert split.data["transport"].drop_nulls().len() == 2


def test_from_pretrained_with_a_device_map_traces_like_the_plain_model(tmp_path):
    tok, prompts = make_tokenizer(), make_prompts(20, seed=6)
    make_model("llama").save_pretrained(tmp_path / "m")
    plain = trace(T.AutoModelForCausalLM.from_pretrained(tmp_path / "m"), prompts, tokenizer=tok, batch_size=5,
                  progress=False, n_groups=4)
    model = T.AutoModelForCausalLM.from_pretrained(tmp_path / "m", device_map=SPLIT, offload_folder=tmp_path / "off")
    assert model.hf_device_map["model.layers.1"] == "disk"
    _same(trace(model, prompts, tokenizer=tok, batch_size=5, progress=False, n_groups=4), plain)


def test_moving_a_dispatched_model_is_refused(tmp_path):
    model = accelerate.dispatch_model(make_model("llama"), device_map=SPLIT, offload_dir=str(tmp_path / "off"))
    with pytest.raises(InputError, match="device_map"):
        trace(model, make_prompts(4), tokenizer=make_tokenizer(), progress=False, device="cpu")
    with pytest.raises(InputError, match="device_map"):
        trace(model, make_prompts(4), tokenizer=make_tokenizer(), progress=False, dtype=torch.float64)


def test_offloaded_embeddings_are_refused_clearly(tmp_path):
    dmap = {**SPLIT, "model.embed_tokens": "disk"}
    model = accelerate.dispatch_model(make_model("llama"), device_map=dmap, offload_dir=str(tmp_path / "off"))
    with pytest.raises(InputError, match="embeddings are offloaded"):
        trace(model, make_prompts(4), tokenizer=make_tokenizer(), progress=False)
