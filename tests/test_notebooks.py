"""The README quickstart, as written, in a real kernel, as a newcomer pastes it into a notebook.

The kernel joins the session's Ray (``RAY_ADDRESS``) and its Serve (``WORKBENCH_SERVE_PORT``): no
Ray or Serve of its own to start. It runs in a folder of its own with no ``WORKBENCH_HOME``, so its
state lands in ``./.workbench``. The quickstart notebook is what ``make demo`` runs: it is executed,
and its outputs and widgets checked, in tests/test_loop_integration.py.
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


def test_the_readme_quickstart_in_a_kernel(tmp_path, monkeypatch, ray_cluster, serve_apps):
    new_cell = nbformat.v4.new_code_cell
    monkeypatch.delenv("WORKBENCH_HOME", raising=False)
    monkeypatch.setenv("WORKBENCH_SERVE_PORT", str(serve_apps.port))
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    nb = nbformat.v4.new_notebook(
        cells=[
            new_cell(
                readme_quickstart() + "\nprint('QUICKSTART-OK', model.version, model.aliases)\n"
            )
        ],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
    )
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    assert not _errors(nb.cells), _errors(nb.cells)
    out = _stream(nb.cells)
    assert "QUICKSTART-OK 1 ('champion',)" in out
    assert "'predictions': [" in out and "traffic history of deployment cancer" in out
    assert (tmp_path / ".workbench" / "lineage.db").exists()
    assert (tmp_path / "cancer.csv").exists()
    # the search cell showed the live progress widget
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for o in nb.cells[0].get("outputs", [])
    )
    assert ray_cluster.started_here  # the kernel joined the session's Ray and left it running
