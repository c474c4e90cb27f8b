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
