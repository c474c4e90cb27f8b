"""Run a tracked Ray Tune search over scikit-learn model families."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings
from workbench.evaluation import METRICS, score
from workbench.exceptions import ConfigError, ExperimentError
from workbench.experiments._estimators import cross_validate, make_pipeline
from workbench.lineage import Store
from workbench.registry import ModelBundle

if TYPE_CHECKING:
    from workbench.datasets import Datasets, DatasetVersion

__all__ = ["Experiments", "SearchResult", "code_version", "package_versions"]

_PACKAGES = (
    "workbench",
    "ray",
    "scikit-learn",
    "polars",
    "numpy",
    "pandas",
    "alibi-detect",
    "torch",
)


@dataclass
class SearchResult:
    """Outcome of a search: the experiment record and its best trial."""

    experiment_id: int
    name: str
    best_trial_id: str
    best_config: dict[str, Any]
    best_metrics: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)


def code_version(path: str | Path | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of the working directory's repository, else the running script's hash."""
    cwd = Path(path or os.getcwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=5
            ).stdout.strip()
        )
        return {"git_commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        pass
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if script and Path(script).exists():
        from workbench.lineage import sha256_file

        return {"script": str(script), "script_sha256": sha256_file(script)}
    return {"interactive": True}


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _silent_reporter() -> Any:
    """A Tune progress reporter that never reports: in a notebook Tune's own HTML table would
    call ``clear_output`` on every update and wipe our progress widget with it."""
    from ray.tune import ProgressReporter

    class _Silent(ProgressReporter):
        def should_report(self, trials: list, done: bool = False) -> bool:
            return False

        def report(self, trials: list, done: bool, *sys_info: Any) -> None:
            return None

    return _Silent()


@contextmanager
def _tune_console_quiet() -> Iterator[None]:
    """Keep Tune's console tables out of notebooks and terminals: our progress display replaces them.

    With Tune's new output engine even ``verbose=0`` prints an experiment
    banner; the legacy engine at ``verbose=0`` prints nothing. The variable is
    read when ``fit()`` starts and restored right after.
    """
    old = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = old


def _trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """One Tune trial: cross-validated metrics of one configured pipeline."""
    from ray import tune

    metrics = cross_validate(
        config, data["X"], data["y"], data["kinds"], folds=data["folds"], seed=data["seed"]
    )
    tune.report(metrics)


class Experiments:
    """Hyperparameter searches on Ray Tune, every trial recorded in the lineage store.

    Examples
    --------
    >>> result = wb.experiments.search(train, name="cancer", num_samples=4)   # doctest: +SKIP
    >>> result.best_metrics["f1"]                                             # doctest: +SKIP
    0.97
    """

    def __init__(self, store: Store, datasets: Datasets, settings: Settings, *, connect: Any):
        self.store = store
        self.datasets = datasets
        self.settings = settings
        self._connect = connect

    def training_data(self, dv: DatasetVersion) -> dict[str, Any]:
        """Features as pandas, labels as integer codes, feature kinds and class list for a dataset version."""
        import numpy as np

        from workbench.features import feature_kinds, to_pandas

        if not dv.target:
            raise ConfigError(
                f"{dv} has no target column; ingest it with target=... to train on it."
            )
        df = self.datasets.load(dv)
        kinds = feature_kinds(dv.schema, dv.target)
        labels = df[dv.target].to_list()
        classes = sorted({str(v) for v in labels})
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[str(v)] for v in labels])
        return {"X": to_pandas(df, kinds), "y": y, "kinds": kinds, "classes": classes}

    def search(
        self,
        dataset: DatasetVersion,
        *,
        name: str,
        space: dict[str, Any] | None = None,
        metric: str = "f1",
        mode: str = "max",
        num_samples: int = 4,
        folds: int = 3,
        seed: int = 0,
        cpus_per_trial: float = 1,
        max_concurrent_trials: int | None = None,
        progress: str | None = "auto",
    ) -> SearchResult:
        """Search model families and hyperparameters with Ray Tune; record the experiment and every trial.

        With the default space, ``num_samples`` samples are drawn for each
        model family (two families → ``2 * num_samples`` trials). Bad
        arguments fail before any trial starts.
        """
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        from workbench.experiments._estimators import default_search_space
        from workbench.experiments._tracking import TrackingCallback
        from workbench.ui import make_progress

        if metric not in METRICS:
            raise ConfigError(f"metric {metric!r} is never reported; choose one of {list(METRICS)}")
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
        if num_samples < 1:
            raise ConfigError("num_samples must be at least 1")
        space = space if space is not None else default_search_space()
        if "family" not in space:
            raise ConfigError(
                "the search space needs a 'family' key (e.g. tune.grid_search(['logistic_regression', 'random_forest']))"
            )

        self._connect()
        data = self.training_data(dataset)
        data.update(folds=folds, seed=seed)
        grid = space["family"]
        n_families = (
            len(grid["grid_search"]) if isinstance(grid, dict) and "grid_search" in grid else 1
        )
        total = num_samples * n_families
        exp_id = self.store.create_experiment(
            name=name,
            dataset_version_id=dataset.id,
            metric=metric,
            mode=mode,
            num_samples=total,
            search_space={k: repr(v) for k, v in space.items()},
            search_alg="random+grid (BasicVariantGenerator)",
            scheduler="FIFO",
            seed=seed,
            code_version=code_version(),
            packages=package_versions(),
        )
        display = make_progress(progress)
        callback = TrackingCallback(
            self.store.path,
            exp_id,
            metric=metric,
            mode=mode,
            total=total,
            name=name,
            display=display,
        )
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(_trainable, data=data), {"cpu": cpus_per_trial}
            ),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=mode,
                num_samples=num_samples,
                search_alg=BasicVariantGenerator(random_state=seed),
                max_concurrent_trials=max_concurrent_trials,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"exp-{exp_id}-{name}",
                storage_path=str(self.settings.home / "tune"),
                callbacks=[callback],
                progress_reporter=_silent_reporter(),
                verbose=0,
            ),
        )
        try:
            with _tune_console_quiet():
                grid_result = tuner.fit()
        except Exception as exc:
            self.store.finish_experiment(exp_id, status="ERROR", error=repr(exc))
            raise ExperimentError(f"search {name!r} (experiment {exp_id}) failed: {exc}") from exc
        finally:
            if display is not None:
                display.close()
        ok = [r for r in grid_result if r.error is None and r.metrics and metric in r.metrics]
        if not ok:
            self.store.finish_experiment(exp_id, status="ERROR", error="no trial finished")
            raise ExperimentError(
                f"no trial of experiment {exp_id} finished; inspect errors with `workbench runs {exp_id}`."
            )
        best = grid_result.get_best_result(metric=metric, mode=mode, filter_nan_and_inf=True)
        best_id = best.metrics["trial_id"]
        self.store.finish_experiment(exp_id, status="TERMINATED", best_trial_id=best_id)
        return SearchResult(
            experiment_id=exp_id,
            name=name,
            best_trial_id=best_id,
            best_config={k: v for k, v in best.config.items()},
            best_metrics={k: float(best.metrics[k]) for k in METRICS if k in best.metrics},
            trials=self.store.list_trials(exp_id),
        )

    def fit_bundle(
        self, dataset: DatasetVersion, config: dict[str, Any], *, seed: int = 0
    ) -> ModelBundle:
        """Fit preprocessing + estimator of ``config`` on the whole dataset version."""
        from workbench.experiments._estimators import family_params

        data = self.training_data(dataset)
        pipe = make_pipeline(config, data["kinds"], seed=seed)
        pipe.fit(data["X"], data["y"])
        return ModelBundle(
            pipeline=pipe,
            features=data["kinds"],
            target=dataset.target or "",
            classes=data["classes"],
            params={"family": config["family"], **family_params(config), "seed": seed},
        )

    def evaluate(self, bundle: ModelBundle, holdout: DatasetVersion) -> dict[str, float]:
        """Accuracy, precision, recall and F1 (macro) of a bundle on a held-out dataset version."""
        from workbench.features import to_pandas

        df = self.datasets.load(holdout)
        preds = bundle.predict_frame(to_pandas(df, bundle.features))
        return score([str(v) for v in df[holdout.target].to_list()], [str(p) for p in preds])

    def trials(self, experiment_id: int | None = None) -> list[dict[str, Any]]:
        return self.store.list_trials(experiment_id)

    def list(self) -> list[dict[str, Any]]:
        return self.store.list_experiments()
