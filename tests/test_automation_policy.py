"""Pure policy logic of the closed loop: cron, consecutive drift, cooldown/budget, gate, warm start, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.automation import (
    Budget,
    CronSchedule,
    DriftTrigger,
    Gate,
    LoopPolicy,
    PerformanceTrigger,
    ScheduleTrigger,
    admission,
    compute_used,
    drift_trigger_ids,
    performance_dropped,
    search_budget,
    snapshot_rows,
    warm_start_space,
)
from workbench.exceptions import ConfigError


def t(*a):
    return datetime(*a, tzinfo=UTC)


def test_cron_next_after_and_fields():
    assert CronSchedule("*/15 * * * *").next_after(t(2025, 1, 1, 10, 7)) == t(2025, 1, 1, 10, 15)
    assert CronSchedule("0 3 * * *").next_after(t(2025, 1, 1, 3, 0)) == t(2025, 1, 2, 3, 0)
    # weekdays only: Friday 04:00 → Monday 03:00; 7 means Sunday
    assert CronSchedule("0 3 * * 1-5").next_after(t(2025, 1, 3, 4, 0)) == t(2025, 1, 6, 3, 0)
    assert CronSchedule("0 0 * * 7").next_after(t(2025, 1, 1)) == t(2025, 1, 5)
    assert CronSchedule("30 2 1 1,7 *").next_after(t(2025, 2, 1)) == t(2025, 7, 1, 2, 30)
    # day-of-month OR day-of-week when both are restricted (Vixie cron)
    assert CronSchedule("0 0 13 * 5").next_after(t(2025, 1, 1)) == t(2025, 1, 3)


@pytest.mark.parametrize(
    "bad", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "a * * * *", "0 0 30 2 *"]
)
def test_cron_refuses_bad_expressions(bad):
    with pytest.raises(ConfigError):
        CronSchedule(bad).next_after(t(2025, 1, 1))


def test_cron_missed_fires_collapse_into_the_latest():
    c = CronSchedule("0 * * * *")
    assert c.last_fire(t(2025, 1, 1, 0, 30), t(2025, 1, 1, 5, 10)) == t(2025, 1, 1, 5, 0)
    assert c.last_fire(t(2025, 1, 1, 5, 0), t(2025, 1, 1, 5, 59)) is None


@given(st.integers(0, 59), st.integers(0, 23), st.integers(0, 10**6))
def test_cron_next_matches_and_nothing_earlier(minute, hour, offset_min):
    from datetime import timedelta

    c = CronSchedule(f"{minute} {hour} * * *")
    start = t(2025, 1, 1) + timedelta(minutes=offset_min)
    nxt = c.next_after(start)
    assert nxt > start and (nxt.minute, nxt.hour) == (minute, hour)
    assert nxt - start <= timedelta(days=1)


def test_consecutive_drift_windows():
    seq = [
        (1, True),
        (2, True),
        (3, False),
        (4, True),
        (5, True),
        (6, True),
        (7, True),
        (8, True),
        (9, True),
    ]
    assert drift_trigger_ids(seq, 1) == [1, 2, 4, 5, 6, 7, 8, 9]
    assert drift_trigger_ids(seq, 2) == [2, 5, 7, 9]
    assert drift_trigger_ids(seq, 3) == [6, 9]
    assert drift_trigger_ids(seq, 7) == []


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5))
def test_drift_trigger_counts(flags, n):
    ids = drift_trigger_ids(list(enumerate(flags)), n)
    # every fire is a drift window preceded by n-1 drifting windows
    for i in ids:
        assert all(flags[i - k] for k in range(n))
    # the prefix is stable: appending windows never changes earlier fires (idempotent replays)
    assert drift_trigger_ids(list(enumerate(flags[: len(flags) // 2])), n) == [
        i for i in ids if i < len(flags) // 2
    ]


def test_performance_drop_both_modes():
    assert performance_dropped(0.95, 0.85, drop=0.05)
    assert not performance_dropped(0.95, 0.92, drop=0.05)
    assert performance_dropped(1.0, 1.2, drop=0.1, metric="rmse")
    assert not performance_dropped(1.0, 0.5, drop=0.1, metric="rmse")


def test_cooldown_and_budget():
    now = 100_000.0
    assert admission(now, [], cooldown_s=3600, budget=Budget()) == (True, "ok")
    ok, why = admission(
        now, [{"started": now - 60, "compute_s": 1}], cooldown_s=3600, budget=Budget()
    )
    assert not ok and why.startswith("cooldown")
    hist = [{"started": now - 7200 * k, "compute_s": 100.0} for k in (1, 2, 3)]
    assert admission(now, hist, cooldown_s=3600, budget=Budget(max_per_day=4))[0]
    ok, why = admission(now, hist, cooldown_s=3600, budget=Budget(max_per_day=3))
    assert not ok and why.startswith("budget") and "3 retrainings" in why
    ok, why = admission(now, hist, cooldown_s=0, budget=Budget(max_compute_s=300))
    assert not ok and "compute" in why
    # yesterday's runs no longer count
    old = [{"started": now - 90_000, "compute_s": 10_000.0}] * 5
    assert admission(now, old, cooldown_s=3600, budget=Budget(max_per_day=1, max_compute_s=10))[0]


def test_compute_budget_arithmetic():
    now = 1_000_000.0
    hist = [
        {"started": now - 100, "compute_s": 40.0},
        {"started": now - 50_000, "compute_s": 35.5},
        {"started": now - 86_399, "compute_s": None},  # admitted, never ran: no compute
        {"started": now - 86_401, "compute_s": 1_000.0},  # older than 24 h
    ]
    assert compute_used(now, hist) == pytest.approx(75.5)
    assert search_budget(now, hist, Budget()) is None  # no limit at all
    assert search_budget(now, hist, Budget(max_job_s=60)) == 60.0
    assert search_budget(now, hist, Budget(max_compute_s=100)) == pytest.approx(24.5)
    assert search_budget(now, hist, Budget(max_compute_s=100, max_job_s=10)) == 10.0
    assert search_budget(now, hist, Budget(max_compute_s=70, max_job_s=10)) == 0.0  # spent
    ok, why = admission(now, hist, cooldown_s=0, budget=Budget(max_compute_s=75.5))
    assert not ok and why == "budget: 75.5s of retraining compute in 24h (max 75.5s)"
    assert admission(now, hist, cooldown_s=0, budget=Budget(max_compute_s=75.6)) == (True, "ok")
    # a job leaves the rolling window 24 h after it started, and frees its compute
    assert compute_used(now + 36_399, hist) == pytest.approx(75.5)
    assert compute_used(now + 36_401, hist) == pytest.approx(40.0)
    for bad in ({"max_per_day": 0}, {"max_compute_s": -1.0}, {"max_job_s": 0.0}):
        with pytest.raises(ConfigError):
            Budget(**bad)


@given(
    st.lists(st.tuples(st.floats(0, 200_000), st.floats(0, 5_000) | st.none()), max_size=12),
    st.floats(1, 10_000),
    st.floats(1, 10_000) | st.none(),
)
def test_search_budget_never_exceeds_what_is_left(jobs, max_compute, max_job):
    now = 300_000.0
    hist = [{"started": now - age, "compute_s": c} for age, c in jobs]
    left = search_budget(now, hist, Budget(max_compute_s=max_compute, max_job_s=max_job))
    used = compute_used(now, hist)
    assert left is not None and 0.0 <= left <= max(0.0, max_compute - used) + 1e-9
    if max_job is not None:
        assert left <= max_job
    admitted = admission(now, hist, cooldown_s=0, budget=Budget(max_compute_s=max_compute))[0]
    assert admitted == (used < max_compute) and (not admitted or left > 0)


def test_gate_margin_and_guarded_metrics():
    champ = {"f1": 0.90, "recall": 0.92, "precision": 0.88, "rmse": 1.0}
    g = Gate("f1", margin=0.01, guarded=("recall",), tolerance=0.005)
    assert g.judge(champ, {**champ, "f1": 0.915}).passed
    v = g.judge(champ, {**champ, "f1": 0.905})
    assert not v.passed and "margin" in v.reason
    v = g.judge(champ, {**champ, "f1": 0.95, "recall": 0.90})
    assert not v.passed and set(v.regressions) == {"recall"}
    assert g.judge(champ, {**champ, "f1": 0.95, "recall": 0.916}).passed  # within tolerance
    # lower is better for rmse
    assert Gate("rmse", margin=0.1).judge(champ, {**champ, "rmse": 0.85}).passed
    assert not Gate("rmse", margin=0.1).judge(champ, {**champ, "rmse": 0.95}).passed
    # a zero margin needs no loss, a positive margin needs a real gain
    assert Gate("f1").judge(champ, champ).passed
    with pytest.raises(ConfigError):
        Gate("auc").judge(champ, champ)


def test_warm_start_space_is_centred_on_the_champion():
    from ray.tune.search.sample import Float, Integer

    space = warm_start_space(
        {"family": "random_forest", "n_estimators": 60, "max_depth": 4, "C": 2.0, "x": "s"},
        factor=2,
    )
    assert space["family"] == "random_forest" and space["x"] == "s"
    assert isinstance(space["C"], Float) and (space["C"].lower, space["C"].upper) == (1.0, 4.0)
    assert isinstance(space["n_estimators"], Integer)
    assert space["n_estimators"].lower <= 60 < space["n_estimators"].upper
    assert space["max_depth"].lower == 2 and space["max_depth"].upper == 9


def test_snapshot_sliding_and_cumulative():
    assert snapshot_rows(300, 50, mode="cumulative", window=None) == (300, 50)
    assert snapshot_rows(300, 50, mode="sliding", window=None) == (250, 50)
    assert snapshot_rows(300, 500, mode="sliding", window=200) == (0, 200)
    with pytest.raises(ConfigError):
        snapshot_rows(1, 1, mode="rolling", window=None)


def test_policy_round_trips_through_json():
    import json

    p = LoopPolicy(
        "p",
        model="m",
        deployment="d",
        train="tr",
        holdout="ho",
        triggers=[
            DriftTrigger("mon", windows=2),
            ScheduleTrigger("0 3 * * *"),
            PerformanceTrigger("f1", 0.1),
            PerformanceTrigger("accuracy", monitor="d-performance"),
        ],
        budget=Budget(max_per_day=2, max_compute_s=600, max_job_s=120),
        gate=Gate("f1", margin=0.01, guarded=("recall",)),
        approval=True,
        snapshot="sliding",
        window=100,
    )
    assert LoopPolicy.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    with pytest.raises(ConfigError):
        LoopPolicy("p", model="m", deployment="d", train="t", holdout="h", triggers=["drift"])
    with pytest.raises(ConfigError):
        ScheduleTrigger("every day")


def test_job_statuses_are_the_stored_strings_with_one_terminal_set(store):
    from workbench.automation import TERMINAL, JobStatus

    assert [s.value for s in JobStatus] == [
        "SCHEDULED",
        "PENDING_APPROVAL",
        "APPROVED",
        "RUNNING",
        "WAITING_FOR_DATA",
        "PROMOTED",
        "ROLLED_BACK",
        "REJECTED",
        "FAILED",
        "SKIPPED",
        "INTERRUPTED",
    ]
    assert TERMINAL == {"PROMOTED", "ROLLED_BACK", "REJECTED", "FAILED", "SKIPPED", "INTERRUPTED"}
    jid = store.retraining.claim_job("p:cron:x", policy="p", status=JobStatus.SKIPPED, decision="x")
    row = store.retraining.get_job(jid)
    assert type(row["status"]) is str and JobStatus(row["status"]) in TERMINAL and row["ended_at"]


def test_a_stored_gate_with_its_own_direction_list_still_loads():
    """Policies saved with the gate's ``lower_is_better`` list load; direction comes from evaluation."""
    p = LoopPolicy("p", model="m", deployment="d", train="t", holdout="h", gate=Gate("rmse"))
    stored = p.to_dict()
    stored["gate"]["lower_is_better"] = ["rmse", "mae", "log_loss"]
    assert LoopPolicy.from_dict(stored) == p
    assert not LoopPolicy.from_dict(stored).gate.judge({"rmse": 1.0}, {"rmse": 1.1}).passed
