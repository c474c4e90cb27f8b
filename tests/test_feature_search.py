"""Feature specs in searches, bundles and the registry: ``features=`` on search/auto/fit_bundle,
a trial's ``config["features"]`` winning, ``auto(feature_search=True)`` searching specs with the
models, the bundle recording its spec and generated names (old pickles still load), and a
searched trial reproducing from its record. Only the last test runs Ray (one tiny search)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from workbench.exceptions import ConfigError
from workbench.experiments import feature_choices
from workbench.features import FeatureSpec, build_preprocessor, feature_kinds, to_pandas

WORDS = ["late", "parcel", "refund", "order", "box", "window", "call", "door", "price", "today"]


def make_frame(n: int, seed: int) -> pl.DataFrame:
    """Synthetic rows where features matter, with a known signal: the label depends on a
    keyword in free text, a skewed amount (on the log scale, with outliers and nulls), a
    product of two numbers, the hour of a timestamp and a 60-level category."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1)
    when = [start + timedelta(minutes=int(m)) for m in rng.integers(0, 2 * 365 * 24 * 60, n)]
    hour = np.array([w.hour for w in when])
    amount = rng.lognormal(3.0, 1.2, n)
    amount[rng.random(n) < 0.02] *= 1_000  # outliers
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    city_effect = rng.normal(scale=1.0, size=60)
    city = rng.integers(0, 60, n)
    urgent = rng.random(n) < 0.3
    notes = []
    for u in urgent:
        words = list(rng.choice(WORDS, size=8))
        if u:
            words.insert(int(rng.integers(0, 8)), "urgent")
        notes.append(" ".join(words) + f" #{rng.integers(1_000_000)}")
    logit = (
        2.0 * urgent
        + 0.8 * (np.log(amount) - 3.0)
        + 1.2 * x1 * x2
        + 1.0 * ((hour >= 18) | (hour < 2))
        + city_effect[city]
        - 1.3
    )
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    amount_col = [None if rng.random() < 0.05 else float(a) for a in amount]
    return pl.DataFrame(
        {
            "when": when,
            "amount": amount_col,
            "x1": x1,
            "x2": x2,
            "city": [f"c{c:02d}" for c in city],
            "note": notes,
            "label": np.where(y, "yes", "no").tolist(),
        }
    )


@pytest.fixture(scope="module")
def bench_rows(tmp_path_factory):
    """A Workbench (no Ray) holding 300 synthetic rows as ``shop@1``."""
    from workbench.api import Workbench

    bench = Workbench(tmp_path_factory.mktemp("wb"))
    dv = bench.datasets.ingest(make_frame(300, seed=1), name="shop", target="label")
    yield bench, dv
    bench.store.close()


def test_feature_choices_are_distinct_valid_specs_that_fit():
    df = make_frame(200, seed=0)
    kinds = feature_kinds(dict(zip(df.columns, map(str, df.dtypes), strict=True)), "label")
    choices = feature_choices(kinds, df)
    assert list(choices) == ["default", "baseline", "robust", "interactions", "selected"]
    assert choices["default"] == FeatureSpec().to_dict()
    # the baseline saw the rows: the note is text, the amount has nulls (missing flags)
    assert choices["baseline"]["text"] == ["note"] and choices["baseline"]["missing_indicator"]
    assert len({repr(sorted(c.items())) for c in choices.values()}) == len(choices)
    X, y = to_pandas(df, kinds), (df["label"] == "yes").to_numpy()
    widths = {}
    for name, spec in choices.items():
        widths[name] = build_preprocessor(kinds, spec).fit(X, y).transform(X).shape[1]
    assert widths["robust"] > widths["baseline"]  # the outlier flags
    assert widths["interactions"] > widths["baseline"]
    assert widths["selected"] < widths["baseline"]
    # one number: no interactions variant
    assert "interactions" not in feature_choices({"a": "number", "b": "string"})


def test_fit_bundle_records_spec_and_generated_names(bench_rows):
    bench, dv = bench_rows
    spec = FeatureSpec(missing_indicator=True, scale="robust", text=("note",), text_features=16)
    bundle = bench.experiments.fit_bundle(dv, {"family": "logistic_regression"}, features=spec)
    assert bundle.feature_spec == spec.to_dict() == bundle.params["features"]
    names = bundle.feature_names
    assert "amount_missing" in names and "when_hour_sin" in names
    assert sum(n.startswith("note_tfidf_") for n in names) == 16  # hashed TF-IDF, not one-hot
    assert bundle.signature["feature_names"] == names
    assert bundle.pipeline.named_steps["model"].n_features_in_ == len(names)
    # a config's own spec wins over features=
    own = bench.experiments.fit_bundle(
        dv, {"family": "logistic_regression", "features": {"outliers": "quantile"}}, features=spec
    )
    assert own.feature_spec["outliers"] == "quantile" and not own.feature_spec["missing_indicator"]
    assert not any(n.startswith("note_tfidf_") for n in own.feature_names)
    # the default pipeline records no spec, but still its names
    plain = bench.experiments.fit_bundle(dv, {"family": "logistic_regression"})
    assert plain.feature_spec is None and "features" not in plain.params
    assert "amount" in plain.feature_names and "amount_missing" not in plain.feature_names
    # registered: the registry's signature and params carry them
    mv = bench.registry.register("shop", bundle, metrics={})
    got = bench.registry.get("shop", mv.version)
    assert got.signature["feature_names"] == names
    assert got.params["features"]["scale"] == "robust"
    back = bench.registry.load("shop", mv.version)
    assert back.feature_names == names and back.feature_spec == spec.to_dict()


def test_spec_checked_against_the_data_before_anything_runs(bench_rows):
    bench, dv = bench_rows
    with pytest.raises(ConfigError, match="note2|not a feature|column"):
        bench.experiments.fit_bundle(
            dv, {"family": "logistic_regression"}, features={"text": ["note2"]}
        )
    with pytest.raises(ConfigError, match="unknown FeatureSpec option"):
        bench.experiments.fit_bundle(
            dv, {"family": "random_forest"}, features={"scaling": "robust"}
        )
    with pytest.raises(ConfigError, match="takes no feature spec"):
        from workbench.experiments._estimators import make_pipeline

        make_pipeline({"family": "torch_mlp", "features": {}}, {"x": "number"}, seed=0)


def test_old_pickled_bundle_without_the_new_attributes_loads_and_predicts(bench_rows):
    bench, dv = bench_rows
    bundle = bench.experiments.fit_bundle(dv, {"family": "logistic_regression"})
    expected = bundle.feature_names
    # a bundle pickled before the fields existed: its state lacks both keys
    state = dict(bundle.__dict__)
    del state["feature_spec"], state["feature_names"]
    bundle.__dict__.clear()
    bundle.__dict__.update(state)
    old = pickle.loads(pickle.dumps(bundle))
    assert old.feature_spec is None and old.feature_names == expected
    record = {"when": "2025-02-03T21:15:00", "amount": None, "x1": 0.1, "x2": -2.0}
    record |= {"city": "never-seen", "note": "urgent parcel"}
    assert old.predict_records([record])[0] in ("yes", "no")


def test_auto_feature_search_space_and_refusals(bench_rows):
    from ray.tune.search.sample import Categorical

    bench, dv = bench_rows
    opts = bench.experiments._auto_options(
        dv,
        name="a",
        task="auto",
        num_samples=2,
        time_budget_s=None,
        seed=0,
        progress=None,
        resources=None,
        feature_search=True,
    )
    domain = opts["space"]["features"]
    assert isinstance(domain, Categorical)
    df = bench.datasets.load(dv)
    kinds = feature_kinds(dv.schema, dv.target)
    assert domain.categories == list(feature_choices(kinds, df).values())
    fixed = bench.experiments._auto_options(
        dv,
        name="a",
        task="auto",
        num_samples=2,
        time_budget_s=None,
        seed=0,
        progress=None,
        resources=None,
        features={"scale": "robust"},
    )
    assert "features" not in fixed["space"] and fixed["features"] == {"scale": "robust"}
    with pytest.raises(ConfigError, match="not both"):
        bench.experiments.auto(dv, name="x", features={}, feature_search=True)


def test_search_refuses_a_bad_spec_before_recording_anything(bench_rows):
    bench, dv = bench_rows
    before = len(bench.experiments.list())
    with pytest.raises(ConfigError, match="city"):
        bench.experiments.search(dv, name="bad", features={"ratios": [["city", "x1"]]})
    assert len(bench.experiments.list()) == before


@pytest.mark.ray
def test_search_with_fixed_features_records_them_in_every_trial(bench_rows, ray_cluster):
    bench, dv = bench_rows
    spec = FeatureSpec(outliers="quantile", text=("note",), text_features=8)
    result = bench.experiments.search(
        dv,
        name="fixed-spec",
        space={"family": "logistic_regression", "C": 1.0},
        features=spec,
        folds=2,
        num_samples=1,
        progress=None,
    )
    (trial,) = bench.experiments.trials(result.experiment_id)
    assert trial["config"]["features"] == spec.to_dict() == result.best_config["features"]


@pytest.mark.ray
def test_feature_search_trials_carry_specs_reproduce_and_refit(bench_rows, ray_cluster):
    """One automatic search with features in the space (3 families x 1 sample, 5 folds on 300
    rows): every trial's config holds one of the choices, the best trial reproduces from its
    record, and register_best's bundle uses the best trial's spec."""
    bench, dv = bench_rows
    parts = bench.datasets.split(dv, {"train": 0.8, "holdout": 0.2}, seed=0)
    result = bench.experiments.auto(
        parts["train"], name="shop-auto", num_samples=1, seed=3, feature_search=True, progress=None
    )
    df = bench.datasets.load(parts["train"])
    choices = list(feature_choices(feature_kinds(dv.schema, dv.target), df.head(5_000)).values())
    trials = bench.experiments.trials(result.experiment_id)
    assert len(trials) == 3
    assert all(t["config"]["features"] in choices for t in trials)
    again = bench.experiments.reproduce(result.experiment_id, result.best_trial_id)
    assert again["match"], again
    mv = bench.register_best(
        result, model="shop-fs", train=parts["train"], holdout=parts["holdout"]
    )
    bundle = bench.registry.load("shop-fs", mv.version)
    assert bundle.feature_spec == result.best_config["features"]
    assert bench.registry.get("shop-fs", mv.version).signature["feature_names"] == (
        bundle.feature_names
    )
