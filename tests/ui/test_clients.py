"""The dashboard in two more real clients, in headless Chromium: a marimo app (`mo.ui.anywidget(sp.show(frame))`
under `marimo run`) and a notebook served by Voilà.

Each test writes its app to a tmp folder, starts the client's server on a free localhost port with a random token
(all its config, state, runtime and logs under tests/ui/artifacts/<client>/; no browser, no update check, offline),
opens the page, waits for the dashboard to be drawn, then drives it: two ← on the focused layer slider, then a click
on the "base" row of the per-layer table. Each step is awaited as the state it produces: the scrubber's layer and
readout, the selected row, and the widget's Python-side traits echoed back into the page by the app itself (marimo
re-runs the cell that reads `dash.value`; in Voilà an ipywidgets Label observes `dash.layer` / `dash.checkpoint`),
so the browser → kernel → browser round trip is checked too. Screenshots: tests/ui/artifacts/{marimo,voila}-*.png.

marimo renders a widget inside a shadow root: every DOM read goes through Playwright locators (which pierce open
shadow roots) or a handle on the dashboard's own element, never `document.querySelector`.
"""
from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import ROOT, write_notebook
from .lab_server import free_port

pytestmark = pytest.mark.ui

BIN = Path(sys.executable).parent


def _missing(module: str, cli: str) -> str | None:
    if importlib.util.find_spec(module) is None or not (BIN / cli).exists():
        return f"{module} is not installed (pip install -e '.[ui]')"
    return None


# The app's first lines, in both clients: the synthetic three-checkpoint frame of the other UI tests
FRAME = f"""import sys
sys.path.insert(0, {str(ROOT)!r})
import spinal_nb as sp
from tests.support import make_frame
frame = make_frame(3, 30, lens=True)"""

MARIMO_APP = '''import marimo

app = marimo.App(width="full")


@app.cell
def _():
    import marimo as mo
{frame}
    return frame, mo, sp


@app.cell
def _(frame, mo, sp):
    dash = mo.ui.anywidget(sp.show(frame, title="SPINAL audit in marimo"))
    dash
    return (dash,)


@app.cell
def _(dash, mo):
    mo.md(f"PY {{dash.value['layer']}} {{dash.value['checkpoint']}}")
    return


if __name__ == "__main__":
    app.run()
'''

VOILA_CELL = FRAME + """
import ipywidgets
dash = sp.show(frame, title="SPINAL audit in Voilà")
echo = ipywidgets.Label(f"PY {dash.layer} {dash.checkpoint}")
echo.add_class("spn-test-echo")
dash.observe(lambda _: setattr(echo, "value", f"PY {dash.layer} {dash.checkpoint}"), names=["layer", "checkpoint"])
ipywidgets.VBox([dash, echo])"""


def _indent(code: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in code.splitlines())


@contextmanager
def served(cmd: list[str], probe: str, home: Path, env: dict, cwd: Path, timeout: float = 120):
    """Run a client's server (`cmd`, its output in home/server.log) until the block ends; returns once `probe`
    answers with any HTTP status below 500. RuntimeError, with the log's tail, if it exits or does not answer within
    `timeout` seconds. Terminated (then killed after 20 s) at the end."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(probe, timeout=5)
                    break
                except urllib.error.HTTPError as e:
                    if e.code < 500:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text()[-2000:]
                    raise RuntimeError(f"{cmd[0]} did not serve {probe.split('?')[0]} (exit {proc.poll()}); "
                                       f"see {log_path}:\n{tail}")
                time.sleep(0.5)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def client_env(home: Path) -> dict:
    """The environment of a client's server: the repo importable, offline, one thread, every config / data / cache /
    state / runtime folder of Jupyter, IPython and marimo under `home`."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MARIMO_SKIP_UPDATE_CHECK": "1"}
    for var, sub in (("JUPYTER_CONFIG_DIR", "jupyter/config"), ("JUPYTER_DATA_DIR", "jupyter/data"),
                     ("JUPYTER_RUNTIME_DIR", "jupyter/runtime"), ("IPYTHONDIR", "ipython"),
                     ("XDG_CONFIG_HOME", "xdg/config"), ("XDG_CACHE_HOME", "xdg/cache"),
                     ("XDG_STATE_HOME", "xdg/state"), ("XDG_DATA_HOME", "xdg/data")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    return env


@contextmanager
def client_page(browser, url: str):
    """(page, errors): `url` open in a fresh page (navigation committed; the client streams or renders the rest).
    `errors` collects our front end's errors (anywidget loads our ESM from a blob: URL; the client's own are not
    ours) and browser dialogs."""
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}") if "blob:" in (e.stack or "") else None)
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    try:
        page.goto(url, wait_until="commit", timeout=60_000)
        yield page, errors
    finally:
        page.close()


# Every plot of this dashboard (its root element, so inside a shadow root too) is drawn at its element's width
DRAWN = """(root) => { const plots = [...root.querySelectorAll('.spn-plot')];
  return plots.length > 0 && plots.every((p) => { const svg = p.querySelector('svg.spn-svg');
    return svg && Math.abs(+svg.getAttribute('width') - p.getBoundingClientRect().width) <= 1; }); }"""
# the dashboard shows layer `layer` (scrubber and readout) and checkpoint `c` (an index) as the selected table row
SHOWS = """([root, layer, c]) => { const s = root.querySelector('.spn-scrubber'), row = root.querySelector(
  '.spn-table tr.spn-on'); return !!s && s.dataset.layer === layer && s.querySelector('.spn-slider').value === layer
  && root.querySelector('.spn-readout').textContent.trim() === layer + ' / 30'
  && !!row && row.dataset.checkpoint === c; }"""


def drive_dashboard(page, errors, artifacts: Path, client: str, echo) -> None:
    """The checks shared by both clients. `echo`: the locator of the page element where the app prints the widget's
    Python-side traits ("PY <layer> <checkpoint>")."""
    from playwright.sync_api import expect

    dash = page.locator(".spinal-nb.spn-dashboard")
    dash.locator(".spn-depth .spn-series").first.wait_for(timeout=150_000)  # the kernel imports torch and polars
    root = dash.element_handle()
    page.wait_for_function(DRAWN, arg=root, timeout=60_000)
    assert dash.locator(".spn-depth .spn-series").count() == 3
    assert dash.locator(".spn-dash-title").inner_text().startswith("SPINAL audit in ")
    page.wait_for_function(SHOWS, arg=[root, "29", "2"], timeout=30_000)  # the last checkpoint, its last block
    expect(echo).to_have_text(re.compile(r"PY 29 dpo"), timeout=60_000)
    dash.screenshot(path=str(artifacts / f"{client}-dashboard.png"))

    # ← twice on the focused layer slider: the slider, scrubber and readout step back, and Python follows
    slider = dash.locator(".spn-slider")
    slider.focus()
    page.wait_for_function("(root) => root.getRootNode().activeElement === root.querySelector('.spn-slider')",
                           arg=root, timeout=30_000)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(SHOWS, arg=[root, "28", "2"], timeout=30_000)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(SHOWS, arg=[root, "27", "2"], timeout=30_000)
    assert dash.locator(".spn-layer-ring-selected").get_attribute("data-layer") == "27"
    expect(echo).to_have_text(re.compile(r"PY 27 dpo"), timeout=60_000)

    # a click on the "base" row selects that checkpoint, in the DOM and in Python; the layer stays
    dash.locator('.spn-table tr[data-checkpoint="0"]').click()
    page.wait_for_function(SHOWS, arg=[root, "27", "0"], timeout=30_000)
    assert dash.locator(".spn-table tr.spn-on .spn-name-text").inner_text().strip() == "base"
    expect(echo).to_have_text(re.compile(r"PY 27 base"), timeout=60_000)
    page.screenshot(path=str(artifacts / f"{client}-page.png"), full_page=True)
    assert not errors, errors


@pytest.mark.skipif(_missing("marimo", "marimo") is not None, reason=str(_missing("marimo", "marimo")))
def test_dashboard_in_marimo(browser, artifacts, tmp_path):
    home = artifacts / "marimo"
    shutil.rmtree(home, ignore_errors=True)
    app = tmp_path / "spinal_app.py"
    app.write_text(MARIMO_APP.format(frame=_indent(FRAME)))
    port, token = free_port(), secrets.token_hex(16)
    cmd = [str(BIN / "marimo"), "run", str(app), "--headless", "--host", "127.0.0.1", "--port", str(port),
           "--token-password", token, "--no-sandbox", "--session-ttl", "0"]
    base = f"http://127.0.0.1:{port}"
    with served(cmd, f"{base}/health", home, client_env(home), tmp_path), \
            client_page(browser, f"{base}/?access_token={token}") as (page, errors):
        try:
            echo = page.get_by_text(re.compile(r"^PY \d+ \w+$"))  # the third cell's output
            drive_dashboard(page, errors, artifacts, "marimo", echo)
        except Exception:
            page.screenshot(path=str(artifacts / "marimo-failure.png"), full_page=True)
            raise


@pytest.mark.skipif(_missing("voila", "voila") is not None, reason=str(_missing("voila", "voila")))
def test_dashboard_in_voila(browser, artifacts, tmp_path):
    home = artifacts / "voila"
    shutil.rmtree(home, ignore_errors=True)
    write_notebook(tmp_path / "dashboard.ipynb", [VOILA_CELL])
    port, token = free_port(), secrets.token_hex(16)
    (home / "connections").mkdir(parents=True)
    cmd = [str(BIN / "voila"), str(tmp_path / "dashboard.ipynb"), "--no-browser", "--Voila.ip=127.0.0.1",
           f"--port={port}", f"--token={token}", "--Voila.port_retries=0", "--show_tracebacks=True",
           f"--Voila.connection_dir_root={home / 'connections'}"]
    base = f"http://127.0.0.1:{port}"
    # the page is streamed while the notebook runs: navigation commits at once, the widget comes when the cell ran
    with served(cmd, f"{base}/api/status?token={token}", home, client_env(home), tmp_path), \
            client_page(browser, f"{base}/?token={token}") as (page, errors):
        try:
            drive_dashboard(page, errors, artifacts, "voila", page.locator(".spn-test-echo"))
        except Exception:
            page.screenshot(path=str(artifacts / "voila-failure.png"), full_page=True)
            raise
