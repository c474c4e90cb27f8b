"""REST handlers of the workbench server extension: thin adapters over the public ``workbench`` API.

Every handler is a Jupyter ``APIHandler`` (so a cookie-authenticated POST without the ``_xsrf``
token is refused), every method is ``@tornado.web.authenticated`` and ``@authorized`` on the
``workbench`` resource (so a deployment's ``Authorizer``, such as JupyterHub's scopes, applies:
``read`` for GET, ``write`` for POST), and every route is in :data:`ROUTES`, the one route table,
described in ``openapi.yaml``. Each call runs as the Jupyter user (:func:`workbench.governance.
acting_as`), so the library's roles decide what it may do and the audit log records who did it;
with Jupyter Server's own single-user identity providers (token or password) whoever holds the
server's token is its owner, the OS user running the server. No SQL, Ray or Serve call sits
here: each handler calls one public method of :class:`workbench.Workbench` in a worker thread and
turns ``WorkbenchError`` into HTTP (``PermissionDenied`` is 403).
"""

from __future__ import annotations

import contextvars
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from jupyterlab_workbench._version import API_VERSION, __version__
from workbench._identity import acting_as, os_user
from workbench._numbers import is_int_text, parse_int
from workbench.runtime import jsonable

__all__ = ["ROUTES", "NAMESPACE", "WorkbenchService", "setup_handlers"]

NAMESPACE = "workbench"


class WorkbenchService:
    """One ``Workbench`` for the server, created on first use in the worker thread that uses it.

    Calls run one at a time in that thread: the store is SQLite, and a traffic change waits for the
    router; the server's event loop never blocks on either.
    """

    def __init__(self, home: str | None = None):
        self.home = home
        self._bench: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-api")
        self._lock = threading.Lock()

    @property
    def bench(self) -> Any:
        with self._lock:
            if self._bench is None:
                from workbench import Workbench

                self._bench = Workbench(self.home)
            return self._bench

    def warm(self) -> None:
        """Import the workbench API in the worker thread now (~1 s here), so the panel's first
        request does not wait for it. Nothing is opened or created until a request comes."""
        import importlib

        self._executor.submit(importlib.import_module, "workbench.api")

    async def call(self, fn: Any, *args: Any, user: str | None = None, **kwargs: Any) -> Any:
        """Run ``fn(bench, ...)`` in the worker thread, as ``user`` when given."""

        def run() -> Any:
            if user is None:
                return fn(self.bench, *args, **kwargs)
            with acting_as(user, "jupyter"):
                return fn(self.bench, *args, **kwargs)

        context = contextvars.copy_context()
        return await IOLoop.current().run_in_executor(self._executor, context.run, run)

    def close(self) -> None:
        if self._bench is not None:
            self._bench.close()
        self._executor.shutdown(wait=False)


def _json_body(payload: Any) -> str:
    """The response body: JSON without NaN/inf (the panel shows a dash) or binary columns."""
    body = jsonable(payload, default=lambda v: None if isinstance(v, bytes) else v, finite=True)
    return json.dumps(body, default=str)


#: Jupyter Server's own identity providers: one person (the token's holder) owns the server.
_SINGLE_USER_PROVIDERS = (IdentityProvider, PasswordIdentityProvider)


class BaseHandler(APIHandler):
    """JSON in, JSON out; ``WorkbenchError`` becomes 400/403/404/409 with ``{"error": message}``."""

    auth_resource = NAMESPACE
    #: GET routes need a role (any) when roles are enforced; ``whoami`` answers everyone.
    reads_need_role = True

    @property
    def service(self) -> WorkbenchService:
        return self.settings["workbench_service"]

    @property
    def actor(self) -> str:
        """Who this request acts as: the user the ``IdentityProvider`` names (JupyterHub's and
        other multi-user providers), or the OS user running the server for Jupyter Server's own
        token/password providers, whose anonymous users are new random names per script request."""
        if type(self.identity_provider) in _SINGLE_USER_PROVIDERS:
            return os_user()
        user = self.current_user
        return getattr(user, "username", None) or getattr(user, "name", None) or str(user)

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise tornado.web.HTTPError(400, reason=f"body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="body must be a JSON object")
        return data

    def send(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(_json_body(payload))

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from workbench.exceptions import (
            ConfigError,
            DatasetValidationError,
            InvalidRequestError,
            NotFoundError,
            PermissionDenied,
            WorkbenchError,
        )

        if self.request.method == "GET" and self.reads_need_role:
            # reading through the server needs a role too (any role reads) when roles are enforced
            inner = fn

            def fn(b: Any, *a: Any, **kw: Any) -> Any:
                b.access.require("read")
                return inner(b, *a, **kw)

        try:
            return await self.service.call(fn, *args, user=self.actor, **kwargs)
        except PermissionDenied as exc:
            raise _Error(403, str(exc)) from exc
        except NotFoundError as exc:
            raise _Error(404, str(exc)) from exc
        except (ConfigError, InvalidRequestError, DatasetValidationError, ValueError) as exc:
            raise _Error(400, str(exc)) from exc
        except WorkbenchError as exc:
            raise _Error(409, str(exc)) from exc

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, _Error):
            message = exc.message
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.reason or exc.log_message or self._reason
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "status": status_code}))


class _Error(tornado.web.HTTPError):
    def __init__(self, status: int, message: str):
        super().__init__(status, reason=message.splitlines()[0][:200] if message else None)
        self.message = message


def _int(value: Any, what: str) -> int:
    """A whole number from a path, a query or a JSON body: ASCII digits or a JSON integer only
    (``true``, ``2.9``, ``²`` and 19+ digits are 400, never 500)."""
    try:
        return parse_int(value, what)
    except ValueError as exc:
        raise _Error(400, str(exc)) from None


# ---------------------------------------------------------------------------- handlers
class VersionHandler(BaseHandler):
    """The extension's version: the panel calls it first and says "server extension missing" on 404."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from workbench import __version__ as wb_version

        self.send(
            {
                "extension": __version__,
                "api": API_VERSION,
                "workbench": wb_version,
            }
        )


class ExperimentsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.send({"experiments": await self.call(lambda b: b.experiments.list())})


class TrialsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, experiment_id: str) -> None:
        eid = _int(experiment_id, "experiment id")
        rows = await self.call(lambda b: b.experiments.trials(eid))
        self.send({"experiment_id": eid, "trials": rows})


class ModelsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.send({"versions": await self.call(lambda b: b.registry.list())})


class AliasesHandler(BaseHandler):
    """GET: the model's alias history. POST ``{"alias", "version", "reason"}``: move an alias (promote)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, model: str) -> None:
        self.send({"model": model, "history": await self.call(lambda b: b.registry.history(model))})

    @tornado.web.authenticated
    @authorized
    async def post(self, model: str) -> None:
        data = self.body()
        alias = data.get("alias") or "champion"
        if not isinstance(alias, str):
            raise _Error(400, "alias must be a string such as 'champion'")
        version = _int(data.get("version"), "version")
        reason = str(data.get("reason") or "set from the JupyterLab panel")
        mv = await self.call(lambda b: b.registry.set_alias(model, alias, version, reason=reason))
        self.send({"model_version": mv})


def _ref(version: str) -> int | str:
    """A version in a path: its number, or an alias such as ``champion``."""
    return int(version) if is_int_text(version) else version


class EvaluationHandler(BaseHandler):
    """A version's newest recorded evaluation (``bench.registry.evaluation``: metrics, details,
    fairness, cv, gate), ``null`` when it has none; 404 for an unknown model or version."""

    @tornado.web.authenticated
    @authorized
    async def get(self, model: str, version: str) -> None:
        ref = _ref(version)

        def read(b: Any) -> dict[str, Any]:
            mv = b.registry.get(model, ref)
            return {
                "model": model,
                "version": mv.version,
                "evaluation": b.registry.evaluation(model, mv.version),
            }

        self.send(await self.call(read))


class ReportHandler(BaseHandler):
    """The version's HTML evaluation report (``bench.registry.report``), as a page a browser tab
    opens: its inline styles are allowed, nothing else is (no script, no request, sandboxed)."""

    @property
    def content_security_policy(self) -> str:
        return "frame-ancestors 'self'; default-src 'none'; style-src 'unsafe-inline'; sandbox"

    @tornado.web.authenticated
    @authorized
    async def get(self, model: str, version: str) -> None:
        ref = _ref(version)
        html = await self.call(lambda b: b.registry.report(model, ref))
        self.set_status(200)
        self.finish(html, set_content_type="text/html; charset=UTF-8")


class DeploymentsHandler(BaseHandler):
    """Deployments with their recorded weights and ``rollback_to``: the version a rollback would
    send all traffic to now (``serving.last_known_good``, read from the store), or null."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def read(b: Any) -> list[dict[str, Any]]:
            from workbench.exceptions import NotFoundError

            out = []
            for d in b.deployments():
                try:
                    target = b.serving.last_known_good(d["name"])
                except NotFoundError:  # no traffic recorded yet: nothing to roll back to
                    target = None
                out.append({**d, "rollback_to": target})
            return out

        self.send({"deployments": await self.call(read)})


class TrafficHandler(BaseHandler):
    """POST ``{"weights": {"1": 0.9, "2": 0.1}, "reason"}``: split traffic between versions, in place.

    The weights go to ``serving.set_traffic`` as sent: it refuses bad ones (``ConfigError``, so 400)
    before Serve is touched."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        data = self.body()
        weights = data.get("weights")
        reason = str(data.get("reason") or "set from the JupyterLab panel")
        served = await self.call(lambda b: b.serving.set_traffic(name, weights, reason=reason))
        self.send({"deployment": name, "weights": served})


class RollbackHandler(BaseHandler):
    """POST ``{"to_version": null, "reason"}``: all traffic back to the last known good version."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        data = self.body()
        to = data.get("to_version")
        to_version = None if to is None else _int(to, "to_version")
        reason = str(data.get("reason") or "rollback from the JupyterLab panel")
        served = await self.call(
            lambda b: b.serving.rollback(name, to_version=to_version, reason=reason)
        )
        self.send({"deployment": name, "weights": served})


#: Windows (drift results) per monitor sent to the panel, newest first.
RESULTS_PER_MONITOR = 10


class MonitorsHandler(BaseHandler):
    """Monitors, the newest windows each one tested (verdict, p-value, threshold), and alerts, each
    with the retraining its window started and that job's triage (the monitor widget's view)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from workbench.ui._state import alerts_view

        def read(b: Any) -> dict[str, Any]:
            monitors = b.monitoring.list()
            results = {
                m["name"]: b.monitoring.results(m["name"], limit=RESULTS_PER_MONITOR)[::-1]
                for m in monitors
            }
            return {
                "monitors": monitors,
                "results": results,
                "alerts": alerts_view(b.monitoring, limit=50),
            }

        self.send(await self.call(read))


class RetrainsHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        jobs, pending = await self.call(lambda b: (b.automation.jobs(), b.automation.pending()))
        self.send({"jobs": jobs, "pending": pending})


class RetrainAnswerHandler(BaseHandler):
    """POST ``{"reason"}`` to ``.../approve`` or ``.../reject`` a retraining waiting for a person."""

    @tornado.web.authenticated
    @authorized
    async def post(self, job_id: str, answer: str) -> None:
        jid = _int(job_id, "job id")
        reason = str(self.body().get("reason") or f"{answer} from the JupyterLab panel")
        if answer == "approve":
            job = await self.call(lambda b: b.automation.approve(jid, reason=reason))
        else:
            job = await self.call(lambda b: b.automation.reject(jid, reason=reason))
        self.send({"job": job})


class LineageHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, model: str, version: str) -> None:
        ref = _ref(version)

        def read(b: Any) -> dict[str, Any]:
            return {"chain": b.lineage(model, ref), "text": b.lineage_text(model, ref)}

        self.send({"model": model, "version": ref, **(await self.call(read))})


class AuditHandler(BaseHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        limit = _int(self.get_argument("limit", "100"), "limit")
        if not 0 < limit <= 10_000:
            raise _Error(400, f"limit must be in 1..10000, got {limit}")
        self.send({"entries": await self.call(lambda b: b.audit_log(limit))})


class AuditVerifyHandler(BaseHandler):
    """The audit log's hash chain checked (``bench.audit.verify()``): ``ok``, ``checked``,
    ``first_bad_id``, ``problem``, ``keyed``, ``head``."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        import dataclasses

        self.send(await self.call(lambda b: dataclasses.asdict(b.audit.verify())))


class DatasetsHandler(BaseHandler):
    """Every dataset version (``bench.datasets.list()``), oldest first, without reports or data."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        rows = await self.call(lambda b: [dv.summary() for dv in b.datasets.list()])
        self.send({"versions": rows})


class DatasetReportHandler(BaseHandler):
    """One version's columns and validation report (``bench.datasets.report``), every key present."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        v = _int(version, "version")

        def read(b: Any) -> dict[str, Any]:
            dv = b.datasets.get(name, v)
            return {**dv.summary(), "schema": dv.schema, "report": b.datasets.report(dv)}

        self.send(await self.call(read))


class DatasetDiffHandler(BaseHandler):
    """``?a=1&b=2&key=id&examples=5``: what changed from version a to b (``bench.datasets.diff``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        a = _int(self.get_argument("a", None), "a")
        b_version = _int(self.get_argument("b", None), "b")
        examples = _int(self.get_argument("examples", "5"), "examples")
        if not 0 <= examples <= 100:
            raise _Error(400, f"examples must be in 0..100, got {examples}")
        key = [k.strip() for k in self.get_argument("key", "").split(",") if k.strip()] or None

        def read(b: Any) -> dict[str, Any]:
            d = b.datasets.diff(f"{name}@{a}", f"{name}@{b_version}", key=key, examples=examples)
            return {"diff": d.to_dict(), "text": str(d)}

        self.send(await self.call(read))


class WhoamiHandler(BaseHandler):
    """Who the panel acts as, their roles and the actions they may take now
    (``bench.whoami()``): the panel shows only the buttons that will work."""

    reads_need_role = False

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.send(await self.call(lambda b: b.whoami()))


class AccessHandler(BaseHandler):
    """GET: every role grant. POST ``{"user", "role", "grant": true|false}``: grant or revoke a
    role (admin only; ``bench.access.grant`` / ``revoke``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.send({"grants": await self.call(lambda b: b.access.grants())})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        data = self.body()
        user, role, grant = data.get("user"), data.get("role"), data.get("grant", True)
        if not isinstance(user, str) or not isinstance(role, str) or not isinstance(grant, bool):
            raise _Error(400, 'send {"user": "ada", "role": "deployer", "grant": true}')
        changed = await self.call(
            lambda b: b.access.grant(user, role) if grant else b.access.revoke(user, role)
        )
        self.send({"user": user, "role": role, "grant": grant, "changed": changed})


#: The one route table: (path under ``/workbench/``, handler). ``openapi.yaml`` describes each.
ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"version", VersionHandler),
    (r"experiments", ExperimentsHandler),
    (r"experiments/(\d+)/trials", TrialsHandler),
    (r"models", ModelsHandler),
    (r"models/([^/]+)/aliases", AliasesHandler),
    (r"models/([^/]+)/versions/([^/]+)/evaluation", EvaluationHandler),
    (r"models/([^/]+)/versions/([^/]+)/report", ReportHandler),
    (r"deployments", DeploymentsHandler),
    (r"deployments/([^/]+)/traffic", TrafficHandler),
    (r"deployments/([^/]+)/rollback", RollbackHandler),
    (r"monitors", MonitorsHandler),
    (r"retrains", RetrainsHandler),
    (r"retrains/(\d+)/(approve|reject)", RetrainAnswerHandler),
    (r"lineage/([^/]+)/([^/]+)", LineageHandler),
    (r"datasets", DatasetsHandler),
    (r"datasets/([^/]+)/versions/(\d+)", DatasetReportHandler),
    (r"datasets/([^/]+)/diff", DatasetDiffHandler),
    (r"audit", AuditHandler),
    (r"audit/verify", AuditVerifyHandler),
    (r"whoami", WhoamiHandler),
    (r"access", AccessHandler),
]


def setup_handlers(web_app: Any, *, home: str | None = None) -> WorkbenchService:
    """Add :data:`ROUTES` under ``<base_url>workbench/`` to the Tornado app; returns the service."""
    service = WorkbenchService(home)
    web_app.settings["workbench_service"] = service
    service.warm()
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(
        ".*$", [(url_path_join(base, pattern) + "/?$", handler) for pattern, handler in ROUTES]
    )
    return service
