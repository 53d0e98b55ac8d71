"""Resume folders and the hybrid Gram accumulator: the saved state is the hybrid layout (numpy arrays only), a resumed
run equals an uninterrupted one whichever form the groups were in, and a folder from the older layout (one d x d Gram
per layer and group, checkpoint format 1) is refused with a clear InputError rather than a traceback."""
import hashlib
import json

import numpy as np
import pytest

import spinal_nb.capture.tracer as tr
from capture.tiny import make_model, make_prompts, make_tokenizer
from spinal_nb.capture import trace
from spinal_nb.errors import InputError


def test_saved_state_is_the_hybrid_layout_and_resumes_exactly(tmp_path, monkeypatch):
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(30, seed=4)
    real, calls = tr._run_batch, {"n": 0}

    def crash(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("injected crash")
        return real(*a, **k)

    monkeypatch.setattr(tr, "_run_batch", crash)
    with pytest.raises(RuntimeError, match="injected"):
        trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path, checkpoint_every=1,
              n_groups=3)
    monkeypatch.setattr(tr, "_run_batch", real)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["format"] == tr.CHECKPOINT_FORMAT == 2 and progress["prompts_done"] == 12
    with np.load(tmp_path / progress["state_file"], allow_pickle=False) as z:
        is_gram, rows, grams, count = z["gram.is_gram"], z["gram.rows"], z["gram.gram"], z["gram.count"]
    d = rows.shape[1]
    assert rows.shape[0] == count[~is_gram].sum() and grams.shape == (is_gram.sum(), d, d)
    assert is_gram.any() and (~is_gram).any()  # the tiny model's d is small: the interruption holds both forms
    resumed = trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path, n_groups=3)
    full = trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, n_groups=3)
    assert resumed.data.equals(full.data, null_equal=True)


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
    # a format-2 progress.json naming a state file in the old layout (per-group Grams, no rows): InputError too
    state = tmp_path / progress["state_file"]
    with np.load(state, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    L, G = arrays["gram.count"].shape
    d = arrays["gram.colsum"].shape[-1]
    arrays = {k: v for k, v in arrays.items() if k not in ("gram.format", "gram.is_gram", "gram.rows")}
    arrays["gram.gram"] = np.zeros((L, G, d, d))
    with open(state, "wb") as f:
        np.savez(f, **arrays)
    path.write_text(json.dumps({**progress, "state_sha256": hashlib.sha256(state.read_bytes()).hexdigest()}))
    with pytest.raises(InputError, match="delete the folder"):
        trace(model, prompts, tokenizer=tok, progress=False, save_to=tmp_path)
