"""The REST handlers against a real Jupyter server that requires authentication (pytest-jupyter)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jupyterlab_workbench.handlers import ROUTES
from tornado.httpclient import HTTPClientError

OPENAPI = Path(__file__).parents[1] / "openapi.yaml"
NO_AUTH = {"Authorization": ""}  # overrides the token header jp_fetch adds


def seed(home: Path) -> dict:
    """An experiment with three trials and a model with two versions (v1 champion), no Ray."""
    from tests._factories import make_experiment
    from tests._serve_env import cancer_bundle
    from workbench import Workbench

    bench = Workbench(home)
    eid = make_experiment(bench.store, name="cancer", num_samples=3)
    bench.store.experiments.record_trial_events(
        eid,
        [
            {"trial_id": f"t{i}", "status": "TERMINATED", "config": {"C": i}, "metrics": {"f1": f}}
            for i, f in enumerate([0.91, 0.95, 0.93])
        ],
    )
    bundle, _ = cancer_bundle()
    v1 = bench.registry.register(
        "cancer", bundle, metrics={"f1": 0.95}, experiment_id=eid, trial_id="t1", actor="seed"
    )
    bench.registry.register("cancer", bundle, metrics={"f1": 0.96}, actor="seed")
    bench.registry.set_alias("cancer", "champion", v1.version, actor="seed")
    bench.close()
    return {"experiment_id": eid}


def aliases(home: Path) -> dict[int, list[str]]:
    from workbench import Workbench

    with Workbench(home) as bench:
        return {mv.version: list(mv.aliases) for mv in bench.registry.list("cancer")}


def name_users(jp_serverapp, monkeypatch, username: str) -> None:
    """Make the server's identity provider a multi-user one (a subclass, as JupyterHub's is) whose
    token-authenticated user is ``username``."""
    import inspect

    from jupyter_server.auth import User

    idp = jp_serverapp.identity_provider
    real_get_user = idp.get_user

    class NamedIdentityProvider(type(idp)):
        pass

    async def get_user(handler):  # the token still authenticates; the user is renamed
        user = real_get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        return User(username=username, name=username.title()) if user else None

    monkeypatch.setattr(idp, "__class__", NamedIdentityProvider)
    monkeypatch.setattr(idp, "get_user", get_user)


async def call(jp_fetch, *parts, method="GET", body=None, headers=None):
    kwargs = {"method": method, "headers": headers}
    if body is not None or method == "POST":
        kwargs["body"] = json.dumps(body if body is not None else {})
    try:
        r = await jp_fetch("workbench", *parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body or b"null")
    return r.code, json.loads(r.body)


async def test_version_endpoint(jp_fetch):
    code, body = await call(jp_fetch, "version")
    assert code == 200
    assert body["api"] == 1 and body["extension"] == "0.1.0"


def _sample_path(pattern: str) -> list[str]:
    samples = iter(["1", "approve"])
    path = re.sub(r"\(\\d\+\)|\(approve\|reject\)", lambda m: next(samples), pattern)
    return re.sub(r"\(\[\^/\]\+\)", "cancer", path).split("/")


@pytest.mark.parametrize("pattern,handler", ROUTES, ids=[p for p, _ in ROUTES])
async def test_every_route_refuses_requests_without_auth(jp_fetch, wb_home, pattern, handler):
    seed(wb_home)
    before = aliases(wb_home)
    methods = [m for m in ("GET", "POST") if m.lower() in handler.__dict__]
    assert methods, f"{handler.__name__} serves nothing"
    for method in methods:
        body = (
            {"alias": "champion", "version": 2, "weights": {"2": 1.0}} if method == "POST" else None
        )
        code, out = await call(
            jp_fetch, *_sample_path(pattern), method=method, body=body, headers=dict(NO_AUTH)
        )
        assert code == 403, (method, pattern, code, out)
    assert aliases(wb_home) == before  # nothing changed


async def test_cookie_login_without_xsrf_is_refused_and_changes_nothing(
    jp_fetch, jp_serverapp, wb_home
):
    seed(wb_home)
    # Log in as a browser does: the token once in the URL sets the login cookie.
    r = await jp_fetch(
        "api",
        "status",
        params={"token": jp_serverapp.identity_provider.token},
        headers=dict(NO_AUTH),
    )
    cookie = "; ".join(c.split(";", 1)[0] for c in r.headers.get_list("Set-Cookie"))
    assert cookie, "the token login set no cookie"
    code, _ = await call(jp_fetch, "version", headers={**NO_AUTH, "Cookie": cookie})
    assert code == 200  # the cookie alone authenticates a GET

    promote = {"alias": "champion", "version": 2}
    code, out = await call(
        jp_fetch,
        "models",
        "cancer",
        "aliases",
        method="POST",
        body=promote,
        headers={**NO_AUTH, "Cookie": cookie},
    )
    assert code == 403 and "xsrf" in json.dumps(out).lower(), out
    assert aliases(wb_home) == {1: ["champion"], 2: []}

    # the same request with the _xsrf cookie echoed in X-XSRFToken (what JupyterLab sends) works
    xsrf = "0123456789abcdef0123456789abcdef"
    code, out = await call(
        jp_fetch,
        "models",
        "cancer",
        "aliases",
        method="POST",
        body=promote,
        headers={**NO_AUTH, "Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert code == 200, out
    assert aliases(wb_home) == {1: [], 2: ["champion"]}


async def test_experiments_and_trials(jp_fetch, wb_home):
    eid = seed(wb_home)["experiment_id"]
    code, body = await call(jp_fetch, "experiments")
    assert code == 200
    assert [(e["id"], e["name"], e["n_trials"]) for e in body["experiments"]] == [
        (eid, "cancer", 3)
    ]
    code, body = await call(jp_fetch, "experiments", str(eid), "trials")
    assert code == 200
    assert [(t["trial_id"], t["metrics"]["f1"]) for t in body["trials"]] == [
        ("t0", 0.91),
        ("t1", 0.95),
        ("t2", 0.93),
    ]
    code, body = await call(jp_fetch, "experiments", "999", "trials")
    assert code == 200 and body["trials"] == []


async def test_promote_records_the_jupyter_user_in_the_audit_log(jp_fetch, jp_serverapp, wb_home):
    seed(wb_home)
    code, body = await call(
        jp_fetch,
        "models",
        "cancer",
        "aliases",
        method="POST",
        body={"alias": "champion", "version": 2, "reason": "better f1"},
    )
    assert code == 200, body
    assert body["model_version"]["version"] == 2 and body["model_version"]["aliases"] == [
        "champion"
    ]
    assert aliases(wb_home) == {1: [], 2: ["champion"]}

    code, body = await call(jp_fetch, "audit", headers=None)
    assert code == 200
    entry = next(e for e in body["entries"] if "alias" in e["action"])
    assert entry["actor"] not in ("seed", "", None)
    # the identity the server gave this request's user
    code, me = await call(jp_fetch, "models", "cancer", "aliases")
    history = me["history"]
    assert history[-1]["reason"] == "better f1"
    assert history[-1]["actor"] == entry["actor"]


async def test_actor_is_the_identity_providers_username(
    jp_fetch, jp_serverapp, wb_home, monkeypatch
):
    """With a named identity from a multi-user identity provider (as JupyterHub's), the audit log
    names that user."""
    name_users(jp_serverapp, monkeypatch, "alice")
    seed(wb_home)
    code, body = await call(
        jp_fetch,
        "models",
        "cancer",
        "aliases",
        method="POST",
        body={"alias": "staging", "version": 2},
    )
    assert code == 200, body
    from workbench import Workbench

    with Workbench(wb_home) as bench:
        entries = bench.audit_log(10)
    moved = [e for e in entries if "alias" in e["action"] and e["actor"] == "alice"]
    assert moved, entries


@pytest.mark.parametrize(
    "parts,body,status,words",
    [
        (("models", "cancer", "aliases"), {"alias": "champion", "version": "two"}, 400, "whole"),
        # numbers parsed strictly: never int(True) == 1, int(2.9) == 2, a 500 on '²' or 10**30
        (("models", "cancer", "aliases"), {"alias": "champion", "version": 2.9}, 400, "whole"),
        (("models", "cancer", "aliases"), {"alias": "champion", "version": True}, 400, "whole"),
        (("models", "cancer", "aliases"), {"alias": "champion", "version": 10**30}, 400, "range"),
        (("models", "cancer", "aliases"), {"alias": "champion", "version": "²"}, 400, "whole"),
        (
            ("models", "cancer", "aliases"),
            {"alias": "champion", "version": "9" * 5000},
            400,
            "whole",
        ),
        (("models", "nope", "aliases"), {"alias": "champion", "version": 1}, 404, "nope"),
        (("models", "cancer", "aliases"), {"alias": "champion", "version": 9}, 404, "9"),
        (("deployments", "cancer", "traffic"), {"weights": {"1": "x"}}, 400, "number"),
        (("deployments", "cancer", "traffic"), {"weights": {"1": -1}}, 400, ">= 0"),
        (("deployments", "cancer", "traffic"), {"weights": {"1": 0}}, 400, "positive weight"),
        (("deployments", "cancer", "traffic"), {"weights": {"one": 1}}, 400, "version numbers"),
        (("deployments", "cancer", "traffic"), {"weights": {"1": True}}, 400, "number"),
        (("deployments", "cancer", "traffic"), {"weights": []}, 400, "weights"),
        (("deployments", "ghost", "traffic"), {"weights": {"1": 1}}, 404, "ghost"),
        (("retrains", "77", "approve"), {}, 404, "77"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_change_nothing(
    jp_fetch, wb_home, parts, body, status, words
):
    seed(wb_home)
    before = aliases(wb_home)
    code, out = await call(jp_fetch, *parts, method="POST", body=body)
    assert code == status, out
    assert words in out["error"], out
    assert aliases(wb_home) == before


async def test_body_must_be_a_json_object(jp_fetch, wb_home):
    seed(wb_home)
    try:
        await jp_fetch("workbench", "models", "cancer", "aliases", method="POST", body="not json")
    except HTTPClientError as exc:
        assert exc.code == 400
        assert "JSON" in json.loads(exc.response.body)["error"]
    else:
        pytest.fail("a body that is not JSON was accepted")


async def test_empty_store_lists_nothing(jp_fetch, wb_home):
    for parts, key in [
        (("experiments",), "experiments"),
        (("models",), "versions"),
        (("deployments",), "deployments"),
        (("monitors",), "monitors"),
        (("retrains",), "jobs"),
        (("audit",), "entries"),
        (("datasets",), "versions"),
    ]:
        code, body = await call(jp_fetch, *parts)
        assert code == 200, (parts, body)
        assert body[key] == [], (parts, body)


async def test_lineage_of_the_champion(jp_fetch, wb_home):
    seed(wb_home)
    code, body = await call(jp_fetch, "lineage", "cancer", "champion")
    assert code == 200, body
    assert "cancer" in body["text"] and body["chain"]
    code, body = await call(jp_fetch, "lineage", "cancer", "7")
    assert code == 404


async def test_evaluation_and_report_of_a_version(jp_fetch, wb_home):
    from workbench import Workbench

    seed(wb_home)
    with Workbench(wb_home) as bench:
        mv = bench.registry.get("cancer", 1)
        bench.store.evaluations.add(
            mv.id,
            holdout_version_id=None,
            metrics={"f1": 0.9512, "roc_auc": 0.9876},
            details={"task": "classification", "n": 171},
            cv={"f1": {"mean": 0.94, "std": 0.01, "ci_low": 0.93, "ci_high": 0.95, "n_folds": 5}},
        )
    code, body = await call(jp_fetch, "models", "cancer", "versions", "champion", "evaluation")
    assert code == 200, body
    assert body["version"] == 1 and body["evaluation"]["metrics"]["roc_auc"] == 0.9876
    assert body["evaluation"]["cv"]["f1"]["ci_high"] == 0.95
    code, body = await call(jp_fetch, "models", "cancer", "versions", "2", "evaluation")
    assert (code, body["evaluation"]) == (200, None)
    code, body = await call(jp_fetch, "models", "cancer", "versions", "9", "evaluation")
    assert code == 404 and "no version 9" in body["error"]

    r = await jp_fetch("workbench", "models", "cancer", "versions", "1", "report")
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script" not in csp
    html = r.body.decode()
    assert html.startswith("<!DOCTYPE html>") and ">0.9876<" in html
    with Workbench(wb_home) as bench:
        assert html == bench.registry.report("cancer", 1)  # the stored page
        assert bench.registry.evaluation("cancer", 1)["report_artifact"]
    code, body = await call(jp_fetch, "models", "cancer", "versions", "2", "report")
    assert code == 404 and "no recorded evaluation" in body["error"]


def test_openapi_describes_exactly_the_route_table():
    import yaml

    spec = yaml.safe_load(OPENAPI.read_text())
    documented = {}
    for path, ops in spec["paths"].items():
        documented[path] = sorted(m.upper() for m in ops if m in ("get", "post"))
    # the OpenAPI name of each path parameter, in order, by the route's first segment
    params = {
        "experiments": ["{experiment_id}"],
        "models": ["{model}", "{version}"],
        "deployments": ["{name}"],
        "retrains": ["{job_id}", "{answer}"],
        "lineage": ["{model}", "{version}"],
        "datasets": ["{name}", "{version}"],
    }
    served = {}
    for pattern, handler in ROUTES:
        names = iter(params.get(pattern.split("/")[0], []))
        path = re.sub(r"\([^)]*\)", lambda m, names=names: next(names), pattern)
        served["/workbench/" + path] = sorted(
            m for m in ("GET", "POST") if m.lower() in handler.__dict__
        )
    assert documented == served


def test_every_handler_method_is_authenticated():
    for _pattern, handler in ROUTES:
        for method in ("get", "post", "put", "delete", "patch"):
            fn = handler.__dict__.get(method)
            if fn is not None:
                # tornado.web.authenticated wraps with functools.wraps
                assert hasattr(fn, "__wrapped__"), (
                    f"{handler.__name__}.{method} is not authenticated"
                )


async def test_approve_and_reject_a_pending_retraining(jp_fetch, wb_home):
    from workbench import Workbench

    with Workbench(wb_home) as bench:
        jobs = []
        for i in range(2):
            jid = bench.store.retraining.claim_job(
                f"test-event-{i}", policy="p", status="PENDING_APPROVAL", approval="PENDING"
            )
            jobs.append(jid)
    code, body = await call(jp_fetch, "retrains")
    assert code == 200 and [j["id"] for j in body["pending"]] == jobs

    code, body = await call(jp_fetch, "retrains", str(jobs[0]), "approve", method="POST")
    assert code == 200, body
    assert (body["job"]["status"], body["job"]["approval"]) == ("APPROVED", "APPROVED")
    code, body = await call(
        jp_fetch, "retrains", str(jobs[1]), "reject", method="POST", body={"reason": "not now"}
    )
    assert code == 200 and body["job"]["status"] == "REJECTED", body

    # a second answer is refused (409) with the reason, and changes nothing
    code, body = await call(jp_fetch, "retrains", str(jobs[0]), "reject", method="POST")
    assert code == 409 and "not waiting for approval" in body["error"], body
    with Workbench(wb_home) as bench:
        assert [bench.store.retraining.get_job(j)["status"] for j in jobs] == [
            "APPROVED",
            "REJECTED",
        ]
        answers = [
            e for e in bench.audit_log(50) if e["action"] in ("retrain.approve", "retrain.reject")
        ]
    actors = {e["action"]: e["actor"] for e in answers}
    # Jupyter's own token login is the server's owner: the OS user running it, the same name for
    # both (a token request is otherwise a new random anonymous user each time)
    from workbench._identity import os_user

    assert len(answers) == 2 and set(actors) == {"retrain.approve", "retrain.reject"}
    assert set(actors.values()) == {os_user()}, actors


async def test_monitors_carry_their_newest_windows(jp_fetch, wb_home):
    from workbench import Workbench
    from workbench.datasets import write_breast_cancer_csv

    seed(wb_home)
    with Workbench(wb_home) as bench:
        dv = bench.datasets.ingest(
            write_breast_cancer_csv(wb_home / "bc.csv"), name="bc", target="diagnosis"
        )
        bench.store.deployments.add("cancer", model="cancer", route_prefix="/c", status="RUNNING")
        bench.store.monitors.add(
            "cancer-drift",
            deployment="cancer",
            kind="data_drift",
            reference_dataset_version_id=dv.id,
            config={},
        )
        ids = [
            bench.store.monitors.record_window(
                "cancer-drift",
                first_request_log_id=10 * i,
                last_request_log_id=10 * i + 9,
                n=10,
                is_drift=i == 11,
                score=0.001 if i == 11 else 0.5,
                threshold=0.05,
                detail={"verdict": "drift" if i == 11 else "ok"},
            )
            for i in range(12)
        ]
        # the drifting window's alert, and the retraining it started, triaged harmless
        bench.store.monitors.record_alert(
            dedup_key="cancer-drift:drift", severity="warning", title="data drift on cancer",
            detail={}, cooldown_s=0, monitor="cancer-drift", drift_result_id=ids[11],
        )  # fmt: skip
        triage = {"method": "cbpe", "estimate": 0.99, "baseline": 0.97, "interval": None,
                  "harmful": False, "n": 80, "labels": 0, "reason": "cbpe: ..."}  # fmt: skip
        bench.store.retraining.claim_job(
            "drift:11", policy="loop", status="SKIPPED", decision="harmless_shift",
            drift_result_id=ids[11], detail={"triage": triage},
        )  # fmt: skip
    code, body = await call(jp_fetch, "monitors")
    assert code == 200, body
    assert [m["name"] for m in body["monitors"]] == ["cancer-drift"]
    assert "state" not in body["monitors"][0], "the monitor's running state stays in the library"
    windows = body["results"]["cancer-drift"]
    assert [w["id"] for w in windows] == ids[::-1][:10]  # the ten newest, newest first
    assert (windows[0]["is_drift"], windows[0]["score"], windows[0]["threshold"]) == (
        1,
        0.001,
        0.05,
    )
    assert windows[0]["detail"]["verdict"] == "drift"
    (alert,) = body["alerts"]
    assert alert["monitor"] == "cancer-drift" and alert["drift_result_id"] == ids[11]
    assert alert["job"]["status"] == "SKIPPED" and alert["job"]["decision"] == "harmless_shift"
    assert alert["triage"]["harmful"] is False and alert["triage"]["verdict"] == (
        "harmless shift: accuracy est. 0.99 vs 0.97 baseline, cbpe (no labels) n=80"
    ), alert


async def test_deployments_say_where_a_rollback_would_go(jp_fetch, wb_home):
    from workbench import Workbench

    seed(wb_home)
    with Workbench(wb_home) as bench:
        for name in ("staged", "fresh"):
            bench.store.deployments.add(
                name, model="cancer", route_prefix=f"/{name}", status="RUNNING"
            )
        bench.store.deployments.record_traffic("staged", {1: 1.0}, kind="deploy")
        bench.store.deployments.record_traffic("staged", {1: 0.5, 2: 0.5}, kind="canary")
    code, body = await call(jp_fetch, "deployments")
    assert code == 200, body
    got = {d["name"]: (d["weights"], d["rollback_to"]) for d in body["deployments"]}
    # v1 held all traffic before the canary; "fresh" has no traffic record, so nowhere to go
    assert got == {"staged": ({"1": 0.5, "2": 0.5}, 1), "fresh": ({}, None)}, got


def test_response_bodies_are_strict_json_without_binary_columns():
    import dataclasses
    from datetime import datetime

    import numpy as np
    from jupyterlab_workbench.handlers import _json_body

    @dataclasses.dataclass
    class Row:
        f1: float
        blob: bytes

    body = _json_body(
        {1: [Row(float("nan"), b"\x00")], "n": np.int64(3), "when": datetime(2025, 1, 31)}
    )
    assert json.loads(body) == {
        "1": [{"f1": None, "blob": None}],
        "n": 3,
        "when": "2025-01-31 00:00:00",
    }
    assert "NaN" not in body


def seed_datasets(home: Path) -> None:
    """Two versions of dataset ``cities``: v2 removes a row, adds one, changes two."""
    from tests._factories import ingest_two_city_versions
    from workbench import Workbench

    with Workbench(home) as bench:
        ingest_two_city_versions(bench)


async def query(jp_fetch, *parts, params):
    try:
        r = await jp_fetch("workbench", *parts, params=params)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body or b"null")
    return r.code, json.loads(r.body)


async def test_dataset_versions_reports_and_diffs(jp_fetch, wb_home):
    seed_datasets(wb_home)
    code, body = await call(jp_fetch, "datasets")
    assert code == 200, body
    assert [
        (v["name"], v["version"], v["rows"], v["errors"], v["warnings"]) for v in body["versions"]
    ] == [
        ("cities", 1, 3, 0, 0),
        ("cities", 2, 3, 0, 1),
    ]
    code, body = await call(jp_fetch, "datasets", "cities", "versions", "2")
    assert code == 200, body
    assert body["schema"] == {"city": "String", "id": "Int64", "x": "Float64"}
    failed = [r for r in body["report"] if not r["passed"]]
    assert [(r["check"], r["column"], r["severity"], r["failing"]) for r in failed] == [
        ("range", "x", "warn", 1)
    ]
    code, body = await query(
        jp_fetch, "datasets", "cities", "diff", params={"a": "1", "b": "2", "key": "id"}
    )
    assert code == 200, body
    d = body["diff"]
    assert (d["added"], d["removed"], d["changed"], d["unchanged"]) == (1, 1, 2, 0)
    assert d["changed_columns"] == {"x": 1, "city": 1} and d["key"] == ["id"]
    assert body["text"].startswith("cities@1 -> cities@2: rows 3 -> 3")
    code, body = await query(jp_fetch, "datasets", "cities", "diff", params={"a": "1", "b": "2"})
    assert code == 200 and body["diff"]["key"] is None and body["diff"]["added"] == 3


@pytest.mark.parametrize(
    ("parts", "params", "status", "message"),
    [
        (("cities", "versions", "9"), {}, 404, "cities version 9 does not exist"),
        (("nope", "diff"), {"a": "1", "b": "2"}, 404, "dataset nope version 1 does not exist"),
        (("cities", "diff"), {"a": "1", "b": "2", "key": "city"}, 400, "not unique in cities@1"),
        (("cities", "diff"), {"a": "1"}, 400, "b must be a whole number"),
        (("cities", "diff"), {"a": "1", "b": "2", "examples": "1000"}, 400, "examples must be in"),
    ],
)
async def test_dataset_errors_say_what_to_do(jp_fetch, wb_home, parts, params, status, message):
    seed_datasets(wb_home)
    code, body = await query(jp_fetch, "datasets", *parts, params=params)
    assert code == status, body
    assert message in body["error"]
