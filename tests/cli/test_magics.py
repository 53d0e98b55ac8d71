"""`%load_ext spinal_nb`, `%spinal`, `%%spinal` and the TraceFrame display, executed in a REAL IPython kernel (nbclient)."""
from __future__ import annotations

import json

import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook
from polars.testing import assert_frame_equal
from support import prompt_lines

import spinal_nb
from spinal_nb.capture import trace
from spinal_nb.frame import TraceFrame

WIDGET = "application/vnd.jupyter.widget-view+json"
EXTENSION = "spinal_nb" if hasattr(spinal_nb, "load_ipython_extension") else "spinal_nb.magics"


def execute(cells: list[str], cwd, timeout: int = 240, allow_errors: bool = False):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def approx_tree(x):
    """pytest.approx through nested dicts/lists (JSON), for numbers computed in another process."""
    if isinstance(x, dict):
        return {k: approx_tree(v) for k, v in x.items()}
    if isinstance(x, list):
        return [approx_tree(v) for v in x]
    if isinstance(x, float):
        return pytest.approx(x, rel=1e-5, abs=1e-7)
    return x


def text(cell) -> str:
    out = []
    for o in cell.outputs:
        if o.output_type == "stream" and o.name == "stdout":  # stderr holds transformers' loading bars
            out.append(o.text)
        elif o.output_type in ("execute_result", "display_data") and WIDGET not in o.data:  # not progress bars
            out.append(o.data.get("text/plain", ""))
        elif o.output_type == "error":
            out.append(f"{o.ename}: {o.evalue}")
    return "".join(out)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel is a new process: torch reads this at start


@pytest.fixture(scope="module")
def session(tiny_models, tmp_path_factory):
    """One kernel session exercising every magic; returns (executed notebook, working folder)."""
    cwd = tmp_path_factory.mktemp("kernel")
    (cwd / "prompts.txt").write_text("\n".join(prompt_lines()))
    body = "\n".join(prompt_lines())
    cells = [
        f"%load_ext {EXTENSION}",                                                                       # 0
        f"prompts = {prompt_lines()!r}\nBASE = {tiny_models['base']!r}",                              # 1
        "%spinal trace BASE --prompts prompts --as base --checkpoint base --n-groups 4 --no-progress",   # 2
        f"%%spinal trace {tiny_models['dpo']} --as dpo --checkpoint dpo --n-groups 4 --no-progress "
        f"--out both.parquet\n{body}",                                                                  # 3
        "%spinal compare base dpo --json",                                                               # 4
        "%spinal compare base dpo --terminal-depth 0.5 --as cmp\nprint(type(cmp).__name__, cmp.summary['terminal_depth'])",  # 5
        "base",                                                                                          # 6
        "%spinal show dpo",                                                                              # 7
        "%spinal report base dpo --out report.html",                                                     # 8
        # an independent computation in the same kernel: the Python API on the same model and prompts
        "from spinal_nb.capture import trace\n"
        "ref = trace(BASE, prompts, checkpoint='base', n_groups=4, progress=False)\n"
        "print(ref.data.equals(base.data, null_equal=True))",                                           # 9
        "%spinal trace BASE --prompts prompts.txt --checkpoint fromfile --n-groups 4 --no-progress",     # 10
        "print(_.checkpoints, _.meta['checkpoints']['fromfile']['n_prompts'])",                          # 11
        "%spinal",                                                                                       # 12
        "%spinal trace --help",                                                                          # 13
    ]
    return execute(cells, cwd), cwd


def test_trace_line_magic_equals_the_api(session):
    nb, _ = session
    assert "base = TraceFrame [base] (2 layers)" in text(nb.cells[2])
    assert text(nb.cells[9]).strip() == "True"


def test_cell_magic_takes_prompts_from_the_body_and_writes_parquet(session, tiny_models):
    nb, cwd = session
    assert "dpo = TraceFrame [dpo]" in text(nb.cells[3]) and "both.parquet" in text(nb.cells[3])
    written = TraceFrame.read_parquet(cwd / "both.parquet")
    ref = trace(tiny_models["dpo"], prompt_lines(), checkpoint="dpo", n_groups=4, progress=False)
    # a float32 forward pass in another process is not bitwise reproducible (kernel dispatch): equal to 1e-5
    assert_frame_equal(written.data, ref.data, check_exact=False, rel_tol=1e-5, abs_tol=1e-7)
    assert written.meta["checkpoints"]["dpo"]["prompts_sha256"] == ref.meta["checkpoints"]["dpo"]["prompts_sha256"]


def test_compare_magic(session, tiny_models):
    nb, _ = session
    got = json.loads(text(nb.cells[4]))
    frames = [trace(tiny_models[n], prompt_lines(), checkpoint=n, n_groups=4, progress=False) for n in ("base", "dpo")]
    want = spinal_nb.compare(*frames)
    assert got["summary"] == approx_tree(json.loads(json.dumps(want.summary)))
    assert "cmp = Comparison 'dpo' − 'base'" in text(nb.cells[5]) and "Comparison 0.5" in text(nb.cells[5])


def test_bare_traceframe_renders_the_dashboard(session):
    nb, _ = session
    for cell in (nb.cells[6], nb.cells[7]):
        bundles = [o.data for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert bundles, cell.outputs
        assert any(WIDGET in b for b in bundles)
        assert not any("text/html" in b for b in bundles)  # the dashboard, not the plain table


def test_report_and_file_prompts(session):
    nb, cwd = session
    assert "wrote report.html" in text(nb.cells[8])
    assert "base" in (cwd / "report.html").read_text()
    assert text(nb.cells[11]).strip() == "['fromfile'] 24"


def test_help_is_the_cli_help(session):
    nb, _ = session
    assert "trace" in text(nb.cells[12]) and "compare" in text(nb.cells[12]) and "show" in text(nb.cells[12])
    h = text(nb.cells[13])
    assert "--skip-first" in h and "--as NAME" in h and "(default: 10)" in h


def test_errors_are_one_line_usage_errors(tiny_models, tmp_path):
    cells = [f"%load_ext {EXTENSION}",
             "p = ['the first one']\n%spinal trace /no/such/model --prompts p",
             "%spinal trace m",
             "%spinal compare nothing_here.parquet",
             "x = 3\n%spinal show x",
             "%spinal trace m --prompts p --bogus",
             f"%%spinal compare {tiny_models['base']}\nbody"]
    nb = execute(cells, tmp_path, allow_errors=True)
    # IPython prints a UsageError as one stderr line, without a traceback of our code
    ev = ["".join(o.text for o in c.outputs if o.output_type == "stream" and o.name == "stderr") for c in nb.cells[1:]]
    assert all(e.startswith("UsageError: ") and len(e.strip().splitlines()) == 1 for e in ev), ev
    assert not any(o.output_type == "error" for c in nb.cells[1:] for o in c.outputs)
    assert "ModelLoadError" in ev[0] and "/no/such/model" in ev[0]
    assert "needs --prompts" in ev[1]
    assert "FrameError" in ev[2] and "No such file" in ev[2]
    assert "not a TraceFrame" in ev[3]
    assert "unrecognized arguments: --bogus" in ev[4]
    assert "takes no cell body" in ev[5]
    # ... and it is still an error of the cell: "Run all" stops there
    with pytest.raises(CellExecutionError, match="needs --prompts"):
        execute([f"%load_ext {EXTENSION}", "%spinal trace m", "print('not reached')"], tmp_path)


def test_load_ext_spinal_nb(tmp_path):
    if not hasattr(spinal_nb, "load_ipython_extension"):
        pytest.skip("spinal_nb/__init__.py does not re-export load_ipython_extension yet (the lead adds it); "
                    "`%load_ext spinal_nb.magics` is tested above")
    nb = execute(["%load_ext spinal_nb", "%spinal --version"], tmp_path)
    assert spinal_nb.__version__ in text(nb.cells[1])


def test_unload_restores_the_plain_display(tmp_path):
    cells = [f"%load_ext {EXTENSION}",
             "from spinal_nb.synthetic import synthetic_trace\nf = synthetic_trace(n_layers=4, n_prompts=12)",
             f"%unload_ext {EXTENSION}",
             "f"]
    try:
        nb = execute(cells, tmp_path)
    except CellExecutionError as e:  # pragma: no cover - shows the kernel's error
        raise AssertionError(str(e)) from e
    data = [o.data for o in nb.cells[3].outputs if o.output_type == "execute_result"][0]
    assert "TraceFrame: 1 checkpoint(s)" in data["text/plain"] and WIDGET not in data
    assert "<svg" not in data.get("text/html", "")
