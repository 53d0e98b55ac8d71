"""The demo base shipped in the package: it matches the demo recipe, installs as the exact float32 image of its
float16 weights, and replaces pre-training (a tiny base is shipped and installed here the same way)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from spinal_nb.errors import ModelLoadError
from spinal_nb.lab import RECIPES, build_lab_pair, lab_dirs, load_checkpoint, read_lab_json, shipped
from spinal_nb.lab import build as build_mod
from spinal_nb.lab.build import build_lab_base

DEMO, TINY = RECIPES["demo"], RECIPES["tiny"]


def test_the_package_ships_the_current_demo_base():
    # fails when the demo's pre-training recipe changes without `python -m spinal_nb.lab ship-base`
    info = shipped.shipped_info(DEMO)
    assert info is not None, "the shipped demo base does not match RECIPES['demo'].pretrain: run ship-base"
    folder = shipped.shipped_folder(DEMO)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 5_000_000
    weights = load_file(str(folder / shipped.WEIGHTS))
    assert {t.dtype for t in weights.values()} == {torch.float16}
    n = sum(t.numel() for t in weights.values())
    assert n == info["n_params"]  # every parameter of the build is there (tied embeddings stored once)
    assert info["shipped"]["dtype"] == "float16" and len(info["shipped"]["float32_sha256"]) == 64
    assert info["evidence"]["pretrain"]  # the pre-training evidence travels with it


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory, brown_tgz):
    cache = tmp_path_factory.mktemp("cache")
    return build_lab_base("tiny", cache_dir=cache, progress=False, corpus=brown_tgz, from_scratch=True)


@pytest.fixture
def tiny_shipped(tiny_built, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    shipped.ship_base(tiny_built, shipped.shipped_folder(TINY))
    return shipped.shipped_folder(TINY)


def test_ship_then_install_is_the_float16_image_of_the_build(tiny_built, tiny_shipped, tmp_path, monkeypatch,
                                                             brown_tgz):
    assert shipped.shipped_info(TINY) is not None
    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("pre-trained although a base is shipped"))  # noqa: E731
    monkeypatch.setattr(build_mod, "_build_base", boom)
    cache = tmp_path / "fresh-cache"
    base_dir = build_lab_base("tiny", cache_dir=cache, progress=False, corpus=brown_tgz)
    assert base_dir == lab_dirs("tiny", cache)[0] != lab_dirs("tiny", cache, from_scratch=True)[0]
    built, installed = load_file(str(tiny_built / "model.safetensors")), load_file(str(base_dir / "model.safetensors"))
    assert built.keys() == installed.keys()
    for k, t in built.items():
        assert installed[k].dtype == torch.float32
        assert torch.equal(installed[k], t.to(torch.float16).to(torch.float32)), k
    # it loads like any checkpoint, with the same tokenizer, and says where it came from
    (m_built, tok_built), (m_inst, tok_inst) = load_checkpoint(tiny_built), load_checkpoint(base_dir)
    text = "The jury said it did find that the"
    assert tok_built(text)["input_ids"] == tok_inst(text)["input_ids"]
    ids = torch.tensor([tok_inst(text)["input_ids"]])
    with torch.no_grad():
        a, b = m_built(ids).logits, m_inst(ids).logits
    assert 0 < (a - b).abs().max() < 0.05  # float16 rounding of the weights: visible, small
    info = read_lab_json(base_dir)
    assert info["recipe_hash"] == base_dir.name and info["installed_from"] == str(tiny_shipped)


def test_a_changed_recipe_does_not_use_the_shipped_base(tiny_shipped):
    other = dataclasses.replace(TINY, pretrain=dataclasses.replace(TINY.pretrain, steps=TINY.pretrain.steps + 1))
    assert shipped.shipped_info(other) is None
    with pytest.raises(ModelLoadError, match="no shipped base"):
        shipped.install_shipped_base(other, tiny_shipped.parent / "x")


def test_only_float32_base_builds_are_shipped(tiny_built, tiny_shipped, tmp_path):
    with pytest.raises(ModelLoadError, match="float32"):
        shipped.ship_base(tiny_shipped, tmp_path / "again")  # the shipped copy itself is float16
    with pytest.raises(ModelLoadError, match="role 'base'"):
        shipped.ship_base(tmp_path, tmp_path / "nothing")


def test_the_shipped_pair_trains_dpo_on_the_installed_base(tiny_shipped, tmp_path, brown_tgz):
    pair = build_lab_pair("tiny", cache_dir=tmp_path / "c", progress=False, corpus=brown_tgz)
    assert read_lab_json(pair.dpo_dir)["parent"] == str(pair.base_dir)
    assert pair.evidence["seen_words"]["margin_after"] > pair.evidence["seen_words"]["margin_before"]
