"""Tiny causal LMs built from configs and saved with save_pretrained (no hub), and prompts files."""
from __future__ import annotations

import torch
import transformers as T
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = ("the a of to and in is was for on that with as by at from his her it an be this are not or had have but "
         "were which one all their there been has when who would will more no if out so said what up its about "
         "into than them can only other new some could time these two may then do first any my now such like").split()


def make_tokenizer() -> T.PreTrainedTokenizerFast:
    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + sorted(set(WORDS)))},
                                     unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                                     eos_token="[EOS]")


def make_llama(seed: int = 0, n_layers: int = 2) -> T.LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = T.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, bos_token_id=2,
                        eos_token_id=3, pad_token_id=1)
    model = T.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random init leaves norms at 1 and small weights: perturb so every weight matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def save(folder, model) -> str:
    model.save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return str(folder)


def prompt_lines(n: int = 24, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (int(8 + k % 5),), generator=g))
            for k in range(n)]


