"""Training-seed replicates of the offline pairs: the same recipe with other DPO seeds, built side by side.

Seeds 1, 2, … build in background processes (spawned, one torch thread each, at a lower CPU priority: ``nice``
+10) while the calling process builds seed 0 on one thread, so seed 0 — the first comparison — keeps a core to itself
and the other seeds take the remaining cores, then all of them once seed 0 is done. On 2 cores the demo's three seeds
take about 1.6 single-seed builds (measured in BENCHMARKS.md, "The demo on a fresh machine"). Each seed is a normal
cached checkpoint folder (written atomically), keyed by its recipe, so seed 0 is exactly ``build_lab_pair``'s /
``build_smollm2_pair``'s.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, SpinalError
from .build import build_lab_base, build_lab_pair, lab_dirs, recipe_of
from .checkpoint import LabPair
from .recipes import SMOLLM2_DPO, LabRecipe, SmolLM2Recipe, seed_variant
from .smollm2 import build_smollm2_pair, smollm2_dpo_dir, smollm2_plain_dir


def seed_dirs(budget: str | LabRecipe = "demo", seeds: int = 3, cache_dir: str | os.PathLike | None = None
              ) -> list[Path]:
    """The DPO folders of training seeds 0 … ``seeds``-1 of a lab recipe (seed 0 is ``build_lab_pair``'s)."""
    r = recipe_of(budget)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise InputError(f"seeds is the number of DPO training seeds (≥ 1), got {seeds!r}")
    return [lab_dirs(seed_variant(r, s), cache_dir)[1] for s in range(seeds)]


def _background_priority() -> None:
    """Worker initializer: below the caller's priority, so the caller's own build (seed 0, the first comparison) is
    not slowed by the workers sharing its cores; where there is no ``os.nice`` (Windows) the workers run as they are."""
    if hasattr(os, "nice"):
        try:
            os.nice(10)
        except OSError:
            pass


def _seed_job(builder: str, recipe: Any, cache_dir: str | None, corpus: str | None) -> str:
    """One DPO seed in a worker process, on one torch thread."""
    torch.set_num_threads(1)
    if builder == "smollm2":
        return str(build_smollm2_pair(cache_dir=cache_dir, progress=False, recipe=recipe, corpus=corpus).dpo_dir)
    return str(build_lab_pair(recipe, cache_dir=cache_dir, progress=False, corpus=corpus).dpo_dir)


def background_builds(todo: dict[int, tuple[str, Any]], which: list[int], cache_dir: str | os.PathLike | None,
                      corpus: str | os.PathLike | None, max_workers: int | None = None):
    """Build the seeds in ``todo`` (seed → (builder "lab" or "smollm2", recipe)) in background processes, one per
    seed up to the number of cores (and ``max_workers``), each on one thread at a lower priority
    (:func:`_background_priority`). Returns ``(executor or None, {seed: future of its folder, or None when it needed
    no build})`` for every seed in ``which``. Each seed is written atomically, so an interrupted build leaves no half
    folder; ``executor.shutdown(cancel_futures=True)`` stops what has not started."""
    workers = min(len(todo), os.cpu_count() or 1, max_workers or len(todo))  # ≥ 1 whenever there is work
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_background_priority) if todo else None
    cd, cp = (None if x is None else str(x) for x in (cache_dir, corpus))
    return ex, {s: ex.submit(_seed_job, *todo[s], cd, cp) if s in todo else None for s in which}


def wait_for_seeds(futures: dict[int, Any]) -> None:
    """Wait for the background seeds; a failed seed raises its own error here. A worker that died (killed for
    memory, or a script run from standard input, which spawned processes cannot import) is said in one line."""
    for seed, f in futures.items():
        if f is None:
            continue
        try:
            f.result()
        except BrokenProcessPool as e:
            raise SpinalError(
                f"The background process building DPO seed {seed} stopped without a result (killed, e.g. for "
                "memory, or the calling script came from standard input, which spawned processes cannot import). "
                "Run from a file, or build fewer seeds at once.") from e


def start_seed_builds(budget: str | LabRecipe, which: list[int], cache_dir: str | os.PathLike | None = None,
                      corpus: str | os.PathLike | None = None):
    """Seeds ``which`` of a lab recipe in the background (:func:`background_builds`); cached ones are not rebuilt."""
    r = recipe_of(budget)
    variants = {s: seed_variant(r, s) for s in which}
    return background_builds({s: ("lab", v) for s, v in variants.items() if not lab_dirs(v, cache_dir)[1].is_dir()},
                             which, cache_dir, corpus)


def build_lab_seeds(budget: str | LabRecipe = "demo", seeds: int = 3, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True, corpus: str | os.PathLike | None = None) -> list[LabPair]:
    """The lab pair with ``seeds`` DPO training seeds: one LabPair per seed (same base; seed 0 is ``build_lab_pair``).

    Seeds 1, 2, … build in background processes at a lower priority while seed 0 builds here (one thread each), so
    on 2 cores the three seeds of the demo recipe take about 1.6 times one seed (~120 s on one idle core). Cached like
    the pair; a rerun returns at once.
    """
    r = recipe_of(budget)
    dirs = seed_dirs(r, seeds, cache_dir)
    build_lab_base(r, cache_dir, progress, corpus)
    # seeds ≥ 1 in background processes (lower priority), seed 0 here, each on one thread
    background = [s for s in range(1, seeds) if not dirs[s].is_dir()]
    ex, futures, threads = None, {}, torch.get_num_threads()
    try:
        if background:
            if progress:
                print(f"spinal: DPO seeds {background} of the lab recipe {r.name!r} in background processes",
                      file=sys.stderr, flush=True)
            ex, futures = start_seed_builds(r, background, cache_dir, corpus)
            torch.set_num_threads(1)  # the other cores are the background processes'
        pairs = {s: build_lab_pair(seed_variant(r, s), cache_dir, progress, corpus)
                 for s in range(seeds) if s not in futures}
        wait_for_seeds(futures)
        pairs.update({s: build_lab_pair(seed_variant(r, s), cache_dir, False, corpus) for s in futures})
        return [pairs[s] for s in range(seeds)]
    finally:
        torch.set_num_threads(threads)
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)


def build_smollm2_seeds(seeds: int = 2, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                        corpus: str | os.PathLike | None = None, recipe: SmolLM2Recipe = SMOLLM2_DPO
                        ) -> list[LabPair]:
    """The SmolLM2 pair with ``seeds`` DPO training seeds (seed 0 is :func:`build_smollm2_pair`'s): one LabPair
    per seed, same base. Seeds ≥ 1 build in background processes (lower priority) while this one builds seed 0, each
    on one thread, so two seeds cost about the time of one on 2 cores (~10-12 min the first time with ``SMOLLM2_DPO``;
    ~2-3 min with ``SMOLLM2_QUICK``; ~0.5 GB more per seed on disk, ~3 GB of memory per
    building process, so at most two build in the background besides seed 0)."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds is the number of DPO training seeds (≥ 1), got {seeds!r}")
    smollm2_plain_dir(cache_dir, progress)  # converted once, before two processes need it
    variants = {k: seed_variant(recipe, k) for k in range(seeds)}
    todo = {k: ("smollm2", v) for k, v in variants.items()
            if k >= 1 and not smollm2_dpo_dir(v, cache_dir).is_dir()}
    threads = torch.get_num_threads()
    # a SmolLM2 DPO holds ~3 GB (policy, reference, gradients, Adam): two at a time whatever the cores
    ex, futures = background_builds(todo, sorted(todo), cache_dir, corpus, max_workers=2)
    try:
        if ex is not None:
            torch.set_num_threads(1)  # the other cores are the background processes'
        pairs = {k: build_smollm2_pair(cache_dir, progress, v, corpus) for k, v in variants.items() if k not in todo}
        wait_for_seeds(futures)
        pairs.update({k: build_smollm2_pair(cache_dir, False, variants[k], corpus) for k in todo})
        return [pairs[k] for k in range(seeds)]
    finally:
        torch.set_num_threads(threads)
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
