"""Train/serve parity of a non-default feature pipeline over real HTTP on the session's Ray Serve.

A bundle on numbers, a 60-level category, a datetime and a free-text column, with a spec that
uses most steps (mean imputation with flags, robust scaling, IQR clipping with flags, an
IsolationForest score, target encoding, one-hot with a floor, interactions, a ratio, datetime
parts, hashed TF-IDF, variance selection), is deployed once. Seeded random records with nulls,
unseen categories, out-of-range numbers and new (also time-zoned) datetimes go over loopback
HTTP, one request per batch: the answers equal ``bundle.predict_records`` in-process and the
offline ``predict_frame`` of the same rows, and the fitted preprocessing (unpickled, as serving
loads it) transforms both inputs identically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from tests.test_feature_search import WORDS, make_frame

pytestmark = pytest.mark.ray

NAME = "features-parity"
BATCHES, PER_BATCH = 3, 40

SPEC = {
    "impute": "mean",
    "missing_indicator": True,
    "scale": "robust",
    "min_frequency": 0.02,
    "column_encode": {"city": "target"},
    "outliers": "iqr",
    "outlier_flags": True,
    "isolation_forest": True,
    "interactions": ["x1", "x2"],
    "ratios": [["amount", "x2"]],
    "text": ["note"],
    "text_features": 32,
    "select": "variance",
}


def _bundle():
    from workbench.experiments._estimators import make_pipeline
    from workbench.features import feature_kinds, to_pandas
    from workbench.registry import ModelBundle

    df = make_frame(400, seed=7)
    kinds = feature_kinds(dict(zip(df.columns, map(str, df.dtypes), strict=True)), "label")
    X, y = to_pandas(df, kinds), (df["label"] == "yes").to_numpy().astype(int)
    pipe = make_pipeline({"family": "logistic_regression", "features": SPEC}, kinds, seed=0)
    pipe.fit(X, y)
    return ModelBundle(pipe, kinds, "label", ["no", "yes"], feature_spec=SPEC)


def _records(rng: np.random.Generator, n: int) -> list[dict]:
    """Random records: about one value in six null, unseen cities and words, numbers far outside
    the training range, datetimes before, inside and after it, some with a UTC offset."""

    def maybe(value):
        return None if rng.random() < 1 / 6 else value

    out = []
    for _ in range(n):
        year = int(rng.choice([1990, 2024, 2025, 2031]))
        stamp = f"{year}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}T{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00"
        if rng.random() < 0.3:
            stamp += str(rng.choice(["+02:00", "-05:30", "Z"]))
        words = list(
            rng.choice([*WORDS, "urgent", "zebra", "quantum"], size=int(rng.integers(0, 9)))
        )
        out.append(
            {
                "when": maybe(stamp),
                "amount": maybe(float(rng.choice([rng.lognormal(3, 1.2), 1e9, -500.0, 0.0]))),
                "x1": maybe(float(rng.normal(scale=rng.choice([1.0, 40.0])))),
                "x2": maybe(float(rng.normal(scale=rng.choice([1.0, 40.0])))),
                "city": maybe(str(rng.choice(["c03", "c17", "c59", "zz-new", "c99"]))),
                "note": maybe(" ".join(words)),
            }
        )
    return out


def _offline_frame(records: list[dict], kinds: dict[str, str]):
    """The rows as a polars table read offline (datetimes parsed, aware ones in UTC, as the
    docs say training reads them), through the same ``to_pandas`` as training data."""
    from workbench.features import to_pandas

    def parse(s):
        if s is None:
            return None
        when = datetime.fromisoformat(s)
        return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when

    columns = {c: [r[c] for r in records] for c in kinds}
    columns["when"] = [parse(s) for s in columns["when"]]
    schema = {"when": pl.Datetime("us"), "city": pl.String, "note": pl.String}
    schema |= {c: pl.Float64 for c in ("amount", "x1", "x2")}
    return to_pandas(pl.DataFrame(columns, schema=schema), kinds)


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    import httpx

    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving
    from workbench.serving._recorder import kill_recorder

    settings = Settings.from_env(tmp_path_factory.mktemp("features-parity") / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    bundle = _bundle()
    digest = artifacts.put_object(bundle)
    store.models.add_version(
        "features",
        task="classification",
        artifact_hash=digest,
        params={"family": "logistic_regression", "features": SPEC},
        metrics={},
        signature=bundle.signature,
        experiment_id=None,
        trial_id=None,
        dataset_version_id=None,
    )
    serving = Serving(store, artifacts, settings, http_port=serve_apps.port)
    info = serving.deploy("features", 1, name=NAME, actor="tester", reason="parity")
    assert info["url"].startswith("http://127.0.0.1:")  # loopback only
    client = httpx.Client(base_url=info["url"], timeout=60)
    try:
        yield SimpleNamespace(
            bundle=bundle, served=artifacts.get_object(digest), client=client, store=store
        )
    finally:
        client.close()
        serving.close()
        serve_apps.delete()
        kill_recorder(settings.db_path)
        store.close()


def test_http_predictions_equal_in_process_and_offline_on_hostile_records(env):
    from workbench.features import coerce_records

    bundle, served = env.bundle, env.served
    kinds = bundle.features
    assert bundle.signature["feature_names"] == served.feature_names
    names = served.feature_names
    generated = {"amount_missing", "x1_clipped", "isolation_score", "x1*x2", "amount/x2"}
    assert generated | {"city", "when_hour_sin", "note_tfidf_31"} <= set(names)
    rng = np.random.default_rng(13)
    seen = set()
    for _ in range(BATCHES):
        batch = _records(rng, PER_BATCH)
        resp = env.client.post("/predict", json={"records": batch})
        assert resp.status_code == 200, resp.text
        over_http = resp.json()["predictions"]
        assert over_http == bundle.predict_records(batch)
        offline = _offline_frame(batch, kinds)
        assert over_http == bundle.predict_frame(offline)
        # the fitted steps replay identically: the request's frame and the offline frame give
        # the same features and probabilities, in the bundle as unpickled for serving
        online = coerce_records(batch, kinds, allow_missing=True)
        pre = served.pipeline[:-1]
        a, b = pre.transform(online), pre.transform(offline)
        assert a.shape == (PER_BATCH, len(names))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(
            served.pipeline.predict_proba(online), bundle.pipeline.predict_proba(offline)
        )
        seen.update(over_http)
    assert seen == {"no", "yes"}  # parity on both answers, not on a constant model
