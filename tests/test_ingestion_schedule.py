"""Scheduled ingestion: a source re-read on a cron timetable (UTC), one run per fire time claimed in
the store. Pure cron and claim logic is driven with ``now=`` (no Ray): recorded, unchanged, failed
then retried at the next fire time, missed fires collapsing into one run, secrets masked in a
failure, no double run from two processes' stages on one home; then the detached scheduler actor
records a version on its own."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from workbench.datasets import Checks, Custom, IngestionSchedule, Source
from workbench.datasets._sources import register_source
from workbench.exceptions import ConfigError, NotFoundError, SourceError


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 27, hh, mm, ss, tzinfo=UTC)


def write_csv(path, rows: int) -> None:
    path.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(rows)))


@register_source
class _Unreachable(Source):
    """A database that refuses every read; its error names the URI with its password in it."""

    kind = "test-unreachable"

    def __init__(self, uri: str):
        self.uri = uri

    def fetch(self, state):
        raise SourceError(f"could not connect to {self.uri}: connection refused")

    def describe(self) -> str:
        return "unreachable test database"

    def to_spec(self):
        return {"kind": self.kind, "uri": self.uri}


@pytest.fixture
def stages(tmp_path):
    from workbench.stages import Stages

    st = Stages.open(tmp_path / "home")
    yield st
    st.close()


def test_a_schedule_stores_the_source_spec_and_refuses_what_cannot_be_re_read(stages, tmp_path):
    import polars as pl

    csv = tmp_path / "sales.csv"
    ds = stages.datasets
    sched = ds.schedule(str(csv), name="sales", cron="*/10 * * * *", target="y", since=at(10, 0))
    assert isinstance(sched, IngestionSchedule)
    assert sched.source == {"kind": "files", "path": str(csv)}
    assert (sched.cron, sched.target, sched.enabled, sched.checks) == (
        "*/10 * * * *",
        "y",
        True,
        None,
    )
    assert sched.next_fire == at(10, 10)
    assert [s.name for s in ds.schedules()] == ["sales"]
    with pytest.raises(ConfigError, match="cannot be re-read"):
        ds.schedule(pl.DataFrame({"x": [1]}), name="frame", cron="* * * * *")
    with pytest.raises(ConfigError, match="5 fields"):
        ds.schedule(str(csv), name="bad", cron="*/10 * * *")
    with pytest.raises(ConfigError, match="minute"):
        ds.schedule(str(csv), name="bad", cron="61 * * * *")
    with pytest.raises(ConfigError, match="never fires"):  # 31 February
        ds.schedule(str(csv), name="bad", cron="0 0 31 2 *")
    with pytest.raises(ConfigError, match="time zone"):
        ds.schedule(str(csv), name="bad", cron="* * * * *", since=datetime(2026, 1, 1))
    checks = Checks(min_rows=3, target="y")
    stored = ds.schedule(str(csv), name="checked", cron="* * * * *", checks=checks)
    assert stored.checks == checks.to_dict()
    assert Checks.from_dict(stored.checks).to_dict() == checks.to_dict()
    with pytest.raises(ConfigError, match="custom callables"):  # a callable cannot be stored
        ds.schedule(
            str(csv),
            name="custom",
            cron="* * * * *",
            checks=Checks(custom=[Custom(lambda df: True, name="ok")]),
        )
    assert [s.name for s in ds.schedules()] == sorted(s.name for s in ds.schedules())
    assert {s.name for s in ds.schedules()} == {"sales", "checked"}
    with pytest.raises(NotFoundError, match="bench.datasets.schedule"):
        ds.unschedule("nothing")


def test_recorded_unchanged_and_a_failure_retried_at_the_next_fire_time(stages, tmp_path):
    csv = tmp_path / "sales.csv"  # absent at the first fire time
    ds = stages.datasets
    ds.schedule(str(csv), name="sales", cron="*/10 * * * *", target="y", since=at(10, 0, 30))
    assert ds.run_due_schedules(now=at(10, 5)) == []  # no fire time yet
    (failed,) = ds.run_due_schedules(now=at(10, 10, 5))
    assert failed["status"] == "failed" and failed["fire_time"] == at(10, 10).isoformat()
    assert "does not exist" in failed["error"] and str(csv) in failed["error"]
    assert failed["dataset_version_id"] is None and failed["ended"] >= failed["started"]
    with pytest.raises(NotFoundError):
        ds.get("sales")  # nothing recorded
    # not retried on every tick: the next try is the next fire time, 10:20
    assert ds.run_due_schedules(now=at(10, 15)) == []
    assert ds.run_due_schedules(now=at(10, 19, 59)) == []
    write_csv(csv, 5)
    (rec,) = ds.run_due_schedules(now=at(10, 20, 1))
    v1 = ds.get("sales")
    assert (rec["status"], rec["dataset_version_id"], rec["version"]) == ("recorded", v1.id, 1)
    assert v1.n_rows == 5 and v1.target == "y"
    assert v1.source_spec == {"kind": "files", "path": str(csv)}
    assert ds.run_due_schedules(now=at(10, 20, 30)) == []  # the same fire time again
    (same,) = ds.run_due_schedules(now=at(10, 30, 2))
    assert (same["status"], same["dataset_version_id"]) == ("unchanged", v1.id)
    # the scheduler was away for 10:40, 10:50 and 11:00: one run, at the latest fire time
    write_csv(csv, 7)
    (late,) = ds.run_due_schedules(now=at(11, 5))
    v2 = ds.get("sales")
    assert (late["status"], late["fire_time"], late["version"]) == (
        "recorded",
        at(11, 0).isoformat(),
        2,
    )
    assert v2.n_rows == 7 and v2.id == late["dataset_version_id"]
    runs = ds.ingestion_runs("sales")
    assert [r["status"] for r in runs] == ["failed", "recorded", "unchanged", "recorded"]
    assert [r["fire_time"][11:16] for r in runs] == ["10:10", "10:20", "10:30", "11:00"]
    assert ds.ingestion_runs() == runs and ds.ingestion_runs("other") == []
    assert ds.schedules()[0].cursor == at(11, 0).isoformat()


def test_a_failed_run_masks_secrets_and_a_failed_check_records_nothing(stages, tmp_path):
    ds = stages.datasets
    ds.schedule(
        _Unreachable("postgresql://app:hunter2@127.0.0.1:1/sales"),
        name="db",
        cron="0 * * * *",
        since=at(9, 30),
    )
    csv = tmp_path / "rows.csv"
    write_csv(csv, 4)
    ds.schedule(str(csv), name="rows", cron="0 * * * *", target="label", since=at(9, 30))
    # the stored checks are what a run validates with
    ds.schedule(str(csv), name="few", cron="0 * * * *", checks=Checks(min_rows=10), since=at(9, 30))
    runs = {r["schedule"]: r for r in ds.run_due_schedules(now=at(10, 0, 1))}
    assert runs["db"]["status"] == "failed"
    assert "hunter2" not in runs["db"]["error"]
    assert (
        "SourceError: could not connect to postgresql://***@127.0.0.1:1/sales"
        in (runs["db"]["error"])
    )
    assert runs["rows"]["status"] == "failed" and "label" in runs["rows"]["error"]
    assert runs["few"]["status"] == "failed" and "(minimum 10)" in runs["few"]["error"]
    assert "DatasetValidationError" in runs["rows"]["error"]
    assert [v.name for v in ds.list()] == []
    assert all("hunter2" not in str(r) for r in ds.ingestion_runs())


def test_two_stages_on_one_home_never_run_a_fire_twice(tmp_path):
    from workbench.stages import Stages

    csv = tmp_path / "sales.csv"
    write_csv(csv, 6)
    home = tmp_path / "home"
    a, b = Stages.open(home), Stages.open(home)
    try:
        a.datasets.schedule(str(csv), name="sales", cron="*/5 * * * *", since=at(10, 0, 30))
        # the claim itself: one row per (schedule, fire time), the second claimant gets None
        fire = at(10, 5).isoformat()
        assert a.store.ingestion.claim_run("sales", fire, runner="a") is not None
        assert b.store.ingestion.claim_run("sales", fire, runner="b") is None
        assert b.datasets.run_due_schedules(now=at(10, 6)) == []  # 10:05 is taken
        # both tick at the same moment, each on its own connection to the same file
        barrier, out = threading.Barrier(2), {}

        def tick(name, st):
            barrier.wait(timeout=10)
            out[name] = st.datasets.run_due_schedules(now=at(10, 10, 1), runner=name)

        threads = [threading.Thread(target=tick, args=(n, s)) for n, s in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        made = out["a"] + out["b"]
        assert len(made) == 1 and made[0]["status"] == "recorded", out
        assert made[0]["runner"] in {"a", "b"}
        assert [r["fire_time"][11:16] for r in a.datasets.ingestion_runs()] == ["10:05", "10:10"]
        assert len(b.datasets.list()) == 1
    finally:
        a.close()
        b.close()


def test_runs_an_earlier_scheduler_left_running_end_failed_not_rerun(stages, tmp_path):
    csv = tmp_path / "sales.csv"
    write_csv(csv, 3)
    repo = stages.store.ingestion
    stages.datasets.schedule(str(csv), name="sales", cron="0 * * * *", since=at(9, 30))
    old = repo.claim_run("sales", at(10, 0).isoformat(), runner="scheduler:old")
    mine = repo.claim_run("sales", at(11, 0).isoformat(), runner="scheduler:new")
    nb = repo.claim_run("sales", at(12, 0).isoformat(), runner="notebook")
    assert repo.interrupt_runs("scheduler:", keep="scheduler:new") == [old]
    runs = {r["id"]: r for r in stages.datasets.ingestion_runs("sales")}
    assert runs[old]["status"] == "failed" and "interrupted" in runs[old]["error"]
    assert runs[mine]["status"] == runs[nb]["status"] == "running"
    assert repo.interrupt_runs("scheduler:", keep="scheduler:new") == []
    # its fire time is not run again; the cursor is past it
    assert stages.datasets.run_due_schedules(now=at(12, 30)) == []


def test_unschedule_disables_and_scheduling_again_starts_from_now(stages, tmp_path):
    csv = tmp_path / "sales.csv"
    write_csv(csv, 3)
    ds = stages.datasets
    ds.schedule(str(csv), name="sales", cron="0 * * * *", since=at(9, 30))
    off = ds.unschedule("sales")
    assert not off.enabled and ds.run_due_schedules(now=at(12, 0, 1)) == []
    # enabled again: counted from now (the real clock), so the missed 10:00-12:00 do not run
    again = ds.schedule(str(csv), name="sales", cron="0 * * * *")
    assert again.enabled
    assert datetime.fromisoformat(again.cursor) > datetime.now(UTC) - timedelta(minutes=1)
    assert ds.run_due_schedules(now=datetime.now(UTC)) == []
    # scheduling an enabled name again (a notebook cell run twice) keeps its cursor
    assert ds.schedule(str(csv), name="sales", cron="0 * * * *").cursor == again.cursor
    (run,) = ds.run_due_schedules(now=again.next_fire + timedelta(seconds=1))
    assert run["status"] == "recorded" and ds.ingestion_runs("sales") == [run]


def test_the_engine_tick_runs_due_schedules(home, tmp_path):
    """What the scheduler actor does each interval: ``Engine.tick`` reports the runs as ``ingested``."""
    from workbench.api import Workbench

    csv = tmp_path / "sales.csv"
    write_csv(csv, 4)
    bench = Workbench(home)
    try:
        bench.datasets.schedule(str(csv), name="sales", cron="*/15 * * * *", since=at(10, 1))
        quiet = bench.automation.tick(now=at(10, 10).timestamp(), run=False, check=False)
        assert quiet["ingested"] == []
        out = bench.automation.tick(now=at(10, 16).timestamp(), run=False, check=False)
        assert [r["status"] for r in out["ingested"]] == ["recorded"]
        assert out["ingested"][0]["runner"] == "notebook"
        assert bench.datasets.get("sales").n_rows == 4
    finally:
        bench.close()


@pytest.mark.ray
def test_the_scheduler_actor_records_a_version_on_its_own(home, tmp_path, ray_cluster):
    """The detached scheduler actor runs the schedule with no ``now=``: ``since`` a minute back
    makes the last ``* * * * *`` fire time due on its first tick (instead of waiting up to 60 s)."""
    import ray

    from workbench.api import Workbench

    csv = tmp_path / "sales.csv"
    write_csv(csv, 9)
    bench = Workbench(home)
    ns = f"wb-ingest-{time.monotonic_ns()}"
    try:
        bench.datasets.schedule(
            str(csv), name="sales", cron="* * * * *", since=time.time() - 61, target="y"
        )
        # a run an earlier scheduler incarnation left running (killed in the middle of it)
        orphan = bench.store.ingestion.claim_run(
            "sales", at(10, 0).isoformat(), runner="scheduler:gone"
        )
        t0 = time.monotonic()
        bench.automation.start_scheduler(interval_s=0.5, namespace=ns)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = bench.datasets.ingestion_runs("sales")
            if len(runs) == 2 and runs[1]["status"] != "running":
                break
            time.sleep(0.2)
        took = time.monotonic() - t0
        gone, run = bench.datasets.ingestion_runs("sales")
        assert gone["id"] == orphan and gone["status"] == "failed"
        assert gone["error"].startswith("interrupted") and gone["ended"]
        assert run["status"] == "recorded", run
        assert run["runner"].startswith("scheduler:")  # the actor, not this process
        dv = bench.datasets.get("sales")
        assert (dv.id, dv.n_rows, dv.target) == (run["dataset_version_id"], 9, "y")
        # more ticks in the same minute run nothing more
        time.sleep(1.5)
        runs = bench.datasets.ingestion_runs("sales")
        fire = datetime.fromisoformat(run["fire_time"])
        if datetime.now(UTC) < fire + timedelta(minutes=1):
            assert len(runs) == 2
        assert len({r["fire_time"] for r in runs}) == len(runs)
        print(f"\nscheduler actor: version recorded {took:.1f}s after start_scheduler")
        assert bench.automation.stop_scheduler(namespace=ns)
    finally:
        try:
            ray.kill(ray.get_actor("workbench-scheduler", namespace=ns))
        except ValueError:
            pass
        bench.close()
