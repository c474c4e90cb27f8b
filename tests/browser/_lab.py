"""Helpers for browser tests: start JupyterLab, open a notebook, run a cell, save screenshots.

The fixtures in ``conftest.py`` use these; other browser tests import them::

    from tests.browser._lab import open_notebook, run_cell, screenshot
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
#: ``item.stash[FAILED]`` is True once a phase of a browser test failed (set by conftest's report
#: hook, read by fixtures at teardown). Here, not in conftest: a test module importing conftest
#: gets a second copy of it.
FAILED = pytest.StashKey[bool]()
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
# A closed network: nothing in the browser may phone home or update itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab plugins the browser tests never use (disabled through page_config.json): neither the
# notebook, its widgets nor the workbench panel needs them.
UNUSED_LAB_PLUGINS = [
    "@jupyterlab/apputils-extension:announcements",
    *(
        f"@jupyterlab/{name}-extension"
        for name in (
            "celltags", "cell-toolbar", "console", "csvviewer", "debugger", "extensionmanager",
            "help", "htmlviewer", "hub", "imageviewer", "inspector", "logconsole", "lsp",
            "markdownviewer", "metadataform", "pluginmanager", "running", "terminal", "toc",
            "tooltip", "workspaces",
        )
    ),
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab started by a test.

    Attributes
    ----------
    url : str
        Base URL, ending with ``/`` (``http://127.0.0.1:PORT/``).
    token : str
        The server's token (every request must carry it or the login cookie).
    home : Path
        ``WORKBENCH_HOME`` of the server and of the kernels it starts.
    root_dir : Path
        The server's root directory (notebooks live here).
    """

    url: str
    token: str
    home: Path
    root_dir: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        """The server's output so far (for assertion messages)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the server's REST API with the token (``path`` without the leading ``/``)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def write_notebook(self, name: str, cells: list[str] | None = None) -> str:
        """Write a notebook (python3 kernel) into the root directory; returns its path relative to it."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(c) for c in (cells or [""])]
        nbformat.write(nb, self.root_dir / name)
        return name


def start_lab(
    root_dir: Path, home: Path, *, extra_env: dict[str, str] | None = None, timeout_s: float = 90
) -> Lab:
    """Start ``jupyter lab`` on a free loopback port with a random token and wait until it answers.

    The server runs as its own process group (so its kernels end with it) with private config,
    data, runtime and workspace directories under ``root_dir/.jupyter-test``; ``WORKBENCH_HOME``
    is ``home``. End it with :func:`stop_lab`.
    """
    token = secrets.token_hex(16)
    port = free_port()
    private = root_dir / ".jupyter-test"
    for sub in ("config", "runtime", "workspaces", "settings", "ipython"):
        (private / sub).mkdir(parents=True, exist_ok=True)
    # no "official Jupyter news?" toast over the screenshots, and no attempt to fetch news
    notification = private / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # A lighter JupyterLab: the plugins no browser test uses stay off, which cut a page load's
    # chromium CPU by about a third here; the server runs without language servers and terminals.
    (private / "config" / "labconfig").mkdir(parents=True, exist_ok=True)
    (private / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": dict.fromkeys(UNUSED_LAB_PLUGINS, True)})
    )
    (private / "config" / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {
                        "jupyter_lsp": False,
                        "jupyter_server_terminals": False,
                    },
                    "terminals_enabled": False,
                }
            }
        )
    )
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "WORKBENCH_HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "JUPYTER_CONFIG_DIR": str(private / "config"),
        "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
        "IPYTHONDIR": str(private / "ipython"),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log_path = private / "lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={root_dir}",
        # the browser helpers drive JupyterLab through window.jupyterapp (as Galata does)
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.workspaces_dir={private / 'workspaces'}",
        f"--LabApp.user_settings_dir={private / 'settings'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=root_dir,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab = Lab(
        url=f"http://127.0.0.1:{port}/",
        token=token,
        home=home,
        root_dir=root_dir,
        process=proc,
        log_path=log_path,
        env=env,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log()}")
        try:
            lab.api("GET", "api/status")
            return lab
        except OSError:
            if time.monotonic() > deadline:
                stop_lab(lab)
                raise RuntimeError(
                    f"jupyter lab did not answer within {timeout_s} s:\n{lab.log()}"
                ) from None
            time.sleep(0.3)


def stop_lab(lab: Lab, timeout_s: float = 30) -> None:
    """End the server we started (SIGTERM to its pid, then its process group if it lingers)."""
    proc = lab.process
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG under ``tests/browser/artifacts/`` (git-ignored) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def open_lab(page: Any, lab: Lab) -> None:
    """Log ``page`` in to ``lab`` (the token sets the login cookie) and wait until the app has started."""
    page.goto(f"{lab.url}lab?token={lab.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=60_000)
    page.evaluate("() => window.jupyterapp.started")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)


def end_kernels(lab: Lab) -> None:
    """Shut down every kernel running in ``lab``."""
    for kernel in lab.api("GET", "api/kernels") or []:
        lab.api("DELETE", f"api/kernels/{kernel['id']}")


def reset_notebook(page: Any) -> None:
    """Leave the open notebook as new (one empty cell) with its kernel kept, and every widget in
    that kernel closed (the workbench widgets' pollers end with them)."""
    left = run_cell(
        page,
        "import ipywidgets, threading\n"
        "ipywidgets.Widget.close_all()\n"
        "for t in threading.enumerate():\n"
        "    if t.name.startswith('workbench-') and t.name.endswith('-widget'):\n"
        "        t.join(10)\n"
        "print([t.name for t in threading.enumerate() if t.name.startswith('workbench-')"
        " and t.name.endswith('-widget')])",
    )
    assert left.strip() == "[]", f"widget pollers still running after close_all: {left}"
    page.evaluate(
        """() => {
            const cells = window.jupyterapp.shell.currentWidget.content.model.sharedModel;
            cells.transact(() => {
                cells.deleteCellRange(0, cells.cells.length);
                cells.insertCell(0, {cell_type: 'code', source: ''});
            });
        }"""
    )
    page.wait_for_function(
        """() => { const nb = window.jupyterapp.shell.currentWidget.content;
                   return nb.widgets.length === 1 && !nb.node.querySelector('.jp-OutputArea-output'); }"""
    )


def open_notebook(page: Any, path: str, *, timeout_s: float = 90) -> None:
    """Open the notebook at ``path`` (relative to the server's root) and wait until its kernel is idle."""
    page.evaluate(
        "async (path) => { await window.jupyterapp.commands.execute('docmanager:open', {path}); }",
        path,
    )
    page.wait_for_function(
        """(path) => {
            const w = window.jupyterapp.shell.currentWidget;
            if (!w || !w.context || w.context.path !== path) return false;
            const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!k && k.status === 'idle';
        }""",
        arg=path,
        timeout=timeout_s * 1000,
    )


def run_cell(page: Any, code: str, *, timeout_s: float = 120, wait: bool = True) -> str:
    """Put ``code`` in a new cell at the end of the open notebook, run it, and return its text output.

    With ``wait=False`` returns at once (an empty string) while the cell runs. A cell that raises
    fails the test with the traceback's last lines.
    """
    index = page.evaluate(
        """async (code) => {
            const app = window.jupyterapp;
            const panel = app.shell.currentWidget;
            const nb = panel.content;
            const cells = nb.model.sharedModel;
            const last = nb.widgets.length - 1;
            let index = last;
            if (last < 0 || nb.widgets[last].model.sharedModel.getSource() !== '' ||
                nb.widgets[last].model.type !== 'code') {
                cells.insertCell(last + 1, {cell_type: 'code', source: ''});
                index = last + 1;
            }
            nb.activeCellIndex = index;
            nb.widgets[index].model.sharedModel.setSource(code);
            nb.widgets[index].model.setMetadata('workbench_test_pending', true);
            await app.commands.execute('notebook:run-cell');
            return index;
        }""",
        code,
    )
    if not wait:
        return ""
    page.wait_for_function(
        """(index) => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            const cell = nb.widgets[index];
            return cell && cell.model.executionCount !== null && !cell.hasClass('jp-mod-running') &&
                   cell.node.querySelector('.jp-InputPrompt').textContent.indexOf('*') < 0;
        }""",
        arg=index,
        timeout=timeout_s * 1000,
    )
    result = page.evaluate(
        """(index) => {
            const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
            const outs = cell.model.outputs.toJSON();
            const text = [], errors = [];
            for (const o of outs) {
                if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n'));
                else if (o.output_type === 'stream') text.push(Array.isArray(o.text) ? o.text.join('') : o.text);
                else if (o.data && o.data['text/plain']) {
                    const t = o.data['text/plain']; text.push(Array.isArray(t) ? t.join('') : t);
                }
            }
            return {text: text.join(''), errors};
        }""",
        index,
    )
    if result["errors"]:
        tail = re.sub(r"\x1b\[[0-9;]*m", "", result["errors"][0])[-3000:]
        raise AssertionError(f"cell raised:\n{tail}")
    return result["text"]


def bench_with_split(lab: Lab, train: float) -> tuple[Any, Any, Any]:
    """A ``Workbench`` in the lab's WORKBENCH_HOME (and the lab's Serve port) with the breast-cancer
    data ingested as ``bc`` and split into ``train`` and ``holdout`` (seed 0): (bench, train, holdout)."""
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv

    bench = Workbench(lab.home, serve_port=int(lab.env["WORKBENCH_SERVE_PORT"]))
    dv = bench.datasets.ingest(
        write_breast_cancer_csv(lab.root_dir / "bc.csv"), name="bc", target="diagnosis"
    )
    parts = bench.datasets.split(dv, {"train": train, "holdout": round(1 - train, 6)}, seed=0)
    return bench, parts["train"], parts["holdout"]


def open_panel(page: Any) -> None:
    """Click the workbench panel's tab in the left sidebar, as a user does."""
    page.locator('.jp-SideBar [data-id="jp-workbench-panel"]').first.click()
    page.wait_for_selector("#jp-workbench-panel:not(.lm-mod-hidden) .jp-WorkbenchPanel-tab")
