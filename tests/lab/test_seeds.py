"""Training-seed replicates of the lab pair: the same recipe with other DPO seeds, one built in a background process."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from spinal_nb.errors import InputError
from spinal_nb.lab import RECIPES, build_lab_pair, build_lab_seeds, lab_dirs, read_lab_json, seed_dirs, seed_variant

TINY = RECIPES["tiny"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, brown_tgz):
    cache = tmp_path_factory.mktemp("spinal-cache")
    return cache, build_lab_seeds("tiny", seeds=3, cache_dir=cache, progress=False, corpus=brown_tgz)


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_seed_variant_changes_only_the_dpo_seed():
    v = seed_variant(TINY, 2)
    assert v.dpo.seed == 2 and dataclasses.replace(v, dpo=TINY.dpo) == TINY
    assert seed_variant(TINY, 0) == TINY  # seed 0 is the pair build_lab_pair makes
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            seed_variant(TINY, bad)
    with pytest.raises(InputError, match="seeds"):
        seed_dirs("tiny", 0)


def test_seeds_share_the_base_and_differ_from_each_other(seeds):
    cache, pairs = seeds
    assert len(pairs) == 3 and len({p.base_dir for p in pairs}) == 1
    assert [p.dpo_dir for p in pairs] == seed_dirs("tiny", 3, cache) and len({p.dpo_dir for p in pairs}) == 3
    assert pairs[0].dpo_dir == lab_dirs("tiny", cache)[1]  # seed 0 == the plain pair
    w = [_weights(p.dpo_dir) for p in pairs]
    base = _weights(pairs[0].base_dir)
    for k, p in enumerate(pairs):
        info = read_lab_json(p.dpo_dir)
        assert info["recipe"]["dpo"]["seed"] == k
        # each seed moved away from the base, and no two seeds are the same run
        assert any(not torch.equal(w[k][n], base[n]) for n in base)
    for i in range(3):
        for j in range(i + 1, 3):
            assert any(not torch.equal(w[i][n], w[j][n]) for n in base), (i, j)


def test_the_background_seed_equals_a_build_in_this_process(seeds, tmp_path, brown_tgz):
    """Seed 1 was built in the background process on one thread; rebuilt here on one thread it is bit-identical
    (the builds are deterministic on one thread), so where a seed is built does not change it."""
    cache, pairs = seeds
    assert read_lab_json(pairs[1].dpo_dir)["timings_s"]["threads"] == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the same base (copied) so only the DPO step is redone
        other = tmp_path / "c"
        (other / "lab").mkdir(parents=True)
        import shutil
        shutil.copytree(pairs[1].base_dir, other / "lab" / pairs[1].base_dir.name)
        again = build_lab_pair(seed_variant(TINY, 1), cache_dir=other, progress=False, corpus=brown_tgz)
    finally:
        torch.set_num_threads(threads)
    a, b = _weights(pairs[1].dpo_dir), _weights(again.dpo_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_cached_seeds_return_without_a_process(seeds, brown_tgz, monkeypatch):
    cache, pairs = seeds
    from spinal_nb.lab import build as build_mod
    from spinal_nb.lab import seeds as seeds_mod

    def boom(*a, **k):
        raise AssertionError("a cached seed was rebuilt")
    monkeypatch.setattr(seeds_mod, "background_builds", boom)
    monkeypatch.setattr(build_mod, "dpo_train", boom)
    again = build_lab_seeds("tiny", seeds=3, cache_dir=cache, progress=False, corpus=brown_tgz)
    assert [p.dpo_dir for p in again] == [p.dpo_dir for p in pairs]


def test_background_seeds_run_below_the_callers_priority(monkeypatch):
    """Seeds ≥ 1 build in workers at a lower priority, one per seed up to the cores, so seed 0 (the first comparison,
    built by the caller) keeps its core."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from spinal_nb.lab import seeds as seeds_mod

    if not hasattr(os, "nice"):
        pytest.skip("no os.nice on this platform")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=seeds_mod._background_priority) as ex:
        assert ex.submit(os.nice, 0).result() == min(19, os.nice(0) + 10)
    made = []

    class Recorder:
        def __init__(self, **kw):
            made.append(kw)

        def submit(self, *a):
            return None

    monkeypatch.setattr(seeds_mod, "ProcessPoolExecutor", Recorder)
    monkeypatch.setattr(seeds_mod.os, "cpu_count", lambda: 2)
    todo = {s: ("lab", seed_variant(TINY, s)) for s in (1, 2, 3)}
    seeds_mod.background_builds(todo, [1, 2, 3], None, None)
    assert made[0]["initializer"] is seeds_mod._background_priority and made[0]["max_workers"] == 2
    monkeypatch.setattr(seeds_mod.os, "cpu_count", lambda: 64)
    seeds_mod.background_builds(todo, [1, 2, 3], None, None)
    seeds_mod.background_builds(todo, [1, 2, 3], None, None, max_workers=2)  # what SmolLM2's seeds ask for
    assert [m["max_workers"] for m in made[1:]] == [3, 2]
    assert seeds_mod.background_builds({}, [1], None, None)[0] is None  # nothing to build: no process


def test_a_dead_seed_worker_is_one_clear_error_and_a_failed_seed_its_own():
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from spinal_nb.errors import SpinalError
    from spinal_nb.lab.seeds import wait_for_seeds

    done, dead, failed = Future(), Future(), Future()
    done.set_result("folder")
    dead.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
    failed.set_exception(InputError("bad recipe"))
    wait_for_seeds({1: done, 2: None})  # finished and cached seeds: nothing raised
    with pytest.raises(SpinalError, match="DPO seed 2 stopped without a result") as e:
        wait_for_seeds({1: done, 2: dead})
    assert "\n" not in str(e.value) and "standard input" in str(e.value)
    with pytest.raises(InputError, match="bad recipe"):
        wait_for_seeds({1: failed})
