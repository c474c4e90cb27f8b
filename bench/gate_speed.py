"""The statistical gate's paired bootstrap: 1,000 resamples of 10,000 holdout rows per metric, the
vectorised ``workbench.evaluation.paired_bootstrap`` against a plain loop of scikit-learn (goal:
< 1 s per metric).

Workload: two models' seeded synthetic predictions on the same rows: a binary classifier pair
(labels and class probabilities, the second right on 2 points more rows), a 5-class pair for the
one-vs-rest AUC, and a regressor pair.

- ``vectorised``  ``paired_bootstrap(metric, champion, challenger, resamples=1000)``: the
  resamples as row-count vectors, every metric as count-weighted sums (both models, one draw).
- ``sklearn loop`` the peer: for each resample, index both models' rows and call scikit-learn's
  metric on each (``accuracy_score``, ``f1_score(average="macro")``, ``roc_auc_score``, ...),
  then the same percentiles. It runs ``--peer-resamples`` resamples (default 200: it is linear
  in them) and its time is scaled to 1,000.
- ``gate.judge``  a whole ``Gate("accuracy", test="paired_bootstrap", guarded=("f1",
  "log_loss"))`` verdict on the binary pair (three metrics on one set of resamples), and the same
  with ``test="mcnemar"``.

Medians of ``--repeats`` runs (default 5); the 1-minute load average is printed, since the machine
may be shared. Usage::

    .venv/bin/python bench/gate_speed.py                  # ~1 min on 2 cores
    .venv/bin/python bench/gate_speed.py --repeats 3 --peer-resamples 1000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

ROWS = 10_000
RESAMPLES = 1000


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def classifier_pair(n: int, classes: int, *, seed: int = 0):
    import numpy as np

    from workbench.evaluation import Predictions

    rng = np.random.default_rng(seed)
    labels = np.array([f"c{i}" for i in range(classes)])
    y = rng.integers(0, classes, n)
    u = rng.random(n)

    def model(acc: float, s: int):
        r = np.random.default_rng(s)
        v = np.where(r.random(n) < 0.7, u, r.random(n))
        pred = np.where(v < acc, y, (y + r.integers(1, classes, n)) % classes)
        logits = r.normal(0, 1, (n, classes))
        logits[np.arange(n), pred] += 2.0
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return Predictions.of(
            "classification", labels[y], labels[proba.argmax(axis=1)], classes=labels, proba=proba
        )

    return model(0.80, seed + 1), model(0.82, seed + 2)


def regressor_pair(n: int, *, seed: int = 0):
    import numpy as np

    from workbench.evaluation import Predictions

    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, n)
    return (
        Predictions.of("regression", y, y + rng.normal(0, 1.0, n)),
        Predictions.of("regression", y, y + rng.normal(0, 0.95, n)),
    )


def sklearn_value(metric: str, p, idx):
    from sklearn import metrics as skm

    yt, yp = p.y_true[idx], p.y_pred[idx]
    if metric == "accuracy":
        return skm.accuracy_score(yt, yp)
    if metric in ("precision", "recall", "f1"):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}
        return fn[metric](yt, yp, average="macro", zero_division=0)
    if metric == "roc_auc":
        if len(p.classes) == 2:
            return skm.roc_auc_score(yt == p.classes[1], p.proba[idx, 1])
        return skm.roc_auc_score(yt, p.proba[idx], multi_class="ovr", labels=p.classes)
    if metric == "pr_auc":
        return skm.average_precision_score(yt == p.classes[1], p.proba[idx, 1])
    if metric == "log_loss":
        return skm.log_loss(yt, p.proba[idx], labels=p.classes)
    if metric == "brier":
        return skm.brier_score_loss(yt == p.classes[1], p.proba[idx, 1])
    if metric == "rmse":
        return skm.mean_squared_error(yt, yp) ** 0.5
    if metric == "mae":
        return skm.mean_absolute_error(yt, yp)
    if metric == "mape":
        return skm.mean_absolute_percentage_error(yt, yp)
    return skm.r2_score(yt, yp)


def sklearn_loop(metric: str, champ, chall, *, resamples: int, seed: int = 0) -> list[float]:
    import numpy as np

    from workbench.evaluation import gain

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, champ.n, champ.n)
        diffs.append(
            gain(metric, sklearn_value(metric, champ, idx), sklearn_value(metric, chall, idx))
        )
    return list(np.percentile(diffs, [2.5, 97.5]))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peer-resamples", type=int, default=200)
    ap.add_argument("--peer-repeats", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from workbench.automation import Gate
    from workbench.evaluation import paired_bootstrap

    binary = classifier_pair(args.rows, 2)
    multi = classifier_pair(args.rows, 5, seed=10)
    reg = regressor_pair(args.rows)
    cases = [
        *[(m, binary) for m in ("accuracy", "precision", "recall", "f1")],
        *[(m, binary) for m in ("roc_auc", "pr_auc", "log_loss", "brier")],
        ("f1 (5 classes)", multi),
        ("roc_auc (5 classes)", multi),
        *[(m, reg) for m in ("rmse", "mae", "r2", "mape")],
    ]
    load_before = _load()
    rows = []
    for label, (champ, chall) in cases:
        metric = label.split(" ")[0]
        paired_bootstrap(metric, champ, chall, resamples=10)  # warm: imports, first allocation
        fast = timed(
            lambda m=metric, a=champ, b=chall: paired_bootstrap(m, a, b, resamples=RESAMPLES),
            args.repeats,
        )
        peer = timed(
            lambda m=metric, a=champ, b=chall: sklearn_loop(m, a, b, resamples=args.peer_resamples),
            args.peer_repeats,
        ) * (RESAMPLES / args.peer_resamples)
        rows.append(
            {
                "metric": label,
                "vectorised_s": round(fast, 4),
                "sklearn_loop_s": round(peer, 3),
                "speedup": round(peer / fast, 1),
                "goal_1s_met": fast < 1.0,
            }
        )
    for test in ("paired_bootstrap", "mcnemar"):
        gate = Gate("accuracy", test=test, guarded=("f1", "log_loss"))
        gate.judge(*binary)
        rows.append(
            {
                "metric": f"gate.judge ({test}, guarded f1 + log_loss)",
                "vectorised_s": round(timed(lambda g=gate: g.judge(*binary), args.repeats), 4),
                "sklearn_loop_s": None,
                "speedup": None,
                "goal_1s_met": None,
            }
        )
    out = {
        "rows": args.rows,
        "resamples": RESAMPLES,
        "repeats": args.repeats,
        "peer_resamples": args.peer_resamples,
        "load_1min": [load_before, _load()],
        "results": rows,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{args.rows} rows, {RESAMPLES} resamples, median of {args.repeats} "
        f"(peer: {args.peer_resamples} resamples scaled to {RESAMPLES}); load {out['load_1min']}"
    )
    print(f"{'metric':44s} {'vectorised s':>12s} {'sklearn loop s':>15s} {'ratio':>7s}  < 1 s")
    for r in rows:
        peer = "" if r["sklearn_loop_s"] is None else f"{r['sklearn_loop_s']:.2f}"
        ratio = "" if r["speedup"] is None else f"x{r['speedup']}"
        goal = {True: "met", False: "NOT met", None: ""}[r["goal_1s_met"]]
        print(f"{r['metric']:44s} {r['vectorised_s']:12.3f} {peer:>15s} {ratio:>7s}  {goal}")
    judged = [r for r in rows if r["goal_1s_met"] is not None]
    missed = [f"{r['metric']} {r['vectorised_s']:.2f} s" for r in judged if not r["goal_1s_met"]]
    print(
        f"target: < 1 s per metric: {'met' if not missed else 'NOT met'} for "
        f"{len(judged) - len(missed)} of {len(judged)} metrics"
        + (f" (not met: {', '.join(missed)})" if missed else "")
    )


if __name__ == "__main__":
    main()
