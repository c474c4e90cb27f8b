"""Roles enforced in the library: every attack is refused with PermissionDenied and changes
nothing (no record, no audit entry); what a role allows works; intent is recorded before effect.

A real SQLite home per test, no Ray: the guards run before any Ray or Serve call.
"""

from __future__ import annotations

import polars as pl
import pytest

from workbench import Workbench
from workbench._identity import acting_as, os_user
from workbench.exceptions import PermissionDenied, WorkbenchError
from workbench.governance import ACTIONS, Access, guarded_actions


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_ACCESS", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    return tmp_path / "home"


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "rows.csv"
    pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}).write_csv(path)
    return path


def snapshot(bench: Workbench) -> tuple:
    """Everything an attack could change: record counts, grants and the whole audit log."""
    return (bench.store.counts(), bench.access.grants(), bench.audit_log(10_000))


def test_the_embedded_default_is_open_and_the_os_user_is_admin(home, csv):
    with Workbench(home) as bench:
        me = bench.whoami()
        assert me["user"] == os_user() and me["source"] == "os"
        assert me["roles"] == ["admin"] and me["enforced"] is False
        assert set(me["allowed"]) == set(ACTIONS)
        # as before: actor= is a label in a single-user home
        bench.datasets.ingest(csv, name="rows", target="y")
        with acting_as("ada"):  # another name acting: still allowed while nothing is enforced
            assert bench.access.allowed("deploy")


def test_grants_turn_enforcement_on_and_each_role_allows_only_its_actions(home, csv):
    with Workbench(home) as bench:
        assert bench.access.grant("ed", "editor") is True
        assert bench.access.grant("ed", "editor") is False  # held already: nothing recorded
        assert bench.access.enforced
        # the granting owner is admin on record, so enforcement never locks them out
        assert {(g["user"], g["role"]) for g in bench.access.grants()} == {
            ("ed", "editor"),
            (os_user(), "admin"),
        }
        with acting_as("ed"):
            dv = bench.datasets.ingest(csv, name="rows", target="y")
            assert dv.version == 1
            before = snapshot(bench)
            for attempt in (
                lambda: bench.automation.add_policy(None),  # approver's
                lambda: bench.automation.approve(1),
                lambda: bench.access.grant("ed", "admin"),  # escalation
                lambda: bench.access.set_four_eyes(False),
            ):
                with pytest.raises(PermissionDenied) as err:
                    attempt()
                assert "ed may not" in str(err.value) and "workbench access grant" in str(err.value)
            assert snapshot(bench) == before
        with acting_as("nobody"):
            before = snapshot(bench)
            with pytest.raises(PermissionDenied, match="needs the 'editor' role"):
                bench.datasets.ingest(csv, name="rows2", target="y")
            assert snapshot(bench) == before
            assert bench.whoami()["roles"] == [] and bench.whoami()["allowed"] == []


def test_actor_can_no_longer_claim_another_identity(home, csv):
    with Workbench(home) as bench:
        bench.access.grant("ed", "editor")
        with acting_as("ed"):
            before = snapshot(bench)
            with pytest.raises(PermissionDenied, match="cannot act as 'boss'"):
                bench.stages.register_candidate(None, model="m", actor="boss")
            assert snapshot(bench) == before
            # naming yourself is fine, and a system label names the process, not a person
            assert Access(bench.store).require("register", actor="ed") == "ed"
            assert Access(bench.store).require("register", actor="automation") == "automation"


def test_workbench_access_roles_with_no_grant_leaves_only_the_owner_admin(home, monkeypatch, csv):
    monkeypatch.setenv("WORKBENCH_ACCESS", "roles")
    with Workbench(home) as bench:
        assert bench.access.enforced and bench.whoami()["roles"] == ["admin"]
        with acting_as("mallory"):
            before = snapshot(bench)
            with pytest.raises(PermissionDenied):
                bench.access.grant("mallory", "admin")
            with pytest.raises(PermissionDenied):
                bench.datasets.ingest(csv, name="rows", target="y")
            assert snapshot(bench) == before
        bench.access.grant("ada", "deployer")
        assert bench.access.roles("ada") == {"deployer"}


def test_the_last_admin_cannot_be_revoked(home):
    with Workbench(home) as bench:
        bench.access.grant("ada", "viewer")
        before = snapshot(bench)
        with pytest.raises(PermissionDenied, match="last admin"):
            bench.access.revoke(os_user(), "admin")
        assert snapshot(bench) == before
        bench.access.grant("ada", "admin")
        assert bench.access.revoke(os_user(), "admin") is True
        actions = [e["action"] for e in bench.audit_log(20)]
        assert actions.count("access.grant") == 3 and actions.count("access.revoke") == 1


def test_intent_is_recorded_before_the_effect_and_a_failure_after_it(home, csv):
    with Workbench(home) as bench:
        dv = bench.datasets.ingest(csv, name="rows", target="y")
        entries = bench.audit_log(50)[::-1]  # oldest first
        intent = next(i for i, e in enumerate(entries) if e["action"] == "intent")
        effect = next(i for i, e in enumerate(entries) if e["action"].startswith("dataset"))
        assert intent < effect
        assert entries[intent]["detail"]["action"] == "ingest"
        assert entries[intent]["detail"]["call"] == "Datasets.ingest"
        with pytest.raises(WorkbenchError):
            bench.datasets.ingest(csv.parent / "missing.csv", name="gone")
        failed = bench.audit_log(1)[0]
        assert failed["action"] == "intent.failed" and "missing" in failed["detail"]["error"]
        assert dv.version == 1 and bench.store.counts()["datasets"] == 1


def test_four_eyes_the_author_of_a_policy_may_not_approve_its_jobs(home):
    with Workbench(home) as bench:
        for user in ("alice", "bob"):
            bench.access.grant(user, "approver")
        bench.access.set_four_eyes(True)
        with acting_as("alice"):  # alice asks for the retraining (saves the policy)
            bench.store.retraining.set_policy("p", {"name": "p"})
        job = bench.store.retraining.claim_job(
            "event-1", policy="p", status="PENDING_APPROVAL", approval="PENDING"
        )
        with acting_as("alice"):
            before = snapshot(bench)
            with pytest.raises(PermissionDenied, match="four-eyes"):
                bench.automation.approve(job)
            assert snapshot(bench) == before
        with acting_as("bob"):
            assert bench.automation.approve(job)["approval"] == "APPROVED"
        approval = next(e for e in bench.audit_log(20) if e["action"] == "retrain.approve")
        assert approval["actor"] == "bob"


def test_every_mutating_stage_method_is_guarded():
    """The table docs/governance.md shows: each stage's guarded methods and their actions."""
    from workbench.automation import Automation
    from workbench.datasets import Datasets
    from workbench.stages import Stages

    assert guarded_actions(Datasets) == {
        "ingest": "ingest",
        "schedule": "schedule",
        "unschedule": "schedule",
        "split": "ingest",
        "extend": "ingest",
    }
    assert guarded_actions(Stages) == {
        "register_candidate": "register",
        "register_best": "register",
    }
    assert set(guarded_actions(Automation).values()) == {"policy", "approve"}


def test_the_cli_grants_lists_and_refuses_with_exit_status_5(home, monkeypatch):
    from click.testing import CliRunner

    from workbench.cli import EXIT_DENIED, cli

    run = CliRunner().invoke
    out = run(cli, ["--home", str(home), "whoami", "--json"])
    assert out.exit_code == 0 and '"enforced": false' in out.output
    out = run(cli, ["--home", str(home), "access", "grant", "ada", "editor"])
    assert out.exit_code == 0 and "ada now holds editor" in out.output
    out = run(cli, ["--home", str(home), "access", "list"])
    assert "ada   editor" in out.output and f"{os_user()}  admin" in out.output
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    out = run(cli, ["--home", str(home), "access", "grant", "ada", "admin"])
    assert out.exit_code == EXIT_DENIED and "needs the 'admin' role" in out.output
    out = run(cli, ["--home", str(home), "access", "four-eyes", "on"])
    assert out.exit_code == EXIT_DENIED
    with Workbench(home) as bench:
        assert bench.access.roles("ada") == {"editor"} and not bench.access.four_eyes


def test_four_eyes_nobody_promotes_a_version_they_registered(home):
    from tests._serve_env import cancer_bundle

    with Workbench(home) as bench:
        for user in ("alice", "bob"):
            bench.access.grant(user, "editor")
            bench.access.grant(user, "approver")
        bench.access.set_four_eyes(True)
        bundle, _ = cancer_bundle()
        with acting_as("alice"):
            mv = bench.registry.register("cancer", bundle, metrics={"f1": 0.9})
            before = snapshot(bench)
            with pytest.raises(PermissionDenied, match="alice requested cancer version 1"):
                bench.registry.set_alias("cancer", "champion", mv.version)
            assert snapshot(bench) == before and bench.registry.get("cancer", 1).aliases == ()
        with acting_as("bob"):
            assert bench.registry.set_alias("cancer", "champion", 1).aliases == ("champion",)
        with acting_as("carol"):  # no role at all
            with pytest.raises(PermissionDenied, match="needs the 'editor' role"):
                bench.registry.register("cancer", bundle, metrics={"f1": 0.9})


def test_audit_verify_and_export_from_the_cli(home, tmp_path):
    """`workbench audit verify` passes on an intact log and exits 1 naming an entry edited through
    a second connection with the triggers dropped; `workbench export` writes a package, and is
    refused (exit 5, nothing written) for someone without the editor role."""
    import sqlite3

    from click.testing import CliRunner

    from tests._serve_env import cancer_bundle
    from workbench.cli import EXIT_DENIED, cli

    with Workbench(home) as bench:
        bundle, _ = cancer_bundle()
        bench.registry.register("cancer", bundle, metrics={"f1": 0.9})
        assert bench.audit.verify().ok
    run = CliRunner().invoke
    out = run(cli, ["--home", str(home), "audit", "verify"])
    assert out.exit_code == 0 and out.output.startswith("ok: "), out.output
    out = run(cli, ["--home", str(home), "export", "cancer@1", str(tmp_path / "pkg")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "pkg" / "MLmodel").exists()
    with Workbench(home) as bench:
        bench.access.grant("vic", "viewer")
    with acting_as("vic"):
        out = run(cli, ["--home", str(home), "export", "cancer@1", str(tmp_path / "pkg2")])
    assert out.exit_code == EXIT_DENIED and not (tmp_path / "pkg2").exists()

    raw = sqlite3.connect(home / "lineage.db")
    raw.execute("DROP TRIGGER audit_log_append_only_update")
    raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    raw.commit()
    raw.close()
    out = run(cli, ["--home", str(home), "audit", "verify", "--json"])
    assert out.exit_code == 1 and '"first_bad_id": 2' in out.output, out.output


def test_api_keys_from_the_cli_need_the_deployer_role(home):
    """No deployment needed: a key is created (secret printed once, never listed), revoked, and a
    viewer can neither create nor revoke one (exit 5, nothing changed)."""
    from click.testing import CliRunner

    from workbench.cli import EXIT_DENIED, cli

    run = CliRunner().invoke
    out = run(cli, ["--home", str(home), "api-keys", "create", "ci-bot", "--scope", "predict"])
    secret = out.output.strip()
    assert out.exit_code == 0 and secret.startswith("wbk_") and len(secret) > 30, out.output
    listed = run(cli, ["--home", str(home), "api-keys", "list", "--json"])
    assert '"name": "ci-bot"' in listed.output and secret not in listed.output
    with Workbench(home) as bench:
        bench.access.grant("vic", "viewer")
        before = bench.serving.api_keys()
    with acting_as("vic"):
        for args in (["create", "vic-key"], ["revoke", "ci-bot"]):
            out = run(cli, ["--home", str(home), "api-keys", *args])
            assert out.exit_code == EXIT_DENIED and "deployer" in out.output, out.output
    with Workbench(home) as bench:
        assert bench.serving.api_keys() == before
    out = run(cli, ["--home", str(home), "api-keys", "revoke", "ci-bot"])
    assert out.exit_code == 0
    with Workbench(home) as bench:
        assert bench.serving.api_keys()[0]["revoked_at"]
