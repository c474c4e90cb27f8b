"""Helpers for the serving protocol tests: register bundles, start Serve on a free loopback port, deploy."""

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


def starlette_request(body: Any, headers: Any = ()) -> Any:
    """A POST ``/d/predict`` request with a JSON body, for calling a Router in-process."""
    import json

    from starlette.requests import Request

    raw = json.dumps(body).encode()
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        done = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/d/predict",
        "root_path": "/d",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in headers],
        ],
    }
    return Request(scope, receive)


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


def serve_env(tmp_path_factory, name: str, bundles: list[Any], **serving_kwargs: Any) -> Any:
    """A store with ``bundles`` registered as versions 1..n of model ``name``, and Serve on a free port."""
    from ray import serve

    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.runtime import free_port
    from workbench.serving import Serving

    settings = Settings.from_env(tmp_path_factory.mktemp(f"serve-{name}") / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
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
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serving = Serving(store, artifacts, settings, http_port=port, **serving_kwargs)
    return SimpleNamespace(
        settings=settings, store=store, artifacts=artifacts, serving=serving, port=port
    )


def close_env(env: Any) -> None:
    from ray import serve

    from workbench.serving._recorder import kill_recorder

    env.serving.close()
    with contextlib.suppress(Exception):
        serve.shutdown()
    with contextlib.suppress(Exception):
        kill_recorder(env.settings.db_path)
    env.store.close()


@contextlib.contextmanager
def champion_env(tmp_path_factory, name: str, *, versions: int, reason: str) -> Iterator[Any]:
    """``serve_env`` with ``cancer_bundle`` as versions 1..``versions`` of model ``name``, v1 its
    ``champion`` (moved by "tester" with ``reason``) and ``env.records``; closed on exit."""
    bundle, records = cancer_bundle()
    env = serve_env(tmp_path_factory, name, [bundle] * versions)
    env.records = records
    env.store.models.set_alias(name, "champion", 1, actor="tester", reason=reason)
    try:
        yield env
    finally:
        close_env(env)
