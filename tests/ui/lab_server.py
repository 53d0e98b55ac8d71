"""A headless Jupyter server (JupyterLab 4, optionally Notebook 7) with all its state under one folder, and the
notebook page driven by state, not by time.

Shared by the UI tests (tests/ui/conftest.py) and the redraw benchmark (benchmarks/widget_redraw.py).

Waiting: nothing here sleeps for an effect. `start_session` creates a notebook's session through the REST API and
returns once its kernel answers and the server reports it idle, so the page that opens the notebook attaches to that
kernel and never asks which kernel to start. `open_notebook` waits until the page's kernel is connected and idle
(accepting the default kernel if JupyterLab's "Select Kernel" dialog shows anyway); `run_cell` waits for that state,
runs the cell and waits for its new execution count. The timeouts only bound a failure.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]


class Lab(NamedTuple):
    """A running server from start_lab."""
    proc: subprocess.Popen
    log: object
    base: str
    token: str
    home: Path  # config, data, runtime (kernel connection files), settings, workspaces
    work: Path  # the notebooks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(home: Path, work: Path, log_path: Path, notebook7: bool = False, timeout: float = 180) -> Lab:
    """A server on a free localhost port with a random token; config, data, runtime, settings and workspaces under
    `home`, notebooks in `work`. The page exposes the app as `window.jupyterapp` (for the kernel state). RuntimeError
    if it does not answer within `timeout` seconds."""
    for d in ("config", "data", "runtime", "settings", "workspaces"):
        (home / d).mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    # no "news" / update toasts in the screenshots
    notif = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True, exist_ok=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # enable the server extensions explicitly in this server's own config dir, so that a machine-wide config that
    # disables one cannot take /lab or /notebooks away
    exts = {"jupyterlab": True, **({"notebook": True} if notebook7 else {})}
    (home / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": exts}}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
         "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True",
         *(["--JupyterNotebookApp.expose_app_in_browser=True"] if notebook7 else [])],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
            return Lab(proc, log, base, token, home, work)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                raise RuntimeError(f"jupyter server did not start; see {log_path}") from None
            time.sleep(0.5)


def stop_lab(proc: subprocess.Popen, log) -> None:
    """Stop a server from start_lab (terminate, then kill after 20 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def api(lab: Lab, method: str, path: str, body: dict | None = None):
    """One call to the server's REST API (token auth); the decoded JSON answer, or None when it has no body."""
    req = urllib.request.Request(f"{lab.base}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
    return json.loads(data) if data else None


def start_session(lab: Lab, path: str, kernel: str = "python3", timeout: float = 180) -> dict:
    """Create the session of notebook `path` (relative to lab.work) with a `kernel` kernel, through the REST API, and
    wait until that kernel has answered a kernel_info request and the server reports it idle. The session (JSON).

    A page that then opens the notebook finds the session by its path and connects to that kernel: it does not start
    one, nor ask which one to start (JupyterLab's "Select Kernel" dialog, which intercepts clicks)."""
    from jupyter_client import BlockingKernelClient

    session = api(lab, "POST", "/api/sessions",
                  {"path": path, "type": "notebook", "name": Path(path).name, "kernel": {"name": kernel}})
    kid = session["kernel"]["id"]
    deadline = time.monotonic() + timeout
    # the server only learns the kernel's state from its messages, and a fresh kernel says nothing until asked
    kc = BlockingKernelClient(connection_file=str(lab.home / "runtime" / f"kernel-{kid}.json"))
    kc.load_connection_file()
    # no heartbeat channel: on a busy machine a late heartbeat reads as a dead kernel ("Kernel died before replying
    # to kernel_info"); a kernel that is really dead does not answer, and that is bounded by `timeout`
    kc.start_channels(hb=False)
    try:
        kc.wait_for_ready(timeout=timeout)  # RuntimeError if the kernel does not answer in time
        # The server's own iopub subscription may join after the kernel's first status messages went out (ZeroMQ's
        # slow joiner), and then it reports 'starting' until it hears another one. Each kernel_info request makes the
        # kernel publish busy → idle again, so ask until the server has heard it.
        while (state := api(lab, "GET", f"/api/kernels/{kid}")["execution_state"]) != "idle":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"kernel {kid} of {path} is still {state!r} after {timeout} s")
            kc.kernel_info(reply=True, timeout=remaining)  # waits for the reply, not for a fixed time
    finally:
        kc.stop_channels()
    return session


def end_session(lab: Lab, session: dict) -> None:
    """Delete a session from start_session (its kernel stops)."""
    api(lab, "DELETE", f"/api/sessions/{session['id']}")


def notebook_url(lab: Lab, path: str, app: str = "lab") -> str:
    """The page of notebook `path` in JupyterLab (app="lab", a fresh workspace) or Notebook 7 (app="notebook")."""
    if app == "lab":
        return f"{lab.base}/lab/tree/{path}?token={lab.token}&reset"
    return f"{lab.base}/notebooks/{path}?token={lab.token}"


# The page's state, from the app (window.jupyterapp, exposed by start_lab): "ready" when the notebook's kernel is
# connected and idle and no dialog is open, "kernel-dialog" while the "Select Kernel" dialog is open, "dialog: ..."
# for any other dialog, else false (still loading, connecting or busy).
PAGE_STATE = """() => {
  const dlg = document.querySelector('.jp-Dialog');
  if (dlg) {
    const title = (dlg.querySelector('.jp-Dialog-header') || dlg).textContent.trim();
    return /select kernel/i.test(title) ? 'kernel-dialog' : 'dialog: ' + title;
  }
  const app = window.jupyterapp;
  const panel = app && app.shell && app.shell.currentWidget;
  const ctx = panel && panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  if (!kernel || !document.querySelector('.jp-Notebook .jp-Cell')) return false;
  return kernel.connectionStatus === 'connected' && kernel.status === 'idle' ? 'ready' : false;
}"""


def wait_ready(page, timeout: float = 180_000) -> None:
    """Wait until the notebook's kernel is connected and idle in the page. If JupyterLab asks which kernel to start
    ("Select Kernel"), accept its default (the notebook's python3) and wait for the dialog to go; any other dialog
    is an error, raised at once (it would intercept every click)."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        left = max(1.0, deadline - time.monotonic()) * 1000
        state = page.wait_for_function(PAGE_STATE, timeout=left).json_value()
        if state == "ready":
            return
        if state != "kernel-dialog":
            raise RuntimeError(f"an unexpected dialog is open: {state}")
        dialog = page.locator(".jp-Dialog")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click(timeout=left)
        dialog.wait_for(state="detached", timeout=left)


def open_notebook(page, lab: Lab, path: str, app: str = "lab", timeout: float = 180_000) -> None:
    """Open notebook `path` (its session from start_session) in `page`; returns once its kernel is connected and idle."""
    page.goto(notebook_url(lab, path, app), timeout=timeout)
    wait_ready(page, timeout)


# the highest execution count shown in the notebook (0 if none)
MAX_COUNT = """() => Math.max(0, ...[...document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputPrompt')]
  .map((p) => { const m = /\\[(\\d+)\\]/.exec(p.textContent); return m ? +m[1] : 0; }))"""
# cell i shows an execution count above `after` (a finished run: while running the prompt shows [*])
RAN = """([i, after]) => { const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const m = c && /\\[(\\d+)\\]/.exec(c.querySelector('.jp-InputPrompt').textContent);
  return !!m && +m[1] > after; }"""


def run_cell(page, i: int, timeout: float = 180_000) -> None:
    """Run cell i: wait until the kernel is connected and idle, select the cell, Shift+Enter, and wait until the
    cell shows an execution count newer than any before the run (counts only grow in one kernel)."""
    wait_ready(page, timeout)
    after = page.evaluate(MAX_COUNT)
    page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-InputPrompt").click(timeout=timeout)
    page.wait_for_function("(i) => document.querySelectorAll('.jp-Notebook .jp-Cell')[i].classList"
                           ".contains('jp-mod-active')", arg=i, timeout=timeout)
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(RAN, arg=[i, after], timeout=timeout)
