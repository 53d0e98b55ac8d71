"""Pre-training from scratch on Brown: a byte-level BPE tokenizer and a small Llama-style decoder."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..progress import bar as progress_bar
from .recipes import PretrainRecipe

SPECIAL = "<|endoftext|>"  # BOS, EOS and padding of the lab tokenizer (id 0)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on ``texts`` (deterministic); prefixes ``<|endoftext|>`` (id 0) to every encoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{SPECIAL} $A", pair=f"{SPECIAL} $A $B",
                                                       special_tokens=[(SPECIAL, tok.token_to_id(SPECIAL))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL,
                                   model_max_length=1 << 20)


def token_stream(tokenizer: Any, docs: Sequence[str]) -> torch.Tensor:
    """All documents as one 1-D id tensor, each starting with BOS (documents are ~2,000 words: no truncation)."""
    ids: list[int] = []
    for d in docs:
        ids.extend(tokenizer(d, add_special_tokens=True)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


def make_model(recipe: PretrainRecipe, vocab_size: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=recipe.d_model, intermediate_size=recipe.d_ff,
                      num_hidden_layers=recipe.n_layers, num_attention_heads=recipe.n_heads,
                      num_key_value_heads=recipe.n_heads, max_position_embeddings=max(recipe.context, 128),
                      tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(cfg)


@torch.no_grad()
def val_loss(model: torch.nn.Module, stream: torch.Tensor, context: int, n_windows: int) -> float:
    """Mean next-token loss over ``n_windows`` evenly spaced windows of the validation stream."""
    model.eval()
    starts = torch.linspace(0, len(stream) - context - 1, n_windows).long()
    x = torch.stack([stream[s:s + context] for s in starts])
    return model(input_ids=x, labels=x).loss.item()


def pretrain(model: torch.nn.Module, train: torch.Tensor, valid: torch.Tensor, recipe: PretrainRecipe, *,
             progress: bool = True) -> dict[str, float]:
    """AdamW, linear warm-up + cosine decay to 10 %, grad-clip 1, random windows drawn with a seeded generator."""
    gen = torch.Generator().manual_seed(recipe.seed)
    before = val_loss(model, valid, recipe.context, recipe.val_windows)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, 0.95))

    def lr_at(s: int) -> float:
        if s < recipe.warmup:
            return (s + 1) / recipe.warmup
        t = (s - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses: list[float] = []
    bar = progress_bar(range(recipe.steps), desc="pre-train", disable=not progress, leave=False)
    for _ in bar:
        starts = torch.randint(0, len(train) - recipe.context - 1, (recipe.batch_size,), generator=gen)
        x = torch.stack([train[s:s + recipe.context] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses = (losses + [loss.item()])[-20:]
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    after = val_loss(model, valid, recipe.context, recipe.val_windows)
    model.eval()
    return {"steps": recipe.steps, "tokens_seen": recipe.steps * recipe.batch_size * recipe.context,
            "train_tokens": int(len(train)), "valid_tokens": int(len(valid)),
            "train_loss_end": sum(losses) / max(len(losses), 1), "val_loss_before": before, "val_loss_after": after,
            "val_ppl_after": math.exp(after)}
