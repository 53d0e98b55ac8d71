"""A real JupyterLab 4 / Notebook 7 server and headless Debian Chromium (Playwright), all state kept in the tree.

Everything Jupyter writes (config, data, runtime, settings, workspaces) lives under tests/ui/artifacts/ (gitignored);
the server listens on a free localhost port with a random token. Skips, with the reason, when chromium, jupyterlab
or playwright is missing.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from .lab_server import start_lab, stop_lab

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the tests import the synthetic frames of tests/widgets, as does the notebook kernel
    sys.path.insert(0, str(ROOT))
ARTIFACTS = ROOT / "tests" / "ui" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install -y chromium; never `playwright install`)"
    for mod in ("playwright", "jupyterlab"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install -e '.[ui]')"
    return None


def _missing_notebook7() -> str | None:
    # Notebook 7's /notebooks/<name> pages come from the `notebook` package's server extension, not from jupyterlab:
    # without it the server answers 404 and the page never shows a cell (the CI time-out of 2026-11-23)
    if importlib.util.find_spec("notebook") is None:
        return "notebook>=7 is not installed, so the server has no /notebooks/ pages (pip install -e '.[ui]')"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    nb7 = _missing_notebook7()
    for item in items:
        if "ui" not in item.keywords:
            continue
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif nb7 and getattr(item, "callspec", None) and item.callspec.params.get("app") == "notebook":
            item.add_marker(pytest.mark.skip(reason=nb7))


def check_served(url: str, timeout: float = 60) -> None:
    """Fail at once, saying why, when the server does not serve `url` (instead of a browser waiting 90 s on a 404).

    Retries connection errors and 5xx for `timeout` seconds (a fresh server can still be loading extensions)."""
    import urllib.error

    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status == 200:
                    return
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
            if status < 500:
                break
        except OSError as e:
            status = repr(e)
        if time.time() > deadline:
            break
        time.sleep(1)
    pytest.fail(f"The Jupyter server does not serve {url.split('?')[0]} (status {status}); for /notebooks/ pages "
                f"Notebook 7 must be installed and enabled (pip install -e '.[ui]'). See {ARTIFACTS / 'jupyter-server.log'}.")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def jupyter_server(artifacts):
    """(base_url, token, work_dir) of a headless Jupyter server serving both /lab and /notebooks (Notebook 7)."""
    work = artifacts / "work"
    proc, log, base, token = start_lab(artifacts / "jupyter", work, artifacts / "jupyter-server.log",
                                       notebook7=_missing_notebook7() is None)
    try:
        yield base, token, work
    finally:
        stop_lab(proc, log)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": src} for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))
    return path
