"""notebooks/features.ipynb executed top to bottom in a real kernel, its printed outcomes asserted.

The kernel joins the session's Ray (``RAY_ADDRESS``) and Serve (``WORKBENCH_SERVE_PORT``), as in
tests/test_notebooks.py, so it starts neither; its state lands in ``./.workbench`` of a folder of
its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._notebooks import error_outputs, execute_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "features.ipynb"

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def executed(tmp_path_factory, ray_cluster, serve_apps):
    folder = tmp_path_factory.mktemp("features-notebook")
    env = {
        "WORKBENCH_SERVE_PORT": serve_apps.port,
        "RAY_ADDRESS": ray_cluster.address,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    nb, text = execute_notebook(NOTEBOOK, folder, env)
    return nb, text, folder


def test_it_runs_without_errors(executed):
    nb, out, folder = executed
    errors = error_outputs(nb)
    assert not errors, errors
    assert (folder / ".workbench" / "lineage.db").exists()


def test_the_spec_and_its_generated_columns(executed):
    _, out, _ = executed
    assert (
        "kinds: {'amount': 'number', 'city': 'string', 'note': 'string', 'when': 'datetime'}" in out
    )
    assert "text: ('note',) missing flags: True outliers: iqr" in out
    m = re.search(r"generated (\d+) features: \[(.*?)\] \.\.\. \[(.*?)\]", out)
    assert m, out
    # amount, its missing and clipped flags, 12 city columns, 11 datetime parts, 16 hashed terms
    assert int(m[1]) == 3 + 12 + 11 + 16
    assert m[2].startswith("'amount', 'amount_missing', 'amount_clipped'")
    assert m[3] == "'note_tfidf_14', 'note_tfidf_15'"


def test_the_search_chose_among_specs_and_reproduces(executed):
    _, out, _ = executed
    assert "choices: ['default', 'baseline', 'robust', 'selected']" in out
    trials = re.findall(r"trial features=(\w+)\s+cv roc_auc=([0-9.]+)", out)
    assert sorted(name for name, _ in trials) == ["baseline", "default", "robust"]
    scores = dict(trials)
    best = re.search(r"best features: (\w+)", out)[1]
    assert float(scores[best]) == max(float(v) for v in scores.values())
    # the note's keyword only reaches the model as text: the hashed TF-IDF specs beat one-hot
    assert float(scores["default"]) < min(float(scores["baseline"]), float(scores["robust"]))
    assert "reproduces: True" in out


def test_the_registered_bundle_serves_a_datetime_record(executed):
    _, out, _ = executed
    m = re.search(
        r"registered orders@1: features=(\w+), (\d+) generated columns; same as the bundle: True",
        out,
    )
    assert m, out
    assert m[1] == re.search(r"best features: (\w+)", out)[1]
    assert float(re.search(r"holdout roc_auc: ([0-9.]+)", out)[1]) > 0.7
    served = re.search(r"served: \['(yes|no)'\] in-process: \['(yes|no)'\] equal: True", out)
    assert served and served[1] == served[2]
