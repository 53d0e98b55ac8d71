"""README's results table is generated from a stored demo run (benchmarks/readme_table.py): the README holds exactly
the script's output, and the stored verdicts are what the verdict rule reads from the stored intervals."""
import importlib.util
from pathlib import Path

from spinal_nb.frame import verdict
from spinal_nb.scores.verdict import NOT_COMPARABLE, REVERSED, SIGNATURE, VERDICTS

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "benchmarks" / "readme_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_table_is_the_scripts_output():
    rt = _script()
    summary = rt.load()
    assert rt.readme_block((ROOT / "README.md").read_text()) == rt.block(summary), (
        "README.md's results table differs from `python benchmarks/readme_table.py`: run it with --write.")
    for pair in summary["pairs"].values():
        assert pair["title"] in rt.table(summary)


def test_stored_verdicts_follow_the_stored_intervals():
    summary = _script().load()
    assert summary["pairs"]
    for pair in summary["pairs"].values():
        c, v = pair["comparison"], pair["verdict"]
        assert v["status"] in VERDICTS
        assert verdict(c, pair["reference_window_means"])["status"] == v["status"] == c["verdict"]["status"]
        if v["status"] in (SIGNATURE, REVERSED):  # never a direction whose interval touches 0
            for score in ("contraction", "transport"):
                w = c[f"window_{score}"]
                assert w["lo"] > 0 or w["hi"] < 0
                sp = (c.get("seeds") or {}).get(score)  # with training seeds, their interval too, on the same side
                if sp is not None:
                    assert (sp["lo"] > 0) == (w["lo"] > 0) and (sp["lo"] > 0 or sp["hi"] < 0)
        if not c["comparable"]:
            assert v["status"] == NOT_COMPARABLE and c["window_contraction"]["lo"] is None


def test_method_md_calibration_tables_are_the_benchmarks():
    """Every table row of docs/method.md's calibration section is a row of the benchmark's output (no retyping)."""
    method = (ROOT / "docs" / "method.md").read_text()
    start = method.index("### Calibration")
    end = method.find("\n## ", start)  # the section ends at the next top-level heading
    section = method[start:] if end < 0 else method[start:end]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    bench = set()
    for name in ("stat_calibration.md", "alert_calibration.md"):  # the comparison statistics, the training alert
        bench |= set((ROOT / "benchmarks" / "results" / name).read_text().splitlines())
    assert len(rows) > 30
    assert [r for r in rows if r not in bench] == []
    assert "python benchmarks/stat_calibration.py" in section
