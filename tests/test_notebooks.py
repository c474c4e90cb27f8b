"""Notebooks are part of the product: the README quickstart and then the quickstart notebook, top to
bottom in one real kernel, as a newcomer pastes the one into a notebook and goes on with the other.

The kernel joins the session's Ray (``RAY_ADDRESS``) and its Serve (``WORKBENCH_SERVE_PORT``): no
Ray or Serve of its own to start. The README block runs first, as written, in a folder of its own
with no ``WORKBENCH_HOME`` (so its state lands in ``./.workbench``); the notebook then runs in
``WORKBENCH_HOME``. Each part's outputs are checked on their own.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def readme_quickstart() -> str:
    """The README's quickstart code block, as written."""
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Quickstart", 1)[1].split("```python", 1)[1].split("```", 1)[0]


def _stream(cells) -> str:
    return "\n".join(
        o.get("text", "")
        for c in cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )


def _errors(cells) -> list:
    return [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _reachable(states: dict, roots: list[str]) -> list[dict]:
    """The widget models ``roots`` and every model they reference (``IPY_MODEL_<id>``)."""
    seen, todo = set(), list(roots)
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in states:
            continue
        seen.add(mid)
        text = repr(states[mid].get("state", {}))
        todo += [m for m in states if f"IPY_MODEL_{m}" in text]
    return [states[m] for m in seen]


def test_readme_quickstart_then_the_quickstart_notebook_in_one_kernel(
    tmp_path, monkeypatch, ray_cluster, serve_apps
):
    new_cell = nbformat.v4.new_code_cell
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    readme_dir, home = tmp_path / "readme", tmp_path / "home"
    readme_dir.mkdir()
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_SERVE_PORT", str(serve_apps.port))
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    readme_cells = [
        new_cell(f"import os\nos.chdir({str(readme_dir)!r})\ndel os.environ['WORKBENCH_HOME']"),
        new_cell(
            readme_quickstart()
            + "\nprint('QUICKSTART-OK', model.version, model.aliases)\nbench.close()\n"
        ),
        new_cell(f"os.chdir({str(tmp_path)!r})\nos.environ['WORKBENCH_HOME'] = {str(home)!r}"),
    ]
    notebook_cells = list(nb.cells)
    nb.cells = readme_cells + notebook_cells
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    # The README quickstart, as a newcomer pastes it into a notebook.
    assert not _errors(readme_cells), _errors(readme_cells)
    out = _stream(readme_cells)
    assert "QUICKSTART-OK 1 ('champion',)" in out
    assert "'predictions': [" in out and "traffic history of deployment cancer" in out
    assert (readme_dir / ".workbench" / "lineage.db").exists()
    assert (readme_dir / "cancer.csv").exists()

    # The notebook, top to bottom.
    assert not _errors(notebook_cells), _errors(notebook_cells)
    text = _stream(notebook_cells)
    assert "traffic history of deployment cancer" in text
    # the retraining cell printed the job's steps from tick(): snapshot ... gate
    assert all(f"{step:<12} " in text for step in ("snapshot", "validation", "search", "gate"))
    # the search cell displayed the live progress widget...
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for c in notebook_cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert views, "the Tune search should show a progress widget in a notebook"
    # ...and its synced state reached the end of the search (nbclient stores widget state)
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    progress = [
        m["state"]
        for m in _reachable(states, views)
        if "done" in m.get("state", {}) and "best_metric" in m.get("state", {})
    ]
    assert any(
        p["done"] == p["total"] == 4 and p["status"] == "TERMINATED" and p["best_metric"] == "f1"
        for p in progress
    ), progress
    assert (home / "lineage.db").exists()
    assert ray_cluster.started_here  # the kernel joined the session's Ray and left it running
