"""The tutorials in notebooks/ run top to bottom in a real kernel, offline (HF_HUB_OFFLINE=1), and are stored clean."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
# (timeout in seconds, slow?) — measured on 2 shared CPU cores; the first run also builds cached checkpoints
BUDGET = {
    "01-quickstart.ipynb": (900, False),
    "02-the-two-scores.ipynb": (120, False),
    "03-auditing-a-dpo-model.ipynb": (1200, True),
    "04-scaling-out-on-ndif.ipynb": (600, False),
}
# Values injected after a notebook's cell tagged "parameters" (papermill's convention): notebook 03's full audit
# builds two 60-step SmolLM2 DPO seeds (~12 min each on one core) — the suite runs its QUICK smoke size instead.
PARAMETERS = {"03-auditing-a-dpo-model.ipynb": {"QUICK": True}}


def inject_parameters(nb, values: dict) -> None:
    """Insert `name = value` lines right after the cell tagged "parameters"; each name must be set in that cell, so
    a renamed parameter fails here instead of being silently ignored."""
    cells = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    defined = nb.cells[cells[0]].source
    for name in values:
        assert f"\n{name} = " in "\n" + defined, f"{name} is not a parameter of this notebook"
    source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells.insert(cells[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


def test_every_notebook_is_listed():
    assert ALL and set(ALL) == set(BUDGET), "add new notebooks to BUDGET"


@pytest.mark.parametrize("name", ALL)
def test_outputs_are_stripped(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs before committing"
    assert "widgets" not in nb.metadata


def _errors_in_widget_state(nb) -> list[str]:
    """Errors raised inside ipywidgets callbacks (interact) land in Output widgets, not in the cell: find them."""
    state = json.dumps(nb.metadata.get("widgets", {}))
    return [s for s in ("\"output_type\": \"error\"", "Traceback") if s in state]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if BUDGET.get(n, (0, False))[1] else n
                                  for n in ALL])
def test_notebook_runs_offline(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits it: the notebooks take their offline path
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if name in PARAMETERS:
        inject_parameters(nb, PARAMETERS[name])
    timeout, _ = BUDGET[name]
    t = time.perf_counter()
    # run in a scratch folder so files the notebook writes do not land in the repository
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    wall = time.perf_counter() - t
    print(f"{name}: {wall:.1f} s")
    assert not _errors_in_widget_state(nb)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (name, cell.source[:80])
    if os.environ.get("SPINAL_NB_EXECUTED"):  # keep the executed copy for review (never in the repository)
        nbformat.write(nb, Path(os.environ["SPINAL_NB_EXECUTED"]) / name)
    if os.environ.get("SPINAL_NB_TIMINGS"):
        with open(os.environ["SPINAL_NB_TIMINGS"], "a") as f:
            f.write(f"{name}\t{wall:.1f}\n")


def test_injected_parameters_take_effect_and_unknown_ones_are_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("QUICK = False\nN = 3", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(QUICK, N)")])
    inject_parameters(nb, {"QUICK": True})
    ns: dict = {}
    for cell in nb.cells:
        exec(cell.source, ns)
    assert ns["QUICK"] is True and ns["N"] == 3
    with pytest.raises(AssertionError, match="not a parameter"):
        inject_parameters(nb, {"QUICKER": True})
