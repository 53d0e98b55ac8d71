"""trace() runs prompts group by group and spills finished jackknife groups to disk (capture.spill.spill_finished):
the scores are exactly those of a run that keeps everything in memory, the private spill folder is gone after the
call however it ends, stale folders of dead processes are cleaned, and groups really leave memory as they finish."""
import os
import socket

import pytest

import spinal_nb.capture.spill as spill_mod
import spinal_nb.capture.tracer as tr
from capture.tiny import make_model, make_prompts, make_tokenizer
from spinal_nb.capture import trace
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
