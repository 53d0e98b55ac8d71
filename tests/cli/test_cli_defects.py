"""The command-line defects a newcomer met (issue 16), each as it was reproduced: exit status 2, one line on stderr,
no traceback; and progress that stays readable when stderr is a log file or a pipe (issue 20)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import polars as pl
import pytest
from support import make_frame

from spinal_nb import cli
from spinal_nb.capture.load import hub_reachable, looks_like_path
from spinal_nb.data.prompts import read_prompts
from spinal_nb.frame import TraceFrame


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def spinal(argv, *, cwd=None, env=None, timeout=240, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "spinal_nb.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd, **kw)


def one_clean_line(r: subprocess.CompletedProcess, expect: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and expect in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A trace file of two checkpoints (synthetic, through the real accumulators)."""
    path = tmp_path_factory.mktemp("traces") / "audit.parquet"
    make_frame(n_checkpoints=2, n_layers=6).to_parquet(path)
    return path


# -- prompts files ---------------------------------------------------------------------------------------------------
def test_binary_prompts_file_is_one_line(tiny_models, tmp_path):
    binary = tmp_path / "random.bin"
    binary.write_bytes(bytes(range(256)) * 8)  # 2 KB, not UTF-8 (0x80..0xff stand alone), NUL bytes too
    r = spinal(["trace", tiny_models["base"], "--prompts", binary, "--out", tmp_path / "x.parquet"])
    one_clean_line(r, "random.bin is not a UTF-8 text file")
    assert not (tmp_path / "x.parquet").exists()


def test_prompts_folder_says_it_is_a_folder(tiny_models, tmp_path, capsys):
    code, _, err = run(["trace", tiny_models["base"], "--prompts", ".", "--out", tmp_path / "x.parquet"], capsys)
    assert code == 2 and "--prompts . is a folder" in err and len(err.strip().splitlines()) == 1


def test_parquet_prompts_read_the_text_column_and_a_trace_file_is_refused(two, tmp_path, tiny_models, capsys):
    table = tmp_path / "prompts.parquet"
    pl.DataFrame({"id": [1, 2, 3], "text": ["one two", "three four five", "six"]}).write_parquet(table)
    assert read_prompts(str(table)) == ["one two", "three four five", "six"]
    code, _, err = run(["trace", tiny_models["base"], "--prompts", two, "--out", tmp_path / "x.parquet"], capsys)
    assert code == 2 and "has no column 'text'" in err and "--text-column" in err
    assert len(err.strip().splitlines()) == 1


# -- models ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["./no-such-model", "../no-such-model", "/no/such/model", "a/b/c", "~/nothing/"])
def test_path_looking_names_are_folders(name):
    assert looks_like_path(name)


@pytest.mark.parametrize("name", ["HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2", "org/model.v2"])
def test_hub_ids_are_not_paths(name):
    assert not looks_like_path(name)


def test_missing_model_folder_is_named(tmp_path):
    ok = tmp_path / "p.txt"
    ok.write_text("the first one\n")
    r = spinal(["trace", "./no-such-model", "--prompts", ok, "--out", "x.parquet"], cwd=tmp_path)
    one_clean_line(r, "no model folder ./no-such-model")


def test_hub_id_without_network_fails_at_once_naming_the_cache(tmp_path):
    """No HF_HUB_OFFLINE and a Hub that cannot be reached (a closed local port): one line naming the cache, instead
    of transformers' retry lines."""
    ok = tmp_path / "p.txt"
    ok.write_text("the first one\n")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": None,
           "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    r = spinal(["trace", "someone/some-model", "--prompts", ok, "--out", tmp_path / "x.parquet"], env=env)
    one_clean_line(r, "cannot reach the Hugging Face Hub")
    assert str(tmp_path / "hf" / "hub") in r.stderr
    r = spinal(["trace", "someone/some-model", "--prompts", ok, "--out", tmp_path / "x.parquet"],
               env={**env, "HF_HUB_OFFLINE": "1"})
    one_clean_line(r, "HF_HUB_OFFLINE")
    assert str(tmp_path / "hf" / "hub") in r.stderr


def test_hub_probe():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        assert hub_reachable(f"http://127.0.0.1:{listening.getsockname()[1]}")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert not hub_reachable(f"http://127.0.0.1:{port}")


# -- compare ---------------------------------------------------------------------------------------------------------
def test_unknown_reference_is_named(two, capsys):
    code, _, err = run(["compare", two, "--reference", "nosuch"], capsys)
    assert code == 2 and "No checkpoint 'nosuch'" in err and "say which two" not in err
    code, _, err = run(["compare", two, "--candidate", "nosuch"], capsys)
    assert code == 2 and "No checkpoint 'nosuch'" in err


def test_same_file_twice_and_same_names_get_a_cli_suggestion(two, tmp_path, capsys):
    code, _, err = run(["compare", two, two], capsys)
    assert code == 2 and "given twice" in err and "rename" not in err
    copy = tmp_path / "copy.parquet"
    TraceFrame.read_parquet(two).to_parquet(copy)
    code, _, err = run(["compare", two, copy], capsys)
    assert code == 2 and "--checkpoint NAME" in err and "TraceFrame" not in err


def test_compare_into_a_closed_pipe_is_quiet(two):
    """`spinal compare f.parquet | head -2`: the reader is gone before the first write (its end of the pipe is closed
    at once, while the interpreter still starts); no BrokenPipeError traceback."""
    p = subprocess.Popen([sys.executable, "-m", "spinal_nb.cli", "compare", str(two)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=240)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert p.returncode == 141


def test_compare_into_head_prints_its_lines(two, tmp_path):
    r = subprocess.run(f"{sys.executable} -m spinal_nb.cli compare {two} | head -2", shell=True, capture_output=True,
                       text=True, timeout=240)
    assert len(r.stdout.splitlines()) == 2 and "Traceback" not in r.stderr


# -- progress off a terminal -------------------------------------------------------------------------------------------
def test_progress_in_a_log_is_lines_and_no_progress_is_silent(tiny_models, prompts_file, tmp_path):
    """stderr is a pipe here (as in CI or `> log 2>&1`): whole lines, no carriage return, transformers' own
    "Loading weights" bar off; --no-progress prints nothing at all on stderr."""
    r = spinal(["trace", tiny_models["base"], "--prompts", prompts_file, "--out", tmp_path / "a.parquet",
                "--n-groups", 4], env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "Loading weights" not in r.stderr
    total = TraceFrame.read_parquet(tmp_path / "a.parquet").meta["checkpoints"]["base"]["n_prompts"]
    lines = [line for line in r.stderr.splitlines() if line.startswith("spinal trace base")]
    assert lines and lines[-1].startswith(f"spinal trace base: {total}/{total} prompt"), r.stderr
    r = spinal(["trace", tiny_models["base"], "--prompts", prompts_file, "--out", tmp_path / "b.parquet",
                "--n-groups", 4, "--no-progress"], env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@pytest.mark.parametrize("flag, value", [("--seeds", "0"), ("--smollm2-seeds", "11")])
def test_demo_seed_counts_are_checked_before_any_work(tmp_path, flag, value):
    r = spinal(["demo", "--out", tmp_path / "out", flag, value], cwd=tmp_path)
    one_clean_line(r, "number of DPO training seeds")
    assert not (tmp_path / "out").exists()
