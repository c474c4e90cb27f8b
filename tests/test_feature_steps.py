"""Feature steps of a FeatureSpec: each step's values on small known frames, fitted once and replayed
identically after pickling, the spec's JSON round trip and its refusals. No Ray."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pytest

from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.features import (
    FeatureSpec,
    build_preprocessor,
    coerce_records,
    feature_kinds,
    feature_names,
    to_pandas,
)


def _fit(kinds, spec, X, y=None):
    pre = build_preprocessor(kinds, spec)
    pre.fit(X, y)
    return pre, feature_names(pre)


def _col(pre, names, X, name):
    return pre.transform(X)[:, names.index(name)]


# --- numbers: imputation, indicators, scaling, outliers ------------------------------------------

NUM = {"x": "number"}
XN = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0, 100.0]})


@pytest.mark.parametrize(
    ("impute", "fill", "expected"),
    [
        ("median", 0.0, 3.0),
        ("mean", 0.0, 26.75),
        ("constant", -7.0, -7.0),
        ("most_frequent", 0.0, 1.0),
    ],
)
def test_numeric_imputation_strategies(impute, fill, expected):
    spec = FeatureSpec(impute=impute, fill_value=fill, scale="none", missing_indicator=True)
    pre, names = _fit(NUM, spec, XN)
    assert names == ["x", "x_missing"]
    out = pre.transform(pd.DataFrame({"x": [np.nan, 5.0]}))
    assert out[:, 0].tolist() == [expected, 5.0]
    assert out[:, 1].tolist() == [1.0, 0.0]


def test_missing_flags_only_for_columns_with_nulls_in_training():
    kinds = {"a": "number", "b": "number"}
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, np.nan, 3.0]})
    pre, names = _fit(kinds, FeatureSpec(missing_indicator=True), X)
    assert names == ["a", "b", "b_missing"]
    # a null where training had none is imputed, and the width does not change
    assert pre.transform(pd.DataFrame({"a": [np.nan], "b": [2.0]})).shape == (1, 3)


def test_robust_scaling_uses_median_and_iqr():
    pre, _ = _fit(
        NUM, FeatureSpec(scale="robust"), pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 100.0]})
    )
    # median 3, IQR 4 - 2 = 2
    assert pre.transform(pd.DataFrame({"x": [3.0, 7.0]}))[:, 0].tolist() == [0.0, 2.0]


def test_iqr_clipping_learns_the_fences_at_fit_and_flags():
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan]})
    spec = FeatureSpec(outliers="iqr", outlier_flags=True, scale="none")
    pre, names = _fit(NUM, spec, X)
    assert names == ["x", "x_clipped"]
    # q1 = 2, q3 = 4: fences 2 - 3 = -1 and 4 + 3 = 7
    out = pre.transform(pd.DataFrame({"x": [-50.0, 0.0, 6.0, 50.0, np.nan]}))
    assert out[:, 0].tolist() == [-1.0, 0.0, 6.0, 7.0, 3.0]
    assert out[:, 1].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_quantile_clipping():
    X = pd.DataFrame({"x": np.arange(101, dtype=float)})
    spec = FeatureSpec(outliers="quantile", clip_quantiles=(0.1, 0.9), scale="none")
    pre, _ = _fit(NUM, spec, X)
    assert pre.transform(pd.DataFrame({"x": [-5.0, 50.0, 500.0]}))[:, 0].tolist() == [
        10.0,
        50.0,
        90.0,
    ]


def test_isolation_forest_scores_the_outlier_higher():
    rng = np.random.default_rng(0)
    kinds = {"a": "number", "b": "number"}
    X = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    pre, names = _fit(kinds, FeatureSpec(isolation_forest=True), X)
    assert names == ["a", "b", "isolation_score"]
    s = _col(pre, names, pd.DataFrame({"a": [0.0, 8.0], "b": [0.0, -8.0]}), "isolation_score")
    assert s[1] > s[0] + 0.1


def test_interactions_and_ratios():
    kinds = {"a": "number", "b": "number", "c": "number"}
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 0.0], "c": [5.0, 5.0, 5.0]})
    spec = FeatureSpec(
        scale="none", interactions=("a", "b"), ratios=[("a", "b")], max_interactions=5
    )
    pre, names = _fit(kinds, spec, X)
    assert names == ["a", "b", "c", "a*b", "a/b"]
    out = pre.transform(pd.DataFrame({"a": [3.0, 1.0], "b": [6.0, 0.0], "c": [1.0, 1.0]}))
    assert out[:, 3].tolist() == [18.0, 0.0]
    # zero denominator: the training median of the defined ratios (0.5, 0.5) instead of inf
    assert out[:, 4].tolist() == [0.5, 0.5]
    all_pairs = build_preprocessor(kinds, FeatureSpec(interactions=True, max_interactions=2))
    assert [n for n in feature_names(all_pairs.fit(X)) if "*" in n] == ["a*b", "a*c"]


# --- categories ----------------------------------------------------------------------------------

CAT = {"city": "string"}
XC = pd.DataFrame({"city": ["paris"] * 5 + ["rome"] * 4 + ["oslo"] + [np.nan]})


def test_onehot_frequency_floor_pools_rare_and_unseen_categories():
    pre, names = _fit(CAT, FeatureSpec(min_frequency=2), XC)
    assert names == ["city_paris", "city_rome", "city_infrequent_sklearn"]
    out = pre.transform(pd.DataFrame({"city": ["oslo", "lima", "rome"]}))
    assert out.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def test_missing_category_instead_of_most_frequent():
    pre, names = _fit(CAT, FeatureSpec(categorical_impute="missing"), XC)
    assert "city_missing" in names
    row = pre.transform(pd.DataFrame({"city": [np.nan]}))[0]
    assert row[names.index("city_missing")] == 1.0 and row[names.index("city_paris")] == 0.0


@pytest.mark.parametrize("encode", ["onehot", "ordinal", "target"])
def test_booleans_take_a_missing_category_with_every_encoding(encode):
    X = pd.DataFrame({"m": pd.Series([True, False, np.nan, True, False] * 2, dtype=object)})
    y = [0, 1, 0, 1, 1] * 2
    pre = build_preprocessor(
        {"m": "boolean"}, FeatureSpec(categorical_impute="missing", encode=encode)
    )
    pre.fit(X, y)
    served = pickle.loads(pickle.dumps(pre))
    records = coerce_records([{"m": None}, {"m": False}], {"m": "boolean"}, allow_missing=True)
    np.testing.assert_array_equal(served.transform(records), pre.transform(X.iloc[[2, 1]]))
    if encode == "onehot":
        assert feature_names(pre) == ["m_False", "m_True", "m_missing"]


def test_ordinal_unknown_is_minus_one():
    pre, names = _fit(CAT, FeatureSpec(encode="ordinal"), XC)
    assert names == ["city"]
    # categories sorted: oslo 0, paris 1, rome 2; the null was imputed with paris
    out = pre.transform(pd.DataFrame({"city": ["oslo", "rome", "lima", np.nan]}))[:, 0]
    assert out.tolist() == [0.0, 2.0, -1.0, 1.0]


def test_target_encoding_cross_fits_on_training_rows():
    rng = np.random.default_rng(0)
    city = rng.choice(["a", "b", "c", "d"], size=200)
    y = (rng.random(200) < np.where(city == "a", 0.9, 0.2)).astype(int)
    X = pd.DataFrame({"city": city})
    pre = build_preprocessor(CAT, FeatureSpec(encode="target"))
    crossed = pre.fit_transform(X, y)[:, 0]
    plain = pre.transform(X)[:, 0]
    # fit_transform encodes each row with the other folds' means; transform with the full means
    assert not np.allclose(crossed, plain)
    full = pd.Series(y).groupby(city).mean()
    assert plain[city == "a"].mean() == pytest.approx(full["a"], abs=0.05)
    assert plain[city == "a"].mean() > plain[city == "b"].mean() + 0.4
    # an unseen category gets the overall mean
    assert pre.transform(pd.DataFrame({"city": ["zzz"]}))[0, 0] == pytest.approx(y.mean(), abs=0.05)
    # the folds are seeded: the same rows cross-fit to the same values
    np.testing.assert_array_equal(
        build_preprocessor(CAT, FeatureSpec(encode="target")).fit_transform(X, y)[:, 0], crossed
    )
    # a fold of fewer rows than five folds (small data's CV) still cross-fits
    tiny = build_preprocessor(CAT, FeatureSpec(encode="target"))
    assert tiny.fit_transform(X.iloc[:3], y[:3]).shape == (3, 1)


def test_column_encode_overrides_the_default_for_one_column():
    kinds = {"city": "string", "zone": "string"}
    X = pd.DataFrame({"city": ["a", "b", "a"], "zone": ["n", "s", "s"]})
    pre, names = _fit(kinds, FeatureSpec(column_encode={"zone": "ordinal"}), X)
    assert names == ["city_a", "city_b", "zone"]


# --- datetimes and text --------------------------------------------------------------------------


def test_datetime_parts_and_cyclical_encodings():
    kinds = {"at": "datetime"}
    X = pd.DataFrame({"at": pd.to_datetime(["2024-03-15 14:00", "2023-12-31 00:00", None])})
    pre, names = _fit(kinds, FeatureSpec(scale="none", missing_indicator=True), X)
    assert names[:5] == ["at_year", "at_month", "at_day", "at_weekday", "at_hour"]
    assert names[5:] == [
        "at_month_sin",
        "at_month_cos",
        "at_weekday_sin",
        "at_weekday_cos",
        "at_hour_sin",
        "at_hour_cos",
        "at_missing",
    ]
    row = dict(zip(names, pre.transform(X.iloc[:1])[0], strict=True))
    assert (row["at_year"], row["at_month"], row["at_day"]) == (2024, 3, 15)
    assert (row["at_weekday"], row["at_hour"]) == (4, 14)  # a Friday
    assert row["at_month_sin"] == pytest.approx(math.sin(2 * math.pi * 2 / 12))
    assert row["at_weekday_cos"] == pytest.approx(math.cos(2 * math.pi * 4 / 7))
    assert row["at_hour_sin"] == pytest.approx(math.sin(2 * math.pi * 14 / 24))
    assert row["at_missing"] == 0.0
    # December and January sit next to each other on the cycle
    dec, jan = pre.transform(pd.DataFrame({"at": pd.to_datetime(["2024-12-01", "2025-01-01"])}))
    i, j = names.index("at_month_sin"), names.index("at_month_cos")
    assert math.dist(dec[[i, j]], jan[[i, j]]) < 0.6
    missing = pre.transform(X.iloc[2:])[0]
    assert missing[names.index("at_missing")] == 1.0
    # the flag stays 0/1 when the parts are scaled
    scaled, names = _fit(kinds, FeatureSpec(missing_indicator=True), X)
    assert scaled.transform(X)[:, names.index("at_missing")].tolist() == [0.0, 0.0, 1.0]


def test_datetime_parts_agree_with_pandas_over_two_centuries():
    from workbench.features._steps import DatetimeParts

    rng = np.random.default_rng(3)
    minutes = rng.integers(0, 200 * 365 * 24 * 60, 5000)
    t = pd.Series(pd.to_datetime("1900-01-01") + pd.to_timedelta(minutes, unit="min"))
    t[::17] = pd.NaT
    parts = DatetimeParts(cyclical=False).fit(pd.DataFrame({"t": t}))
    out = parts.transform(pd.DataFrame({"t": t}))
    dt = t.dropna().dt
    expected = np.column_stack([dt.year, dt.month, dt.day, dt.weekday, dt.hour])
    np.testing.assert_array_equal(out[t.notna().to_numpy()], expected)
    # NaT takes the training median of each part
    np.testing.assert_array_equal(out[0], np.median(expected, axis=0))


def test_datetime_kind_from_schema_and_records():
    df = pl.DataFrame(
        {"at": [None, "2024-01-02T03:04:05"], "d": ["2024-05-01", "2024-05-02"]}
    ).with_columns(pl.col("at").str.to_datetime(), pl.col("d").str.to_date())
    kinds = feature_kinds({n: str(t) for n, t in df.schema.items()}, None)
    assert kinds == {"at": "datetime", "d": "datetime"}
    pre = build_preprocessor(kinds).fit(to_pandas(df, kinds))
    frame = coerce_records(
        [{"at": None, "d": "2024-05-01"}, {"at": "2024-01-02T03:04:05", "d": "2024-05-02"}],
        kinds,
        allow_missing=True,
    )
    np.testing.assert_array_equal(pre.transform(frame), pre.transform(to_pandas(df, kinds)))


def test_aware_datetimes_are_read_in_utc_in_training_and_serving():
    df = pl.DataFrame({"at": ["2024-01-02T03:00:00+00:00"]}).with_columns(
        pl.col("at").str.to_datetime(time_zone="UTC")
    )
    kinds = feature_kinds({n: str(t) for n, t in df.schema.items()}, None)
    assert kinds == {"at": "datetime"}
    frame = coerce_records([{"at": "2024-01-02T05:00:00+02:00"}], kinds)
    assert frame["at"].tolist() == to_pandas(df, kinds)["at"].tolist()


@pytest.mark.parametrize("value", ["2024-13-01", "yesterday", 1704164645, True])
def test_malformed_datetime_names_the_field(value):
    with pytest.raises(InvalidRequestError, match="ISO-8601") as info:
        coerce_records([{"at": value}], {"at": "datetime"})
    assert info.value.field == "at"


def test_hashed_tfidf_text_column():
    kinds = {"note": "string", "city": "string"}
    X = pd.DataFrame(
        {"note": ["red car fast", "blue car", None, "red bike"], "city": ["a", "b", "a", "b"]}
    )
    pre, names = _fit(kinds, FeatureSpec(text=["note"], text_features=16), X)
    assert names[:2] == ["city_a", "city_b"]
    assert names[2:] == [f"note_tfidf_{i}" for i in range(16)]
    out = pre.transform(
        pd.DataFrame({"note": ["red car", "", "never seen words"], "city": ["a"] * 3})
    )
    tfidf = out[:, 2:]
    assert np.linalg.norm(tfidf[0]) == pytest.approx(1.0)  # l2-normalised
    assert np.linalg.norm(tfidf[1]) == 0.0
    assert tfidf[0] @ pre.transform(X.iloc[:1])[0, 2:] > 0.5  # shares "red car" with row 0


# --- selection and user steps -------------------------------------------------------------------


def _informative(n=300):
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "noise1": rng.normal(size=n),
            "noise2": rng.normal(size=n),
            "const": np.ones(n),
        }
    )
    y = (X["signal"] > 0).astype(int).to_numpy()
    return {c: "number" for c in X}, X, y


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(select="mutual_info", select_k=1),
        FeatureSpec(select="model", select_model="linear", select_k=1),
        FeatureSpec(select="model", select_model="tree", select_k=1),
    ],
    ids=["mutual_info", "l1_logistic", "tree"],
)
def test_selection_keeps_the_informative_column(spec):
    kinds, X, y = _informative()
    pre, names = _fit(kinds, spec, X, y)
    assert names == ["signal"]
    assert pre.transform(X).shape == (len(X), 1)


def test_selection_by_target_kind_for_regression():
    kinds, X, _ = _informative()
    y = 3.0 * X["signal"].to_numpy()
    _, names = _fit(kinds, FeatureSpec(select="model", select_k=1), X, y)
    assert names == ["signal"]


def test_variance_selection_drops_constant_columns():
    kinds, X, y = _informative()
    _, names = _fit(kinds, FeatureSpec(select="variance", scale="none"), X, y)
    assert names == ["signal", "noise1", "noise2"]


def test_supervised_selection_without_a_target_says_so():
    kinds, X, _ = _informative()
    with pytest.raises(ValueError, match="needs the target"):
        build_preprocessor(kinds, FeatureSpec(select="mutual_info")).fit(X)


def test_user_steps_by_import_path_and_instance():
    from sklearn.preprocessing import FunctionTransformer

    kinds = {"a": "number", "b": "number"}
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 1.0]})
    spec = FeatureSpec(
        scale="none",
        steps=[
            {
                "step": "sklearn.preprocessing.PolynomialFeatures",
                "kwargs": {"degree": 2, "include_bias": False},
                "name": "poly",
            },
            {"step": FunctionTransformer(np.negative), "name": "neg", "position": "after_select"},
        ],
    )
    pre, names = _fit(kinds, spec, X)
    assert [s for s, _ in pre.steps] == ["columns", "user_poly", "user_neg"]
    assert names == ["neg_0", "neg_1", "neg_2", "neg_3", "neg_4"]
    assert pre.transform(pd.DataFrame({"a": [2.0], "b": [3.0]})).tolist() == [
        [-2.0, -3.0, -4.0, -6.0, -9.0]
    ]
    poly = build_preprocessor(kinds, FeatureSpec(steps=spec.steps[:1])).fit(X)
    assert feature_names(poly) == ["a", "b", "a^2", "a b", "b^2"]


def test_a_step_that_does_not_import_is_refused_by_name():
    with pytest.raises(ConfigError, match="'sklearn.preprocessing.NoSuchThing' does not import"):
        FeatureSpec(steps=["sklearn.preprocessing.NoSuchThing"])
    with pytest.raises(ConfigError, match="'nosuchpackage.Scaler' does not import"):
        FeatureSpec.from_dict({"steps": [{"step": "nosuchpackage.Scaler"}]})
    with pytest.raises(ConfigError, match="not a scikit-learn transformer"):
        FeatureSpec(steps=["collections.OrderedDict"])


# --- the spec ------------------------------------------------------------------------------------

FULL = FeatureSpec(
    impute="mean",
    missing_indicator=True,
    scale="robust",
    encode="target",
    column_encode={"zone": "onehot"},
    min_frequency=2,
    outliers="iqr",
    outlier_flags=True,
    isolation_forest=True,
    interactions=True,
    ratios=[("a", "b")],
    text=["note"],
    text_features=8,
    select="variance",
    steps=[{"step": "sklearn.preprocessing.PolynomialFeatures", "kwargs": {"degree": 1}}],
)


def test_spec_round_trips_through_json():
    data = json.loads(json.dumps(FULL.to_dict()))
    assert FeatureSpec.from_dict(data) == FULL
    assert FeatureSpec.from_dict({}) == FeatureSpec()
    from sklearn.preprocessing import PolynomialFeatures

    spec = FeatureSpec(steps=[PolynomialFeatures(degree=3)])
    (step,) = json.loads(json.dumps(spec.to_dict()))["steps"]
    assert step["step"] == "sklearn.preprocessing._polynomial.PolynomialFeatures"
    assert step["kwargs"]["degree"] == 3 and step["name"] == "polynomialfeatures"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scaling": "standard"}, r"unknown FeatureSpec option\(s\) \['scaling'\]"),
        ({"impute": "knn"}, "impute='knn' is not one of"),
        ({"encode": "hash"}, "encode='hash'"),
        ({"outliers": "zscore"}, "outliers='zscore'"),
        ({"select": "rfe"}, "select='rfe'"),
        ({"datetime_parts": ["minute"]}, "datetime_parts item='minute'"),
        ({"clip_quantiles": [0.9, 0.1]}, "clip_quantiles"),
        ({"min_frequency": 0}, "min_frequency"),
        ({"select_k": 0}, "select_k must be a positive integer"),
        ({"ratios": [["a"]]}, "ratios are"),
        ({"steps": [{"step": "x.y", "args": 1}]}, "keys step, kwargs"),
    ],
)
def test_invalid_options_are_refused_with_the_choices(data, message):
    with pytest.raises(ConfigError, match=message):
        FeatureSpec.from_dict(data)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (FeatureSpec(text=["a"]), "text needs string columns; 'a' is a number"),
        (FeatureSpec(ratios=[("a", "zz")]), "ratios names 'zz', which is not a feature"),
        (FeatureSpec(column_encode={"a": "ordinal"}), "column_encode needs boolean or string"),
    ],
)
def test_spec_columns_are_checked_against_the_kinds(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_preprocessor({"a": "number", "b": "number", "c": "string"}, spec)


def _mixed(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.uniform(1, 5, size=n),
            "city": rng.choice(["paris", "rome", "oslo", "lima"], size=n, p=[0.5, 0.3, 0.15, 0.05]),
            "zone": rng.choice(["n", "s"], size=n),
            "member": rng.choice([True, False], size=n).astype(object),
            "at": pd.to_datetime("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 400 * 24, n), unit="h"),
            "note": rng.choice(["red car", "blue bike", "old red bike", "new car"], size=n),
        }
    )


MIXED = {
    "a": "number",
    "b": "number",
    "city": "string",
    "zone": "string",
    "member": "boolean",
    "at": "datetime",
    "note": "string",
}


def test_every_step_is_fitted_once_and_replays_identically_after_pickling():
    train = _mixed(120, 0)
    train.loc[::7, "a"] = np.nan
    train.loc[[3, 5], "a"] = [40.0, -40.0]
    train.loc[::11, "city"] = np.nan
    y = (train["b"] > 3).astype(int).to_numpy()
    pre = build_preprocessor(MIXED, FULL)
    pre.fit(train, y)
    names = feature_names(pre)
    state = pickle.dumps(pre)
    served = pickle.loads(state)
    new = coerce_records(
        [
            {
                "a": None,
                "b": 2.0,
                "city": "tokyo",
                "zone": None,
                "member": None,
                "at": "2031-07-04T23:59:00",
                "note": "unseen words entirely",
            },
            {
                "a": 1e9,
                "b": -1e9,
                "city": "lima",
                "zone": "w",
                "member": True,
                "at": None,
                "note": None,
            },
            {
                "a": 0.1,
                "b": 0.0,
                "city": "paris",
                "zone": "n",
                "member": False,
                "at": "1999-02-28",
                "note": "red car",
            },
        ],
        MIXED,
        allow_missing=True,
    )
    out = pre.transform(new)
    assert out.shape == (3, len(names)) and np.isfinite(out).all()
    np.testing.assert_array_equal(served.transform(new), out)
    # transforming learns nothing: the fitted state is byte-for-byte what fit left
    assert pickle.dumps(pre) == state
    np.testing.assert_array_equal(pre.transform(train), served.transform(train))
    for expected in (
        "a_missing",
        "a_clipped",
        "isolation_score",
        "a*b",
        "a/b",
        "at_hour_sin",
        "zone_n",
        "city",
    ):
        assert expected in names, expected
    # variance selection dropped the hash buckets no training word fell in
    assert 0 < sum(n.startswith("note_tfidf_") for n in names) < 8


def _old_build_preprocessor(kinds):
    """build_preprocessor before FeatureSpec, copied verbatim: spec=None must not change it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c, k in kinds.items() if k == "number"]
    categorical = [c for c, k in kinds.items() if k != "number"]
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def test_no_spec_and_the_default_spec_equal_the_old_pipeline():
    kinds = {k: v for k, v in MIXED.items() if k != "at"}
    train, new = _mixed(80, 2).drop(columns="at"), _mixed(20, 3).drop(columns="at")
    train.loc[::5, "a"] = np.nan
    new.loc[::3, "city"] = "unseen"
    old = _old_build_preprocessor(kinds).fit(train)
    for pre in (build_preprocessor(kinds), build_preprocessor(kinds, FeatureSpec())):
        pre.fit(train)
        assert feature_names(pre) == list(old.get_feature_names_out())
        np.testing.assert_array_equal(pre.transform(new), old.transform(new))
    assert type(build_preprocessor(kinds)).__name__ == "ColumnTransformer"


def test_baseline_from_kinds_and_a_sample():
    n = 120
    sample = pl.DataFrame(
        {
            "x": [None] + [float(i) for i in range(n - 1)],
            "user": [f"u{i}" for i in range(n)],
            "review": [f"review number {i}: the product arrived late but works" for i in range(n)],
            "city": ["paris", "rome"] * (n // 2),
        }
    )
    kinds = {"x": "number", "user": "string", "review": "string", "city": "string"}
    spec = FeatureSpec.baseline(kinds, sample)
    assert spec.text == ("review",)
    assert spec.column_encode == {"user": "target"}
    assert spec.missing_indicator and spec.min_frequency == 0.01
    assert not FeatureSpec.baseline(
        kinds, sample.with_columns(pl.col("x").fill_null(0.0))
    ).missing_indicator
    assert FeatureSpec.baseline(kinds) == FeatureSpec(missing_indicator=True, min_frequency=0.01)
    y = np.arange(n) % 2
    pre, names = _fit(kinds, spec, to_pandas(sample, kinds), y)
    assert names[:2] == ["x", "x_missing"] and "user" in names and "city_paris" in names


def test_the_examples_in_docs_features_run_and_give_what_they_say():
    """Each python block of docs/features.md runs; a last line ``expr  # value`` must give value."""
    import ast
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "features.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    scope: dict = {}
    for block in blocks:
        *body, last = block.strip().splitlines()
        exec(compile("\n".join(body), "docs/features.md", "exec"), scope)
        expr, _, expected = last.partition("  # ")
        assert expected, f"the block ending {last!r} does not say what it gives"
        assert eval(expr, scope) == ast.literal_eval(expected), last
