"""Hardening: bad input to trace() gives one clear SpinalError and leaves nothing half-done (docs/hardening.md §1)."""
import math
import warnings

import polars as pl
import pytest
import torch
import transformers as T
from support import WORDS, make_model, make_prompts, make_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers

from spinal_nb.capture import trace
from spinal_nb.errors import InputError, NumericsError, SpinalError
from spinal_nb.scores import fit_tail


@pytest.mark.parametrize("prompts", [[], (), iter([]), ["   "], ["\n\t"], ["ok words", "\u3000\u2003"], [""]])
def test_empty_inputs_are_input_errors_and_write_nothing(tmp_path, prompts):
    save = tmp_path / "run"
    with pytest.raises(InputError) as e:
        trace(make_model("llama"), prompts, tokenizer=make_tokenizer(), progress=False, save_to=save)
    assert "prompt" in str(e.value).lower()
    assert not save.exists()  # refused before any model work or checkpoint file


def test_error_is_raised_before_the_model_runs(monkeypatch):
    import spinal_nb.capture.tracer as tr

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("the model ran on bad input")

    monkeypatch.setattr(tr, "_run_batch", boom)
    with pytest.raises(InputError, match="indices \\[1, 3\\]"):
        trace(make_model("llama"), ["the old man", " ", "a man", "\t"], tokenizer=make_tokenizer(), progress=False)


def test_prompts_longer_than_the_context_equal_their_truncation():
    model, tok = make_model("llama"), make_tokenizer()  # max_position_embeddings = 128
    long = " ".join(["the", "old", "man", "was", "here"] * 40)  # 201 tokens with BOS
    ids = tok(long)["input_ids"]
    assert len(ids) > 128
    cut = tok.decode(ids[1:128])  # the words that fit after BOS
    with pytest.warns(UserWarning, match="truncated"):
        a = trace(model, [long, "the old man"], tokenizer=tok, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the already-short version must not warn
        b = trace(model, [cut, "the old man"], tokenizer=tok, progress=False)
    assert a.data.drop("checkpoint").equals(b.data.drop("checkpoint"), null_equal=True)
    assert a.data["n_tokens"][0] == 127 + 3  # 128 tokens and 4 tokens, each minus skip_first=1


def _bare_tokenizer():
    """A tokenizer with no pad, eos, bos or unk token at all (only words)."""
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(sorted(set(WORDS)))}))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return T.PreTrainedTokenizerFast(tokenizer_object=tok)


def test_tokenizer_without_any_special_token():
    bare = _bare_tokenizer()
    assert bare.pad_token is None and bare.eos_token is None and bare.unk_token is None
    model, prompts = make_model("qwen2"), make_prompts(11, seed=5)
    frame = trace(model, prompts, tokenizer=bare, batch_size=4, progress=False)
    one_by_one = trace(model, prompts, tokenizer=bare, batch_size=1, progress=False)  # no padding at all
    cols = ["contraction", "transport", "entropy", "n_tokens"]
    for c in cols:
        for x, y in zip(frame.data[c].to_list(), one_by_one.data[c].to_list(), strict=True):
            assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9), (c, x, y)  # float32 forward


def _overflowing_fp16_model():
    model = make_model("llama", dtype=torch.float16)
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight.mul_(1e3)  # block 2's output exceeds fp16's 65504
        model.model.layers[1].mlp.down_proj.weight.mul_(1e3)
    return model


def test_fp16_overflow_is_a_numerics_error_naming_the_layer(tmp_path):
    model, tok = _overflowing_fp16_model(), make_tokenizer()
    with pytest.raises(NumericsError) as e:
        trace(model, make_prompts(6), tokenizer=tok, progress=False, save_to=tmp_path / "run")
    msg = str(e.value)
    assert "layer 2 (output of model.layers.1)" in msg
    assert "bfloat16" in msg or "float32" in msg  # says what to do
    assert not (tmp_path / "run" / "progress.json").exists()  # no checkpoint of a poisoned state
    # the advice works: the same weights in float32 trace cleanly
    ok = trace(model.float(), make_prompts(6), tokenizer=tok, progress=False)
    assert all(math.isfinite(x) for x in ok.data["entropy"].to_list())


def test_too_few_tokens_for_the_window_gives_null_with_a_reason_not_a_number():
    # 3 prompts x 2 scored positions = 6 rows: centered rank 5 < min_points
    frame = trace(make_model("llama"), ["the old man", "a new day", "his own work"], tokenizer=make_tokenizer(),
                  progress=False)
    d = frame.data
    assert d["contraction"].null_count() == d.height
    assert d["contraction_lo"].null_count() == d["contraction_hi"].null_count() == d.height
    assert all("trace more tokens" in r for r in d["contraction_reason"].to_list())
    assert d.filter(pl.col("layer") < frame.n_layers())["transport"].null_count() == 0  # transport still there
    # and direct fits on tiny spectra never return a number from noise
    for r in range(0, 12):
        fit = fit_tail([1.0 / (k + 1) for k in range(r)])
        assert (fit.alpha is None) == (fit.n_points < 8) and (fit.alpha is not None or fit.reason)


@pytest.mark.parametrize("kw", [dict(n_groups=1), dict(tail_window=(0.9, 0.1)), dict(top_k=0), dict(position_stride=0),
                                dict(temperature=0.0), dict(temperature=float("nan")), dict(skip_first=-1),
                                dict(confidence=1.0), dict(batch_size=-3), dict(save_every=0),
                                dict(max_length=0), dict(lens_top_k=0), dict(remote="maybe"), dict(dtype="int8")])
def test_bad_parameters_are_input_errors(kw):
    with pytest.raises(InputError):
        trace(make_model("llama"), make_prompts(3), tokenizer=make_tokenizer(), progress=False, **kw)


@pytest.mark.parametrize("prompts", [["fine", b"bytes"], ["fine", None], [{"txt": "a"}], 42, "one string"])
def test_wrong_prompt_types_are_input_errors(prompts):
    with pytest.raises(InputError):
        trace(make_model("llama"), prompts, tokenizer=make_tokenizer(), progress=False)


def test_every_failure_above_is_a_spinal_error():
    assert issubclass(InputError, SpinalError) and issubclass(NumericsError, SpinalError)
