"""Hand-written DPO and the behavioural evidence that it did something.

DPO (Rafailov et al. 2023), sigmoid loss: ``-logsigmoid(β·((π_c − r_c) − (π_r − r_r)))`` with π/r the summed
log-probabilities of the completion tokens under the policy / frozen reference. Prompt and completion are
tokenized separately (no merge across the boundary) and the tokenizer's BOS is prefixed. Per the offline-models
note this matches TRL's DPOTrainer (same accuracies and drift) and is ~45 % faster per step on CPU.

:func:`evaluate_pair` measures, on held-out pairs and neutral text, what the base and the DPO checkpoint do:
preference accuracy and mean log-prob margin (chosen − rejected) before/after, implicit-reward accuracy and margin,
the change of log p(chosen) and log p(rejected), and on neutral Brown text KL(dpo‖base) per token, top-1 agreement
and LM loss before/after.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import NumericsError
from ..progress import bar as progress_bar
from .preferences import PreferencePair


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def encode_completion(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _pad_id(tokenizer: Any) -> int:
    for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
        if t is not None:
            return int(t)
    return 0


def completion_logps(model: torch.nn.Module, prompts: Sequence[list[int]], completions: Sequence[list[int]],
                     pad_id: int) -> torch.Tensor:
    """Summed log p(completion | prompt) per sequence, [B] float32; right padding, one forward."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), T), dtype=torch.long)
    target = torch.zeros((len(seqs), T - 1), dtype=torch.bool)  # target[b, t]: token t+1 is a completion token
    for b, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[b, :len(s)] = torch.tensor(s)
        attn[b, :len(s)] = 1
        target[b, len(p) - 1:len(s) - 1] = True
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return (lp * target).sum(-1)


class EncodedPairs:
    """Pairs tokenized once: prompt ids (with BOS), chosen ids, rejected ids."""

    def __init__(self, tokenizer: Any, pairs: Sequence[PreferencePair]):
        self.prompt = [encode_prompt(tokenizer, p.prompt) for p in pairs]
        self.chosen = [encode_completion(tokenizer, p.chosen) for p in pairs]
        self.rejected = [encode_completion(tokenizer, p.rejected) for p in pairs]
        self.pad_id = _pad_id(tokenizer)

    def __len__(self) -> int:
        return len(self.prompt)

    def logps(self, model: torch.nn.Module, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(chosen), log p(rejected)) for pairs ``idx``, in one forward of 2·len(idx) sequences."""
        prompts = [self.prompt[i] for i in idx]
        lp = completion_logps(model, prompts + prompts, [self.chosen[i] for i in idx] + [self.rejected[i] for i in idx],
                              self.pad_id)
        return lp[:len(idx)], lp[len(idx):]


def dpo_train(policy: torch.nn.Module, reference: torch.nn.Module, data: EncodedPairs, *, steps: int,
              batch_size: int, lr: float, beta: float, warmup: int = 0, seed: int = 0, progress: bool = True,
              desc: str = "DPO") -> dict[str, float]:
    """Train ``policy`` in place with DPO against the frozen ``reference``; returns last-10-step averages."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    policy.train()
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (warmup + 1)))
    order: list[int] = []
    tail: list[tuple[float, float, float]] = []
    bar = progress_bar(range(steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        if len(order) < batch_size:
            fresh = list(range(len(data)))
            rng.shuffle(fresh)
            order.extend(fresh)
        idx, order = order[:batch_size], order[batch_size:]
        with torch.no_grad():
            rc, rr = data.logps(reference, idx)
        pc, pr = data.logps(policy, idx)
        z = beta * ((pc - rc) - (pr - rr))
        loss = -F.logsigmoid(z).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        stats = (loss.item(), (z > 0).float().mean().item(), (pc - pr).mean().item())
        if not math.isfinite(stats[0]):
            raise NumericsError(f"DPO loss became {stats[0]} (lr {lr} too high?)")
        tail = (tail + [stats])[-10:]
        bar.set_postfix(loss=f"{stats[0]:.3f}", acc=f"{stats[1]:.2f}")
    policy.eval()
    n = max(len(tail), 1)
    return {"steps": steps, "final_loss": sum(t[0] for t in tail) / n,
            "final_reward_acc": sum(t[1] for t in tail) / n, "final_logp_margin": sum(t[2] for t in tail) / n}


@torch.no_grad()
def _all_logps(model: torch.nn.Module, data: EncodedPairs, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    cs, rs = [], []
    for i in range(0, len(data), batch):
        c, r = data.logps(model, range(i, min(i + batch, len(data))))
        cs.append(c)
        rs.append(r)
    return torch.cat(cs).double(), torch.cat(rs).double()


def preference_evidence(base: torch.nn.Module, dpo: torch.nn.Module, data: EncodedPairs, beta: float,
                        batch: int = 32) -> dict[str, float]:
    """Held-out pair metrics, before (base) and after (dpo); the base is the DPO reference."""
    bc, br = _all_logps(base, data, batch)
    dc, dr = _all_logps(dpo, data, batch)
    reward = beta * ((dc - bc) - (dr - br))
    return {
        "n_pairs": len(data),
        "pref_acc_before": (bc > br).double().mean().item(),
        "pref_acc_after": (dc > dr).double().mean().item(),
        "margin_before": (bc - br).mean().item(),
        "margin_after": (dc - dr).mean().item(),
        "reward_acc": (reward > 0).double().mean().item(),
        "reward_margin": reward.mean().item(),
        "dlogp_chosen": (dc - bc).mean().item(),
        "dlogp_rejected": (dr - br).mean().item(),
    }


@torch.no_grad()
def neutral_evidence(base: torch.nn.Module, dpo: torch.nn.Module, tokenizer: Any, texts: Sequence[str],
                     batch: int = 16) -> dict[str, float]:
    """Drift on neutral text: mean KL(dpo‖base) per token (nats), its 99th percentile, top-1 agreement, LM loss."""
    pad = _pad_id(tokenizer)
    kls, agree, nll_b, nll_d = [], [], [], []
    for i in range(0, len(texts), batch):
        enc = [encode_prompt(tokenizer, t) for t in texts[i:i + batch]]
        T = max(len(e) for e in enc)
        ids = torch.full((len(enc), T), pad, dtype=torch.long)
        attn = torch.zeros((len(enc), T), dtype=torch.long)
        for b, e in enumerate(enc):
            ids[b, :len(e)] = torch.tensor(e)
            attn[b, :len(e)] = 1
        lb = torch.log_softmax(base(input_ids=ids, attention_mask=attn).logits.double(), -1)[:, :-1]
        ld = torch.log_softmax(dpo(input_ids=ids, attention_mask=attn).logits.double(), -1)[:, :-1]
        m = (attn[:, 1:] == 1)
        tgt = ids[:, 1:, None]
        kls.append((ld.exp() * (ld - lb)).sum(-1)[m])
        agree.append((ld.argmax(-1) == lb.argmax(-1))[m].double())
        nll_b.append(-lb.gather(-1, tgt)[..., 0][m])
        nll_d.append(-ld.gather(-1, tgt)[..., 0][m])
    kl = torch.cat(kls)
    return {"n_texts": len(texts), "n_tokens": int(kl.numel()), "kl_per_token": kl.mean().item(),
            "kl_p99": torch.quantile(kl, 0.99).item(), "top1_agreement": torch.cat(agree).mean().item(),
            "loss_before": torch.cat(nll_b).mean().item(), "loss_after": torch.cat(nll_d).mean().item()}


@torch.no_grad()
def greedy(model: torch.nn.Module, tokenizer: Any, prompt: str, n_tokens: int = 16) -> str:
    """Greedy continuation (no cache; for the few-token samples stored as evidence)."""
    ids = encode_prompt(tokenizer, prompt)
    start = len(ids)
    for _ in range(n_tokens):
        nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        ids.append(nxt)
        if nxt == tokenizer.eos_token_id:
            break
    return tokenizer.decode(ids[start:], skip_special_tokens=True)
