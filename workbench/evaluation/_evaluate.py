"""One model's evaluation on one holdout: flat metrics and the details a report draws (per-class
figures, confusion matrix, ROC/PR curves, calibration, residual quantiles); pure, no Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.evaluation._metrics import regression_score, score

if TYPE_CHECKING:
    from workbench.evaluation._predictions import Predictions

__all__ = ["Evaluation", "evaluate", "prediction_metrics"]

#: the most points a stored ROC, PR or calibration curve keeps
MAX_CURVE_POINTS = 200
#: the bins of the calibration curve (uniform on [0, 1], as scikit-learn's ``calibration_curve``)
CALIBRATION_BINS = 10
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Evaluation:
    """Metrics and details of one model's predictions on one holdout.

    Attributes
    ----------
    metrics
        Flat ``{name: float}``: ``accuracy``, ``precision``, ``recall``, ``f1`` (macro), and
        with class probabilities ``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``; for a
        regressor ``r2``, ``rmse``, ``mae``, ``mape``.
    details
        A JSON-able dict: ``task``, ``n``, ``classes``, ``per_class``, ``confusion``, ``roc``,
        ``pr``, ``calibration`` (classification) or ``residuals`` (regression); a piece that
        needs probabilities is absent without them.
    """

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{"metrics": ..., "details": ...}`` (JSON-able)."""
        return {"metrics": dict(self.metrics), "details": dict(self.details)}


def prediction_metrics(preds: Predictions) -> dict[str, float]:
    """The flat metrics of :func:`evaluate` alone, without building its details (what each
    cross-validation fold reports).

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> p = Predictions.of("classification", ["a", "b", "b"], ["a", "b", "a"],
    ...                    classes=["a", "b"], proba=[[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> m = prediction_metrics(p)
    >>> round(m["accuracy"], 3), m["roc_auc"]
    (0.667, 1.0)
    """
    if preds.task == "regression":
        return regression_score(preds.y_true, preds.y_pred)
    metrics = score(preds.y_true, preds.y_pred)
    if preds.proba is not None and len(preds.classes) >= 2:
        metrics.update(_proba_metrics(preds)[0])
    return metrics


def evaluate(preds: Predictions) -> Evaluation:
    """Metrics and details of ``preds`` (one model on one holdout).

    Classification: accuracy and macro precision/recall/F1; with class probabilities also
    ROC-AUC and PR-AUC (average precision): of the positive class ``classes[1]`` for a binary
    model, the macro mean of one-vs-rest for more classes; log-loss; Brier score (binary: of
    the positive class; more classes: the mean over classes of the one-vs-rest squared error).
    A class absent from the true values has no ROC/PR figure (one-vs-rest is undefined without
    a positive row): it is left out of the curves and of the macro AUCs; when no class has
    one, ``roc_auc``/``pr_auc`` are left out. Details: per-class precision/recall/F1/support,
    the confusion matrix (rows true, columns predicted), ROC and PR curves per class, and the
    calibration curve (10 uniform bins) of the positive class (binary) or of
    the top label (confidence against correctness). Curves keep at most 200 points.

    Regression: R², RMSE, MAE and MAPE (over the rows whose true value is not 0), and the
    quantiles (5, 25, 50, 75, 95 %) and mean of the residuals ``y - ŷ``.

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> p = Predictions.of("classification", ["a", "b", "b", "a"], ["a", "b", "a", "a"],
    ...                    classes=["a", "b"], proba=[[.9, .1], [.2, .8], [.6, .4], [.7, .3]])
    >>> ev = evaluate(p)
    >>> ev.metrics["accuracy"], ev.metrics["roc_auc"]
    (0.75, 1.0)
    >>> ev.details["confusion"]["matrix"]
    [[2, 0], [1, 1]]
    >>> evaluate(Predictions.of("regression", [1.0, 2.0], [1.5, 2.0])).details["residuals"]["mean"]
    -0.25
    """
    if preds.task == "regression":
        return Evaluation(
            metrics=regression_score(preds.y_true, preds.y_pred),
            details={
                "task": "regression",
                "n": preds.n,
                "classes": [],
                "residuals": _residuals(preds),
            },
        )
    metrics = score(preds.y_true, preds.y_pred)
    labels = _labels(preds)
    details: dict[str, Any] = {
        "task": "classification",
        "n": preds.n,
        "classes": list(preds.classes),
        "per_class": _per_class(preds, labels),
        "confusion": _confusion(preds, labels),
    }
    if preds.proba is not None and len(preds.classes) >= 2:
        proba_metrics, curves = _proba_metrics(preds, curves=True)
        metrics.update(proba_metrics)
        details.update(curves)
    return Evaluation(metrics=metrics, details=details)


# ----------------------------------------------------------------------------- classification
def _labels(preds: Predictions) -> list[str]:
    """The model's classes, then any label seen in the rows that is not one of them."""
    seen = {str(v) for v in preds.y_true} | {str(v) for v in preds.y_pred}
    known = list(preds.classes)
    return known + sorted(seen - set(known))


def _per_class(preds: Predictions, labels: list[str]) -> dict[str, dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        preds.y_true, preds.y_pred, labels=labels, zero_division=0
    )
    return {
        c: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(labels)
    }


def _confusion(preds: Predictions, labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(preds.y_true, preds.y_pred, labels=labels)
    return {"labels": labels, "matrix": [[int(v) for v in row] for row in matrix]}


def _proba_metrics(
    preds: Predictions, *, curves: bool = False
) -> tuple[dict[str, float], dict[str, Any]]:
    """ROC-AUC, PR-AUC, log-loss and Brier score (and, with ``curves``, the ROC, PR and calibration
    details) from the class probabilities."""
    import numpy as np

    classes = list(preds.classes)
    proba = np.asarray(preds.proba, dtype=float)
    y_true = np.asarray(preds.y_true, dtype=object)
    onehot = np.stack([y_true == c for c in classes], axis=1).astype(float)
    binary = len(classes) == 2
    # one-vs-rest per class; a binary model has one: its positive class, classes[1]
    scored = [classes[1]] if binary else classes
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    roc_auc: dict[str, float] = {}
    pr_auc: dict[str, float] = {}
    for c in scored:
        j = classes.index(c)
        positives = onehot[:, j]
        if positives.sum() in (0, len(positives)):
            continue  # the class (or every other) is absent from the true values: undefined
        roc_auc[c], pr_auc[c] = _auc_ap(positives, proba[:, j])
    if roc_auc:
        metrics["roc_auc"] = float(np.mean(list(roc_auc.values())))
        metrics["pr_auc"] = float(np.mean(list(pr_auc.values())))
    known = onehot.sum(axis=1) > 0  # rows whose true label is one of the model's classes
    if known.any():
        eps = np.finfo(float).eps
        p_true = np.clip((proba * onehot).sum(axis=1)[known], eps, 1.0)
        rows = np.clip(proba[known], eps, 1.0)
        # log-loss as scikit-learn's: each row's probabilities renormalised after clipping
        metrics["log_loss"] = float(-np.mean(np.log(p_true / rows.sum(axis=1))))
    # the mean over classes of the one-vs-rest squared error; for two classes both columns'
    # errors are equal, so this is the positive class's Brier score
    metrics["brier"] = float(np.mean((proba - onehot) ** 2))
    if curves:
        columns = {c: (onehot[:, classes.index(c)], proba[:, classes.index(c)]) for c in roc_auc}
        details["roc"] = {c: {**_roc_curve(*columns[c]), "auc": roc_auc[c]} for c in roc_auc}
        details["pr"] = {c: {**_pr_curve(*columns[c]), "auc": pr_auc[c]} for c in pr_auc}
        if binary:
            details["calibration"] = _calibration(onehot[:, 1], proba[:, 1])
        else:
            top = proba.argmax(axis=1)
            correct = (np.asarray(classes, dtype=object)[top] == y_true).astype(float)
            details["calibration"] = _calibration(correct, proba.max(axis=1))
    return metrics, details


def _auc_ap(positives: Any, scores: Any) -> tuple[float, float]:
    """ROC-AUC and average precision of one one-vs-rest column, from one sort.

    The same numbers as scikit-learn's ``roc_auc_score`` and ``average_precision_score``
    (tied scores form one threshold; the ROC area by the trapezoidal rule), at a fraction of
    their input-validation cost: every cross-validation fold computes them.
    """
    import numpy as np

    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    s = np.asarray(scores, dtype=float)[order]
    y = np.asarray(positives, dtype=float)[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    precision = tps / (tps + fps)
    ap = float(np.sum(np.diff(tpr) * precision))
    return auc, ap


def _thin(*columns: Any) -> list[list[float]]:
    """The columns cut to at most :data:`MAX_CURVE_POINTS` evenly spaced points (first and last kept)."""
    import numpy as np

    n = len(columns[0])
    if n > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(int))
        columns = tuple(np.asarray(c)[keep] for c in columns)
    return [[float(v) for v in c] for c in columns]


def _roc_curve(positives: Any, scores: Any) -> dict[str, list[float]]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(positives, scores)
    fpr_l, tpr_l = _thin(fpr, tpr)
    return {"fpr": fpr_l, "tpr": tpr_l}


def _pr_curve(positives: Any, scores: Any) -> dict[str, list[float]]:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(positives, scores)
    recall_l, precision_l = _thin(recall, precision)
    return {"recall": recall_l, "precision": precision_l}


def _calibration(outcome: Any, prob: Any, *, bins: int = CALIBRATION_BINS) -> dict[str, list[Any]]:
    """Reliability curve: per non-empty uniform bin of ``prob``, the mean predicted probability
    (``prob_pred``), the observed frequency of ``outcome`` (``prob_true``) and the row count.

    The same bins as scikit-learn's ``calibration_curve(strategy="uniform")``; an empty bin is
    left out.

    Examples
    --------
    >>> _calibration([0, 1, 1, 1], [0.1, 0.15, 0.9, 0.95], bins=2)["prob_true"]
    [0.5, 1.0]
    """
    import numpy as np

    y = np.asarray(outcome, dtype=float)
    p = np.asarray(prob, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    total = np.bincount(ids, minlength=bins)
    sums = np.bincount(ids, weights=p, minlength=bins)
    hits = np.bincount(ids, weights=y, minlength=bins)
    full = total > 0
    return {
        "prob_pred": [float(v) for v in sums[full] / total[full]],
        "prob_true": [float(v) for v in hits[full] / total[full]],
        "counts": [int(v) for v in total[full]],
    }


# --------------------------------------------------------------------------------- regression
def _residuals(preds: Predictions) -> dict[str, Any]:
    import numpy as np

    r = np.asarray(preds.y_true, dtype=float) - np.asarray(preds.y_pred, dtype=float)
    if not len(r):
        return {"quantiles": {}, "mean": None}
    return {
        "quantiles": {str(q): float(np.quantile(r, q)) for q in _QUANTILES},
        "mean": float(r.mean()),
    }
