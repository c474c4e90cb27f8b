"""Label-free performance estimation under covariate shift: importance weighting of a model's
labelled reference rows by a domain classifier's density ratio, and the expected calibration
error that says whether confidence-based estimation can be trusted instead (pure, no Ray).

The method (covariate shift adaptation by importance weighting: Shimodaira 2000; Sugiyama,
Krauledat & Müller 2007, JMLR 8; Sugiyama & Kawanabe, *Machine Learning in Non-Stationary
Environments*, MIT Press 2012): when only the inputs move (``p(y|x)`` unchanged), a model's
expected loss on the served distribution is its loss on the reference rows weighted by
``w(x) = p_served(x) / p_ref(x)``. The density ratio comes from a probabilistic classifier that
tells served rows from reference rows (Bickel, Brückner & Scheffer 2009):
``w(x) = p(served|x) / p(ref|x) × n_ref / n_served``. NannyML's and Evidently's label-free
estimators rest on the same two ideas (a density ratio, or calibrated confidence).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.exceptions import ConfigError

__all__ = [
    "ESTIMABLE_METRICS",
    "C_GRID",
    "PerformanceEstimate",
    "importance_weights",
    "importance_weighted_estimate",
    "expected_calibration_error",
]

#: the metrics :func:`importance_weighted_estimate` estimates, and what ``values`` holds for each:
#: accuracy from whether the model was right on each row; MAE and RMSE from the residuals
ESTIMABLE_METRICS = ("accuracy", "mae", "rmse")
#: the domain classifier's regularization strengths :func:`importance_weights` chooses from
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class PerformanceEstimate:
    """A label-free estimate of a model's ``metric`` on served rows.

    Attributes
    ----------
    metric, estimate, interval
        The metric, its importance-weighted estimate on the served distribution, and the
        percentile bootstrap interval (over reference rows, weights held fixed).
    baseline
        The same metric on the reference rows, unweighted (what the model scored there).
    effective_n
        Kish's effective sample size ``(Σw)² / Σw²`` of the density-ratio weights before the cap:
        how many equally weighted reference rows the served distribution is worth
        (``n_reference`` without shift; a handful when the served rows lie where the reference
        has few). The figure to judge the estimate by: the cap keeps the weights used from
        collapsing onto a few rows, at a bias, so their own effective size
        (``capped_effective_n``) hides a missing overlap.
    capped_effective_n
        The same of the capped weights the estimate and its interval use.
    n_reference, n_served, clipped, domain_auc
        The row counts, how many weights sit at the cap, and the cross-fitted ROC-AUC of the
        domain classifier (0.5: served and reference rows cannot be told apart).
    """

    metric: str
    estimate: float
    interval: tuple[float, float]
    baseline: float
    effective_n: float
    capped_effective_n: float
    n_reference: int
    n_served: int
    clipped: int
    domain_auc: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (the interval as a list)."""
        return {
            "metric": self.metric,
            "estimate": self.estimate,
            "interval": list(self.interval),
            "baseline": self.baseline,
            "effective_n": self.effective_n,
            "capped_effective_n": self.capped_effective_n,
            "n_reference": self.n_reference,
            "n_served": self.n_served,
            "clipped": self.clipped,
            "domain_auc": self.domain_auc,
        }


def _matrix(reference: Any, served: Any) -> tuple[Any, int]:
    """Both row sets as one float matrix over their shared columns (reference rows first):
    numbers as they are, missing ones the pooled median; any other column one-hot encoded over
    the pooled values (a missing value is a value of its own)."""
    import numpy as np
    import polars as pl

    def frame(rows: Any) -> Any:  # every row read for the types: a column may mix 1 and 1.5
        return (
            rows
            if isinstance(rows, pl.DataFrame)
            else pl.DataFrame(list(rows), infer_schema_length=None)
        )

    ref, new = frame(reference), frame(served)
    columns = [c for c in ref.columns if c in set(new.columns)]
    if not columns:
        raise ConfigError(
            "the reference and served rows share no column: pass the model's input features of both"
        )
    parts = []
    for c in columns:
        a, b = ref[c], new[c]
        if all(s.dtype.is_numeric() or s.dtype == pl.Null for s in (a, b)):  # Null: all missing
            x = np.concatenate(
                [a.cast(pl.Float64).to_numpy(), b.cast(pl.Float64).to_numpy()]
            ).astype(float)
            finite = np.isfinite(x)
            x[~finite] = np.median(x[finite]) if finite.any() else 0.0
            parts.append(x[:, None])
        else:
            values = [str(v) for v in a.to_list()] + [str(v) for v in b.to_list()]
            levels = sorted(set(values))
            if len(levels) > 1:
                index = {v: i for i, v in enumerate(levels)}
                hot = np.zeros((len(values), len(levels)))
                hot[np.arange(len(values)), [index[v] for v in values]] = 1.0
                parts.append(hot)
    if not parts:  # every shared column constant: nothing tells the two apart
        parts.append(np.zeros((ref.height + new.height, 1)))
    return np.hstack(parts), ref.height


def importance_weights(
    reference: Any,
    served: Any,
    *,
    folds: int = 5,
    max_weight: float | None = None,
    C: float | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, float]]:
    """Density-ratio weights ``p_served(x) / p_ref(x)`` of the reference rows, from a domain
    classifier: ``(weights, {"domain_auc", "clipped", "max_weight", "C", "raw_effective_n"})``
    (the last: Kish's effective sample size of the weights before the cap).

    A logistic regression (L2) on the standardized numeric columns and one-hot encoded other
    columns learns to tell served rows (1) from reference rows (0). Its probabilities are
    cross-fitted (``folds`` stratified folds, seeded): each reference row's ``p(served|x)``
    comes from the model fitted without it, so the classifier cannot overfit a row into a large
    weight. Its regularization ``C`` (default: the one of :data:`C_GRID` whose cross-fitted
    probabilities have the least log-loss) is strong when nothing tells the rows apart, so
    without a shift the weights stay near 1 instead of fitting noise. ``w = p / (1 - p) × n_ref / n_served``, then scaled to mean 1 on the
    reference rows and capped at ``max_weight`` (default ``sqrt(n_ref)``: truncated importance
    sampling, Ionides 2008, JCGS 17(2), which bounds the variance any single row can add at a
    bias that vanishes as ``n_ref`` grows): capped and scaled back to mean 1 until no row weighs
    more than ``max_weight`` average rows (``clipped`` counts the rows at the cap).

    ``reference`` and ``served`` are polars DataFrames or sequences of dict records; the
    columns both have are used.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = [{"x": v} for v in rng.normal(0, 1, 400)]
    >>> w, info = importance_weights(ref, [{"x": v} for v in rng.normal(0, 1, 400)])
    >>> round(float(w.mean()), 6), bool(0.4 < info["domain_auc"] < 0.6)   # no shift: w ≈ 1
    (1.0, True)
    >>> w, info = importance_weights(ref, [{"x": v} for v in rng.normal(1, 1, 400)])
    >>> xs = np.array([r["x"] for r in ref])
    >>> bool(w[xs > 1].mean() > 2 > 0.5 > w[xs < -1].mean()), info["domain_auc"] > 0.7
    (True, True)
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    X, n_ref = _matrix(reference, served)
    n_served = X.shape[0] - n_ref
    if n_ref < 2 or n_served < 2:
        raise ConfigError(
            f"importance weights need at least 2 reference and 2 served rows (got {n_ref} and "
            f"{n_served})"
        )
    domain = np.r_[np.zeros(n_ref), np.ones(n_served)]
    k = max(2, min(folds, n_ref, n_served))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    best: tuple[float, float, Any] | None = None
    # one BLAS thread: these fits are small, and on a busy 2-core machine a threaded BLAS made
    # them 30-100x slower (5 s instead of 0.15 s for 455 rows of 30 columns)
    with threadpool_limits(limits=1):
        for c in (C,) if C is not None else C_GRID:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
            p = cross_val_predict(model, X, domain, cv=cv, method="predict_proba")[:, 1]
            loss = float(log_loss(domain, p))
            if best is None or loss < best[0] - 1e-9:
                best = (loss, c, p)
    assert best is not None
    _, chosen, p = best
    auc = float(roc_auc_score(domain, p))
    p_ref = np.clip(p[:n_ref], 1e-6, 1 - 1e-6)
    w = p_ref / (1 - p_ref) * (n_ref / n_served)
    w = w / w.mean()
    raw_n = float(w.sum() ** 2 / (w**2).sum())
    cap = max(1.0, math.sqrt(n_ref) if max_weight is None else float(max_weight))
    # cap, scale back to mean 1, again until no weight is over the cap (scaling lifts the capped
    # rows over it once more; a fixed point exists since cap >= 1, reached in a few rounds)
    for _ in range(100):
        over = w > cap * (1 + 1e-12)
        if not over.any():
            break
        w = np.minimum(w, cap)
        w = w / w.mean()
    clipped = int((w >= cap * (1 - 1e-9)).sum())
    return w, {
        "domain_auc": auc,
        "clipped": clipped,
        "max_weight": cap,
        "C": chosen,
        "raw_effective_n": raw_n,
    }


def _weighted(metric: str, w: Any, v: Any) -> Any:
    """The weighted metric of per-row ``v`` along the last axis."""
    mean = (w * v).sum(axis=-1) / w.sum(axis=-1)
    return mean**0.5 if metric == "rmse" else mean


def importance_weighted_estimate(
    reference: Any,
    served: Any,
    values: Sequence[Any],
    *,
    metric: str = "accuracy",
    max_weight: float | None = None,
    folds: int = 5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PerformanceEstimate:
    """A model's ``metric`` on ``served`` rows that have no labels, estimated from labelled
    ``reference`` rows by importance weighting (see the module docstring).

    ``reference`` are the features of rows the model was scored on (its holdout) and ``values``
    one figure per reference row: for ``"accuracy"`` whether the model was right there (bool or
    0/1); for ``"mae"`` and ``"rmse"`` the residual ``y - ŷ``. ``served`` are the features of
    the served rows. The weights are :func:`importance_weights`' (cross-fitted, capped at
    ``max_weight``); the estimate is the self-normalized weighted metric ``Σ w·v / Σ w`` (the
    root of it of squared residuals for RMSE). The interval is the percentile bootstrap over
    reference rows (``n_boot`` resamples, seeded), the weights held fixed: it covers the
    sampling noise of the reference rows, not the domain classifier's own error, nor the cap's
    bias, so read it with ``effective_n`` (an estimate worth a handful of rows is no evidence).

    Valid under covariate shift (the inputs move, ``p(y|x)`` stays), where the served rows lie
    where reference rows are: a concept drift, or served rows in a region the reference never
    covered, is invisible to it (the weights then pile on a few rows, which ``effective_n``
    shows).

    Examples
    --------
    A model right wherever ``x < 1`` (accuracy Φ(1) = 0.841 on the reference N(0, 1)), served
    rows from N(1, 1) where it is right half the time (Φ(0) = 0.5):

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> xr, xs = rng.normal(0, 1, 2000), rng.normal(1, 1, 1000)
    >>> est = importance_weighted_estimate([{"x": v} for v in xr], [{"x": v} for v in xs], xr < 1)
    >>> round(est.baseline, 3), round(est.estimate, 3), float((xs < 1).mean())
    (0.854, 0.493, 0.485)
    >>> [round(v, 3) for v in est.interval], round(est.effective_n), est.clipped
    ([0.459, 0.534], 624, 0)
    """
    import numpy as np

    if metric not in ESTIMABLE_METRICS:
        raise ConfigError(
            f"importance-weighted estimation covers {list(ESTIMABLE_METRICS)}, not {metric!r}"
        )
    v = np.asarray(values, dtype=float)
    if metric == "mae":
        v = np.abs(v)
    elif metric == "rmse":
        v = v**2
    w, info = importance_weights(reference, served, folds=folds, max_weight=max_weight, seed=seed)
    if len(v) != len(w):
        raise ConfigError(
            f"values has {len(v)} entries for {len(w)} reference rows: pass one per reference row"
        )
    rng = np.random.default_rng(seed)
    n = len(v)
    chunk = max(1, 2_000_000 // n)  # resamples at a time: bounded memory for a large holdout
    boots = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, (min(chunk, n_boot - start), n))
        boots.append(_weighted(metric, w[idx], v[idx]))
    b = np.concatenate(boots)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(b, [alpha, 1 - alpha])
    return PerformanceEstimate(
        metric=metric,
        estimate=float(_weighted(metric, w, v)),
        interval=(float(low), float(high)),
        baseline=float(_weighted(metric, np.ones(n), v)),
        effective_n=info["raw_effective_n"],
        capped_effective_n=float(w.sum() ** 2 / (w**2).sum()),
        n_reference=n,
        n_served=len(served) if not hasattr(served, "height") else int(served.height),
        clipped=info["clipped"],
        domain_auc=info["domain_auc"],
    )


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[Any], *, bins: int = 10
) -> float:
    """Top-label expected calibration error (Guo et al. 2017): over ``bins`` uniform bins of the
    model's top-class probability, the row-weighted mean gap between the mean confidence and the
    accuracy of the rows in each bin. 0 for perfectly calibrated probabilities; confidence-based
    performance estimation (the mean top-class probability as the accuracy) is off by about this
    much.

    Examples
    --------
    >>> expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 1, 1, 0])   # 0.1 and 0.1 off
    0.1
    >>> expected_calibration_error([0.75] * 4, [1, 1, 1, 0])
    0.0
    """
    import numpy as np

    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 0.0
    which = np.minimum((conf * bins).astype(int), bins - 1)
    gap = 0.0
    for b in np.unique(which):
        rows = which == b
        gap += rows.sum() * abs(conf[rows].mean() - right[rows].mean())
    return round(float(gap / conf.size), 12)
