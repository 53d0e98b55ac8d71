"""The `spinal` command, in-process (main(argv)) and as a subprocess, on tiny models saved to tmp folders."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import prompt_lines

from spinal_nb import cli
from spinal_nb.capture import trace
from spinal_nb.data.prompts import read_prompts
from spinal_nb.errors import InputError
from spinal_nb.frame import TraceFrame
from spinal_nb.params import SpinalParams

SCORES = ["contraction", "contraction_lo", "contraction_hi", "transport", "transport_lo", "transport_hi", "entropy",
          "n_tokens"]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_run(argv, stdin=None, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "spinal_nb.cli", *map(str, argv)], input=stdin, text=True,
                          capture_output=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def audit(tiny_models, prompts_file, tmp_path_factory):
    """base, then dpo appended, in one Parquet file, through the CLI."""
    out = tmp_path_factory.mktemp("audit") / "audit.parquet"
    for name in ("base", "dpo"):
        argv = ["trace", tiny_models[name], "--prompts", prompts_file, "--checkpoint", name, "--out", out,
                "--batch-size", 5, "--n-groups", 4, "--no-progress"] + (["--append"] if name == "dpo" else [])
        assert cli.main([str(a) for a in argv]) == 0
    return out


# -- trace --------------------------------------------------------------------------------------------------------
def test_trace_equals_the_python_api(audit, tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    frame = TraceFrame.read_parquet(audit)
    assert frame.checkpoints == ["base", "dpo"]
    for name in ("base", "dpo"):
        model = AutoModelForCausalLM.from_pretrained(tiny_models[name])
        tok = AutoTokenizer.from_pretrained(tiny_models[name])
        ref = trace(model, prompt_lines(), tokenizer=tok, checkpoint=name, batch_size=5, n_groups=4, progress=False)
        got = frame.checkpoint(name).select(SCORES)
        want = ref.data.select(SCORES)
        assert got.shape == want.shape == (3, len(SCORES))
        for col in SCORES:
            a, b = got.get_column(col).to_list(), want.get_column(col).to_list()
            assert [x is None for x in a] == [x is None for x in b], col
            assert a == b, col
        info = frame.meta["checkpoints"][name]
        assert info["n_prompts"] == 24  # the file's trailing blank lines were skipped
        assert info["prompts_sha256"] == ref.meta["checkpoints"][name]["prompts_sha256"]
    assert frame.params == SpinalParams(n_groups=4)


def test_every_spec_parameter_reaches_the_trace(tiny_models, prompts_file, tmp_path, capsys):
    out = tmp_path / "t.parquet"
    code, stdout, _ = run(["trace", tiny_models["base"], "--prompts", prompts_file, "--out", out, "--no-progress",
                           "--skip-first", 2, "--no-center", "--row-normalize", "--tail-window", 0.2, 0.8, "--floor",
                           1e-6, "--min-points", 5, "--temperature", 2.0, "--top-k", 7, "--position-stride", 2,
                           "--n-groups", 3, "--confidence", 0.9, "--no-lens-metrics"], capsys)
    assert code == 0, stdout
    want = SpinalParams(skip_first=2, center=False, row_normalize=True, tail_window=(0.2, 0.8), floor=1e-6, min_points=5,
                        temperature=2.0, top_k=7, position_stride=2, n_groups=3, confidence=0.9, lens_metrics=False)
    frame = TraceFrame.read_parquet(out)
    assert frame.params == want
    assert frame.checkpoints == ["base"]  # default name: the folder's
    assert "TraceFrame" in stdout and f"wrote {out}" in stdout
    ref = trace(tiny_models["base"], prompt_lines(), params=want, progress=False)
    assert frame.data.select(SCORES).equals(ref.data.select(SCORES), null_equal=True)


def test_parameters_table_is_complete():
    import dataclasses
    parser = cli.build_parser()
    args = parser.parse_args(["trace", "m", "--prompts", "p", "--out", "o"])
    assert cli.spec_parameters(args) == {}  # nothing given -> every default applies
    assert set(cli.PARAM_HELP) == {f.name for f in dataclasses.fields(SpinalParams)}


@pytest.mark.parametrize("items,match", [
    ([{"body": "a b"}, {"text": "c"}], r"p\.json: Prompt 1 is a dict without the key 'body'"),
    (["a b", 3], r"p\.json: Prompt 1 is a int, not a string"),
    (["a b", "  "], r"p\.json: 1 prompt\(s\) are empty or whitespace only \(indices \[1\]"),
    ([], r"p\.json: No prompts"),
])
def test_prompt_files_get_the_same_checks_as_the_api(tmp_path, items, match):
    """The CLI reads files through the tracer's own prompt normaliser (data.prompts.as_texts), naming the file."""
    js = tmp_path / "p.json"
    js.write_text(json.dumps(items))
    with pytest.raises(InputError, match=match):
        read_prompts(str(js), "body")


def test_prompts_from_stdin_and_jsonl(tiny_models, tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": p}) for p in prompt_lines(12)))
    assert read_prompts(str(jsonl), "body") == prompt_lines(12)
    js = tmp_path / "p.json"
    js.write_text(json.dumps(prompt_lines(5)))
    assert read_prompts(str(js)) == prompt_lines(5)
    out = tmp_path / "stdin.parquet"
    r = subprocess_run(["trace", tiny_models["base"], "--prompts", "-", "--out", out, "--no-progress", "--n-groups",
                        3], stdin="\n".join(prompt_lines(12)))
    assert r.returncode == 0, r.stderr
    frame = TraceFrame.read_parquet(out)
    assert frame.meta["checkpoints"]["base"]["n_prompts"] == 12
    ref = trace(tiny_models["base"], prompt_lines(12), n_groups=3, progress=False)
    assert frame.data.select(SCORES).equals(ref.data.select(SCORES), null_equal=True)


def test_resume_folder_is_used(tiny_models, prompts_file, tmp_path, capsys):
    save = tmp_path / "partial"
    argv = ["trace", tiny_models["base"], "--prompts", prompts_file, "--out", tmp_path / "a.parquet", "--save-to",
            save, "--save-every", 1, "--batch-size", 4, "--no-progress"]
    assert run(argv, capsys)[0] == 0
    progress = json.loads((save / "progress.json").read_text())
    assert progress["prompts_done"] == 24 and progress["complete"]


# -- output file rules --------------------------------------------------------------------------------------------
def test_existing_out_needs_append_or_overwrite(audit, tiny_models, prompts_file, capsys, tmp_path):
    before = audit.read_bytes()
    base = ["trace", tiny_models["base"], "--prompts", prompts_file, "--out", audit, "--no-progress", "--n-groups", 4]
    code, _, err = run(base, capsys)
    assert code == 2 and "--append" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([*base, "--append", "--checkpoint", "dpo"], capsys)
    assert code == 2 and "already holds a checkpoint named 'dpo'" in err
    code, _, err = run([*base, "--append", "--checkpoint", "other", "--n-groups", 5], capsys)
    assert code == 2 and "other SPINAL parameters" in err and "n_groups" in err
    assert audit.read_bytes() == before  # refused before tracing: the file is untouched
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(before)
    code, _, _ = run(["trace", tiny_models["deep"], "--prompts", prompts_file, "--out", copy, "--overwrite",
                      "--no-progress"], capsys)
    assert code == 0 and TraceFrame.read_parquet(copy).checkpoints == ["deep"]


# -- compare ------------------------------------------------------------------------------------------------------
def test_compare_json_equals_python(audit, capsys):
    code, out, _ = run(["compare", audit, "--reference", "base", "--candidate", "dpo", "--json"], capsys)
    assert code == 0
    got = json.loads(out)
    want = TraceFrame.read_parquet(audit).compare("base", "dpo")
    assert got["reference"] == "base" and got["candidate"] == "dpo"
    assert got["summary"] == json.loads(json.dumps(want.summary))
    assert got["layers"] == json.loads(json.dumps(want.layers.to_dicts()))
    # defaults: the two checkpoints in file order; terminal depth and on pass through
    code, out2, _ = run(["compare", audit, "--terminal-depth", 0.5, "--json"], capsys)
    assert json.loads(out2)["summary"] == json.loads(json.dumps(
        TraceFrame.read_parquet(audit).compare("base", "dpo", terminal_depth=0.5).summary))


def test_compare_text_and_two_files(audit, tmp_path, capsys):
    frame = TraceFrame.read_parquet(audit)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame.select(["base"]).to_parquet(a)
    frame.select(["dpo"]).to_parquet(b)
    code, out, _ = run(["compare", a, b], capsys)
    assert code == 0
    assert repr(frame.compare("base", "dpo")) in out
    assert "d_contraction" in out  # the per-layer table follows


def test_compare_errors_are_one_line(audit, tiny_models, prompts_file, tmp_path, capsys):
    code, _, err = run(["compare", audit, "--reference", "base", "--candidate", "instruct"], capsys)
    assert code == 2 and "'instruct'" in err and "['base', 'dpo']" in err and "Traceback" not in err
    one = tmp_path / "one.parquet"
    TraceFrame.read_parquet(audit).select(["base"]).to_parquet(one)
    code, _, err = run(["compare", one], capsys)
    assert code == 2 and "--append" in err
    deep = tmp_path / "deep.parquet"
    assert run(["trace", tiny_models["deep"], "--prompts", prompts_file, "--out", deep, "--n-groups", 4,
                "--no-progress"], capsys)[0] == 0
    code, _, err = run(["compare", audit, deep], capsys)
    assert code == 2 and "--reference" in err  # three checkpoints: say which two
    code, _, err = run(["compare", audit, deep, "--reference", "base", "--candidate", "deep"], capsys)
    assert code == 2 and "on='depth'" in err  # 2 vs 3 layers
    code, out, _ = run(["compare", audit, deep, "--reference", "base", "--candidate", "deep", "--on", "depth",
                        "--json"], capsys)
    assert code == 0 and json.loads(out)["summary"]["on"] == "depth"
    code, _, err = run(["compare", tmp_path / "missing.parquet"], capsys)
    assert code == 2 and "No such file" in err


# -- report -------------------------------------------------------------------------------------------------------
def test_report_is_self_contained(audit, tmp_path, capsys):
    out = tmp_path / "r" / "report.html"
    code, stdout, _ = run(["report", audit, "--out", out], capsys)
    assert code == 0 and f"wrote {out}" in stdout
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:200]
    for c in ("base", "dpo"):
        assert c in page
    low = page.lower()
    assert "<script src=" not in low and "<link rel=\"stylesheet\" href=\"http" not in low
    assert not any(f"{attr}=\"http" in low or f"{attr}='http" in low for attr in ("src", "href"))


# -- demo ---------------------------------------------------------------------------------------------------------
def test_demo_dispatches_to_spinal_nb_demo(monkeypatch, tmp_path, capsys):
    calls = []
    import spinal_nb.demo as demo
    monkeypatch.setattr(demo, "run_demo", lambda **kw: calls.append(kw) or 0)
    assert run(["demo", "--out", tmp_path, "--notebook"], capsys)[0] == 0
    assert calls == [dict(out=tmp_path, notebook=True, smollm2=None, threads=1, n_prompts=100, seeds=3, smollm2_seeds=2)]
    calls.clear()
    assert run(["demo", "--out", tmp_path, "--smollm2", "--threads", "2", "--prompts", "40", "--seeds", "4",
                "--smollm2-seeds", "3"], capsys)[0] == 0
    assert calls == [dict(out=tmp_path, notebook=False, smollm2=True, threads=2, n_prompts=40, seeds=4, smollm2_seeds=3)]
    calls.clear()
    assert run(["demo", "--no-smollm2"], capsys)[0] == 0
    assert calls[0]["smollm2"] is False and calls[0]["out"] == Path(".")
    code, _, err = run(["demo", "--threads", "0"], capsys)
    assert code != 0 and "--threads must be at least 1" in err and "Traceback" not in err
    assert not calls[1:]


# -- errors and help ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, expect", [
    (["--prompts", "/nonexistent/prompts.txt"], "Prompts file not found"),
    (["--tail-window", "0.9", "0.1"], "window must satisfy"),
    (["--n-groups", "1"], "n_groups"),
])
def test_bad_input_is_one_clean_line(extra, expect, tiny_models, prompts_file, tmp_path, capsys):
    argv = ["trace", tiny_models["base"], "--out", tmp_path / "x.parquet", "--no-progress"]
    if "--prompts" not in extra:
        argv += ["--prompts", prompts_file]
    code, _, err = run(argv + extra, capsys)
    assert code == 2
    assert err.startswith("spinal: error: ") and expect in err and len(err.strip().splitlines()) == 1


def test_empty_prompts_and_missing_model(tmp_path, tiny_models, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    code, _, err = run(["trace", tiny_models["base"], "--prompts", empty, "--out", tmp_path / "x.parquet"], capsys)
    assert code == 2 and "No prompts" in err
    ok = tmp_path / "ok.txt"
    ok.write_text("the first one\n")
    r = subprocess_run(["trace", tmp_path / "no-such-model", "--prompts", ok, "--out", tmp_path / "x.parquet"])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and f"no model folder {tmp_path / 'no-such-model'}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2():
    r = subprocess_run(["trace", "model-without-prompts-or-out"])
    assert r.returncode == 2 and "required" in r.stderr and "Traceback" not in r.stderr


def test_help_explains_every_option():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"trace", "compare", "report", "demo", "doctor"}
    for name, p in sub.choices.items():
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 15, (name, action.dest)
            if action.option_strings and not action.required:
                assert "default" in action.help, (name, action.option_strings)
    r = subprocess_run(["trace", "--help"])
    assert r.returncode == 0 and "--skip-first" in r.stdout and "(default: 10)" in r.stdout


def test_report_of_checkpoints_of_different_depth(audit, tiny_models, prompts_file, tmp_path, capsys):
    """`spinal compare` refuses 2 vs 3 layers by index; `spinal report` of the same traces compares them on depth,
    says so next to the verdict, and embeds no per-index Δ for the deeper checkpoint."""
    import base64
    import re

    import numpy as np

    from spinal_nb.widgets._payload import unpack

    deep = tmp_path / "deep.parquet"
    assert run(["trace", tiny_models["deep"], "--prompts", prompts_file, "--out", deep, "--n-groups", 4,
                "--no-progress"], capsys)[0] == 0
    out = tmp_path / "report.html"
    code, stdout, err = run(["report", audit, deep, "--reference", "base", "--out", out], capsys)
    assert code == 0, err
    page = out.read_text()
    frame = TraceFrame.concat([TraceFrame.read_parquet(audit), TraceFrame.read_parquet(deep)])
    want = frame.compare("base", "deep", on="depth").verdict(frame.window_means("base"))["text"]
    head = page[page.index("<section class='spinal-report'>"):page.index("</section>")]
    assert "deep − base: Interpolated on depth (L = 3 onto L = 2): " in head
    assert want.replace("'", "&#x27;") in head
    d = frame.meta["checkpoints"]["deep"]["d_model"]
    n = int(frame.checkpoint("deep").get_column("n_tokens").min())
    assert "<td>deep</td>" in head and f"<td>{d}</td><td>{n:,}</td><td>" in head  # N and d of the traced model
    state = json.loads(re.search(r'id="spinal-state">(.*?)</script>', page, re.S).group(1))
    deltas = unpack(state["_deltas_header"], base64.b64decode(state["_deltas"]))
    rows = (frame.data.get_column("checkpoint") == "deep").to_numpy()
    assert all(np.isnan(v[rows]).all() for v in deltas.values())
    assert np.isfinite(deltas["d_contraction"][(frame.data.get_column("checkpoint") == "dpo").to_numpy()]).any()
