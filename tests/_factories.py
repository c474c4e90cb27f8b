"""Record factories for tests of the store and its adapters (importable, unlike conftest.py:
several conftest.py files in one session share that module name)."""

from __future__ import annotations


def make_experiment(
    store,
    *,
    name: str = "e",
    dataset_version_id: int | None = None,
    metric: str = "f1",
    mode: str = "max",
    num_samples: int = 2,
) -> int:
    """Record a bare experiment (for tests of the store and its adapters)."""
    return store.experiments.add(
        name=name,
        dataset_version_id=dataset_version_id,
        metric=metric,
        mode=mode,
        num_samples=num_samples,
        search_space={},
        search_alg="random",
        scheduler="FIFO",
        seed=0,
        code_version={},
        packages={},
    )


def ingest_two_city_versions(bench, name: str = "cities") -> None:
    """Two versions of dataset ``name``: v2 changes rows 2-3, adds 4, drops 1, and fails a ``warn``
    range check (x = 30 > 10), for the views of reports and diffs (widget, panel, handlers)."""
    import polars as pl

    from workbench.datasets import Checks, Column

    bench.datasets.ingest(
        pl.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "city": ["a", "b", "a"]}), name=name
    )
    bench.datasets.ingest(
        pl.DataFrame({"id": [2, 3, 4], "x": [2.0, 30.0, 4.0], "city": ["c", "a", "b"]}),
        name=name,
        checks=Checks(columns={"x": Column(max=10, severity="warn")}),
    )


def champion_bench(home, *, target: str = "diagnosis", **options):
    """A Workbench on ``home`` (``options`` go to ``Workbench``, e.g. ``address=``): the breast-cancer data as ``bc`` split 60/40 into ``bc-train`` and
    ``bc-holdout``, a logistic-regression champion of model ``bc`` trained on bc-train (linked to
    it, holdout metrics registered), a deployment row ``bc`` and a store-level drift monitor
    ``bc-drift``; ``bench.parts`` holds the split, ``bench.rows`` the holdout rows (never trained
    on) as dicts."""
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv

    bench = Workbench(home, **options)
    dv = bench.datasets.ingest(write_breast_cancer_csv(home / "bc.csv"), name="bc", target=target)
    parts = bench.datasets.split(dv, {"train": 0.6, "holdout": 0.4}, seed=0)
    bundle = bench.experiments.fit_bundle(
        parts["train"], {"family": "logistic_regression", "C": 1.0}
    )
    metrics = bench.experiments.evaluate(bundle, parts["holdout"])
    bench.registry.register("bc", bundle, metrics=metrics, dataset_version_id=parts["train"].id)
    bench.registry.set_alias("bc", "champion", 1)
    deploy_with_drift_monitor(bench, parts["train"])
    bench.parts = parts
    bench.rows = bench.datasets.load(parts["holdout"]).to_dicts()
    bench.train_rows = parts["train"].n_rows
    bench.accuracy = metrics["accuracy"]
    return bench


def log_requests(bench, rows, *, target: str = "diagnosis", start: int = 0, labels: bool = True):
    """Log ``rows`` (feature dicts with their ``target``) as answered requests of deployment
    ``bc``, with request ids ``r-<start + i>``, and record their labels unless ``labels=False``."""
    ids = [f"r-{start + i}" for i in range(len(rows))]
    bench.store.deployments.record_requests(
        [
            {
                "request_id": rid,
                "deployment": "bc",
                "features": [{k: v for k, v in row.items() if k != target}],
                "prediction": [row[target]],
                "latency_ms": 1.0,
            }
            for rid, row in zip(ids, rows, strict=True)
        ]
    )
    if labels:
        bench.store.monitors.record_labels(
            {rid: [row[target]] for rid, row in zip(ids, rows, strict=True)}
        )
    return ids


def drift_window(bench, *, first: int = 0, n: int = 10, drift: bool = True) -> int:
    """Record one window of monitor ``bc-drift`` starting at request-log id ``first``."""
    return bench.store.monitors.record_window(
        "bc-drift",
        first_request_log_id=first,
        last_request_log_id=first + n - 1,
        n=n,
        is_drift=drift,
        score=0.001 if drift else 0.5,
        threshold=0.05,
        detail={},
    )


def triage_policy(*, train: str = "bc-train", **options):
    """The retraining policy of the triage tests: model and deployment ``bc``, a data-drift
    trigger on one window of ``bc-drift``, no cooldown or canary, a gate any challenger passes,
    and a holdout wait so long that a harmful shift stops there, before any search (no Ray);
    ``options`` override any field."""
    from workbench.automation import DriftTrigger, Gate, LoopPolicy

    base = dict(
        model="bc",
        deployment="bc",
        train=train,
        triggers=[DriftTrigger("bc-drift", windows=1)],
        cooldown_s=0,
        canary=False,
        num_samples=1,
        gate=Gate("f1", margin=-1.0),
        holdout_min_rows=1000,
        triage=True,
    )
    return LoopPolicy("bc", **{**base, **options})


def deploy_with_drift_monitor(bench, reference) -> None:
    """A deployment row ``bc`` of model ``bc`` and a store-level drift monitor ``bc-drift`` of it
    with ``reference`` (a dataset version) as its reference; no Ray."""
    bench.store.deployments.add("bc", model="bc", route_prefix="/bc", status="RUNNING")
    bench.store.monitors.add(
        "bc-drift",
        deployment="bc",
        kind="drift",
        config={},
        reference_dataset_version_id=reference.id,
    )


def shifted_by_selection(rows, target: str = "diagnosis"):
    """A covariate shift by selection: the half of ``rows`` with the largest first feature."""
    feature = next(c for c in rows[0] if c != target)
    ordered = sorted(rows, key=lambda r: r[feature])
    return ordered[len(ordered) // 2 :]


def flipped_labels(rows, target: str = "diagnosis"):
    """``rows`` with each binary label swapped for the other one (a concept drift)."""
    labels = sorted({r[target] for r in rows})
    return [{**r, target: labels[1 - labels.index(r[target])]} for r in rows]
