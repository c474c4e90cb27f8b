"""Helpers for the serving tests: bundles, the session's Serve shared by modules, an in-process router.

Serve runs once per session (``serve_port`` / ``serve_apps`` in conftest.py); a module deploys
its own apps on it and :class:`ServeApps` deletes them when the module ends. Request, validation
and codec cases run on :class:`LocalRouter`: the real ``Router`` called in-process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any


def cancer_bundle(
    estimator: Any = None, *, broken: bool = False
) -> tuple[Any, list[dict[str, float]]]:
    """A model of scikit-learn's breast-cancer data (30 numbers → 'malignant'/'benign').

    ``estimator`` (default ``LogisticRegression(max_iter=1000)``) is fitted after the
    workbench preprocessor; ``broken=True`` gives a model fitted on 5 of the 30
    preprocessed columns, whose ``predict`` raises ValueError on every request.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor
    from workbench.registry import ModelBundle

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.to_numpy()
    kinds = {c: "number" for c in X.columns}
    pre = build_preprocessor(kinds)
    if broken:
        pre.fit(X)
        model = LogisticRegression(max_iter=500).fit(pre.transform(X)[:, :5], y)
        pipe = Pipeline([("preprocess", pre), ("model", model)])
    else:
        est = estimator if estimator is not None else LogisticRegression(max_iter=1000)
        pipe = Pipeline([("preprocess", pre), ("model", est)]).fit(X, y)
    bundle = ModelBundle(
        pipeline=pipe,
        features=kinds,
        target="diagnosis",
        classes=[str(c) for c in data.target_names],
    )
    records = [{c: float(v) for c, v in row.items()} for row in X.to_dict(orient="records")]
    return bundle, records


def cancer_labels() -> list[str]:
    """The true class of each record :func:`cancer_bundle` returns, in the same order."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return [str(data.target_names[i]) for i in data.target]


def starlette_request(
    body: Any = None,
    headers: Any = (),
    *,
    method: str = "POST",
    path: str = "/predict",
    content: bytes | None = None,
) -> Any:
    """A request to ``/d<path>`` (root path ``/d``) with a JSON ``body`` (or raw ``content``), for
    calling a Router in-process; ``headers`` are (name, value) pairs."""
    import json

    from starlette.requests import Request

    raw = content if content is not None else b"" if body is None else json.dumps(body).encode()
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        done = True
        return {"type": "http.request", "body": raw, "more_body": False}

    given = [(k.lower().encode(), v.encode()) for k, v in headers]
    names = {k for k, _ in given}
    scope = {
        "type": "http",
        "method": method,
        "path": "/d" + path,
        "root_path": "/d",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "headers": [
            *([(b"content-type", b"application/json")] if b"content-type" not in names else []),
            (b"content-length", str(len(raw)).encode()),
            *given,
        ],
    }
    return Request(scope, receive)


class LocalRouter:
    """The real ``Router`` (Serve's decorator unwrapped) over a real artifact store, called in-process.

    ``bundles`` (a list: versions 1..n, or ``{version: bundle}``) are configured through the
    router's real ``reconfigure`` as deployment ``deployment`` with ``weights`` (default all on the
    lowest version) and ``config`` on top (``token_sha256``, ``non_finite``, ``max_body_bytes``...),
    as ``Serving.deploy`` configures a replica. :meth:`request` sends one request through the
    router's real ``__call__`` (routes, auth, codecs, validation, the model) and returns an
    ``httpx.Response``, in milliseconds instead of a deploy and a round trip through Serve's proxy.
    The request-log rows stay in ``.router._buffer``: no recorder (the HTTP end-to-end tests check
    that rows reach the store).
    """

    def __init__(
        self,
        root: Any,
        bundles: Any,
        *,
        deployment: str = "d",
        weights: dict[int, float] | None = None,
        **config: Any,
    ):
        from pathlib import Path

        from ray import serve  # noqa: F401  (the router module needs Serve's decorator)

        from workbench.lineage import ArtifactStore
        from workbench.serving._router import Router

        class _Router(Router.func_or_class):  # type: ignore[misc,name-defined]
            def _ensure_flusher(self) -> None:  # nothing ships rows to a recorder here
                pass

            def __del__(self) -> None:  # Serve awaits the async __del__; nothing to flush
                pass

        root = Path(root)
        artifacts = ArtifactStore(root / "artifacts")
        versions = dict(bundles) if isinstance(bundles, dict) else dict(enumerate(bundles, 1))
        weights = weights or {min(versions): 1.0}
        self.deployment = deployment
        self.router = _Router()
        self.router.reconfigure(
            {
                "deployment": deployment,
                "db_path": str(root / "lineage.db"),
                "artifacts_dir": str(root / "artifacts"),
                "versions": {
                    str(v): {
                        "artifact": artifacts.put_object(b),
                        "model_version_id": 100 + v,
                        "weight": weights.get(v, 0.0),
                    }
                    for v, b in versions.items()
                },
                **config,
            }
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """``method path`` (relative to the deployment's prefix, e.g. ``/predict``); an ``httpx.Response``."""
        import asyncio

        import httpx

        request = starlette_request(
            json, list((headers or {}).items()), method=method, path=path, content=content
        )
        resp = asyncio.run(self.router(request))
        return httpx.Response(resp.status_code, headers=resp.headers.raw, content=resp.body)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)


def mixed_bundle() -> tuple[Any, list[dict[str, Any]]]:
    """A regression on a number, a string and a boolean feature whose prediction is NaN for very negative x.

    The target transform's inverse is ``log``: where the linear model predicts a
    negative value (x far below the training range) the prediction is NaN, as a
    real model with a log-target can do in production.
    """
    import numpy as np
    import pandas as pd
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor
    from workbench.registry import ModelBundle

    kinds = {"x": "number", "colour": "string", "flag": "boolean"}
    rng = np.random.default_rng(0)
    n = 200
    X = pd.DataFrame(
        {
            "x": rng.uniform(0, 10, n),
            "colour": rng.choice(["red", "green", "blue"], n).astype(object),
            "flag": rng.choice([True, False], n).astype(object),
        }
    )
    y = X["x"] + (X["colour"] == "red") * 2 + X["flag"].astype(float)
    model = TransformedTargetRegressor(
        regressor=LinearRegression(), func=np.exp, inverse_func=np.log, check_inverse=False
    )
    pipe = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", model)]).fit(X, y)
    bundle = ModelBundle(pipeline=pipe, features=kinds, target="y", classes=[], task="regression")
    records = [
        {"x": float(x), "colour": str(c), "flag": bool(f)}
        for x, c, f in zip(X["x"][:20], X["colour"][:20], X["flag"][:20], strict=True)
        if x > 5  # far from where the log-target model turns NaN
    ]
    return bundle, records


class ServeApps:
    """The session's Serve as one test module sees it: ``port``, and :meth:`delete` for its apps."""

    def __init__(self, port: int):
        self.port = port

    def delete(self, timeout_s: float = 120.0) -> None:
        """Delete every app running in Serve (the module's own: modules run one after another)
        and wait until they are gone, so the next module finds the cluster's CPUs free."""
        import time

        from ray import serve

        names = list(serve.status().applications)
        for name in names:
            serve.delete(name, _blocking=False)
        deadline = time.monotonic() + timeout_s
        while serve.status().applications:
            assert time.monotonic() < deadline, (
                f"Serve apps not deleted: {list(serve.status().applications)}"
            )
            time.sleep(0.2)


def register_bundles(store: Any, artifacts: Any, name: str, bundles: list[Any]) -> None:
    """Register ``bundles`` as the next versions of model ``name``: bytes in ``artifacts``, rows
    in ``store``, with no experiment, trial or dataset behind them."""
    for bundle in bundles:
        store.models.add_version(
            name,
            task=bundle.task,
            artifact_hash=artifacts.put_object(bundle),
            params={},
            metrics={},
            signature=bundle.signature,
            experiment_id=None,
            trial_id=None,
            dataset_version_id=None,
        )


def serve_env(
    tmp_path_factory, name: str, bundles: list[Any], *, apps: ServeApps, **serving_kwargs: Any
) -> Any:
    """A store with ``bundles`` registered as versions 1..n of model ``name``, and a ``Serving`` on
    the session's Serve (``apps``, the ``serve_apps`` fixture)."""
    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving

    settings = Settings.from_env(tmp_path_factory.mktemp(f"serve-{name}") / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    register_bundles(store, artifacts, name, bundles)
    serving = Serving(store, artifacts, settings, http_port=apps.port, **serving_kwargs)
    return SimpleNamespace(
        settings=settings,
        store=store,
        artifacts=artifacts,
        serving=serving,
        port=apps.port,
        apps=apps,
    )


def close_env(env: Any) -> None:
    """Delete the module's apps (their routers flush their request logs on the way out), then stop
    the store's request-log recorder and close the store; Serve keeps running for the next module."""
    from workbench.serving._recorder import kill_recorder

    env.serving.close()
    try:
        env.apps.delete()
    finally:
        with contextlib.suppress(Exception):
            kill_recorder(env.settings.db_path)
        env.store.close()


@contextlib.contextmanager
def champion_env(
    tmp_path_factory, name: str, *, versions: int, reason: str, apps: ServeApps
) -> Iterator[Any]:
    """``serve_env`` with ``cancer_bundle`` as versions 1..``versions`` of model ``name``, v1 its
    ``champion`` (moved by "tester" with ``reason``) and ``env.records``; closed on exit."""
    bundle, records = cancer_bundle()
    env = serve_env(tmp_path_factory, name, [bundle] * versions, apps=apps)
    env.records = records
    env.store.models.set_alias(name, "champion", 1, actor="tester", reason=reason)
    try:
        yield env
    finally:
        close_env(env)
