"""Notebooks are part of the product: execute them top to bottom in a real kernel."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.runtime import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKBENCH_SERVE_PORT", str(free_port()))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    errors = [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    assert not errors
    text = "\n".join(
        o.get("text", "")
        for outs in outputs.values()
        for o in outs
        if o.get("output_type") == "stream"
    )
    assert "traffic history of deployment cancer" in text
    # the retraining cell printed the job's steps from tick(): snapshot ... gate
    assert all(f"{step:<12} " in text for step in ("snapshot", "validation", "search", "gate"))
    # the search cell displayed the live progress widget
    widget_views = [
        o
        for outs in outputs.values()
        for o in outs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widget_views, "the Tune search should show a progress widget in a notebook"
    # ...and the widget's synced state reached the end of the search (nbclient stores widget state)
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    progress = [
        m["state"]
        for m in states
        if "done" in m.get("state", {}) and "best_metric" in m.get("state", {})
    ]
    assert any(
        p["done"] == p["total"] == 4 and p["status"] == "TERMINATED" and p["best_metric"] == "f1"
        for p in progress
    ), progress
    assert (tmp_path / "home" / "lineage.db").exists()
    assert os.environ["WORKBENCH_HOME"] == str(tmp_path / "home")
