"""notebooks/data.ipynb, the data stage's notebook, executed top to bottom in a real kernel.

It starts its own PostgreSQL and mosquitto on loopback (Debian's packages, which ``make test``
installs) and an HTTP API in its kernel; no Ray. Its printed outcomes are asserted here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._notebooks import error_outputs, execute_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "data.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data-notebook")
    nb, text = execute_notebook(NOTEBOOK, folder)
    return nb, text, folder


def test_it_runs_without_errors_and_stores_under_dot_workbench(executed):
    nb, _, folder = executed
    errors = error_outputs(nb)
    assert not errors, errors
    assert (folder / ".workbench" / "lineage.db").exists()


def test_each_source_gave_its_versions(executed):
    _, out, _ = executed
    assert "cancer@1 569 rows, xxh3-128:" in out
    assert (
        "cancer-parts@1 569 rows from 2 files: ['diagnosis=benign', 'diagnosis=malignant']" in out
    )
    assert "again: cancer-parts@1 created: False" in out
    assert (
        "readings@1 100 rows; readings@2 25 new rows, watermark 125 ; then readings@2 created: False"
        in out
    )
    assert re.search(r"orders@1 500 rows from postgresql://\*\*\*@127\.0\.0\.1:\d+/wb", out)
    assert "password in the record: False" in out and "not-in-the-store" not in out
    assert "readings-api@1 230 rows, 6 requests (one 429 retried)" in out
    assert "plant-temp@1 40 rows; plant-temp@2 20 new rows" in out


def test_inferred_checks_quarantine_and_diff(executed):
    _, out, _ = executed
    assert "cancer-batch@1 57 rows kept; cancer-batch-quarantine@1 3 rows quarantined" in out
    assert "FAIL range        [mean_radius] 1 of 60 rows fail" in out
    assert "FAIL isin         [diagnosis] 2 of 60 rows fail" in out
    assert "WARN psi" not in out  # 60 rows of the same distribution: within PSI's sampling noise
    assert "rows 569 -> 564 (+5 added, -10 removed, ~10 changed, 549 unchanged; by key id)" in out
    assert "changed columns (rows): mean_radius (10)" in out


def test_the_schedule_ran_once_and_the_widget_showed(executed):
    nb, out, _ = executed
    assert "['recorded'] []" in out
    assert re.search(r"T02:00:00\+00:00 recorded 1", out)
    widget_cell = next(c for c in nb.cells if "bench.widgets.dataset" in c.source)
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widget_cell.outputs
    )
