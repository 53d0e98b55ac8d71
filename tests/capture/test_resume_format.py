"""Resume folders and the hybrid Gram accumulator: the saved state is the hybrid layout (numpy arrays only), a resumed
run equals an uninterrupted one whichever form the groups were in, and a folder from the older layout (one d x d Gram
per layer and group, checkpoint format 1) is refused with a clear InputError rather than a traceback."""
import hashlib
import json

import numpy as np
import pytest
from support import make_model, make_prompts, make_tokenizer

import spinal_nb.capture.resume as resume
import spinal_nb.capture.spill as spill_mod
import spinal_nb.capture.tracer as tr
from spinal_nb.capture import trace
from spinal_nb.errors import InputError


def interrupted_after_12_of_30(folder, monkeypatch):
    """A resumable trace of 30 prompts (batches of 3, 3 groups) that crashes in its 5th batch: 12 prompts saved."""
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(30, seed=4)
    real, calls = tr._run_batch, {"n": 0}

    def crash(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("injected crash")
        return real(*a, **k)

    monkeypatch.setattr(tr, "_run_batch", crash)
    with pytest.raises(RuntimeError, match="injected"):
        trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=folder, save_every=1,
              n_groups=3)
    monkeypatch.setattr(tr, "_run_batch", real)
    return model, tok, prompts


@pytest.mark.parametrize("spill", [False, True])
def test_saved_state_is_the_hybrid_layout_and_resumes_exactly(tmp_path, monkeypatch, spill):
    # prompts run group by group (group g = prompts g, g + 3, ...): after 12 of 30, group 0 (10 prompts) is finished
    monkeypatch.setattr(spill_mod, "SPILL_MIN_BYTES", 0 if spill else 1 << 62)
    model, tok, prompts = interrupted_after_12_of_30(tmp_path, monkeypatch)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["format"] == resume.RESUME_FORMAT == 4 and progress["prompts_done"] == 12
    with np.load(tmp_path / progress["state_file"], allow_pickle=False) as z:
        is_gram, rows, grams, count, spilled, sha = (z[f"gram.{k}"] for k in (
            "is_gram", "rows", "gram", "count", "spilled", "spill_sha256"))
    d = rows.shape[1]
    in_memory = ~spilled[None, :]
    assert rows.shape[0] == count[~is_gram & in_memory].sum() and grams.shape == ((is_gram & in_memory).sum(), d, d)
    assert is_gram.any() and (~is_gram).any()  # the tiny model's d is small: the interruption holds both forms
    assert spilled.tolist() == [spill, False, False]
    if spill:  # the finished group is in its own file, named in the state with its digest, not copied into it
        spilled_file = tmp_path / "spill" / "group-0.npz"
        assert bytes(sha[0]).hex() == hashlib.sha256(spilled_file.read_bytes()).hexdigest()
    resumed = trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path, n_groups=3)
    full = trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, n_groups=3)
    assert resumed.data.equals(full.data, null_equal=True)


def test_a_tampered_spilled_group_is_refused_on_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(spill_mod, "SPILL_MIN_BYTES", 0)
    model, tok, prompts = interrupted_after_12_of_30(tmp_path, monkeypatch)
    spilled_file = tmp_path / "spill" / "group-0.npz"
    raw = bytearray(spilled_file.read_bytes())
    raw[len(raw) // 2] ^= 1  # one bit of one float64 of the spilled group
    spilled_file.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="group 0.*does not match.*delete the folder"):
        trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path, n_groups=3)
    spilled_file.unlink()
    with pytest.raises(InputError, match="missing"):
        trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path, n_groups=3)


def test_a_folder_of_the_older_format_is_refused_with_delete_the_folder(tmp_path):
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(6)
    trace(model, prompts, tokenizer=tok, progress=False, save_to=tmp_path)
    path = tmp_path / "progress.json"
    progress = json.loads(path.read_text())
    old = {**progress, "format": 1}
    path.write_text(json.dumps(old))
    with pytest.raises(InputError, match="format 1.*delete the folder"):
        trace(model, prompts, tokenizer=tok, progress=False, save_to=tmp_path)
    del old["format"]  # the format field is missing altogether
    path.write_text(json.dumps(old))
    with pytest.raises(InputError, match="delete the folder"):
        trace(model, prompts, tokenizer=tok, progress=False, save_to=tmp_path)
    # a current-format progress.json naming a state file in the old layout (per-group Grams, no rows): InputError too
    state = tmp_path / progress["state_file"]
    with np.load(state, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    L, G = arrays["gram.count"].shape
    d = arrays["gram.colsum"].shape[-1]
    arrays = {k: v for k, v in arrays.items()
              if k not in ("gram.format", "gram.is_gram", "gram.rows", "gram.spilled", "gram.spill_sha256")}
    arrays["gram.gram"] = np.zeros((L, G, d, d))
    with open(state, "wb") as f:
        np.savez(f, **arrays)
    path.write_text(json.dumps({**progress, "state_sha256": hashlib.sha256(state.read_bytes()).hexdigest()}))
    with pytest.raises(InputError, match="delete the folder"):
        trace(model, prompts, tokenizer=tok, progress=False, save_to=tmp_path)
