"""The compiled prediction path (workbench.registry._fast) against the reference pandas path.

Pure logic (no Ray): each fitted pipeline is compiled, then both paths see the same 3,000 random
records with nulls in every column, categories never seen in training, numbers far outside the
training range and dates in other years; the estimator's input arrays must be equal bit for bit
and the predictions equal.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from workbench.exceptions import InvalidRequestError
from workbench.features import FeatureSpec, build_preprocessor, coerce_records
from workbench.registry import ModelBundle
from workbench.registry._fast import compile_pipeline

KINDS = {"a": "number", "b": "number", "c": "string", "d": "boolean", "t": "datetime"}


def _records(rng: np.random.Generator, n: int, *, serving: bool) -> list[dict]:
    cities = ["oslo", "rome", "lima"] + (["unseen", ""] if serving else [])
    out = []
    for _ in range(n):
        year = int(rng.integers(2020, 2031 if serving else 2025))
        rec = {
            "a": float(rng.normal()),
            "b": float(rng.normal() * 100),
            "c": str(rng.choice(cities)),
            "d": bool(rng.random() > 0.5),
            "t": f"{year}-0{rng.integers(1, 10)}-1{rng.integers(0, 10)}T1{rng.integers(0, 10)}:30:00",
        }
        if serving and rng.random() < 0.1:
            rec["a"] = float(rng.choice([1e12, -1e12, 5e-300]))
        for key in rec:
            if rng.random() < 0.1:
                rec[key] = None
        out.append(rec)
    return out


def _fitted(spec, *, frames=False):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(1)
    train = _records(rng, 400, serving=False)
    X = coerce_records(train, KINDS, allow_missing=True)
    y = (X["a"].fillna(0) + (X["c"] == "rome") > 0.5).astype(int).to_numpy()
    pre = build_preprocessor(KINDS, spec)
    if frames:
        pre.set_output(transform="pandas")
    pipe = Pipeline([("preprocess", pre), ("model", LogisticRegression(max_iter=1000))])
    return pipe.fit(X, y)


SPECS = {
    "default": None,
    "spec-defaults": FeatureSpec(),
    "robust": FeatureSpec(scale="robust"),
    "no-scaling": FeatureSpec(scale="none"),
    "missing-flags": FeatureSpec(missing_indicator=True),
    "constant-impute": FeatureSpec(impute="constant", fill_value=-1.0),
    "most-frequent": FeatureSpec(impute="most_frequent"),
    "missing-category": FeatureSpec(categorical_impute="missing"),
    "ordinal": FeatureSpec(encode="ordinal"),
    "target": FeatureSpec(encode="target"),
    "rare-categories": FeatureSpec(min_frequency=0.4),
    "clip-outliers": FeatureSpec(outliers="iqr"),
    "interactions-and-selection": FeatureSpec(interactions=True, select="variance"),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_compiled_path_equals_the_reference_on_random_records(name):
    pipe = _fitted(SPECS[name])
    compiled = compile_pipeline(pipe, KINDS)
    assert compiled is not None
    requests = _records(np.random.default_rng(7), 3000, serving=True)
    frame = coerce_records(requests, KINDS, allow_missing=True)
    reference = pipe[:-1].transform(frame)
    got = compiled.transform(requests)
    assert got.dtype == reference.dtype and got.shape == reference.shape
    np.testing.assert_array_equal(got, reference)
    assert (compiled.predict(requests) == pipe.predict(frame)).all()
    np.testing.assert_array_equal(compiled.predict_proba(requests), pipe.predict_proba(frame))


def test_numbers_and_one_hot_are_fused_and_other_steps_run_their_own_transform():
    compiled = compile_pipeline(_fitted(None), KINDS)
    fused = {tuple(cols): isinstance(step, list) for cols, step in compiled._branches}
    assert fused == {("a", "b"): True, ("c", "d"): True, ("t",): False}


def test_one_record_at_a_time_equals_the_batch():
    pipe = _fitted(None)
    compiled = compile_pipeline(pipe, KINDS)
    requests = _records(np.random.default_rng(3), 200, serving=True)
    one_by_one = np.vstack([compiled.transform([r]) for r in requests])
    np.testing.assert_array_equal(one_by_one, compiled.transform(requests))


def test_bad_records_get_the_reference_errors():
    bundle = ModelBundle(_fitted(None), KINDS, "y", [0, 1])
    good = {"a": 1.0, "b": 2.0, "c": "oslo", "d": True, "t": "2024-05-01T10:00:00"}
    cases = [
        [],
        [{**good, "a": "1"}],
        [{**good, "a": float("inf")}],
        [{**good, "d": 1}],
        [{**good, "t": "yesterday"}],
        [{k: v for k, v in good.items() if k != "c"}],
        [{**good, "extra": 1}],
        ["not a record"],
    ]
    for records in cases:
        with pytest.raises(InvalidRequestError) as reference:
            coerce_records(records, KINDS, allow_missing=True)
        with pytest.raises(InvalidRequestError) as compiled:
            bundle.predict_records(records)
        assert str(compiled.value) == str(reference.value)
        assert compiled.value.field == reference.value.field


def test_the_bundle_uses_it_and_pickles_without_it():
    bundle = ModelBundle(_fitted(None), KINDS, "y", [0, 1])
    requests = _records(np.random.default_rng(5), 500, serving=True)
    reference = bundle.predict_frame(coerce_records(requests, KINDS, allow_missing=True))
    assert bundle.compiled is not None
    assert bundle.predict_records(requests) == reference
    loaded = pickle.loads(pickle.dumps(bundle))
    assert "compiled" not in loaded.__dict__
    assert loaded.predict_records(requests) == reference


def test_a_pipeline_it_cannot_replay_is_served_by_the_reference_path():
    pipe = _fitted(None, frames=True)
    assert compile_pipeline(pipe, KINDS) is None
    bundle = ModelBundle(pipe, KINDS, "y", [0, 1])
    requests = _records(np.random.default_rng(9), 50, serving=True)
    assert bundle.compiled is None
    assert bundle.predict_records(requests) == bundle.predict_frame(
        coerce_records(requests, KINDS, allow_missing=True)
    )


def test_probabilities_through_the_compiled_path_equal_the_frame_path():
    bundle = ModelBundle(_fitted(SPECS["missing-flags"]), KINDS, "y", [0, 1])
    requests = _records(np.random.default_rng(11), 500, serving=True)
    assert bundle.compiled is not None
    labels, proba = bundle.predict_proba_records(requests)
    ref_labels, ref_proba = bundle.predict_proba_frame(
        coerce_records(requests, KINDS, allow_missing=True)
    )
    assert labels == ref_labels and proba == ref_proba
