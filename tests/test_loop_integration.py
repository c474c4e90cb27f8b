"""The whole loop as ``make demo`` runs it (``run_demo``) on the session's Ray and Serve, over HTTP,
with alibi-detect and a SQLite file; asserts on what it prints and on the lineage it leaves.

The quickstart notebook runs the same loop through the same public API in a kernel
(tests/test_notebooks.py); the two are separate products, so each runs once.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_whole_loop_leaves_a_complete_lineage(tmp_path, ray_cluster, serve_apps):
    from workbench.api import Workbench
    from workbench.demo import MODEL, run_demo

    lines: list[str] = []
    summary = run_demo(
        str(tmp_path / "home"), num_samples=2, serve_port=serve_apps.port, say=lines.append
    )
    text = "\n".join(lines)
    assert ray_cluster.started_here  # the demo joined the session's Ray and left it running
    import ray

    assert ray.is_initialized()

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
        assert v1.experiment_id == exps[0]["id"] and set(v1.metrics) == {
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
        assert f"retrain job #{job['id']}:" in text and "gate" in text
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
            assert "canary" in text and "PROMOTED" in text
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


def v1_rows(bench) -> int:
    return bench.datasets.get("breast-cancer-train", 1).n_rows
