"""Roles over REST, for real (a Jupyter server with a token, pytest-jupyter): every mutating route
as a viewer is 403 and changes nothing; the four-eyes rule holds; a deployment's Jupyter
``Authorizer`` applies before the workbench's roles; numbers are parsed strictly (400, never 500).
"""

from __future__ import annotations

import json

import pytest
from jupyterlab_workbench.tests.test_handlers import call, name_users, seed
from tornado.httpclient import HTTPClientError

#: (route parts, body) of every POST route: what a viewer may not do.
MUTATIONS = [
    (("models", "cancer", "aliases"), {"alias": "champion", "version": 2}),
    (("models", "cancer", "aliases"), {"alias": "staging", "version": 1}),
    (("deployments", "cancer", "traffic"), {"weights": {"1": 0.5, "2": 0.5}}),
    (("deployments", "cancer", "rollback"), {}),
    (("retrains", "1", "approve"), {}),
    (("retrains", "1", "reject"), {}),
    (("access",), {"user": "vic", "role": "admin"}),
]


def state(home) -> tuple:
    """All a refused request could change: counts, grants, aliases, jobs and the audit log."""
    from workbench import Workbench

    with Workbench(home) as bench:
        return (
            bench.store.counts(),
            bench.access.grants(),
            {mv.version: mv.aliases for mv in bench.registry.list("cancer")},
            [(j["id"], j["status"]) for j in bench.automation.jobs()],
            bench.audit_log(10_000),
        )


def prepare(home, *, four_eyes: bool = False) -> None:
    """The seeded store, a pending job of policy 'p' saved by alice, and the grants."""
    from workbench import Workbench
    from workbench._identity import acting_as

    seed(home)
    with Workbench(home) as bench:
        with acting_as("alice"):
            bench.store.retraining.set_policy("p", {"name": "p"})
        bench.store.retraining.claim_job(
            "event-1", policy="p", status="PENDING_APPROVAL", approval="PENDING"
        )
        bench.access.grant("vic", "viewer")
        bench.access.grant("alice", "approver")
        if four_eyes:
            bench.access.set_four_eyes(True)


async def test_every_mutating_route_as_a_viewer_is_403_and_changes_nothing(
    jp_fetch, jp_serverapp, wb_home, monkeypatch
):
    prepare(wb_home)
    name_users(jp_serverapp, monkeypatch, "vic")
    code, me = await call(jp_fetch, "whoami")
    assert code == 200 and me["user"] == "vic" and me["roles"] == ["viewer"], me
    assert me["allowed"] == ["read"]
    before = state(wb_home)
    for parts, body in MUTATIONS:
        code, answer = await call(jp_fetch, *parts, method="POST", body=body)
        assert code == 403, (parts, code, answer)
        assert "vic may not" in answer["error"] and "role" in answer["error"], answer
    assert state(wb_home) == before
    # reading is allowed to a viewer
    code, body = await call(jp_fetch, "models")
    assert code == 200 and len(body["versions"]) == 2


async def test_a_user_without_any_role_cannot_even_read(
    jp_fetch, jp_serverapp, wb_home, monkeypatch
):
    prepare(wb_home)
    name_users(jp_serverapp, monkeypatch, "stranger")
    for parts in (("models",), ("audit",), ("access",), ("experiments",)):
        code, body = await call(jp_fetch, *parts)
        assert code == 403 and "needs the 'viewer' role" in body["error"], (parts, body)
    code, me = await call(jp_fetch, "whoami")  # whoami answers everyone
    assert code == 200 and me["roles"] == [] and me["allowed"] == []


async def test_four_eyes_over_rest(jp_fetch, jp_serverapp, wb_home, monkeypatch):
    prepare(wb_home, four_eyes=True)
    name_users(jp_serverapp, monkeypatch, "alice")  # alice saved policy p
    before = state(wb_home)
    code, body = await call(jp_fetch, "retrains", "1", "approve", method="POST")
    assert code == 403 and "four-eyes" in body["error"], body
    assert state(wb_home) == before


async def test_a_deployments_authorizer_applies_before_the_roles(jp_fetch, jp_serverapp, wb_home):
    """A read-only collaborator set up with Jupyter's Authorizer: every POST is 403 even in an
    open home, GETs still answer."""
    from jupyter_server.auth import Authorizer

    class ReadOnly(Authorizer):
        def is_authorized(self, handler, user, action, resource):
            return action == "read"

    seed(wb_home)
    jp_serverapp.web_app.settings["authorizer"] = ReadOnly(parent=jp_serverapp)
    before = state(wb_home)
    for parts, body in MUTATIONS:
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("workbench", *parts, method="POST", body=json.dumps(body))
        assert err.value.code == 403, parts
    assert state(wb_home) == before
    code, _ = await call(jp_fetch, "models")
    assert code == 200


@pytest.mark.parametrize("bad", [2.9, True, 10**30, "²", "٣", "9" * 5000, -1.5, "1e3", None])
async def test_bad_numbers_are_400_never_500(jp_fetch, wb_home, bad):
    seed(wb_home)
    before = state(wb_home)
    code, body = await call(
        jp_fetch, "models", "cancer", "aliases", method="POST", body={"version": bad}
    )
    assert code == 400 and ("whole number" in body["error"] or "range" in body["error"]), body
    if bad is not None:
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("workbench", "audit", params={"limit": str(bad)})
        assert err.value.code == 400, bad
    assert state(wb_home) == before
