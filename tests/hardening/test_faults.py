"""Hardening: real interruptions (SIGKILL of a child process, KeyboardInterrupt) never lose or falsify results
(docs/hardening.md §3). The in-process injected-exception tests live in tests/capture and tests/frame; here the
process really dies at an arbitrary moment, including in the middle of writing a file."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.errors import FrameError
from spinal_nb.frame import read_parquet

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}

TRACE_CHILD = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    import spinal_nb.capture.tracer as tr
    from support import make_model, make_prompts, make_tokenizer
    real = tr._run_batch
    def slow(*a, **k):
        real(*a, **k)
        time.sleep(0.05)  # widen the window so the parent's kill lands mid-run
    tr._run_batch = slow
    tr.trace(make_model("llama"), make_prompts(40, seed=31), tokenizer=make_tokenizer(), batch_size=2,
             progress=False, save_to=sys.argv[1], save_every=1)
    print("finished")
""")


def _progress(folder: Path) -> int:
    try:
        return json.loads((folder / "progress.json").read_text())["prompts_done"]
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkilled_trace_resumes_to_the_uninterrupted_result(tmp_path):
    folder = tmp_path / "run"
    rng = random.Random(7)
    kills = 0
    for _ in range(2):  # kill it twice at random moments (possibly mid-write of the checkpoint)
        before = _progress(folder)
        child = subprocess.Popen([sys.executable, "-c", TRACE_CHILD, str(folder)], env=ENV, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while _progress(folder) < before + 4 and child.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.08))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
        assert child.returncode in (-signal.SIGKILL, 0), child.stderr.read().decode()[-2000:]
        assert _progress(folder) >= before  # progress never goes backwards
    assert kills >= 1 and 0 < _progress(folder) < 40
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(40, seed=31)
    resumed = trace(model, prompts, tokenizer=tok, batch_size=2, progress=False, save_to=folder, save_every=1)
    full = trace(model, prompts, tokenizer=tok, batch_size=2, progress=False)
    assert resumed.data.equals(full.data, null_equal=True)
    assert len(list(folder.glob("state-*.npz"))) == 1  # no state files pile up


def test_keyboard_interrupt_mid_trace_resumes(tmp_path, monkeypatch):
    import spinal_nb.capture.tracer as tr

    real, calls = tr._run_batch, {"n": 0}

    def interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    model, tok, prompts = make_model("phi"), make_tokenizer(), make_prompts(23, seed=2)
    monkeypatch.setattr(tr, "_run_batch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path, save_every=1)
    monkeypatch.setattr(tr, "_run_batch", real)
    assert _progress(tmp_path) == 9
    resumed = trace(model, prompts, tokenizer=tok, batch_size=3, progress=False, save_to=tmp_path)
    assert resumed.data.equals(trace(model, prompts, tokenizer=tok, batch_size=3, progress=False).data,
                               null_equal=True)


WRITE_CHILD = textwrap.dedent("""
    import sys
    from spinal_nb.synthetic import synthetic_trace
    a = synthetic_trace("a", n_layers=24, n_prompts=30, seed=1)
    b = synthetic_trace("b", n_layers=24, n_prompts=30, seed=2)
    a.to_parquet(sys.argv[1] + ".a"); b.to_parquet(sys.argv[1] + ".b")
    print("ready", flush=True)
    while True:
        a.to_parquet(sys.argv[1]); b.to_parquet(sys.argv[1])
""")


def start_writer(path):
    """A child process writing two different frames alternately to `path`, and the two frames (once it is ready)."""
    child = subprocess.Popen([sys.executable, "-c", WRITE_CHILD, str(path)], env=ENV, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline().decode().strip() == "ready", child.stderr.read().decode()[-2000:]
        return child, read_parquet(f"{path}.a"), read_parquet(f"{path}.b")
    except BaseException:
        child.kill()
        child.wait()
        raise


def test_sigkill_during_parquet_writes_never_leaves_a_valid_but_wrong_file(tmp_path):
    path = tmp_path / "trace.parquet"
    child, a, b = start_writer(path)
    try:
        rng = random.Random(3)
        seen = set()
        for _ in range(12):
            child.send_signal(signal.SIGSTOP)  # freeze at an arbitrary point of a write, inspect, go on
            if path.exists():
                got = read_parquet(path)  # the target is always a complete file ...
                assert got == a or got == b  # ... and exactly one of the two frames
                seen.add(got.checkpoints[0])
            for tmp in tmp_path.glob(".trace.parquet.*.tmp"):  # a half-written temp file is never taken for a trace
                try:
                    read_parquet(tmp)
                except FrameError:
                    pass
            child.send_signal(signal.SIGCONT)
            time.sleep(rng.uniform(0.01, 0.1))
        child.send_signal(signal.SIGKILL)
        child.wait()
        got = read_parquet(path)
        assert got == a or got == b
        assert seen  # the writes really happened while we looked
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_reading_while_another_process_replaces_the_file_always_gives_one_whole_frame(tmp_path):
    # a dashboard re-reading a trace that a running job keeps re-saving: every read must see one complete file.
    # The reader used to open the path twice (metadata, then data) and paired one file's footer with the next
    # file's pages about 6 % of the time ("Invalid thrift", "wrong page size", checksum mismatch)
    path = tmp_path / "trace.parquet"
    child, a, b = start_writer(path)
    try:
        seen, reads, start = set(), 0, time.monotonic()
        while time.monotonic() - start < 8 or len(seen) < 2:
            assert time.monotonic() - start < 60, "the writer never switched frames"
            if not path.exists():
                continue
            got = read_parquet(path)
            assert got == a or got == b
            seen.add(got.checkpoints[0])
            reads += 1
        assert reads > 100  # enough reads overlapped the writes for the old race to show
    finally:
        child.kill()
        child.wait()
