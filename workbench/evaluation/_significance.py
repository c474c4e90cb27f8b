"""Is a challenger really better? Paired significance tests of two models' predictions on the same
holdout rows: the paired bootstrap of any metric's difference and McNemar's exact test (pure, no Ray).

The bootstrap is vectorised: each resample is a vector of row counts (how often each holdout row
was drawn), and every metric is a function of count-weighted sums (a confusion matrix per
resample for the label metrics, weighted error sums for regression, weighted ranks for the AUCs),
so 1,000 resamples of 10,000 rows take a fraction of a second instead of 1,000 calls to
scikit-learn (``bench/gate_speed.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from workbench.evaluation._metrics import (
    METRICS,
    PROBA_METRICS,
    REGRESSION_METRICS,
    gain,
)
from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.evaluation._predictions import Predictions

__all__ = ["paired_bootstrap", "paired_bootstrap_many", "mcnemar", "BOOTSTRAP_METRICS"]

#: the metrics :func:`paired_bootstrap` can resample
BOOTSTRAP_METRICS = METRICS + PROBA_METRICS + REGRESSION_METRICS
#: how many (resample, row) cells one block of the bootstrap holds (bounds its memory: 8 bytes each)
_BLOCK_CELLS = 2_000_000
#: the metrics computed from ranks of the scores (the rest are weighted sums)
_RANKED = ("roc_auc", "pr_auc")


def paired_bootstrap(
    metric: str,
    champion: Predictions,
    challenger: Predictions,
    *,
    resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The paired bootstrap interval of the challenger's gain over the champion on ``metric``.

    Each resample draws the holdout's rows with replacement, the *same* rows for both models
    (their predictions are paired: row ``i`` is one record), computes ``metric`` for each model on
    it, and takes the difference in the metric's direction (:func:`workbench.evaluation.gain`:
    positive means the challenger is better, for ``rmse`` as for ``f1``). The interval is the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled differences. A resample where the
    metric is undefined (an AUC on a resample without a positive row) is left out;
    ``resamples_used`` says how many counted.

    Parameters
    ----------
    metric
        One of :data:`BOOTSTRAP_METRICS`; ``roc_auc``, ``pr_auc``, ``log_loss`` and ``brier`` need
        class probabilities in both predictions.
    champion, challenger
        Paired predictions on the same holdout (:meth:`Predictions.check_paired`).
    resamples, seed, alpha
        Number of resamples, the seed of the numpy ``Generator`` drawing them (the same seed gives
        the same interval), and the interval's level ``1 - alpha``.

    Returns
    -------
    dict
        ``test`` (``"paired_bootstrap"``), ``metric``, ``n``, ``resamples``, ``resamples_used``,
        ``seed``, ``alpha``, ``champion`` and ``challenger`` (the metric on all rows),
        ``difference`` (their gain), ``interval`` ``[low, high]`` of the gain, and ``p_value``:
        the share of resamples where the challenger does not gain (one-sided, ``(k + 1) / (B + 1)``).

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> y = ["a", "b"] * 500
    >>> champ = Predictions.of("classification", y, ["a"] * 1000, classes=["a", "b"])
    >>> chall = Predictions.of("classification", y, y[:900] + ["a"] * 100, classes=["a", "b"])
    >>> r = paired_bootstrap("accuracy", champ, chall, resamples=1000, seed=0)
    >>> round(r["difference"], 3), r["interval"][0] > 0.4
    (0.45, True)
    """
    return paired_bootstrap_many(
        [metric], champion, challenger, resamples=resamples, seed=seed, alpha=alpha
    )[metric]


def paired_bootstrap_many(
    metrics: Sequence[str],
    champion: Predictions,
    challenger: Predictions,
    *,
    resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """:func:`paired_bootstrap` of several metrics on the same resamples (drawn once): what the
    gate uses for its metric and its guarded metrics. Returns ``{metric: result}``.

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> y = [1.0, 2.0, 3.0, 4.0] * 50
    >>> champ = Predictions.of("regression", y, [v + 1.0 for v in y])
    >>> chall = Predictions.of("regression", y, [v + 0.5 for v in y])
    >>> r = paired_bootstrap_many(["rmse", "mae"], champ, chall)
    >>> r["rmse"]["difference"], r["mae"]["interval"]   # lower is better: a positive gain
    (0.5, [0.5, 0.5])
    """
    import numpy as np

    unknown = [m for m in metrics if m not in BOOTSTRAP_METRICS]
    if unknown:
        raise ConfigError(
            f"the paired bootstrap has no metric {unknown}; use one of {list(BOOTSTRAP_METRICS)}"
        )
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1, got {resamples}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}")
    champion.check_paired(challenger)
    n = champion.n
    if n == 0:
        raise ConfigError("the holdout has no rows; score both models on a non-empty holdout")
    scorers = {m: (_Scorer(m, champion), _Scorer(m, challenger)) for m in metrics}
    diffs: dict[str, list[Any]] = {m: [] for m in metrics}
    ranked = any(m in _RANKED for m in metrics)
    weighted = any(m not in _RANKED for m in metrics)
    for idx in _index_blocks(n, resamples, seed):
        counts = _counts(idx)
        w = counts.astype(float) if weighted else counts
        # the AUCs gather rows of the counts: fast in the (n, b) layout, so transposed once here
        counts_nb = counts.T.astype(np.int32, order="C") if ranked else None
        for m, (score_a, score_b) in scorers.items():
            diffs[m].append(gain(m, score_a(w, counts_nb), score_b(w, counts_nb)))
    ones = np.ones((1, n))
    out: dict[str, dict[str, Any]] = {}
    for m, (score_a, score_b) in scorers.items():
        d = np.concatenate(diffs[m])
        d = d[~np.isnan(d)]
        if d.size == 0:
            raise ConfigError(
                f"{m} is undefined on every resample of these {n} rows (e.g. an AUC without "
                "both classes); use a larger holdout or another metric"
            )
        a, b = float(score_a(ones)[0]), float(score_b(ones)[0])
        low, high = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[m] = {
            "test": "paired_bootstrap",
            "metric": m,
            "n": n,
            "resamples": resamples,
            "resamples_used": int(d.size),
            "seed": seed,
            "alpha": alpha,
            "champion": a,
            "challenger": b,
            "difference": float(gain(m, a, b)),
            "interval": [float(low), float(high)],
            "p_value": float((np.count_nonzero(d <= 0) + 1) / (d.size + 1)),
        }
    return out


def mcnemar(
    champion: Predictions, challenger: Predictions, *, alpha: float = 0.05
) -> dict[str, Any]:
    """McNemar's exact test that the challenger is right more often than the champion.

    Only the discordant rows count: ``champion_only`` rows the champion gets right and the
    challenger wrong, ``challenger_only`` the reverse. Under "equally accurate" each discordant
    row is a fair coin, so ``p_value`` is the one-sided exact binomial tail
    ``P(X >= challenger_only)``, ``X ~ Binomial(discordant, 1/2)`` (``scipy.stats.binomtest``,
    ``alternative="greater"``); ``p_value_reverse`` is the same test in the champion's favour.
    Classification only.

    Returns
    -------
    dict
        ``test`` (``"mcnemar"``), ``metric`` (``"accuracy"``), ``n``, ``alpha``, ``champion`` and
        ``challenger`` (accuracies), ``difference`` (challenger minus champion), ``champion_only``,
        ``challenger_only``, ``discordant``, ``p_value``, ``p_value_reverse``, ``rejects``
        (``p_value < alpha``).

    Examples
    --------
    >>> from workbench.evaluation import Predictions
    >>> y = ["a", "b"] * 50
    >>> champ = Predictions.of("classification", y, ["a"] * 100, classes=["a", "b"])
    >>> chall = Predictions.of("classification", y, y[:80] + ["a"] * 20, classes=["a", "b"])
    >>> r = mcnemar(champ, chall)
    >>> r["challenger_only"], r["champion_only"], r["p_value"] < 0.001
    (40, 0, True)
    """
    import numpy as np
    from scipy.stats import binomtest

    if champion.task != "classification":
        raise ConfigError(
            "McNemar's test compares right and wrong predictions, i.e. a classifier's; for a "
            "regressor use test='paired_bootstrap'"
        )
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}")
    champion.check_paired(challenger)
    right_a = np.asarray(champion.y_pred == champion.y_true, dtype=bool)
    right_b = np.asarray(challenger.y_pred == challenger.y_true, dtype=bool)
    only_a = int(np.count_nonzero(right_a & ~right_b))
    only_b = int(np.count_nonzero(right_b & ~right_a))
    m = only_a + only_b
    p = binomtest(only_b, m, 0.5, alternative="greater").pvalue if m else 1.0
    p_rev = binomtest(only_a, m, 0.5, alternative="greater").pvalue if m else 1.0
    n = champion.n
    acc_a = float(right_a.mean()) if n else float("nan")
    acc_b = float(right_b.mean()) if n else float("nan")
    return {
        "test": "mcnemar",
        "metric": "accuracy",
        "n": n,
        "alpha": alpha,
        "champion": acc_a,
        "challenger": acc_b,
        "difference": acc_b - acc_a,
        "champion_only": only_a,
        "challenger_only": only_b,
        "discordant": m,
        "p_value": float(p),
        "p_value_reverse": float(p_rev),
        "rejects": bool(p < alpha),
    }


# ------------------------------------------------------------------------------ resampling
def _index_blocks(n: int, resamples: int, seed: int) -> Iterator[Any]:
    """The bootstrap's row indices, ``(block, n)`` arrays whose rows are the resamples in order:
    what :func:`paired_bootstrap` draws, so a reference loop can replay the same resamples."""
    import numpy as np

    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        b = min(block, resamples - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def _counts(idx: Any) -> Any:
    """``(b, n)`` counts: how many times each row was drawn in each resample."""
    import numpy as np

    b, n = idx.shape
    flat = (idx + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


class _Scorer:
    """A metric of one model's predictions as a function of row weights ``w`` (``(b, n)``, one
    resample a row): the per-row pieces are computed once, each call is a few matrix products.

    With all weights 1 it gives the metric on the whole holdout, as
    :func:`workbench.evaluation.prediction_metrics` does (tested against it and against
    scikit-learn on each resample)."""

    def __init__(self, metric: str, preds: Predictions) -> None:
        import numpy as np

        self.metric = metric
        if metric in REGRESSION_METRICS:
            if preds.task != "regression":
                raise ConfigError(f"{metric} is a regression metric; this model is a classifier")
            y = np.asarray(preds.y_true, dtype=float)
            e = y - np.asarray(preds.y_pred, dtype=float)
            nz = (y != 0).astype(float)
            ape = np.divide(np.abs(e), np.abs(y), out=np.zeros_like(e), where=y != 0)
            # columns: 1, y, y², e², |e|, ape (0 where y = 0), y != 0
            one = np.ones_like(y)
            self.columns = np.stack([one, y, y * y, e * e, np.abs(e), ape, nz], axis=1)
            return
        if preds.task != "classification":
            raise ConfigError(f"{metric} is a classification metric; this model is a regressor")
        if metric in METRICS:
            labels = sorted(set(preds.y_true.tolist()) | set(preds.y_pred.tolist()))
            t = np.stack([preds.y_true == c for c in labels], axis=1).astype(float)
            p = np.stack([preds.y_pred == c for c in labels], axis=1).astype(float)
            self.k = len(labels)
            # columns: true one-hot (support), predicted one-hot, hits per class
            self.columns = np.concatenate([t, p, t * p], axis=1)
            return
        if preds.proba is None or len(preds.classes) < 2:
            raise ConfigError(
                f"{metric} needs class probabilities of both models (an estimator with "
                "predict_proba); compare on a label metric such as 'accuracy' or 'f1' instead"
            )
        classes = list(preds.classes)
        proba = np.asarray(preds.proba, dtype=float)
        onehot = np.stack([preds.y_true == c for c in classes], axis=1).astype(float)
        if metric == "log_loss":
            eps = np.finfo(float).eps
            known = onehot.sum(axis=1) > 0
            p_true = np.clip((proba * onehot).sum(axis=1), eps, 1.0)
            rows = np.clip(proba, eps, 1.0).sum(axis=1)
            loss = np.where(known, -np.log(p_true / rows), 0.0)
            self.columns = np.stack([loss, known.astype(float)], axis=1)
            return
        if metric == "brier":
            sq = ((proba - onehot) ** 2).mean(axis=1)
            self.columns = np.stack([sq, np.ones_like(sq)], axis=1)
            return
        # roc_auc / pr_auc: one-vs-rest per class (binary: the positive class classes[1]). Each
        # class's positive and negative rows are sorted by score once; for each positive row,
        # how many negatives (and positives) score strictly lower, and how many no higher
        scored = [1] if len(classes) == 2 else range(len(classes))
        self.curves = []
        for j in scored:
            pos = onehot[:, j] > 0
            if pos.sum() in (0, len(pos)):
                continue  # undefined on the whole holdout: left out, as evaluate() does
            s = proba[:, j]
            pos_idx = np.flatnonzero(pos)
            neg_idx = np.flatnonzero(~pos)
            pos_idx = pos_idx[np.argsort(s[pos_idx], kind="stable")]
            neg_idx = neg_idx[np.argsort(s[neg_idx], kind="stable")]
            s_pos, s_neg = s[pos_idx], s[neg_idx]
            self.curves.append(
                (
                    pos_idx,
                    neg_idx,
                    np.searchsorted(s_neg, s_pos, side="left"),
                    np.searchsorted(s_neg, s_pos, side="right"),
                    np.searchsorted(s_pos, s_pos, side="left"),
                )
            )
        if not self.curves:
            raise ConfigError(
                f"{metric} is undefined on this holdout: no class has both positive and negative "
                "rows; use a holdout with every class"
            )

    def __call__(self, w: Any, counts: Any = None) -> Any:
        """The metric per row of ``w`` (``(b, n)`` float row weights); ``counts``: the same as
        ``(n, b)`` int32, which the AUCs sum exactly (given by the bootstrap, else made from ``w``)."""
        import numpy as np

        m = self.metric
        if m in _RANKED:
            if counts is None:
                counts = np.ascontiguousarray(np.rint(w).astype(np.int32).T)
            per_class = [self._auc(counts, *curve) for curve in self.curves]
            stacked = np.stack(per_class, axis=1)
            valid = ~np.isnan(stacked)
            count = valid.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(count > 0, np.nansum(stacked, axis=1) / count, np.nan)
        if m in REGRESSION_METRICS:
            s = w @ self.columns
            total, sy, syy, see, sae, sape, snz = s.T
            if m == "rmse":
                return np.sqrt(see / total)
            if m == "mae":
                return sae / total
            if m == "mape":
                with np.errstate(invalid="ignore", divide="ignore"):
                    return np.where(snz > 0, sape / snz, np.nan)
            sst = syy - sy * sy / total
            with np.errstate(invalid="ignore", divide="ignore"):
                r2 = 1.0 - see / sst
            # scikit-learn's r2_score on a constant target: 1 for a perfect fit, else 0
            flat = sst <= 1e-12 * np.maximum(syy, 1.0)
            return np.where(flat, np.where(see <= 1e-12, 1.0, 0.0), r2)
        if m in METRICS:
            k = self.k
            s = w @ self.columns
            support, predicted, hits = s[:, :k], s[:, k : 2 * k], s[:, 2 * k :]
            if m == "accuracy":  # every row has one true label: the supports sum to the weight
                return hits.sum(axis=1) / support.sum(axis=1)
            # macro over the labels present in the resample (true or predicted), as scikit-learn
            present = (support + predicted) > 0
            if m == "precision":
                per = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
            elif m == "recall":
                per = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
            else:  # f1 = 2 TP / (true + predicted)
                both = support + predicted
                per = np.divide(2 * hits, both, out=np.zeros_like(hits), where=both > 0)
            return (per * present).sum(axis=1) / present.sum(axis=1)
        if m == "log_loss":
            s = w @ self.columns
            with np.errstate(invalid="ignore", divide="ignore"):
                return s[:, 0] / s[:, 1]
        s = w @ self.columns  # brier: the mean of the rows' squared errors
        return s[:, 0] / s[:, 1]

    def _auc(
        self, w: Any, pos_idx: Any, neg_idx: Any, neg_lo: Any, neg_hi: Any, pos_lo: Any
    ) -> Any:
        """ROC-AUC (a tie counts half) or average precision of one class, per resample.

        ROC-AUC is the weighted Mann-Whitney statistic: for each positive row, the weight of the
        negatives scored lower (half of those tied), from one cumulative sum over the negatives
        in score order. Average precision is scikit-learn's step sum: for each positive row, its
        recall step (its weight over all positives) times the precision at its score's threshold
        (weight of the positives and of the negatives scoring at least as high)."""
        import numpy as np

        b = w.shape[1]
        wp = w[pos_idx]
        cum_neg = np.zeros((len(neg_idx) + 1, b), dtype=np.int32)
        np.cumsum(w[neg_idx], axis=0, dtype=np.int32, out=cum_neg[1:])
        p_tot = wp.sum(axis=0, dtype=np.int64)
        n_tot = cum_neg[-1].astype(np.int64)
        defined = (p_tot > 0) & (n_tot > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.metric == "roc_auc":
                # twice the weight of the negatives below (ties once): exact in integers
                lower2 = cum_neg[neg_lo] + cum_neg[neg_hi]
                num2 = np.einsum("ij,ij->j", wp, lower2, dtype=np.int64)
                return np.where(defined, num2 / (2.0 * p_tot * n_tot), np.nan)
            cum_pos = np.zeros((len(pos_idx) + 1, b), dtype=np.int32)
            np.cumsum(wp, axis=0, dtype=np.int32, out=cum_pos[1:])
            tps = p_tot - cum_pos[pos_lo]
            above = tps + (n_tot - cum_neg[neg_lo])
            precision = np.divide(tps, above, out=np.zeros(tps.shape), where=wp > 0)
            return np.where(defined, np.einsum("ij,ij->j", wp, precision) / p_tot, np.nan)
