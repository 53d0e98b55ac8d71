"""Tiny decoder models of every supported family, built from configs offline, and a word-level tokenizer.

2 blocks, hidden 32, vocab 256: fast enough to trace every family in every test.
"""
from __future__ import annotations

import random

import torch
import transformers as T
from tokenizers import Tokenizer, models, pre_tokenizers, processors

VOCAB = 256
WORDS = ("the a of to and in is was for on that with as by at from his her it an be this are not or had have but "
         "were which one all their there been has when who would will more no if out so said what up its about "
         "into than them can only other new some could time these two may then do first any my now such like our "
         "over man me even most made after also did many before must through back years where much your way well "
         "down should because each just those people how too little state good very make world still own see men "
         "work long get here between both life being under never day same another know while last might us great "
         "old year off come since against go came right used take three").split()

_KW = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=128, bos_token_id=2, eos_token_id=3, pad_token_id=1)


def configs() -> dict[str, T.PretrainedConfig]:
    """One tiny config per family (key = our family name)."""
    nokv = {k: v for k, v in _KW.items() if k != "num_key_value_heads"}
    return {
        "gpt2": T.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=2,
                             eos_token_id=3),
        "llama": T.LlamaConfig(**_KW),
        "mistral": T.MistralConfig(**_KW),
        "qwen2": T.Qwen2Config(**_KW),
        "qwen3": T.Qwen3Config(**_KW, head_dim=8),
        "gemma": T.GemmaConfig(**_KW, head_dim=8),
        "gemma2": T.Gemma2Config(**_KW, head_dim=8, final_logit_softcapping=3.0),  # small cap: softcap really bites
        "gemma3": T.Gemma3TextConfig(**_KW, head_dim=8, final_logit_softcapping=3.0),
        "gpt_neox": T.GPTNeoXConfig(**nokv),
        "opt": T.OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                           max_position_embeddings=128, word_embed_proj_dim=16, bos_token_id=2, eos_token_id=3,
                           pad_token_id=1),
        "opt_postln": T.OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=128, do_layer_norm_before=False,
                                  bos_token_id=2, eos_token_id=3, pad_token_id=1),
        "phi": T.PhiConfig(**nokv),
        "phi3": T.Phi3Config(**nokv),
        "mixtral": T.MixtralConfig(**_KW, num_local_experts=4, num_experts_per_tok=2),
        "qwen2_moe": T.Qwen2MoeConfig(**_KW, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                                      shared_expert_intermediate_size=32),
        "granite": T.GraniteConfig(**_KW, logits_scaling=4.0, embedding_multiplier=3.0),
        "cohere": T.CohereConfig(**_KW, logit_scale=0.5),
    }


FAMILIES = tuple(configs())


def make_model(family: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32) -> T.PreTrainedModel:
    torch.manual_seed(seed)
    cfg = configs()[family]
    model = T.AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()
    with torch.no_grad():  # random init gives near-zero norms/biases for some families; perturb so every weight matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def make_tokenizer(bos: bool = True, pad: bool = True) -> T.PreTrainedTokenizerFast:
    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + sorted(set(WORDS)))},
                                     unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    kw = dict(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]")
    if pad:
        kw["pad_token"] = "[PAD]"
    return T.PreTrainedTokenizerFast(**kw)


def make_prompts(n: int, seed: int = 0, lo: int = 3, hi: int = 14) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


assert len(set(WORDS)) + 4 <= VOCAB, "tokenizer vocabulary must fit the tiny models"
