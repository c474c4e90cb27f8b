"""The retraining pipeline validates its snapshot against checks inferred from the champion's
training data: labelled requests with an unknown label or a missing feature end the job
``invalid_data`` with nothing recorded; values beyond the training range only warn. No Ray: the
job runs inline and stops before its search (a failing job, or a search stub that raises)."""

from __future__ import annotations

import pytest

from tests._factories import champion_bench
from workbench.automation import DriftTrigger, LoopPolicy
from workbench.datasets import Checks

TARGET = "diagnosis"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A Workbench with a champion (logistic regression on bc-train, linked to it) and the full data as bc."""
    bench = champion_bench(tmp_path_factory.mktemp("retrain-validation") / "home")
    yield bench
    bench.close()


def _policy_with_requests(bench, name, *, train, rows):
    """A deployment, a drift monitor with one drifting window, labelled requests (``rows``, each a full
    row with its label) and a policy ``name`` retraining the champion on ``train``."""
    store = bench.store
    store.deployments.add(name, model="bc", route_prefix=f"/{name}", status="RUNNING")
    store.monitors.add(
        f"{name}-drift",
        deployment=name,
        kind="drift",
        config={},
        reference_dataset_version_id=bench.parts["train"].id,
    )
    store.deployments.record_requests(
        [
            {
                "request_id": f"{name}-{i}",
                "deployment": name,
                "features": [{k: v for k, v in row.items() if k != TARGET}],
                "prediction": [row[TARGET]],
                "latency_ms": 1.0,
            }
            for i, row in enumerate(rows)
        ]
    )
    store.monitors.record_labels({f"{name}-{i}": [row[TARGET]] for i, row in enumerate(rows)})
    store.monitors.record_window(
        f"{name}-drift",
        first_request_log_id=0,
        last_request_log_id=0,
        n=10,
        is_drift=True,
        score=0.001,
        threshold=0.05,
        detail={},
    )
    bench.automation.add_policy(
        LoopPolicy(
            name=name,
            model="bc",
            deployment=name,
            train=train,
            holdout="bc-holdout",
            triggers=[DriftTrigger(f"{name}-drift", windows=1)],
            cooldown_s=0,
            canary=False,
            num_samples=1,
            run_as="inline",
            # what is tested is the snapshot's validation: the requests are the champion's own
            # distribution, which triage would rightly call harmless
            triage=False,
            since_change=False,
        )
    )


def _run(bench, name):
    out = bench.automation.tick(run=True, check=False)
    (job,) = bench.automation.jobs(name)
    assert job["id"] in out["created"]
    steps = {s["step"]: s for s in bench.automation.steps(job["id"])}
    return bench.automation.job(job["id"]), steps


def test_bad_labelled_requests_end_the_job_invalid_data_against_the_champions_training_data(bench):
    holdout = bench.datasets.load(bench.parts["holdout"]).head(30).to_dicts()
    feature = next(c for c in holdout[0] if c != TARGET)
    bad = [{**holdout[0], TARGET: "unsure"}, {**holdout[1], feature: None}]
    # the policy trains on the full data, but the champion was trained on bc-train: its checks rule
    _policy_with_requests(bench, "bad", train="bc", rows=holdout[2:] + bad)
    versions = len(bench.datasets.list())
    job, steps = _run(bench, "bad")
    assert (job["status"], job["decision"]) == ("FAILED", "invalid_data")
    v = steps["validation"]
    assert v["status"] == "failed" and "search" not in steps
    failed = {(f["check"], f["column"]) for f in v["detail"]["failed"]}
    assert failed == {("isin", TARGET), ("nullable", feature)}
    assert (
        v["detail"]["reference_dataset_version_id"]
        == bench.parts["train"].id
        != bench.datasets.get("bc").id
    )
    assert len(bench.datasets.list()) == versions  # nothing recorded
    # the checks the job applied are stored, and load back
    checks = Checks.from_dict(
        __import__("yaml").safe_load(bench.artifacts.get_bytes(v["detail"]["checks_artifact"]))
    )
    assert checks.columns[TARGET].isin == ["benign", "malignant"] and checks.severity == {
        "range": "warn"
    }


def test_values_beyond_the_training_range_only_warn(bench, monkeypatch):
    rows = bench.datasets.load(bench.parts["holdout"]).head(30).to_dicts()
    train = bench.datasets.load(bench.parts["train"])
    big = float(train["mean_radius"].max()) * 3
    rows[0]["mean_radius"] = big
    _policy_with_requests(bench, "wide", train="bc-train", rows=rows)

    def search(*args, **kwargs):  # the search (Ray Tune) is not what this test is about
        raise RuntimeError("stopped after validation")

    monkeypatch.setattr(bench.experiments, "search", search)
    job, steps = _run(bench, "wide")
    assert "stopped after validation" in job["detail"]["error"]
    v = steps["validation"]
    assert v["status"] == "passed" and "range[mean_radius]" in v["detail"]["summary"]
    assert ("range", "mean_radius") in {(w["check"], w["column"]) for w in v["detail"]["warnings"]}
    snap = bench.datasets.by_id(steps["snapshot"]["detail"]["dataset_version_id"])
    r = next(r for r in snap.validation if r["check"] == "range" and r["column"] == "mean_radius")
    assert (r["passed"], r["severity"], r["failing"]) == (False, "warn", 1)
    assert r["examples"][0]["mean_radius"] == pytest.approx(big)
    assert snap.n_rows == train.height + 30 and snap.parent_id == bench.parts["train"].id
