"""Triage before retraining (issue 16 item 1, ``LoopPolicy(triage=True)``): a data-drift job first
estimates the shift's impact on the champion and retrains only when the data shows a drop. Four
synthetic streams with known answers, built from the breast-cancer rows the champion never saw:
a covariate shift that leaves accuracy unchanged and a concept drift (labels flipped), each with
labels, and the same two without labels (confidence-based estimation): a selection shift the model
is sure about, and rows between the classes where it cannot be. No Ray: a harmless shift ends the
job before its snapshot, a harmful one goes on until it waits for held-out rows."""

from __future__ import annotations

import pytest

from tests._factories import (
    champion_bench,
    drift_window,
    flipped_labels,
    log_requests,
    shifted_by_selection,
    triage_policy,
)
from workbench.automation import LoopPolicy

TARGET = "diagnosis"


@pytest.fixture
def bench(home):
    bench = champion_bench(home)
    bench.automation.add_policy(triage_policy())
    yield bench
    bench.close()


def _serve(bench, rows, *, labels=True):
    """Log ``rows`` as requests (ids from 1), their labels if asked, and one drifting window."""
    log_requests(bench, rows, labels=labels)
    drift_window(bench, first=1, n=len(rows))
    bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("bc")
    step = bench.automation.steps(job["id"])[0]
    return job, step


def _between(bench):
    """Rows halfway between a row of one class and a row of the other: the model cannot be sure."""
    classes = sorted({r[TARGET] for r in bench.rows})
    a = [r for r in bench.rows if r[TARGET] == classes[0]]
    b = [r for r in bench.rows if r[TARGET] == classes[1]]
    out = []
    for x, y in zip(a, b, strict=False):
        out.append({k: (x[k] + y[k]) / 2 if k != TARGET else x[k] for k in x})
    return out


def test_a_harmless_shift_with_labels_ends_the_job_without_retraining(bench):
    job, step = _serve(bench, shifted_by_selection(bench.rows))
    assert job["status"] == "SKIPPED" and job["decision"] == "harmless_shift", job
    d = step["detail"]
    assert step["step"] == "triage" and step["status"] == "harmless"
    assert d["method"] == "labels" and d["n"] == 114 and d["baseline"] == round(bench.accuracy, 4)
    assert d["estimate"] >= d["baseline"] - 0.05 and d["harmful"] is False
    assert job["new_dataset_version_id"] is None and job["experiment_id"] is None
    assert len(bench.automation.steps(job["id"])) == 1


def test_a_concept_drift_with_labels_goes_on_to_retrain(bench):
    job, step = _serve(bench, flipped_labels(bench.rows[:100]))
    assert step["step"] == "triage" and step["status"] == "harmful"
    d = step["detail"]
    assert (
        d["method"] == "labels" and d["estimate"] < 0.2 and d["interval"][1] < d["baseline"] - 0.05
    )
    assert job["status"] == "WAITING_FOR_DATA"  # past the triage, waiting for held-out rows
    assert [s["step"] for s in bench.automation.steps(job["id"])] == ["triage", "holdout"]
    bench.automation.tick(check=False)  # still waiting: triaged once, not on every attempt
    assert [s["step"] for s in bench.automation.steps(job["id"])] == [
        "triage",
        "holdout",
        "holdout",
    ]


def test_without_labels_a_shift_the_model_is_sure_about_is_harmless(bench):
    job, step = _serve(bench, shifted_by_selection(bench.rows), labels=False)
    d = step["detail"]
    assert d["method"] == "cbpe" and d["labels"] == 0 and d["n"] == 114
    assert job["status"] == "SKIPPED" and d["harmful"] is False, d
    assert 0.9 < d["baseline"] <= 1.0 and d["estimate"] >= d["baseline"] - 0.05


def test_without_labels_rows_between_the_classes_are_harmful(bench):
    job, step = _serve(bench, _between(bench), labels=False)
    d = step["detail"]
    assert d["method"] == "cbpe" and d["harmful"] is True, d
    assert d["estimate"] < d["baseline"] - 0.05
    assert job["status"] == "WAITING_FOR_DATA"


def test_a_harmless_shift_can_become_the_monitors_new_reference(bench):
    from dataclasses import replace

    from workbench.automation import LoopPolicy

    train = bench.datasets.get("bc-train")
    bench.monitoring.drift_monitor("bc", reference=train, name="bc-drift", window=50)
    row = bench.automation.policies()[0]
    policy = replace(LoopPolicy.from_dict(row["config"]), triage_moves_reference=True)
    bench.automation.add_policy(policy)
    shifted = shifted_by_selection(bench.rows)
    job, step = _serve(bench, shifted)
    assert job["status"] == "SKIPPED" and step["status"] == "harmless"
    moved = bench.automation.steps(job["id"])[1]
    assert moved["step"] == "reference" and moved["detail"]["from"] == train.id
    record = bench.store.monitors.get("bc-drift")
    reference = bench.datasets.by_id(record["reference_dataset_version_id"])
    assert reference.name == "bc-drift-reference" and reference.n_rows == len(shifted)
    assert any(
        e["action"] == "monitor.refit" and e["entity_id"] == record["id"]
        for e in bench.store.audit_log()
    ), "the move is audited"
    # the monitor as the library loads it compares with the new reference from now on
    monitor = bench.monitoring.get("bc-drift")
    assert monitor.reference.id == reference.id


def test_a_drop_the_labels_suggest_but_do_not_show_waits_for_more_labels(bench):
    """With triage_max_drop=0.01 (floor 0.981 under the champion's 0.991): 1 of 30 labels
    wrong is 0.967, under the floor, but its interval reaches over the baseline, so 30 labels
    do not show a drop. The job waits for the labels that would, instead of dismissing the
    shift; with them (every 30th of 228 wrong) the next tick finds it harmful."""
    from dataclasses import replace

    row = bench.automation.policies()[0]
    policy = replace(LoopPolicy.from_dict(row["config"]), triage_max_drop=0.01)
    bench.automation.add_policy(policy)
    champion = bench.registry.load("bc", 1)
    predicted = champion.predict_records(
        [{k: v for k, v in r.items() if k != TARGET} for r in bench.rows]
    )
    right = [r for r, y in zip(bench.rows, predicted, strict=True) if y == r[TARGET]]
    flipped = flipped_labels(right)
    rows = [flipped[i] if i % 30 == 0 else r for i, r in enumerate(right)]
    job, step = _serve(bench, rows[:30])
    assert job["status"] == "WAITING_FOR_DATA" and job["decision"] == "waiting_for_data", job
    assert (step["step"], step["status"]) == ("triage", "waiting")
    have, need = step["detail"]["have"], step["detail"]["need"]
    assert have == 30 and len(rows) > need > 30, step
    assert "interval reaches the baseline" in step["detail"]["summary"]
    assert "triage" not in job["detail"] and job["detail"]["data_attempts"] == 1
    log_requests(bench, rows[30:], start=30)
    bench.automation.tick(check=False)
    job = bench.automation.job(job["id"])
    steps = bench.automation.steps(job["id"])
    assert [(s["step"], s["status"]) for s in steps][:2] == [
        ("triage", "waiting"),
        ("triage", "harmful"),
    ]
    d = steps[1]["detail"]
    assert d["method"] == "labels" and d["labels"] == len(rows)
    assert d["estimate"] < d["baseline"] - 0.01 and d["interval"][1] < d["baseline"]
    assert job["detail"]["triage"]["harmful"] is True and job["status"] == "WAITING_FOR_DATA"
    assert steps[2]["step"] == "holdout"  # past the triage: waiting for the gate's rows
