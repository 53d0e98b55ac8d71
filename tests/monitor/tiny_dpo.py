"""A tiny DPO setup built offline in-process: word-level tokenizer, Llama from config, sentiment pairs, TRL trainer.

4 blocks of width 64 (L = 4: the terminal window depth ≥ 0.7 is layers 3–4); a 20-step DPO run takes ~1 s on one core.
"""
from __future__ import annotations

import copy
import random

import torch
import transformers as T
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = ("the a of to and in is was for on that with as by at from his her it an be this are not or had have but "
         "were which one all their there been has when who would will more no if out so said what up its about "
         "into than them can only other new some could time these two may then do first any my now such like our "
         "over man me even most made after also did many before must through back years where much your way well "
         "down should because each just those people how too little state good very make world still own see men "
         "work long get here between both life being under never day same another know while last might us great "
         "old year off come since against go came right used take three").split()
POSITIVE, NEGATIVE = ("good", "great", "well", "right"), ("no", "not", "never", "against")


def make_tokenizer() -> T.PreTrainedTokenizerFast:
    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + sorted(set(WORDS)))},
                                     unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
                                     pad_token="[PAD]")


def make_policy(seed: int = 0, layers: int = 4, hidden: int = 64) -> T.LlamaForCausalLM:
    cfg = T.LlamaConfig(vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, bos_token_id=2,
                        eos_token_id=3, pad_token_id=1)
    torch.manual_seed(seed)
    return T.LlamaForCausalLM(cfg)


def probe_prompts(n: int = 40, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))) for _ in range(n)]


def preference_pairs(n: int = 256, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{"prompt": " ".join(rng.choice(WORDS) for _ in range(6)), "chosen": " it was " + rng.choice(POSITIVE),
             "rejected": " it was " + rng.choice(NEGATIVE)} for _ in range(n)]


def dpo_trainer(model, tokenizer, *, lr: float, steps: int, output_dir, callbacks=(), seed: int = 0,
                batch_size: int = 8, **config):
    """TRL DPOTrainer on CPU, no saving, no reporting; the reference is a frozen copy of the policy."""
    import datasets
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()
    args = DPOConfig(output_dir=str(output_dir), per_device_train_batch_size=batch_size, max_steps=steps,
                     learning_rate=lr, lr_scheduler_type="constant", report_to="none", use_cpu=True,
                     save_strategy="no", logging_steps=10_000, disable_tqdm=True, beta=0.1, seed=seed, **config)
    return DPOTrainer(model, ref_model=copy.deepcopy(model), args=args,
                      train_dataset=datasets.Dataset.from_list(preference_pairs(seed=seed)),
                      processing_class=tokenizer, callbacks=list(callbacks))
