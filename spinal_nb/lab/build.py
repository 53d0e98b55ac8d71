"""Builders of the offline checkpoint pairs, cached under the user cache folder keyed by a hash of the recipe."""
from __future__ import annotations

import copy
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..data import brown
from ..data.cache import recipe_hash, user_cache_dir
from ..errors import InputError
from ..io import atomic_dir, clean_stale, file_sha256
from . import preferences as prefs
from .checkpoint import LabPair, load_checkpoint, read_lab_json, save_checkpoint
from .dpo import EncodedPairs, dpo_train, greedy, neutral_evidence, preference_evidence
from .pretrain import make_model, pretrain, token_stream, train_tokenizer
from .recipes import LAB_VERSION, RECIPES, DPORecipe, LabRecipe, PairsRecipe
from .shipped import STORED_DTYPE, install_shipped_base, shipped_info

SAMPLE_PROMPTS = ("When she opened the letter, she", "The weather that morning was")


def neutral_texts(sentences: Any, n: int) -> list[str]:
    """``n`` evenly spaced 8–40-word sentences of the ``valid`` documents (not used by pre-training or DPO)."""
    pool = [s.text for s in brown.split("valid", sentences) if 8 <= len(s.words) <= 40]
    step = max(1, len(pool) // n)
    return pool[::step][:n]


def preference_sets(sentences: Any, recipe: PairsRecipe) -> dict[str, list[prefs.PreferencePair]]:
    """``train`` pairs on ``dpo`` documents; ``seen_words``/``unseen_words`` eval pairs on ``dpo_eval`` documents."""
    dpo_s, eval_s = brown.split("dpo", sentences), brown.split("dpo_eval", sentences)
    return {
        "train": prefs.make_pairs(dpo_s, recipe.n_train, prefs.POSITIVE_SEEN, prefs.NEGATIVE_SEEN, seed=recipe.seed),
        "seen_words": prefs.make_pairs(eval_s, recipe.n_eval, prefs.POSITIVE_SEEN, prefs.NEGATIVE_SEEN,
                                       seed=recipe.seed + 1),
        "unseen_words": prefs.make_pairs(eval_s, recipe.n_eval, prefs.POSITIVE_UNSEEN, prefs.NEGATIVE_UNSEEN,
                                         seed=recipe.seed + 2),
    }


def dpo_stage(base: torch.nn.Module, tokenizer: Any, sentences: Any, pairs: PairsRecipe, dpo: DPORecipe, *,
              progress: bool, desc: str = "DPO") -> tuple[torch.nn.Module, dict[str, Any], dict[str, float]]:
    """Copy ``base`` into a policy, train it with DPO (reference = ``base``), measure the evidence."""
    sets = preference_sets(sentences, pairs)
    t0 = time.perf_counter()
    policy = copy.deepcopy(base)
    for p in policy.parameters():
        p.requires_grad_(True)
    train_stats = dpo_train(policy, base, EncodedPairs(tokenizer, sets["train"]), steps=dpo.steps,
                            batch_size=dpo.batch_size, lr=dpo.lr, beta=dpo.beta, warmup=dpo.warmup, seed=dpo.seed,
                            progress=progress, desc=desc)
    t1 = time.perf_counter()
    evidence: dict[str, Any] = {"beta": dpo.beta, "train": train_stats}
    for k in ("seen_words", "unseen_words"):
        evidence[k] = preference_evidence(base, policy, EncodedPairs(tokenizer, sets[k]), dpo.beta)
    evidence["neutral"] = neutral_evidence(base, policy, tokenizer, neutral_texts(sentences, pairs.n_neutral))
    evidence["samples"] = {p: {"base": greedy(base, tokenizer, p), "dpo": greedy(policy, tokenizer, p)}
                           for p in SAMPLE_PROMPTS}
    evidence["pairs_example"] = asdict(sets["seen_words"][0])
    return policy, evidence, {"dpo": t1 - t0, "evaluate": time.perf_counter() - t1}


def recipe_of(budget: str | LabRecipe) -> LabRecipe:
    if isinstance(budget, LabRecipe):
        return budget
    if budget not in RECIPES:
        raise InputError(f"unknown lab budget {budget!r}; choose one of {sorted(RECIPES)} or pass a LabRecipe")
    return RECIPES[budget]


def _corpus(corpus: str | os.PathLike | None, cache_dir: str | os.PathLike | None) -> tuple[Path, Any]:
    path = Path(corpus) if corpus is not None else brown.locate_brown(cache_dir=cache_dir)
    return path, brown.read_brown(path)


def lab_dirs(budget: str | LabRecipe = "demo", cache_dir: str | os.PathLike | None = None,
             from_scratch: bool = False) -> tuple[Path, Path]:
    """Where ``build_lab_pair(budget)`` keeps its base and DPO folders (they may not exist yet). The base shipped in
    the package (spinal_nb.lab.shipped) has its own key: it is the float16-stored copy of a from-scratch build."""
    r = recipe_of(budget)
    root = user_cache_dir(cache_dir) / "lab"
    key = {"lab": LAB_VERSION, "corpus": brown.BROWN_FILE, "pretrain": asdict(r.pretrain)}
    if not from_scratch and shipped_info(r) is not None:
        key["shipped"] = STORED_DTYPE
    base_key = recipe_hash(key)
    dpo_key = recipe_hash({"lab": LAB_VERSION, "base": base_key, "pairs": asdict(r.pairs), "dpo": asdict(r.dpo)})
    return root / f"{r.name}-base-{base_key}", root / f"{r.name}-dpo-{dpo_key}"


def build_lab_base(budget: str | LabRecipe = "demo", cache_dir: str | os.PathLike | None = None,
                   progress: bool = True, corpus: str | os.PathLike | None = None,
                   from_scratch: bool = False) -> Path:
    """The folder of the lab pair's base, ready to load: from the cache, else installed from the base shipped in the
    package (a second), else pre-trained from scratch (minutes; always so with ``from_scratch=True``)."""
    r = recipe_of(budget)
    base_dir, _ = lab_dirs(r, cache_dir, from_scratch)
    if base_dir.is_dir():
        return base_dir
    if not from_scratch and shipped_info(r) is not None:
        return install_shipped_base(r, base_dir)
    if progress:
        print(f"spinal: pre-training the lab base {r.name!r} in {base_dir.parent} (once; the demo recipe takes "
              "minutes on 2 CPU cores)", file=sys.stderr, flush=True)
    corpus_path, sentences = _corpus(corpus, cache_dir)
    _build_base(base_dir, r, sentences, corpus_path, progress)
    return base_dir


def build_lab_pair(budget: str | LabRecipe = "demo", cache_dir: str | os.PathLike | None = None,
                   progress: bool = True, corpus: str | os.PathLike | None = None,
                   from_scratch: bool = False) -> LabPair:
    """The offline lab pair: a Llama-style model pre-trained on Brown, and its DPO'd copy. Cached; built if absent.

    ``budget="demo"`` (RECIPES["demo"]): byte-level BPE 4,096 on the 300 Brown ``train`` documents; Llama 8 layers,
    d=128, 4 heads, FFN 384, tied embeddings (2.2 M parameters), 360 steps × 16 × 128 tokens; then hand-written DPO,
    200 steps × 16 pairs, lr 5e-6, β 0.1, on 2,000 sentiment pairs cut from the ``dpo`` documents. Evidence on 200
    held-out pairs (``dpo_eval`` documents) with seen and unseen words, and on 64 neutral ``valid`` sentences.
    The demo base ships with the package (float16-stored, see spinal_nb.lab.shipped), so only the DPO step runs on
    a fresh machine; ``from_scratch=True`` pre-trains it instead.
    ``budget="tiny"``: 3 layers, d=32, 8 documents, 80 + 40 steps: seconds, for tests.

    Reproducible: fixed seeds and step counts (bit-identical on one torch thread). Folders:
    ``<cache>/lab/<name>-base-<hash>/`` and ``<cache>/lab/<name>-dpo-<hash>/`` (:func:`lab_dirs`), each a plain HF
    folder + ``spinal_lab.json``; written to a temporary sibling and renamed when complete.

    >>> pair = build_lab_pair("tiny", progress=False)          # doctest: +SKIP
    >>> pair.evidence["seen_words"]["margin_after"] > pair.evidence["seen_words"]["margin_before"]  # doctest: +SKIP
    True
    """
    r = recipe_of(budget)
    base_dir, dpo_dir = lab_dirs(r, cache_dir, from_scratch)
    from_cache = base_dir.is_dir() and dpo_dir.is_dir()
    base_dir = build_lab_base(r, cache_dir, progress, corpus, from_scratch)
    if not dpo_dir.is_dir():
        if progress:
            print(f"spinal: DPO on the lab base {r.name!r} in {dpo_dir.parent} (once; about a minute for the demo "
                  "recipe on 2 CPU cores)", file=sys.stderr, flush=True)
        corpus_path, sentences = _corpus(corpus, cache_dir)
        _build_dpo(dpo_dir, base_dir, r, sentences, corpus_path, progress)
    return LabPair(r.name, base_dir, dpo_dir, read_lab_json(dpo_dir).get("evidence", {}), from_cache)


def _build_base(base_dir: Path, r: LabRecipe, sentences: Any, corpus_path: Path, progress: bool) -> None:
    p = r.pretrain
    clean_stale(base_dir)
    t0 = time.perf_counter()
    docs = brown.documents("train", sentences)[: p.train_docs]
    tok = train_tokenizer(docs, p.vocab_size)
    train = token_stream(tok, docs)
    valid = token_stream(tok, brown.documents("valid", sentences)[: max(2, (p.train_docs or 300) // 6)])
    t1 = time.perf_counter()
    model = make_model(p, len(tok))
    stats = pretrain(model, train, valid, p, progress=progress)
    t2 = time.perf_counter()
    with atomic_dir(base_dir) as tmp:
        save_checkpoint(tmp, model, tok, {
            "role": "base", "name": f"lab-{r.name}-base", "recipe": r.to_dict(), "recipe_hash": base_dir.name,
            "corpus": {"package": f"{brown.BROWN_PACKAGE}@{brown.BROWN_VERSION}", "sha256": file_sha256(corpus_path)},
            "n_params": sum(q.numel() for q in model.parameters()),
            "timings_s": {"tokenizer": t1 - t0, "pretrain": t2 - t1, "threads": torch.get_num_threads()},
            "evidence": {"pretrain": stats}})


def _build_dpo(dpo_dir: Path, base_dir: Path, r: LabRecipe, sentences: Any, corpus_path: Path | None,
               progress: bool) -> None:
    clean_stale(dpo_dir)
    base, tok = load_checkpoint(base_dir)
    policy, evidence, timings = dpo_stage(base, tok, sentences, r.pairs, r.dpo, progress=progress)
    evidence["pretrain"] = read_lab_json(base_dir).get("evidence", {}).get("pretrain", {})
    with atomic_dir(dpo_dir) as tmp:
        save_checkpoint(tmp, policy, tok, {
            "role": "dpo", "name": f"lab-{r.name}-dpo", "recipe": r.to_dict(), "recipe_hash": dpo_dir.name,
            "parent": str(base_dir), "corpus": {"package": f"{brown.BROWN_PACKAGE}@{brown.BROWN_VERSION}"},
            "timings_s": {**timings, "threads": torch.get_num_threads()}, "evidence": evidence})
