"""Preprocessing and request coercion: identical at training and serving time."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from workbench.exceptions import InvalidRequestError
from workbench.features import (
    FeatureSpec,
    build_preprocessor,
    coerce_records,
    feature_kinds,
    feature_names,
    to_pandas,
)
from workbench.registry import ModelBundle

DF = pl.DataFrame(
    {
        "age": [30.0, None, 50.0, 41.0, 35.0, 62.0],
        "city": ["paris", "rome", None, "paris", "rome", "oslo"],
        "member": [True, False, True, None, False, True],
        "y": ["a", "b", "a", "b", "a", "b"],
    }
)


def test_kinds_from_schema():
    kinds = feature_kinds({n: str(t) for n, t in DF.schema.items()}, "y")
    assert kinds == {"age": "number", "city": "string", "member": "boolean"}


def test_impute_scale_encode():
    kinds = feature_kinds({n: str(t) for n, t in DF.schema.items()}, "y")
    pre = build_preprocessor(kinds)
    out = pre.fit_transform(to_pandas(DF, kinds))
    names = list(pre.get_feature_names_out())
    assert names[0] == "age" and "city_paris" in names and "city_oslo" in names
    assert not np.isnan(out).any()
    assert math.isclose(out[:, 0].mean(), 0.0, abs_tol=1e-9)  # scaled
    unseen = pre.transform(
        coerce_records([{"age": 33.0, "city": "lima", "member": True}], kinds, allow_missing=True)
    )
    assert out.shape[1] == unseen.shape[1]
    assert unseen[0, names.index("city_paris")] == 0 and unseen[0, names.index("city_oslo")] == 0


def test_serving_path_equals_training_path():
    kinds = feature_kinds({n: str(t) for n, t in DF.schema.items()}, "y")
    pipe = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", LogisticRegression())])
    y = np.array([0, 1, 0, 1, 0, 1])
    pipe.fit(to_pandas(DF, kinds), y)
    bundle = ModelBundle(pipeline=pipe, features=kinds, target="y", classes=["a", "b"])
    records = DF.drop("y").to_dicts()
    assert bundle.predict_records(records) == bundle.predict_frame(to_pandas(DF, kinds))
    np.testing.assert_allclose(
        pipe.predict_proba(coerce_records(records, kinds, allow_missing=True)),
        pipe.predict_proba(to_pandas(DF, kinds)),
    )


@pytest.mark.parametrize(
    ("records", "field", "message"),
    [
        ([], "records", "non-empty"),
        ([{"age": 1.0, "city": "x"}], "member", "missing feature 'member'"),
        ([{"age": "old", "city": "x", "member": True}], "age", "must be a number"),
        ([{"age": float("nan"), "city": "x", "member": True}], "age", "finite"),
        ([{"age": 1.0, "city": 3, "member": True}], "city", "must be a string"),
        ([{"age": 1.0, "city": "x", "member": "yes"}], "member", "true or false"),
        ([{"age": 1.0, "city": "x", "member": True, "zip": 1}], "zip", "unknown feature"),
        (["not an object"], "records", "not a JSON object"),
    ],
)
def test_bad_records_name_the_field(records, field, message):
    kinds = {"age": "number", "city": "string", "member": "boolean"}
    with pytest.raises(InvalidRequestError, match=message) as info:
        coerce_records(records, kinds)
    assert info.value.field == field


@pytest.mark.parametrize("with_spec", [False, True], ids=["default", "baseline"])
def test_datetime_features_serve_as_they_train(with_spec):
    df = pl.DataFrame(
        {
            "at": ["2024-01-01T10:00:00", None, "2024-06-01T20:00:00", "2024-03-01T01:00:00"],
            "x": [1.0, 2.0, None, 4.0],
        }
    ).with_columns(pl.col("at").str.to_datetime())
    kinds = feature_kinds({n: str(t) for n, t in df.schema.items()}, None)
    assert kinds == {"at": "datetime", "x": "number"}
    spec = FeatureSpec.baseline(kinds, df) if with_spec else None
    pipe = Pipeline(
        [("preprocess", build_preprocessor(kinds, spec)), ("model", LogisticRegression())]
    )
    pipe.fit(to_pandas(df, kinds), [0, 1, 0, 1])
    bundle = ModelBundle(pipeline=pipe, features=kinds, target="y", classes=["a", "b"])
    records = [
        {"at": None if r["at"] is None else r["at"].isoformat(), "x": r["x"]} for r in df.to_dicts()
    ]
    np.testing.assert_array_equal(
        pipe.predict_proba(coerce_records(records, kinds, allow_missing=True)),
        pipe.predict_proba(to_pandas(df, kinds)),
    )
    assert bundle.predict_records(records) == bundle.predict_frame(to_pandas(df, kinds))
    names = feature_names(pipe)
    assert "at_hour_sin" in names and ("x_missing" in names) == with_spec
