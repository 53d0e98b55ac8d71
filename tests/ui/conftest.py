"""A real JupyterLab 4 / Notebook 7 server and headless Debian Chromium (Playwright), all state kept in the tree.

Everything Jupyter writes (config, data, runtime, settings, workspaces) lives under tests/ui/artifacts/ (gitignored);
the server listens on a free localhost port with a random token. Skips, with the reason, when chromium, jupyterlab
or playwright is missing.

The tests wait for states, never for a time: each notebook's kernel is started through the REST API and is idle
before the page opens (tests/ui/lab_server.py), cells run once the page's kernel is connected and idle, and every
effect of a click, a key or a cell is awaited as the DOM or Python state it produces. Timeouts only bound failures.

Busy machine: `SPINAL_UI_BURN=<seconds> pytest tests/ui` runs the UI tests with every core busy (one CPU-burning
process per core, os.cpu_count()); each burner exits by itself after <seconds>, and all are killed when the session
ends, failed or not.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from .lab_server import end_session, notebook_url, open_notebook, start_lab, start_session, stop_lab

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the tests import the synthetic frames of tests/widgets, as does the notebook kernel
    sys.path.insert(0, str(ROOT))
ARTIFACTS = ROOT / "tests" / "ui" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

# One burner: spins until its deadline (argv[1] seconds from now), or until its parent (argv[2], the pytest process)
# is gone.
BURN = """import os, sys, time
end, parent = time.monotonic() + float(sys.argv[1]), int(sys.argv[2])
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(200_000):
        pass
"""


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


def _burn_seconds() -> float:
    raw = os.environ.get("SPINAL_UI_BURN", "").strip()
    if not raw:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise pytest.UsageError(f"SPINAL_UI_BURN must be a number of seconds, not {raw!r}") from None
    if seconds < 0:
        raise pytest.UsageError(f"SPINAL_UI_BURN must be a number of seconds >= 0, not {raw!r}")
    return seconds


@pytest.fixture(scope="session", autouse=True)
def burn_cpu():
    """With SPINAL_UI_BURN=<seconds>: one CPU-burning process per core for the UI session (see the module docstring).
    Yields the burners (empty without the variable)."""
    seconds = _burn_seconds()
    procs: list[subprocess.Popen] = []
    if seconds:
        procs = [subprocess.Popen([sys.executable, "-c", BURN, str(seconds), str(os.getpid())])
                 for _ in range(os.cpu_count() or 1)]
        _BURNED.update(burners=len(procs), seconds=seconds, start=time.monotonic())
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if procs:
            _BURNED.update(end=time.monotonic(), load=os.getloadavg())


_BURNED: dict = {}  # what burn_cpu did, for the summary line


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _BURNED:
        b = _BURNED
        held = b.get("end", time.monotonic()) - b["start"]
        load = ", ".join(f"{x:.2f}" for x in b.get("load", os.getloadavg()))
        terminalreporter.write_line(
            f"SPINAL_UI_BURN={b['seconds']:g}: {b['burners']} CPU burners (one per core) for {held:.0f} s of the UI "
            f"session (each stops by itself after {b['seconds']:g} s); load average when they stopped: {load}")


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
    """A headless Jupyter server (lab_server.Lab: base url, token, home, work dir) serving both /lab and /notebooks
    (Notebook 7)."""
    lab = start_lab(artifacts / "jupyter", artifacts / "work", artifacts / "jupyter-server.log",
                    notebook7=_missing_notebook7() is None)
    try:
        yield lab
    finally:
        stop_lab(lab.proc, lab.log)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def open_export(browser, artifacts):
    """open_export(frame, name): the Dashboard's static export of `frame` (`show(frame).to_html`, written to
    artifacts/<name>.html) in a new page, 1000 × 1400 (narrow: lens and spectrum share a row), drawn. An error in a
    page fails the test at teardown."""
    opened: list[tuple] = []

    def open_(frame, name: str, title: str = "20 checkpoints"):
        from spinal_nb.widgets import show

        path = show(frame, title=title).to_html(artifacts / f"{name}.html")
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        opened.append((page, errors))
        page.goto(path.as_uri())
        page.wait_for_selector(".spinal-nb .spn-spectrum svg", timeout=30_000)
        return page

    yield open_
    for page, _ in opened:
        page.close()
    for _, errors in opened:
        assert not errors, errors


class Markdown(str):
    """A markdown cell's source in `write_notebook`'s cells (a plain str is a code cell)."""


def _cell(i: int, src: str) -> dict:
    if isinstance(src, Markdown):
        return {"cell_type": "markdown", "id": f"c{i}", "metadata": {}, "source": str(src)}
    return {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = {"cells": [_cell(i, src) for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))
    return path


@contextmanager
def notebook_page(browser, lab, name: str, cells: list[str], app: str = "lab"):
    """(page, errors): notebook `name` with these cells, its kernel started and idle (REST API) before the page
    opens it in `app` ("lab" or "notebook"); returns once the page's kernel is connected and idle. `errors` collects
    our front end's errors (anywidget loads our ESM from a blob: URL; the host app's are not ours) and browser dialogs.
    The page is closed and the session (its kernel) deleted at the end."""
    write_notebook(lab.work / name, cells)
    check_served(notebook_url(lab, name, app))
    session = start_session(lab, name)
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}") if "blob:" in (e.stack or "") else None)
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    try:
        open_notebook(page, lab, name, app)
        yield page, errors
    finally:
        page.close()
        end_session(lab, session)


# Every plot of the widgets (.spn-plot) is drawn at its element's current width: the redraw that follows a width
# change (ResizeObserver, then the next animation frame) has happened, so positions read now stay valid.
DRAWN = """() => { const plots = [...document.querySelectorAll('.spinal-nb .spn-plot')];
  return plots.length > 0 && plots.every((p) => { const svg = p.querySelector('svg.spn-svg');
    return svg && Math.abs(+svg.getAttribute('width') - p.getBoundingClientRect().width) <= 1; }); }"""


def wait_drawn(page, timeout: float = 60_000) -> None:
    page.wait_for_function(DRAWN, timeout=timeout)


# In-page: resolves once the next frame has been produced (an animation frame, then a message, which runs after that
# frame's callbacks, resize observers, layout and paint). The views redraw in animation frames (store.inFrame), so any
# redraw that earlier changes scheduled has happened by then: read the page after it, not right after a change.
AFTER_FRAME = """new Promise((resolve) => requestAnimationFrame(() => {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => resolve();
  ch.port2.postMessage(0);
}))"""


def after_frame(page) -> None:
    page.evaluate(f"async () => {{ await {AFTER_FRAME}; }}")


# the tooltip of the plot under `sel` is shown (true) or hidden (false)
TIP_SHOWN = """([sel, shown]) => { const t = document.querySelector(sel + ' .spn-tooltip');
  return !!t && (t.style.display === 'block') === shown; }"""


def wait_tooltip(page, sel: str, shown: bool = True, timeout: float = 30_000) -> None:
    page.wait_for_function(TIP_SHOWN, arg=[sel, shown], timeout=timeout)
