"""The whole loop once: ``make demo`` (``run_demo``), which runs ``notebooks/quickstart.ipynb`` top to
bottom in a real kernel, on the session's Ray and Serve, over HTTP, with alibi-detect and a SQLite
file. Asserts on what it prints, on the executed notebook (its outputs and widget state) and on the
lineage it leaves. The README quickstart runs in tests/test_notebooks.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._notebooks import reachable_widget_states

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_is_the_packaged_quickstart_notebook():
    from workbench.demo import NOTEBOOK

    assert NOTEBOOK.resolve() == (ROOT / "notebooks" / "quickstart.ipynb").resolve()
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert any("parameters" in c["metadata"].get("tags", []) for c in cells)


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    from workbench.demo import DemoError, run_demo

    with pytest.raises(DemoError, match="not found: reinstall workbench"):
        run_demo(tmp_path / "home", notebook=tmp_path / "nope.ipynb", say=lambda _: None)


def test_a_failing_cell_stops_the_demo_and_keeps_the_traceback(tmp_path, monkeypatch):
    import nbformat

    from workbench.demo import DemoError, run_demo

    cell = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(
        cells=[
            cell("home = None\nnum_samples = 1", metadata={"tags": ["parameters"]}),
            cell("print('before', num_samples)"),
            cell("raise ValueError('no such column')"),
            cell("print('never')"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    with pytest.raises(
        DemoError, match=r"stopped in cell 3 of broken.ipynb: ValueError: no such column"
    ):
        run_demo(tmp_path / "home", num_samples=3, notebook=path, say=lines.append)
    assert "  before 3" in lines and not any("never" in line for line in lines)
    kept = nbformat.read(tmp_path / "home" / "quickstart.ipynb", as_version=4)
    assert kept.cells[3].outputs[0]["ename"] == "ValueError"  # the traceback is in the copy


def test_whole_loop_leaves_a_complete_lineage(tmp_path, monkeypatch, ray_cluster, serve_apps):
    import nbformat

    from workbench.api import Workbench
    from workbench.demo import MODEL, run_demo

    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)  # the kernel joins the session's Ray
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("WORKBENCH_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    summary = run_demo(
        str(tmp_path / "home"), num_samples=2, serve_port=serve_apps.port, say=lines.append
    )
    text = "\n".join(lines)
    assert ray_cluster.started_here  # the kernel joined the session's Ray and left it running
    assert not (tmp_path / ".workbench").exists()  # the parameters cell moved the home

    # the executed notebook: no error, the live progress widget reached the end of the search
    nb = nbformat.read(summary["notebook"], as_version=4)
    assert Path(summary["notebook"]) == tmp_path / "home" / "quickstart.ipynb"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    assert "injected-parameters" in nb.cells[2].metadata["tags"]
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) >= 5, "the search and the five widget cells should each show a widget"
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    progress = [
        m["state"]
        for m in reachable_widget_states(states, views)
        if "done" in m.get("state", {}) and "best_metric" in m.get("state", {})
    ]
    assert any(
        p["done"] == p["total"] == 4 and p["status"] == "TERMINATED" and p["best_metric"] == "f1"
        for p in progress
    ), progress
    # what the terminal showed: each section's heading and the retrain job's steps
    assert "1. Ingest and validate" in text and "8. Lineage" in text
    assert all(f"{step:<12} " in text for step in ("snapshot", "validation", "search", "gate"))
    assert "got a 4xx" in text and "[a widget: open" in text

    with Workbench(tmp_path / "home") as bench:
        store = bench.store
        # 1. dataset versions: original, three splits, and the retraining version derived from train v1
        names = sorted((d.name, d.version) for d in bench.datasets.list())
        assert ("breast-cancer", 1) in names and ("breast-cancer-holdout", 1) in names
        assert "refused" in text and not any(n.startswith("breast-cancer-bad") for n, _ in names)
        # 3. both searches recorded every trial
        exps = bench.experiments.list()
        assert [e["n_trials"] for e in exps] == [4, 2] and all(
            e["status"] == "TERMINATED" for e in exps
        )
        # 4. champion v1 was registered from experiment 1
        v1 = bench.registry.get(MODEL, 1)
        assert v1.experiment_id == exps[0]["id"] and set(v1.metrics) >= {
            "accuracy",
            "precision",
            "recall",
            "f1",
        }
        # 5. every answered request is logged with its version and latency
        logs = store._db.rows("SELECT status_code, model_version_id, latency_ms FROM request_logs")
        ok = [r for r in logs if r["status_code"] == 200]
        assert len(ok) >= 200 and all(r["model_version_id"] and r["latency_ms"] > 0 for r in ok)
        assert any(
            r["status_code"] == 422 for r in logs
        )  # the bad request was refused and recorded as such
        # 6. a drift event after the shift, none before it
        results = store.monitors.list_windows()
        assert results[0]["is_drift"] == 0 and any(r["is_drift"] for r in results)
        # 7. the policy engine made one job for the drift event and ran it to a decision
        (job,) = store.retraining.list_jobs()
        drift = next(r for r in results if r["is_drift"])
        assert job["drift_result_id"] == drift["id"] and job["policy"] == MODEL
        assert job["event_key"] == f"{MODEL}:drift:{drift['id']}"
        assert job["status"] in {"PROMOTED", "ROLLED_BACK", "REJECTED"} and job["ended_at"]
        assert job["detail"]["gate"]["metric"] == "f1" and job["compute_s"] > 0
        assert summary["outcome"]["status"] == job["status"]
        steps = [s["step"] for s in bench.automation.steps(job["id"])]
        assert steps[:5] == ["snapshot", "validation", "search", "evaluation", "gate"]
        retrain = store.experiments.get(job["experiment_id"])
        assert retrain["search_alg"] == "BasicVariantGenerator"  # warm-started from v1
        v2 = bench.registry.get(MODEL, 2)
        assert v2.dataset_version_id == job["new_dataset_version_id"]
        new_train = bench.datasets.by_id(job["new_dataset_version_id"])
        assert (
            new_train.name == "breast-cancer-train"
            and new_train.version == 2
            and new_train.n_rows > v1_rows(bench)
        )
        history = store.deployments.list_traffic(MODEL)
        if job["status"] == "PROMOTED":
            assert bench.registry.get(MODEL, "champion").version == 2
            assert [h["weights"] for h in history] == [
                {"1": 1.0},
                {"1": 0.9, "2": 0.1},
                {"1": 0.5, "2": 0.5},
                {"1": 0.0, "2": 1.0},
            ]
            assert all(h["actor"] == "automation" for h in history[1:])
            assert [c["decision"] for c in job["detail"]["canary"]] == [
                "advanced",
                "advanced",
                "completed",
            ]
            assert "canary" in text and "'PROMOTED'" in text
        elif job["status"] == "ROLLED_BACK":
            assert history[-1]["weights"]["1"] == 1.0
        # 8. the chain from the champion reaches back to the first dataset and forward through the drift event
        chain = bench.lineage(MODEL, "champion")
        relations = {(e["src_type"], e["relation"], e["dst_type"]) for e in chain["edges"]}
        expected = {
            ("dataset_version", "derived", "dataset_version"),
            ("dataset_version", "used_by", "experiment"),
            ("experiment", "produced", "model_version"),
            ("model_version", "deployed_to", "deployment"),
            ("monitor", "observed", "drift_result"),
            ("drift_result", "triggered", "retrain_job"),
            ("retrain_job", "produced", "dataset_version"),
            ("retrain_job", "ran", "experiment"),
            ("retrain_job", "produced", "model_version"),
            ("retrain_job", "step", "retrain_step"),
        }
        assert expected <= relations, expected - relations
        assert (
            "traffic history of deployment breast-cancer" in text
            and str(bench.settings.db_path) in text
        )
        # which version answered a given request, at what time: a query
        rid = store._db.row(
            "SELECT request_id FROM request_logs WHERE status_code = 200 ORDER BY id DESC LIMIT 1"
        )
        row = store._db.row(
            "SELECT v.version, r.at FROM request_logs r JOIN model_versions v ON v.id = r.model_version_id WHERE r.request_id = ?",
            [rid["request_id"]],
        )
        assert row["version"] in (1, 2) and row["at"]
    assert summary["trials"] == 4 and summary["elapsed_s"] < 300
    assert summary["champion"] == (2 if job["status"] == "PROMOTED" else 1)


def v1_rows(bench) -> int:
    return bench.datasets.get("breast-cancer-train", 1).n_rows
