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
