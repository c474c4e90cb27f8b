"""A retraining job holds out its own evidence (issue 16): with ``LoopPolicy(holdout=None)`` a seeded
share of the deployment's labelled requests is kept out of training, recorded as a dataset version
and used as the gate's holdout; with too few of them the job waits ``WAITING_FOR_DATA`` and runs
again when more labels arrive, or fails ``not_enough_data`` after ``data_wait_s``."""

from __future__ import annotations

import pytest

from tests._factories import champion_bench, drift_window, log_requests
from workbench.automation import DriftTrigger, Gate, LoopPolicy
from workbench.automation._policy import holdout_rows

TARGET = "diagnosis"


@pytest.fixture
def bench(home):
    bench = champion_bench(home)
    yield bench
    bench.close()


def _policy(**kw):
    return LoopPolicy(
        **{
            "name": "bc",
            "model": "bc",
            "deployment": "bc",
            "train": "bc-train",
            "triggers": [DriftTrigger("bc-drift", windows=1)],
            "cooldown_s": 0,
            "canary": False,
            "num_samples": 1,
            "gate": Gate("f1", margin=-1.0),
            "holdout_min_rows": 30,
            # these requests are the champion's own distribution under a synthetic drift window:
            # triage would rightly call the "shift" harmless, and the holdout is what is tested
            "triage": False,
            "since_change": False,
            **kw,
        }
    )


def test_the_split_is_seeded_and_the_policy_checks_its_options():
    assert holdout_rows(100, fraction=0.3, seed=4) == holdout_rows(100, fraction=0.3, seed=4)
    assert holdout_rows(100, fraction=0.3, seed=4) != holdout_rows(100, fraction=0.3, seed=5)
    assert len(holdout_rows(99, fraction=0.3, seed=0)) == 29
    for bad in (0, 1, 1.5):
        with pytest.raises(Exception, match="holdout_fraction"):
            _policy(holdout_fraction=bad)
    with pytest.raises(Exception, match="holdout_min_rows"):
        _policy(holdout_min_rows=0)
    assert LoopPolicy("p", "m", "d", "t").holdout is None  # the default: its own holdout
    assert (
        _policy(
            holdout_min_rows=None, gate=Gate("f1", test="paired_bootstrap", min_samples=80)
        ).holdout_rows_needed()
        == 80
    )
    assert _policy(holdout_min_rows=None).holdout_rows_needed() == 30
    restored = LoopPolicy.from_dict(_policy(holdout_fraction=0.25).to_dict())
    assert restored.holdout_fraction == 0.25 and restored.holdout is None


def test_too_few_labels_wait_then_fail_after_data_wait_s(bench):
    bench.automation.add_policy(_policy(data_wait_s=0.0))
    log_requests(bench, bench.rows[:50], start=0)  # 15 held out, 30 needed
    drift_window(bench)
    datasets_before = len(bench.datasets.list())
    bench.automation.tick()
    (job,) = bench.automation.jobs("bc")
    assert job["status"] == "WAITING_FOR_DATA" and job["decision"] == "waiting_for_data"
    (step,) = bench.automation.steps(job["id"])
    assert step["step"] == "holdout" and step["status"] == "waiting"
    assert (step["detail"]["have"], step["detail"]["need"]) == (15, 30)
    assert "of 50 labelled requests" in step["detail"]["summary"]
    assert len(bench.datasets.list()) == datasets_before  # no snapshot, no holdout, no search
    assert job["experiment_id"] is None
    # the next tick runs it again; past data_wait_s it ends, saying what to do
    bench.automation.tick()
    (job,) = bench.automation.jobs("bc")
    assert job["status"] == "FAILED" and job["decision"] == "not_enough_data", job
    last = bench.automation.steps(job["id"])[-1]
    assert last["step"] == "holdout" and last["status"] == "failed"
    assert "label more requests" in last["detail"]["summary"]
    assert len(bench.datasets.list()) == datasets_before


@pytest.mark.ray
def test_a_waiting_job_runs_when_labels_arrive_and_is_judged_on_rows_it_never_trained_on(
    bench, ray_cluster
):
    bench.automation.add_policy(_policy())
    log_requests(bench, bench.rows[:50], start=0)
    drift_window(bench)
    bench.automation.tick()
    assert bench.automation.jobs("bc")[0]["status"] == "WAITING_FOR_DATA"
    log_requests(bench, bench.rows[50:150], start=50)  # 150 labelled: 45 held out
    bench.automation.tick()
    (job,) = bench.automation.jobs("bc")
    assert job["status"] == "PROMOTED", job
    steps = bench.automation.steps(job["id"])
    assert [s["step"] for s in steps] == [
        "holdout",  # the first attempt's wait
        "holdout",
        "snapshot",
        "validation",
        "search",
        "evaluation",
        "gate",
        "registration",
        "promotion",
    ]
    held_id = steps[1]["detail"]["dataset_version_id"]
    held = bench.datasets.by_id(held_id)
    assert held.name == "bc-holdout" and held.n_rows == 45
    assert steps[5]["detail"]["holdout_id"] == held_id and steps[5]["detail"]["n"] == 45
    # the held-out rows are the seeded draw, and none of them is in the training snapshot
    key = [c for c in bench.rows[0] if c != TARGET]
    held_rows = {tuple(r[c] for c in key) for r in bench.datasets.load(held).to_dicts()}
    snap = bench.datasets.load(bench.datasets.by_id(job["new_dataset_version_id"]))
    trained = {tuple(r[c] for c in key) for r in snap.to_dicts()}
    assert len(held_rows) == 45 and not held_rows & trained
    assert snap.height == bench.train_rows + 150 - 45
    # the registered challenger's evaluation names that holdout in the lineage
    assert f"dataset bc-holdout v{held.version}" in bench.lineage_text("bc", "champion")


def _windows(bench, flags_and_firsts):
    """Windows of bc-drift of 40 requests: (is_drift, first request-log id) each; their ids."""
    return [drift_window(bench, first=first, n=40, drift=flag) for flag, first in flags_and_firsts]


def test_since_the_change_a_job_waits_for_min_rows_of_post_change_labels(bench):
    bench.automation.add_policy(
        _policy(since_change=True, min_rows=100, triggers=[DriftTrigger("bc-drift", windows=2)])
    )
    log_requests(bench, bench.rows[:120], start=0)  # request-log ids 1..120
    ids = _windows(bench, [(False, 1), (True, 41), (True, 81)])
    bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("bc")
    assert job["status"] == "WAITING_FOR_DATA", job
    (step,) = bench.automation.steps(job["id"])
    assert step["step"] == "data" and (step["detail"]["have"], step["detail"]["need"]) == (
        80,
        100,
    )
    assert "since the change point (request #41" in step["detail"]["summary"]
    assert job["detail"]["change_point"] == {
        "request_log_id": 41,
        "monitor": "bc-drift",
        "window_id": ids[2],
        "rows_after": 80,
    }


@pytest.mark.ray
def test_since_the_change_a_job_trains_on_post_change_rows_and_a_share_of_older_ones(
    bench, ray_cluster
):
    bench.automation.add_policy(
        _policy(
            since_change=True,
            pre_change_fraction=0.25,
            holdout_min_rows=20,
            triggers=[DriftTrigger("bc-drift", windows=2)],
        )
    )
    log_requests(bench, bench.rows[:120], start=0)
    _windows(bench, [(False, 1), (True, 41), (True, 81)])
    bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("bc")
    assert job["status"] == "PROMOTED", job
    key = [c for c in bench.rows[0] if c != TARGET]

    def keys(rows):
        return {tuple(r[c] for c in key) for r in rows}

    snap = bench.datasets.load(bench.datasets.by_id(job["new_dataset_version_id"])).to_dicts()
    held = bench.datasets.load(bench.datasets.get("bc-holdout")).to_dicts()
    # 80 labelled since request #41: 24 held out, 56 trained on, plus int(0.25 * 80) = 20 of the
    # newest pre-change rows (requests 21..40); nothing older, nothing held out
    assert len(held) == 24 and len(snap) == 56 + 20
    assert keys(snap) == (keys(bench.rows[20:120]) - keys(held))
    snapshot_step = next(s for s in bench.automation.steps(job["id"]) if s["step"] == "snapshot")
    assert "56 labelled requests + 20 pre-change rows" in snapshot_step["detail"]["summary"]


def test_rows_the_champion_trained_on_are_never_its_evidence(bench):
    """Labelled requests that repeat the champion's training rows (an earlier job trained it on
    post-change requests, or a client replays them) stay out of the job's holdout: 40 of the
    champion's own rows and 60 it never saw make a holdout of 0.3 x 60 = 18, not 0.3 x 100."""
    seen = bench.datasets.load(bench.parts["train"]).to_dicts()[:40]
    log_requests(bench, seen + bench.rows[:60], start=0)
    bench.automation.add_policy(_policy(holdout_min_rows=1000))
    drift_window(bench)
    bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("bc")
    (step,) = bench.automation.steps(job["id"])
    assert (step["step"], step["status"]) == ("holdout", "waiting")
    assert step["detail"]["have"] == 18, step
    assert (
        "of the 60 of 100 labelled requests of bc the champion was not trained on"
        in (step["detail"]["summary"])
    )
