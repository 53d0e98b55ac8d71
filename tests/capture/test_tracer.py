"""trace(): scores equal an independent direct computation; invariances; resume; dtypes; errors."""
import math

import numpy as np
import polars as pl
import pytest
import torch
from support import FAMILIES, make_model, make_prompts, make_tokenizer

import spinal_nb.capture.tracer as tracer_mod
from spinal_nb.capture import trace
from spinal_nb.errors import ArchitectureError, InputError, ModelLoadError, NumericsError

from .reference import reference_scores

SCORES = ("contraction", "transport", "entropy")


def _tokens(tok, prompts):
    return [tok(p)["input_ids"] for p in prompts]


def _close(a, b, tol):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


def _assert_frames_close(f1, f2, tol):
    for col in SCORES + ("contraction_lo", "contraction_hi", "transport_lo", "entropy_hi"):
        for a, b in zip(f1.data[col].to_list(), f2.data[col].to_list(), strict=True):
            assert _close(a, b, tol), (col, a, b)
    assert f1.data["n_tokens"].to_list() == f2.data["n_tokens"].to_list()


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_equal_an_independent_computation(family):
    model, tok = make_model(family), make_tokenizer()
    prompts = make_prompts(30, seed=family.__hash__() % 1000)
    frame = trace(model, prompts, tokenizer=tok, batch_size=7, progress=False)
    ref = reference_scores(model, _tokens(tok, prompts))
    data = frame.data
    assert data["layer"].to_list() == [0, 1, 2]
    assert data["n_tokens"].to_list() == ref["n_tokens"]
    assert data["n_tokens"][0] == sum(len(t) - 1 for t in _tokens(tok, prompts))
    for col in SCORES:
        for got, want in zip(data[col].to_list(), ref[col], strict=True):
            assert _close(got, want, 1e-6), (col, got, want)
    for got, want in zip(data["contraction_jk"].to_list(), ref["contraction_jk"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # prompt i is in group i % 10
    assert all(x is not None for x in data["contraction"].to_list())
    assert data["transport"].to_list()[-1] is None


def test_skip_first_and_stride_follow_the_spec():
    model, tok = make_model("llama"), make_tokenizer()
    prompts = make_prompts(24, seed=5)
    frame = trace(model, prompts, tokenizer=tok, skip_first=2, position_stride=3, n_groups=4, progress=False)
    toks = _tokens(tok, prompts)
    assert frame.data["n_tokens"][0] == sum(len(range(2, len(t), 3)) for t in toks)
    ref = reference_scores(model, toks, skip_first=2, stride=3, n_groups=4)
    for col in SCORES:
        for got, want in zip(frame.data[col].to_list(), ref[col], strict=True):
            assert _close(got, want, 1e-6), (col, got, want)
    assert frame.params.position_stride == 3 and frame.params.skip_first == 2


def test_padding_side_and_batch_size_change_nothing():
    model, prompts = make_model("qwen2"), make_prompts(25, seed=7)
    left, right = make_tokenizer(), make_tokenizer()
    left.padding_side, right.padding_side = "left", "right"
    f_left = trace(model, prompts, tokenizer=left, batch_size=8, progress=False)
    f_right = trace(model, prompts, tokenizer=right, batch_size=8, progress=False)
    assert f_left.data.equals(f_right.data, null_equal=True)  # padding is forced right internally
    for bs in (1, 3, 25):
        _assert_frames_close(trace(model, prompts, tokenizer=right, batch_size=bs, progress=False), f_right, 1e-6)


def test_nnsight_models_as_input_give_the_same_numbers():
    import nnsight
    model, tok, prompts = make_model("gpt2"), make_tokenizer(), make_prompts(16, seed=8)
    plain = trace(model, prompts, tokenizer=tok, progress=False)
    for wrapped in (nnsight.NNsight(model), nnsight.TransformersModel(model, tokenizer=make_tokenizer())):
        frame = trace(wrapped, prompts, tokenizer=None if hasattr(wrapped, "tokenizer") else tok, progress=False)
        _assert_frames_close(frame, plain, 1e-6)


def test_tokenizer_without_pad_token_works():
    model, prompts = make_model("llama"), make_prompts(12, seed=9)
    with_pad = trace(model, prompts, tokenizer=make_tokenizer(), progress=False)
    no_pad = make_tokenizer(pad=False)
    assert no_pad.pad_token is None
    frame = trace(model, prompts, tokenizer=no_pad, progress=False)
    assert frame.data.equals(with_pad.data, null_equal=True)


def test_too_long_prompts_are_truncated_with_a_warning():
    model, tok = make_model("gpt2"), make_tokenizer()
    long = " ".join(["the old man"] * 60)  # 181 tokens > n_positions = 128
    prompts = make_prompts(10, seed=1) + [long]
    with pytest.warns(UserWarning, match="1 prompt.*truncated to their first 128 tokens"):
        frame = trace(model, prompts, tokenizer=tok, progress=False)
    extra = frame.meta["checkpoints"][frame.checkpoints[0]]["extra"]
    assert extra["n_truncated"] == 1
    short = sum(len(t) - 1 for t in _tokens(tok, prompts[:-1]))
    assert frame.data["n_tokens"][0] == short + 127
    with pytest.warns(UserWarning, match="truncated to their first 20"):
        f20 = trace(model, prompts, tokenizer=tok, progress=False, max_length=20)
    assert f20.data["n_tokens"][0] == sum(min(len(t), 20) - 1 for t in _tokens(tok, prompts))


@pytest.mark.parametrize("bad,match", [
    ([], "No prompts"), (["ok prompt", "   "], "empty or whitespace"), (["fine", 3], "not a string"),
    ("the old man", "not one string"), (None, "None"),
])
def test_bad_prompts_get_clear_errors(bad, match):
    with pytest.raises(InputError, match=match):
        trace(make_model("llama"), bad, tokenizer=make_tokenizer(), progress=False)


def test_bad_arguments_get_clear_errors():
    model, tok, p = make_model("llama"), make_tokenizer(), make_prompts(4)
    with pytest.raises(InputError, match="Unknown SPINAL parameter"):
        trace(model, p, tokenizer=tok, skipfirst=2, progress=False)
    with pytest.raises(InputError, match="batch_size"):
        trace(model, p, tokenizer=tok, batch_size=0, progress=False)
    with pytest.raises(InputError, match="dtype"):
        trace(model, p, tokenizer=tok, dtype="int8", progress=False)
    with pytest.raises(InputError, match="tokenizer="):
        trace(model, p, progress=False)
    with pytest.raises(InputError, match="No token positions"):
        trace(model, ["the", "a"], tokenizer=tok, skip_first=2, progress=False)
    with pytest.raises(ArchitectureError, match="not a causal decoder"):
        import transformers as T
        bert = T.BertForMaskedLM(T.BertConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2,
                                              num_attention_heads=4, intermediate_size=64))
        trace(bert, p, tokenizer=tok, progress=False)


def test_datasets_and_iterables_of_dicts():
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(12, seed=4)
    base = trace(model, prompts, tokenizer=tok, progress=False)
    rows = ({"body": p, "id": i} for i, p in enumerate(prompts))
    assert trace(model, rows, tokenizer=tok, text_column="body", progress=False).data.equals(base.data, null_equal=True)
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": prompts})
    assert trace(model, ds, tokenizer=tok, progress=False).data.equals(base.data, null_equal=True)
    with pytest.raises(InputError, match="no column 'sentence'"):
        trace(model, ds, tokenizer=tok, text_column="sentence", progress=False)


def test_local_folder_loads_through_transformers(tmp_path):
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(10, seed=3)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    frame = trace(str(tmp_path), prompts, progress=False)
    assert frame.data.equals(trace(model, prompts, tokenizer=tok, progress=False, checkpoint=tmp_path.name).data,
                             null_equal=True)
    assert frame.meta["checkpoints"][tmp_path.name]["model"] == str(tmp_path)


def test_missing_model_is_a_model_load_error(tmp_path):
    # a Hub id that is not in the cache, with the Hub out of reach (CI sets HF_HUB_OFFLINE=1): named with the cache
    with pytest.raises(ModelLoadError, match="not in the (Hugging Face )?cache"):
        trace("no-such-org/no-such-model-spinal", ["hello world"], progress=False)
    # a path-looking name is a missing folder, not a Hub id
    with pytest.raises(ModelLoadError, match=f"no model folder {tmp_path / 'nothing'}"):
        trace(str(tmp_path / "nothing"), ["hello world"], progress=False)


def test_bf16_model_accumulates_in_float64():
    model, tok, prompts = make_model("llama", dtype=torch.bfloat16), make_tokenizer(), make_prompts(20, seed=2)
    frame = trace(model, prompts, tokenizer=tok, batch_size=1, progress=False)
    assert frame.meta["checkpoints"][frame.checkpoints[0]]["dtype"] == "bfloat16"
    ref = reference_scores(model, _tokens(tok, prompts))  # bf16 states, float64 math
    for col in SCORES:
        for got, want in zip(frame.data[col].to_list(), ref[col], strict=True):
            assert _close(got, want, 1e-6), (col, got, want)
    f32 = trace(make_model("llama"), prompts, tokenizer=tok, progress=False)
    for a, b in zip(frame.data["contraction"].to_list(), f32.data["contraction"].to_list(), strict=True):
        assert abs(a - b) < 0.15  # bf16 rounding moves alpha only a little


def test_dtype_argument_casts_a_loaded_model():
    model, tok, prompts = make_model("gemma"), make_tokenizer(), make_prompts(10, seed=2)
    frame = trace(model, prompts, tokenizer=tok, dtype="bf16", progress=False)
    assert frame.meta["checkpoints"][frame.checkpoints[0]]["dtype"] == "bfloat16"
    assert all(math.isfinite(x) for x in frame.data["entropy"].to_list())


def test_nan_in_the_lens_names_the_layer():
    model, tok = make_model("llama"), make_tokenizer()
    with torch.no_grad():
        model.lm_head.weight[5, 0] = float("inf")  # states stay finite; only the lens logits break
    with pytest.raises(NumericsError, match=r"layer 0 \(input of model.layers.0\)"):
        trace(model, make_prompts(6), tokenizer=tok, progress=False)


def test_nan_in_a_block_names_the_layer():
    model, tok = make_model("llama"), make_tokenizer()
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(NumericsError, match=r"layer 2 \(output of model.layers.1\)"):
        trace(model, make_prompts(6), tokenizer=tok, progress=False)


def test_dropout_is_off_during_the_trace_and_mode_restored():
    model, tok, prompts = make_model("gpt2"), make_tokenizer(), make_prompts(10, seed=6)
    model.config.resid_pdrop = 0.5
    model.train()
    a = trace(model, prompts, tokenizer=tok, progress=False)
    b = trace(model, prompts, tokenizer=tok, progress=False)
    assert a.data.equals(b.data, null_equal=True) and model.training


def test_lens_detail_for_chosen_prompts():
    model, tok, prompts = make_model("gemma2"), make_tokenizer(), make_prompts(12, seed=11)
    frame = trace(model, prompts, tokenizer=tok, lens_prompts=[3, 5], lens_top_k=4, progress=False)
    lens = frame.lens
    toks = _tokens(tok, prompts)
    assert set(lens["prompt_index"].unique().to_list()) == {3, 5}
    assert lens.height == (len(toks[3]) + len(toks[5])) * 3 * 4
    with torch.no_grad():
        logits = model(torch.tensor([toks[5]])).logits[0].double()
    p = torch.softmax(logits, -1)
    last = lens.filter((pl.col("prompt_index") == 5) & (pl.col("layer") == 2)).sort("position", "rank")
    top = p.topk(4, -1)
    np.testing.assert_array_equal(last["token_id"].to_numpy().reshape(-1, 4), top.indices.numpy())
    np.testing.assert_allclose(last["prob"].to_numpy().reshape(-1, 4), top.values.numpy(), atol=1e-6)
    assert last.filter(pl.col("rank") == 1)["token"].to_list() == [tok.decode([t]) for t in toks[5]]
    assert frame.data.equals(trace(model, prompts, tokenizer=tok, progress=False).data, null_equal=True)


def test_progress_bar_counts_prompts(capsys):
    trace(make_model("llama"), make_prompts(9), tokenizer=make_tokenizer(), batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "9/9" in err and "prompt" in err
    trace(make_model("llama"), make_prompts(9), tokenizer=make_tokenizer(), batch_size=4, progress=False)
    assert "9/9" not in capsys.readouterr().err


# -- resume ---------------------------------------------------------------------------------------------------------
class Boom(RuntimeError):
    pass


_REAL_RUN_BATCH = tracer_mod._run_batch


def _fail_after(monkeypatch, k):
    real, calls = _REAL_RUN_BATCH, {"n": 0}

    def run(*a, **kw):
        if calls["n"] == k:
            raise Boom(f"injected after {k} batches")
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(tracer_mod, "_run_batch", run)
    return calls


@pytest.mark.parametrize("every,k", [(1, 3), (2, 3)])
def test_interrupted_run_resumes_to_identical_results(tmp_path, monkeypatch, every, k):
    model, tok, prompts = make_model("mistral"), make_tokenizer(), make_prompts(37, seed=12)
    full = trace(model, prompts, tokenizer=tok, batch_size=5, progress=False)
    _fail_after(monkeypatch, k)
    with pytest.raises(Boom):
        trace(model, prompts, tokenizer=tok, batch_size=5, progress=False, save_to=tmp_path, save_every=every)
    saved = __import__("json").loads((tmp_path / "progress.json").read_text())
    assert saved["prompts_done"] == 5 * (k - k % every) and not saved["complete"]
    assert list(tmp_path.glob("*.npz")) == [tmp_path / saved["state_file"]]
    calls = _fail_after(monkeypatch, 10**9)
    resumed = trace(model, prompts, tokenizer=tok, batch_size=5, progress=False, save_to=tmp_path,
                    save_every=every)
    assert calls["n"] == 8 - saved["prompts_done"] // 5  # only the missing batches ran
    assert resumed.data.equals(full.data, null_equal=True)
    assert resumed.meta["checkpoints"][resumed.checkpoints[0]]["extra"]["resumed_from"] == saved["prompts_done"]
    # a finished run answers from its saved state without running the model
    _fail_after(monkeypatch, 0)
    again = trace(model, prompts, tokenizer=tok, batch_size=5, progress=False, save_to=tmp_path)
    assert again.data.equals(full.data, null_equal=True)


def test_save_to_refuses_a_different_call(tmp_path):
    model, tok = make_model("llama"), make_tokenizer()
    trace(model, make_prompts(6), tokenizer=tok, progress=False, save_to=tmp_path)
    with pytest.raises(InputError, match="different call"):
        trace(model, make_prompts(7), tokenizer=tok, progress=False, save_to=tmp_path)
    with pytest.raises(InputError, match="different call"):
        trace(model, make_prompts(6), tokenizer=tok, progress=False, save_to=tmp_path, n_groups=5)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        trace(model, make_prompts(6), tokenizer=tok, progress=False, save_to=tmp_path / "file")


def test_saved_state_has_no_pickle(tmp_path):
    trace(make_model("llama"), make_prompts(6), tokenizer=make_tokenizer(), progress=False, save_to=tmp_path)
    (npz,) = tmp_path.glob("*.npz")
    with np.load(npz, allow_pickle=False) as z:
        assert {"gram.gram", "transport.step_sum"} <= set(z.files)
        assert all(z[k].dtype != object for k in z.files)
