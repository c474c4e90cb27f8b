"""Fairness: a model's metrics per group of each sensitive feature and the gaps between groups, through
fairlearn's ``MetricFrame`` (pure, no Ray)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.evaluation._predictions import Predictions

__all__ = ["fairness_report", "fairness_gaps", "GAPS"]

#: the gaps between groups a report always carries for a classifier (every ``<metric>_difference``
#: comes on top); a ``*_ratio`` is 1 at parity and a floor in a gate, the others 0 and a ceiling
GAPS = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "selection_rate")
REGRESSION_METRICS = ("rmse", "mae", "mean_prediction")


def _number(value: Any) -> float | None:
    """A plain float, or None for NaN/inf (a metric undefined in a group): JSON has no NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _metric_names(task: str, classes: Sequence[str]) -> tuple[str, ...]:
    """The per-group metrics of a model: the selection rate needs one positive class (binary)."""
    if task == "regression":
        return REGRESSION_METRICS
    return CLASSIFICATION_METRICS if len(classes) == 2 else CLASSIFICATION_METRICS[:-1]


def _figures(task: str, classes: Sequence[str]) -> Callable[[Any, Any], dict[str, Any]]:
    """One function of a group's (y_true, y_pred) giving every figure of that group at once.

    fairlearn's ``MetricFrame`` calls each metric function per group and first copies the
    group's rows element by element (``np.stack``), which costs far more than the metrics
    themselves: one function returning all of them makes that copy once per group, not once per
    metric (0.8 s became ~0.1 s for two features on 10,000 rows).

    Classification: accuracy and macro precision/recall/F1 over ``classes`` (the model's own, so
    a group missing a class is scored on the same footing), the selection rate (the share
    predicted as ``classes[1]``, binary only) and the group's confusion matrix over ``classes``
    (rows true, columns predicted), from which the parity gaps are taken.
    """
    import numpy as np
    from sklearn import metrics as skm

    if task == "regression":

        def regression(t: Any, p: Any) -> dict[str, Any]:
            err = np.asarray(t, dtype=float) - np.asarray(p, dtype=float)
            return {
                "metrics": {
                    "rmse": float(np.sqrt(np.mean(err**2))),
                    "mae": float(np.mean(np.abs(err))),
                    "mean_prediction": float(np.mean(p)),
                }
            }

        return regression
    labels = list(classes)

    def classification(t: Any, p: Any) -> dict[str, Any]:
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            t, p, labels=labels, average="macro", zero_division=0
        )
        out = {
            "accuracy": float(np.mean(np.asarray(t) == np.asarray(p))),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
        }
        if len(labels) == 2:
            out["selection_rate"] = float(np.mean(np.asarray(p) == labels[1]))
        return {"metrics": out, "confusion": skm.confusion_matrix(t, p, labels=labels)}

    return classification


def fairness_report(
    preds: Predictions, *, metrics: Sequence[str] | None = None, min_group_size: int = 30
) -> dict[str, Any]:
    """Per-group metrics and the gaps between groups, for each sensitive feature of ``preds``.

    Classification: accuracy, macro precision/recall/F1 and (binary) the selection rate (the share
    predicted as the positive class, ``classes[1]``) per group; the gaps are fairlearn's
    demographic-parity difference and ratio and equalized-odds difference (the larger of the
    true- and false-positive-rate gaps) of the positive class for a binary model, and for more
    classes the worst of each class taken one-vs-rest. Regression: RMSE, MAE and the mean
    prediction per group. Every metric also gives ``<metric>_difference``: max minus min over
    the groups. ``count`` is each group's number of rows: a small group's figures are noisy, and
    a figure undefined in a group is None.

    Parameters
    ----------
    preds
        Predictions carrying ``sensitive`` groups (``sensitive_features=[...]`` where they are
        made).
    metrics
        The per-group metrics to compute (default: all of the task's).
    min_group_size
        A group with fewer rows is still reported, with a note saying its figures are noisy.

    Returns
    -------
    dict
        ``{"sensitive_features", "overall", "by_group": {feature: {group: {metric: v, "count":
        n}}}, "gaps": {feature: {gap: v}}, "notes": [str]}``, JSON-able (NaN becomes None).
        ``notes`` says which groups are small and which figures are undefined and why (a group
        with no positive row has no true-positive rate: it is left out of
        ``equalized_odds_difference`` rather than counted as 0, as fairlearn would).

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> p = Predictions.of("classification", ["y", "n", "y", "n"], ["y", "n", "n", "n"],
    ...                    classes=["n", "y"], sensitive={"sex": ["f", "f", "m", "m"]})
    >>> r = fairness_report(p)
    >>> r["by_group"]["sex"]["f"]["selection_rate"], r["by_group"]["sex"]["m"]["selection_rate"]
    (0.5, 0.0)
    >>> r["gaps"]["sex"]["demographic_parity_difference"]
    0.5
    """
    import numpy as np
    from fairlearn.metrics import MetricFrame

    if not preds.sensitive:
        raise ConfigError(
            "these predictions carry no sensitive groups: score the model with "
            "sensitive_features=[...] (bench.experiments.predict(bundle, holdout, "
            "sensitive_features=['sex']))."
        )
    available = _metric_names(preds.task, preds.classes)
    if metrics is not None:
        unknown = sorted(set(metrics) - set(available))
        if unknown:
            raise ConfigError(
                f"fairness metrics {unknown} are not available for this model; choose from "
                f"{sorted(available)}"
            )
    names = list(available if metrics is None else metrics)
    figures = _figures(preds.task, preds.classes)
    y_true, y_pred = np.asarray(preds.y_true), np.asarray(preds.y_pred)
    overall: dict[str, Any] = {}
    by_group: dict[str, Any] = {}
    gaps: dict[str, Any] = {}
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        for feature, groups in preds.sensitive.items():
            groups = np.asarray(groups)
            frame = MetricFrame(
                metrics=figures, y_true=y_true, y_pred=y_pred, sensitive_features=groups
            )
            if not overall:
                overall = {m: _number(frame.overall["metrics"][m]) for m in names}
            table = {str(g): frame.by_group[g] for g in frame.by_group.index}
            counts = {
                str(g): int(c) for g, c in zip(*np.unique(groups, return_counts=True), strict=True)
            }
            by_group[feature] = {
                g: {**{m: _number(f["metrics"][m]) for m in names}, "count": counts[g]}
                for g, f in table.items()
            }
            for g, c in counts.items():
                if c < min_group_size:
                    notes.append(
                        f"group {g} of {feature} has {c} rows (fewer than {min_group_size}): "
                        "its figures are noisy"
                    )
            feature_gaps: dict[str, Any] = {}
            if preds.task == "classification":
                feature_gaps.update(
                    _classification_gaps(
                        {g: f["confusion"] for g, f in table.items()},
                        preds.classes,
                        feature=feature,
                        notes=notes,
                    )
                )
            for m in names:
                values = [v[m] for v in by_group[feature].values() if v[m] is not None]
                feature_gaps[f"{m}_difference"] = (
                    _number(max(values) - min(values)) if values else None
                )
            gaps[feature] = feature_gaps
    return {
        "sensitive_features": list(preds.sensitive),
        "overall": overall,
        "by_group": by_group,
        "gaps": gaps,
        "notes": list(dict.fromkeys(notes)),
    }


def _classification_gaps(
    confusion: dict[str, Any], classes: Sequence[str], *, feature: str, notes: list[str]
) -> dict[str, float | None]:
    """fairlearn's parity gaps of the positive class (binary), or the worst class one-vs-rest,
    from each group's confusion matrix (rows true, columns predicted, over ``classes``).

    The selection rate of class ``c`` in a group is its predicted column's share, the true-positive
    rate the diagonal over the true row, the false-positive rate the rest of the predicted column
    over the rows that are not ``c``: fairlearn's ``selection_rate``, ``true_positive_rate`` and
    ``false_positive_rate`` (the tests compare with its functions). A group with no positive row
    has no true-positive rate (no negative row: no false-positive rate); fairlearn's
    ``equalized_odds_difference`` counts such a rate as 0, which makes a gap out of a group's
    absence of positives, so that group is left out of that rate's gap instead and ``notes`` says
    so. A rate's gap needs two groups where it is defined.
    """
    import numpy as np

    matrices = {g: np.asarray(m, dtype=float) for g, m in confusion.items()}
    indices = [1] if len(classes) == 2 else list(range(len(classes)))
    worst: dict[str, float | None] = {}
    for c in indices:
        positive = classes[c]
        selection: list[float] = []
        rates: dict[str, list[float]] = {"true": [], "false": []}
        for g, m in matrices.items():
            n, predicted, actual = m.sum(), m[:, c].sum(), m[c, :].sum()
            selection.append(predicted / n)
            for which, hits, base, lacking in (
                ("true", m[c, c], actual, "no"),
                ("false", predicted - m[c, c], n - actual, "only"),
            ):
                if base > 0:
                    rates[which].append(hits / base)
                else:
                    notes.append(
                        f"group {g} of {feature} has {lacking} {positive!r} rows: its {which}-"
                        "positive rate is undefined and left out of equalized_odds_difference"
                    )
        top = max(selection)
        if top == 0:
            notes.append(
                f"no group of {feature} is predicted {positive!r}: demographic_parity_ratio is "
                "undefined"
            )
        rate_gaps = [max(r) - min(r) for r in rates.values() if len(r) >= 2]
        values = {
            "demographic_parity_difference": top - min(selection),
            "demographic_parity_ratio": min(selection) / top if top > 0 else None,
            "equalized_odds_difference": max(rate_gaps) if rate_gaps else None,
        }
        for name, value in values.items():
            v = _number(value)
            if v is None:
                worst.setdefault(name, None)
                continue
            old = worst.get(name)
            if old is None or (v < old if name.endswith("_ratio") else v > old):
                worst[name] = v
    return worst


def fairness_gaps(preds: Predictions) -> dict[str, float]:
    """Each gap of :func:`fairness_report` at its worst over the sensitive features: the largest
    difference, the smallest ratio (undefined gaps are left out).

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> p = Predictions.of("classification", ["y", "n", "y", "n"], ["y", "n", "n", "n"],
    ...                    classes=["n", "y"], sensitive={"sex": ["f", "f", "m", "m"]})
    >>> fairness_gaps(p)["demographic_parity_difference"]
    0.5
    """
    out: dict[str, float] = {}
    for feature_gaps in fairness_report(preds)["gaps"].values():
        for name, value in feature_gaps.items():
            if value is None:
                continue
            old = out.get(name)
            if old is None or (value < old if name.endswith("_ratio") else value > old):
                out[name] = value
    return out
