"""evaluate(): every metric and detail checked against an independent computation (hand-worked
small cases, scikit-learn called directly) on the breast-cancer data shipped with scikit-learn,
on iris (three classes) and on synthetic regression data. Pure: no Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split

from workbench.evaluation import (
    LOWER_IS_BETTER,
    PROBA_METRICS,
    Predictions,
    evaluate,
    lower_is_better,
    prediction_metrics,
    task_metrics,
)
from workbench.experiments._estimators import fold_scores, mean_scores


def _fitted(loader, **split):
    X, y = loader(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0, stratify=y, **split)
    model = LogisticRegression(max_iter=5000).fit(X_tr, y_tr)
    return model, X_te, y_te


@pytest.fixture(scope="module")
def cancer():
    model, X_te, y_te = _fitted(load_breast_cancer, test_size=0.4)
    proba = model.predict_proba(X_te)
    preds = Predictions.of(
        "classification", y_te, model.predict(X_te), classes=model.classes_, proba=proba
    )
    return preds, y_te, proba


def test_binary_metrics_match_sklearn_on_breast_cancer(cancer):
    preds, y_te, proba = cancer
    ev = evaluate(preds)
    m = ev.metrics
    pos = proba[:, 1]
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y_te, pos), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y_te, pos), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y_te, proba), rel=1e-9)
    assert m["brier"] == pytest.approx(brier_score_loss(y_te, pos), abs=1e-12)
    assert set(m) == {"accuracy", "precision", "recall", "f1", *PROBA_METRICS}
    assert 0.9 < m["roc_auc"] <= 1
    # details: confusion and per-class against sklearn, labels in the model's class order
    labels = ["0", "1"]
    yp = preds.y_pred
    cm = confusion_matrix(preds.y_true, yp, labels=labels).tolist()
    assert ev.details["confusion"] == {"labels": labels, "matrix": cm}
    p, r, f, s = precision_recall_fscore_support(preds.y_true, yp, labels=labels)
    assert ev.details["per_class"]["1"] == pytest.approx(
        {"precision": p[1], "recall": r[1], "f1": f[1], "support": s[1]}
    )
    assert sum(c["support"] for c in ev.details["per_class"].values()) == preds.n
    # the binary curves are of the positive class only
    assert list(ev.details["roc"]) == ["1"] and list(ev.details["pr"]) == ["1"]
    roc = ev.details["roc"]["1"]
    assert roc["auc"] == m["roc_auc"] and roc["fpr"][0] == 0 and roc["tpr"][-1] == 1
    assert np.trapz(roc["tpr"], roc["fpr"]) == pytest.approx(m["roc_auc"], abs=0.01)
    # calibration: the same bins as sklearn's calibration_curve
    true, pred = calibration_curve(y_te, pos, n_bins=10)
    cal = ev.details["calibration"]
    assert cal["prob_true"] == pytest.approx(list(true)) and cal["prob_pred"] == pytest.approx(
        list(pred)
    )
    assert sum(cal["counts"]) == preds.n
    json.dumps(ev.as_dict())  # JSON-able as stored


def test_multiclass_one_vs_rest_on_iris():
    model, X_te, y_te = _fitted(load_iris, test_size=0.5)
    proba = model.predict_proba(X_te)
    preds = Predictions.of(
        "classification", y_te, model.predict(X_te), classes=model.classes_, proba=proba
    )
    ev = evaluate(preds)
    assert ev.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y_te, proba, multi_class="ovr", average="macro"), abs=1e-12
    )
    onehot = np.eye(3)[y_te]
    assert ev.metrics["pr_auc"] == pytest.approx(
        average_precision_score(onehot, proba, average="macro"), abs=1e-12
    )
    assert ev.metrics["log_loss"] == pytest.approx(log_loss(y_te, proba), rel=1e-9)
    # Brier: mean over classes of each class's one-vs-rest Brier score
    per_class = [brier_score_loss(onehot[:, k], proba[:, k]) for k in range(3)]
    assert ev.metrics["brier"] == pytest.approx(np.mean(per_class), abs=1e-12)
    assert sorted(ev.details["roc"]) == ["0", "1", "2"]
    # top-label calibration: confidence against correctness
    correct = (proba.argmax(axis=1) == y_te).astype(int)
    if 0 < correct.sum() < len(correct):
        true, _ = calibration_curve(correct, proba.max(axis=1), n_bins=10)
        assert ev.details["calibration"]["prob_true"] == pytest.approx(list(true))
    assert sum(ev.details["calibration"]["counts"]) == preds.n


def test_hand_computed_small_case():
    # y: a b b a b ; P(b): .2 .9 .4 .6 .7 -> pairs (pos,neg): (.9,.2)(.9,.6)(.4,.2)(.4,.6)(.7,.2)(.7,.6)
    # 5 of 6 pairs ranked right: AUC 5/6
    y = ["a", "b", "b", "a", "b"]
    pb = np.array([0.2, 0.9, 0.4, 0.6, 0.7])
    preds = Predictions.of(
        "classification",
        y,
        ["a", "b", "a", "b", "b"],
        classes=["a", "b"],
        proba=np.c_[1 - pb, pb],
    )
    ev = evaluate(preds)
    assert ev.metrics["roc_auc"] == pytest.approx(5 / 6)
    yb = np.array([0, 1, 1, 0, 1])
    assert ev.metrics["brier"] == pytest.approx(np.mean((pb - yb) ** 2))
    p_true = np.where(yb == 1, pb, 1 - pb)
    assert ev.metrics["log_loss"] == pytest.approx(-np.mean(np.log(p_true)))
    # AP: ranks by P(b): .9(b) .7(b) .6(a) .4(b) .2(a): precisions at the hits 1, 1, 3/4
    assert ev.metrics["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert ev.details["confusion"]["matrix"] == [[1, 1], [1, 2]]
    assert ev.details["per_class"]["b"]["support"] == 3
    assert ev.metrics["accuracy"] == pytest.approx(3 / 5)


def test_a_class_missing_from_the_holdout_does_not_crash():
    # three classes, but "c" never occurs in y_true: its one-vs-rest AUC is undefined -> left out
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    preds = Predictions.of(
        "classification", ["a", "b", "a", "b"], ["a", "b", "a", "c"], classes="abc", proba=proba
    )
    ev = evaluate(preds)
    assert sorted(ev.details["roc"]) == ["a", "b"]
    expected = np.mean(
        [roc_auc_score([1, 0, 1, 0], proba[:, 0]), roc_auc_score([0, 1, 0, 1], proba[:, 1])]
    )
    assert ev.metrics["roc_auc"] == pytest.approx(expected)
    assert ev.details["per_class"]["c"]["support"] == 0
    # one class only in y_true: no AUC at all, but the other metrics are there
    one = Predictions.of(
        "classification",
        ["a"] * 3,
        ["a", "b", "a"],
        classes="ab",
        proba=proba[:3, :2] / proba[:3, :2].sum(axis=1, keepdims=True),
    )
    m = evaluate(one).metrics
    assert "roc_auc" not in m and "log_loss" in m and m["accuracy"] == pytest.approx(2 / 3)


def test_without_probabilities_the_probability_pieces_are_absent():
    preds = Predictions.of("classification", ["a", "b"], ["a", "a"], classes=["a", "b"])
    ev = evaluate(preds)
    assert set(ev.metrics) == {"accuracy", "precision", "recall", "f1"}
    assert not {"roc", "pr", "calibration"} & set(ev.details)
    assert ev.details["confusion"]["matrix"] == [[1, 0], [1, 0]]


def test_curves_are_cut_to_200_points():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    ev = evaluate(
        Predictions.of(
            "classification", y, (p > 0.5).astype(int), classes=[0, 1], proba=np.c_[1 - p, p]
        )
    )
    roc, pr = ev.details["roc"]["1"], ev.details["pr"]["1"]
    assert 100 < len(roc["fpr"]) <= 200 and len(roc["fpr"]) == len(roc["tpr"])
    assert len(pr["recall"]) <= 200 and pr["recall"][0] == 1.0 and pr["recall"][-1] == 0.0
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0  # the ends are kept


def test_regression_mape_and_residual_quantiles():
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, 400)
    y[:5] = 0.0  # rows with a zero target have no relative error: skipped by MAPE
    yhat = y + rng.normal(0, 1, 400)
    ev = evaluate(Predictions.of("regression", y, yhat))
    nz = y != 0
    assert ev.metrics["mape"] == pytest.approx(np.mean(np.abs(y[nz] - yhat[nz]) / np.abs(y[nz])))
    assert ev.metrics["rmse"] == pytest.approx(np.sqrt(np.mean((y - yhat) ** 2)))
    res = ev.details["residuals"]
    assert res["quantiles"]["0.5"] == pytest.approx(np.median(y - yhat))
    assert res["quantiles"]["0.05"] < res["quantiles"]["0.95"]
    assert res["mean"] == pytest.approx(np.mean(y - yhat))
    assert set(ev.metrics) == set(task_metrics("regression"))


def test_direction_of_the_new_metrics():
    assert {"log_loss", "brier", "mape"} <= LOWER_IS_BETTER
    assert not lower_is_better("roc_auc") and not lower_is_better("pr_auc")


def test_fold_scores_report_probability_metrics():
    """The built-in trainable's folds carry roc_auc etc. for a classifier with predict_proba,
    and equal what evaluate() says of the same fold's predictions."""
    import pandas as pd

    data = load_breast_cancer(as_frame=True)
    X, y = data.data.iloc[:240], data.target.to_numpy()[:240]
    kinds = {c: "number" for c in X.columns}
    config = {"family": "logistic_regression", "C": 1.0}
    folds = list(fold_scores(config, X, y, kinds, folds=3, seed=0))
    assert len(folds) == 3 and all(set(f) >= {"f1", *PROBA_METRICS} for f in folds)
    # fold 0 again, by hand
    from sklearn.model_selection import StratifiedKFold

    from workbench.experiments._estimators import make_pipeline

    tr, te = next(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    pipe = make_pipeline(config, kinds, seed=0).fit(X.iloc[tr], y[tr])
    proba = pipe.predict_proba(X.iloc[te])
    assert folds[0]["roc_auc"] == pytest.approx(roc_auc_score(y[te], proba[:, 1]))
    assert folds[0] == prediction_metrics(
        Predictions.of(
            "classification", y[te], pipe.predict(X.iloc[te]), classes=[0, 1], proba=proba
        )
    )
    assert mean_scores(folds)["roc_auc"] == pytest.approx(np.mean([f["roc_auc"] for f in folds]))
    # a classifier without predict_proba reports the four label metrics only
    svc = list(fold_scores({"family": "sklearn.svm.LinearSVC"}, X, y, kinds, folds=2, seed=0))
    assert set(svc[0]) == {"accuracy", "precision", "recall", "f1"}
    assert isinstance(X, pd.DataFrame)


def test_auc_and_average_precision_with_tied_scores_match_sklearn():
    rng = np.random.default_rng(3)
    for n in (7, 50, 400):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        p = np.round(rng.random(n) * 0.6 + y * 0.3, 1)  # few distinct scores: many ties
        m = prediction_metrics(
            Predictions.of(
                "classification", y, (p > 0.5).astype(int), classes=[0, 1], proba=np.c_[1 - p, p]
            )
        )
        assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
