"""Files (spinal_nb.io): the one atomic writer — whole file or nothing, and the permissions the user's umask asks
for, for the writer itself and for every file spinal-nb writes for a user (to_parquet, to_html, `spinal report`; the
demo's outputs are checked in tests/demo) — and atomic folders with their stale leftovers."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from spinal_nb import cli
from spinal_nb.io import atomic_dir, atomic_file, atomic_path, atomic_text, clean_stale, current_umask
from spinal_nb.synthetic import synthetic_trace
from spinal_nb.widgets import show

UMASKS = {0o022: 0o644, 0o077: 0o600, 0o002: 0o664}


@pytest.fixture(params=sorted(UMASKS))
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def frame():
    return synthetic_trace("a", n_layers=3, n_prompts=12) + synthetic_trace("b", n_layers=3, n_prompts=12,
                                                                             alpha=lambda d: 0.7 + 0.2 * d)


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert os.umask(umask) == umask  # still set: reading did not change it


def test_writer_gives_the_umask_mode(tmp_path, umask):
    p = atomic_file(tmp_path / "a.bin", lambda f: f.write(b"abc"))
    assert p.read_bytes() == b"abc" and mode(p) == UMASKS[umask]
    assert mode(atomic_text(tmp_path / "b.txt", "é")) == UMASKS[umask]
    with atomic_path(tmp_path / "c.bin", fsync=False) as tmp:
        tmp.write_bytes(b"x")
    assert mode(tmp_path / "c.bin") == UMASKS[umask]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = atomic_text(tmp_path / "a.txt", "old")

    def half(f):
        f.write(b"new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_file(p, half)
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["a.txt"]


def test_to_parquet_follows_the_umask(tmp_path, umask, frame):
    assert mode(frame.to_parquet(tmp_path / "t.parquet")) == UMASKS[umask]


def test_to_html_follows_the_umask(tmp_path, umask, frame):
    assert mode(show(frame).to_html(tmp_path / "t.html")) == UMASKS[umask]


def test_spinal_report_follows_the_umask(tmp_path, umask, frame):
    src = frame.to_parquet(tmp_path / "t.parquet")
    assert cli.main(["report", str(src), "--out", str(tmp_path / "r.html")]) == 0
    assert mode(tmp_path / "r.html") == UMASKS[umask]


def test_atomic_dir_success_and_failure(tmp_path):
    final = tmp_path / "sub" / "ckpt"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("interrupted mid-write")
    assert not final.exists() and list(final.parent.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(final) as tmp:
            raise KeyboardInterrupt
    assert list(final.parent.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "w.bin").write_bytes(b"ok")
        assert not final.exists()  # nothing at the final path until the block completes
    assert (final / "w.bin").read_bytes() == b"ok" and [p.name for p in final.parent.iterdir()] == ["ckpt"]


def test_atomic_dir_keeps_a_folder_someone_else_completed(tmp_path):
    final = tmp_path / "ckpt"
    with atomic_dir(final) as tmp:
        (tmp / "mine").write_text("mine")
        final.mkdir()
        (final / "theirs").write_text("theirs")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"] and (final / "theirs").exists()
    assert not (final / "mine").exists()


def test_clean_stale_removes_only_dead_writers(tmp_path):
    final = tmp_path / "ckpt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tmp-ckpt-{dead.pid}-abcd1234"
    live = tmp_path / f".tmp-ckpt-{os.getppid()}-abcd1234"
    other = tmp_path / f".tmp-other-{dead.pid}-abcd1234"
    for p in (stale, live, other):
        p.mkdir()
    clean_stale(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    assert Path(live).is_dir()
