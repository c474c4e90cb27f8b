"""Cross-validation summaries: per metric, the mean over folds, its spread and a 95% Student-t
interval (pure, no Ray)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["cv_summary"]

#: the confidence level of :func:`cv_summary`'s interval
CV_LEVEL = 0.95


def cv_summary(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "ci_low", "ci_high", "n_folds"}}`` over the folds of one trial.

    ``std`` is the sample standard deviation across folds (``ddof=1``) and
    ``[ci_low, ci_high]`` the 95% Student-t interval of the mean,
    ``mean ± t(0.975, k-1) · std / √k`` for ``k`` folds. A metric some fold lacks is
    summarised over the folds that have it; with one fold there is no spread and
    ``std``/``ci_low``/``ci_high`` are None.

    What the interval is: a statement about the mean of the fold scores *treating the folds
    as independent draws* of a test set from the same population; it is exact (for scores
    close to normal) when they are. The folds of one k-fold split share training rows and
    so are positively correlated: then the interval shows the fold-to-fold spread of this
    dataset and is optimistic (too narrow) as an interval for the model's performance on new
    data. It is not an interval for a single future prediction either.

    Examples
    --------
    >>> s = cv_summary([{"f1": 0.90}, {"f1": 0.92}, {"f1": 0.94}])
    >>> round(s["f1"]["mean"], 2), round(s["f1"]["std"], 2), s["f1"]["n_folds"]
    (0.92, 0.02, 3)
    >>> round(s["f1"]["ci_low"], 3), round(s["f1"]["ci_high"], 3)
    (0.87, 0.97)
    """
    import math

    names: dict[str, None] = {}
    for fold in per_fold:
        names.update(dict.fromkeys(fold))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values = [
            float(f[name])
            for f in per_fold
            if isinstance(f.get(name), int | float) and not isinstance(f.get(name), bool)
        ]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            continue
        k = len(values)
        mean = sum(values) / k
        if k < 2:
            out[name] = {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "n_folds": k}
            continue
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
        half = _t_quantile(k - 1) * std / math.sqrt(k)
        out[name] = {
            "mean": mean,
            "std": std,
            "ci_low": mean - half,
            "ci_high": mean + half,
            "n_folds": k,
        }
    return out


@functools.cache
def _t_quantile(df: int) -> float:
    """The two-sided :data:`CV_LEVEL` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + CV_LEVEL / 2, df))
