"""Spill folders (capture/spill.py).

trace() runs prompts group by group and spills finished jackknife groups to disk (capture.spill.spill_finished):
the scores are exactly those of a run that keeps everything in memory, the private spill folder is gone after the
call however it ends, stale folders of dead processes are cleaned, and groups really leave memory as they finish.

A GramAccumulator spilling into a SpillFolder: every spectrum is bit-identical to the one from memory, whichever form
(rows or Gram) and route (kernel or Gram) a group is in; the memory held drops to the groups not yet finished; a
spilled group takes no more rows; the state round-trips through a saved state with the file's digest; an unwritable
folder warns and keeps the group in memory.
"""
import os
import socket

import numpy as np
import pytest
from support import make_model, make_prompts, make_tokenizer

import spinal_nb.capture.spill as spill_mod
import spinal_nb.capture.tracer as tr
from spinal_nb.capture import trace
from spinal_nb.capture.spill import SpillFolder
from spinal_nb.errors import InputError
from spinal_nb.scores import GramAccumulator


@pytest.fixture
def spill_root(tmp_path, monkeypatch):
    root = tmp_path / "spill-root"
    monkeypatch.setenv("SPINAL_SPILL_DIR", str(root))
    return root


class Watched(GramAccumulator):
    """Records, at every spill, which groups were already finished (all their prompts run) and what memory held."""
    made: list["Watched"] = []

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.events = []
        Watched.made.append(self)

    def spill(self, group):
        done = super().spill(group)
        if done:
            self.events.append((group, int(self.count[0].sum()), self.storage_bytes(), set(self.spilled_groups()),
                                sorted(p.name for p in self.store.folder.iterdir())))
        return done


def test_spilling_changes_no_score_and_the_folder_is_removed(spill_root, monkeypatch):
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(24, seed=8)
    kw = dict(tokenizer=tok, batch_size=5, progress=False, n_groups=4)
    monkeypatch.setattr(spill_mod, "SPILL_MIN_BYTES", 1 << 62)
    kept = trace(model, prompts, **kw)
    assert not spill_root.exists()  # nothing spilled, nothing created
    monkeypatch.setattr(spill_mod, "SPILL_MIN_BYTES", 0)
    monkeypatch.setattr(tr, "GramAccumulator", Watched)
    Watched.made.clear()
    spilled = trace(model, prompts, **kw)
    assert spilled.data.equals(kept.data, null_equal=True)  # bit for bit: the files hold the float64 values
    acc = Watched.made[-1]
    events = acc.events
    # every group went to disk in order, each right after its last prompt ran (group g = prompts g, g + 4, ...;
    # 6 prompts a group, 5 a batch): rows seen by then cover groups 0..g and do not yet cover group g + 1
    assert [e[0] for e in events] == [0, 1, 2, 3]
    cum = acc.count[0].cumsum(0).tolist()
    for g, seen, *_ in events:
        assert cum[g] <= seen and (g == 3 or seen < cum[g + 1])
    assert [e[3] for e in events] == [{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}]
    assert [e[4] for e in events][-1] == [f"group-{g}.npz" for g in range(4)]
    assert events[-1][2] == 0  # all of it on disk at the end, none in memory
    assert spill_root.is_dir() and list(spill_root.iterdir()) == []  # the run's own folder is gone


def test_the_spill_folder_is_removed_when_the_trace_fails(spill_root, monkeypatch):
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(24, seed=8)
    monkeypatch.setattr(spill_mod, "SPILL_MIN_BYTES", 0)
    real, calls = tr._run_batch, {"n": 0}

    def crash(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user stops it after groups 0 and 1 were spilled
        return real(*a, **k)

    monkeypatch.setattr(tr, "_run_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        trace(model, prompts, tokenizer=tok, batch_size=4, progress=False, n_groups=4)
    assert calls["n"] == 4 and list(spill_root.iterdir()) == []


def test_folders_left_by_dead_processes_are_removed_and_live_ones_kept(spill_root, monkeypatch):
    monkeypatch.setattr(spill_mod, "SPILL_MIN_BYTES", 0)
    host = socket.gethostname().replace("-", "_")
    dead_pid = 2**22 + 12345  # above pid_max's default ceiling on Linux: no such process
    with pytest.raises(ProcessLookupError):
        os.kill(dead_pid, 0)
    dead, live, other = (spill_root / f"run-{host}-{dead_pid}-aa", spill_root / f"run-{host}-{os.getppid()}-bb",
                         spill_root / f"run-otherhost-{dead_pid}-cc")
    for f in (dead, live, other):
        f.mkdir(parents=True)
        (f / "group-0.npz").write_bytes(b"x")
    trace(make_model("llama"), make_prompts(8), tokenizer=make_tokenizer(), progress=False, n_groups=2)
    assert not dead.exists() and live.exists() and other.exists()  # another host's pids mean nothing here


def feed(acc, rng_seed, n_groups, sizes, d, n_layers):
    """Group by group (as the tracer feeds prompts), two batches per group of `sizes[g]` rows each."""
    rng = np.random.default_rng(rng_seed)
    for g in range(n_groups):
        for _ in range(2):
            x = rng.normal(size=(sizes[g], d)) * np.geomspace(3, 0.01, d) + 7.0
            for layer in range(n_layers):
                acc.update(layer, x * (layer + 1) + layer, np.full(sizes[g], g))
        yield g


def all_spectra(acc, center=True):
    groups = acc.nonempty_groups()
    return [acc.spectra(layer, groups, center=center) for layer in range(acc.n_layers)]


def same(a, b):
    for (wa, pa), (wb, pb) in zip(a, b, strict=True):
        assert np.array_equal(wa, wb)
        assert len(pa) == len(pb) and all(np.array_equal(x, y) for x, y in zip(pa, pb, strict=True))


@pytest.mark.parametrize("sizes", [
    [3, 2, 4, 3],      # every group as rows, fewer than d rows in all: the N x N kernel route
    [10, 3, 12, 2],    # some groups switched to their Gram (>= d = 16 rows over two batches), some rows
    [20, 9, 30, 40],   # every group a Gram
])
@pytest.mark.parametrize("center", [True, False])
def test_spilled_groups_give_bit_identical_spectra(tmp_path, sizes, center):
    d, L, G = 16, 3, 4
    mem, disk = GramAccumulator(L, d, G), GramAccumulator(L, d, G, store=SpillFolder(tmp_path))
    for _ in feed(mem, 5, G, sizes, d, L):
        pass
    for g in feed(disk, 5, G, sizes, d, L):
        if g < G - 1:  # the last group stays in memory: a mixed state
            assert disk.spill(g)
    assert disk.spilled_groups() == [0, 1, 2]
    same(all_spectra(mem, center), all_spectra(disk, center))
    # the memory held is the unfinished group's; the others are files of exactly their float64 values (+ headers)
    assert disk.storage_bytes() == mem.storage_bytes(group=G - 1) > 0
    spilled_values = sum(mem.storage_bytes(group=g) for g in range(G - 1))
    assert spilled_values <= disk.spilled_bytes() <= spilled_values + 4096 * L * (G - 1)


def test_a_spilled_group_takes_no_more_rows_and_spilling_twice_is_a_no_op(tmp_path):
    d, L, G = 8, 2, 3
    acc = GramAccumulator(L, d, G, store=SpillFolder(tmp_path))
    for _ in feed(acc, 1, G, [4, 4, 4], d, L):
        pass
    assert acc.spill(1) and not acc.spill(1)
    with pytest.raises(InputError, match=r"group\(s\) \[1\] were spilled"):
        acc.update(0, np.ones((2, d)), [0, 1])
    assert not GramAccumulator(L, d, G).spill(0)  # no spill folder: nothing happens
    empty = GramAccumulator(L, d, G, store=SpillFolder(tmp_path / "e"))
    assert not empty.spill(0) and not (tmp_path / "e").exists()  # an empty group writes nothing


def test_state_with_spilled_groups_round_trips_and_checks_the_files(tmp_path):
    d, L, G = 12, 2, 3
    acc = GramAccumulator(L, d, G, store=SpillFolder(tmp_path))
    for g in feed(acc, 2, G, [9, 3, 5], d, L):
        if g < 2:
            acc.spill(g)
    state = acc.state_dict()
    assert state["spilled"].tolist() == [True, True, False]
    back = GramAccumulator(L, d, G, store=SpillFolder(tmp_path))
    back.load_state_dict(state)
    same(all_spectra(acc), all_spectra(back))
    f = tmp_path / "group-1.npz"
    raw = bytearray(f.read_bytes())
    raw[-200] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="group 1 is missing or does not match"):
        GramAccumulator(L, d, G, store=SpillFolder(tmp_path)).load_state_dict(state)
    with pytest.raises(InputError, match="group 0 is missing"):
        GramAccumulator(L, d, G, store=SpillFolder(tmp_path / "elsewhere")).load_state_dict(state)


def test_an_unwritable_spill_folder_warns_once_and_keeps_groups_in_memory(tmp_path):
    d, L, G = 8, 2, 3
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    acc, ref = GramAccumulator(L, d, G, store=SpillFolder(blocker / "spill")), GramAccumulator(L, d, G)
    for _ in feed(ref, 3, G, [5, 6, 7], d, L):
        pass
    with pytest.warns(UserWarning, match="Could not spill.*SPINAL_SPILL_DIR") as caught:
        for g in feed(acc, 3, G, [5, 6, 7], d, L):
            assert not acc.spill(g)
    assert sum("Could not spill" in str(w.message) for w in caught) == 1
    assert acc.spilled_groups() == [] and acc.storage_bytes() == ref.storage_bytes()
    same(all_spectra(acc), all_spectra(ref))


def test_a_disk_that_fills_up_mid_spill_leaves_no_file_and_keeps_the_group(tmp_path, monkeypatch):
    import errno

    d, L, G = 8, 3, 2
    acc, ref = GramAccumulator(L, d, G, store=SpillFolder(tmp_path)), GramAccumulator(L, d, G)
    for _ in feed(ref, 4, G, [6, 7], d, L):
        pass
    for _ in feed(acc, 4, G, [6, 7], d, L):
        pass
    real, calls = np.lib.format.write_array, {"n": 0}

    def full_disk(*a, **k):  # the second layer's array no longer fits
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(np.lib.format, "write_array", full_disk)
    with pytest.warns(UserWarning, match="No space left"):
        assert not acc.spill(0)
    assert list(tmp_path.iterdir()) == []  # the half-written temp file is gone, no group-0.npz
    assert acc.spilled_groups() == [] and acc.storage_bytes() == ref.storage_bytes()
    same(all_spectra(acc), all_spectra(ref))
