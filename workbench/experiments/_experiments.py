"""Run a tracked Ray Tune search over scikit-learn model families."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings
from workbench.exceptions import ConfigError, ExperimentError, NotFoundError
from workbench.experiments._environment import capture_environment, environment_differences
from workbench.experiments._estimators import (
    FAMILIES,
    allow_import,
    allowed_imports,
    check_config_imports,
    make_pipeline,
)
from workbench.experiments._handle import SearchHandle
from workbench.experiments._tune_state import checked_tune_path, state_record, verify_state
from workbench.governance import requires
from workbench.lineage import Store, mask_uri
from workbench.registry import ModelBundle

if TYPE_CHECKING:
    from workbench.datasets import Datasets, DatasetVersion
    from workbench.evaluation import Predictions
    from workbench.experiments._stopper import StopFlag
    from workbench.features import FeatureSpec

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


@dataclass
class _Prepared:
    """A search set up and recorded but not running: run it on this thread, or start it in the background."""

    callback: Any
    stop_flag: StopFlag
    run: Callable[[], SearchResult]
    experiments: Experiments

    def start(self) -> SearchHandle:
        return SearchHandle(
            experiment_id=self.callback.experiment_id,
            name=self.callback.name,
            callback=self.callback,
            stop_flag=self.stop_flag,
            run=self.run,
            experiments=self.experiments,
        )


def _arguments(method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The arguments ``method`` takes for this call, defaults filled in (``TypeError`` on a wrong one).

    One signature, the blocking method's, then holds for its background twin.
    """
    bound = inspect.signature(method).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


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
    import logging

    # Tune adds a TensorBoard logger of its own unless told not to; it imports tensorboardX and
    # with it torch in the driver (1.45 CPU-s, 2.2 s wall before the first trial on 2 cores).
    # The search passes Tune's CSV and JSON loggers itself (result.json, progress.csv).
    names = ("RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    old = {name: os.environ.get(name) for name in names}
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # When PBT clones a trial, Tune's file loggers look for the donor's result.json in storage
    # before it is synced and warn once per trial; the lineage store holds the results anyway.
    # A stopped search lists every trial that never started as "Failed to fetch metrics".
    quiet = [
        logging.getLogger("ray.tune.logger.logger"),
        logging.getLogger("ray.tune.analysis.experiment_analysis"),
    ]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """One Tune trial: cross-validate one configured pipeline, reporting once per fold.

    Step ``i`` reports the running mean of the metrics of folds ``1..i``, so
    schedulers (ASHA, median stopping...) can stop a poor trial after a fold or
    two; the last step is the full cross-validated score. With a scheduler that
    pauses or clones trials (HyperBand, PBT) each step also saves a tiny
    checkpoint (the per-fold scores), and a resumed trial continues from it.

    Each step also carries every fold's own metrics so far under ``_folds`` (a
    list, which Tune does not treat as a metric): the driver-side tracking
    callback records them in the store, so the trial's metric stays the running
    mean while each fold is kept for its CV interval.
    """
    import json
    import tempfile

    from ray import tune

    from workbench.experiments._estimators import allow_import, fold_scores, mean_scores
    from workbench.experiments._tracking import FOLDS_KEY

    for path in data.get("allowed_imports", ()):  # what the driver's caller allowed
        allow_import(path)
    per_fold: list[dict[str, float]] = []
    checkpoint = tune.get_checkpoint() if data.get("checkpoints") else None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            per_fold = json.loads((Path(d) / "folds.json").read_text())
    for fold in fold_scores(
        config,
        data["X"],
        data["y"],
        data["kinds"],
        folds=data["folds"],
        seed=data["seed"],
        start=len(per_fold),
        task=data.get("task", "classification"),
    ):
        per_fold.append(fold)
        # the folds travel as JSON text: Tune's TensorBoard logger takes a list for a histogram
        # and warns on one of dicts, while it leaves text alone
        metrics: dict[str, Any] = {**mean_scores(per_fold), FOLDS_KEY: json.dumps(per_fold)}
        if not data.get("checkpoints"):
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "folds.json").write_text(json.dumps(per_fold))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _user_trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """A user function ``fn(config, data)`` run as a Tune trial (it calls ``ray.tune.report``)."""
    fn = data["fn"]
    fn(config, data)


def _allow_passed(target: Any) -> None:
    """What the caller passed in (an estimator class or path, a trainable) may be named by the
    rows this search records; one defined in ``__main__`` or a function cannot be re-imported."""
    if isinstance(target, str) and target in FAMILIES:
        return
    try:
        allow_import(target)
    except ConfigError:
        pass


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def infer_task(labels: list[Any]) -> str:
    """``regression`` for a numeric target with fractional values or more than 20 distinct values,
    else ``classification``."""
    values = [v for v in labels if v is not None]
    numeric = values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numeric:
        return "classification"
    fractional = any(float(v) != int(v) for v in values if v == v and abs(v) != float("inf"))
    return "regression" if fractional or len(set(values)) > 20 else "classification"


def _missing_label(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _label_kind(value: Any) -> str:
    """``bool``, ``number`` or ``str`` for a label that keeps its type as a class, else ``other``."""
    import numbers

    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "bool"
    if isinstance(value, numbers.Real):
        return "number"
    return "str" if isinstance(value, str) else "other"


def _plain_label(value: Any) -> Any:
    """A label as the Python value JSON, a pickle and a v2 tensor hold: numpy scalars become
    ``bool``/``int``/``float``."""
    if type(value).__name__ == "bool_":
        return bool(value)
    item = getattr(value, "item", None)
    return item() if callable(item) and hasattr(value, "dtype") else value


def encode_classes(labels: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The classes of a classification target and each label's code (its index in the classes).

    Classes keep the target's type, so a served model answers with values equal to the labels
    it was trained on, and are sorted in their natural order:

    - booleans: ``[False, True]``;
    - numbers (ints stay ints, floats floats; numpy scalars become Python ones): numerically,
      so 2 comes before 10;
    - strings: as text.

    Any other label type, or a mix of these kinds (strings and numbers in one object column),
    makes every class its text (``str(label)``), sorted as text: the rule of models trained
    before classes kept their type. Missing labels are the caller's to refuse first.

    Examples
    --------
    >>> encode_classes([10, 2, 2, 1])
    ([1, 2, 10], [2, 1, 1, 0])
    >>> encode_classes([True, False, True])
    ([False, True], [1, 0, 1])
    >>> encode_classes(["b", "a"])
    (['a', 'b'], [1, 0])
    >>> encode_classes([1, "a"])
    (['1', 'a'], [0, 1])
    """
    values = [_plain_label(v) for v in labels]
    kinds = {_label_kind(v) for v in values}
    if len(kinds) != 1 or kinds == {"other"}:
        values = [str(v) for v in values]
    # one kind: no True/1 collisions in the dict below (1 and 1.0 are the same class, as equal)
    classes = sorted(set(values))
    index = {c: i for i, c in enumerate(classes)}
    return classes, [index[v] for v in values]


def _space_families(value: Any) -> list[Any]:
    """The model families a search space's ``family`` entry can take."""
    from workbench.experiments._options import _is_grid

    if _is_grid(value):
        return list(value["grid_search"])
    categories = getattr(value, "categories", None)
    if categories is not None:
        return list(categories)
    return [value]


def _import_qualname(qualname: str) -> Any:
    """The function a recorded ``module.qualname`` names, or None when it cannot be imported
    (defined in ``__main__``, a notebook cell, or inside another function)."""
    import importlib

    from workbench.experiments._estimators import check_import_path

    module, _, attr = qualname.rpartition(".")
    if not module or module == "__main__" or "<locals>" in qualname:
        return None
    check_import_path(qualname, what="trainable")  # a row is data: import only what is allowed
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if callable(obj) else None


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    from workbench.experiments._tracking import _RESERVED

    return {
        k: float(v)
        for k, v in metrics.items()
        if k not in _RESERVED and isinstance(v, int | float) and not isinstance(v, bool)
    }


# rows the automatic feature search's baseline looks at (text, cardinality, nulls)
_FEATURE_SAMPLE_ROWS = 5_000


def _checked_spec(features: Any, kinds: dict[str, str]) -> dict[str, Any]:
    """A feature spec as its dict, checked against the dataset's feature kinds now (a column it
    names that is not a feature, or not of the right kind) rather than in every trial."""
    from workbench.features import FeatureSpec, build_preprocessor

    spec = FeatureSpec.from_dict(features)
    build_preprocessor(kinds, spec)
    return spec.to_dict()


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

    def training_data(self, dv: DatasetVersion, task: str = "auto") -> dict[str, Any]:
        """Features as pandas, labels (integer class codes, or floats for regression), feature
        kinds, class list and task for a dataset version; ``task="auto"`` infers it from the target."""
        import numpy as np

        from workbench.features import feature_kinds, to_pandas

        if not dv.target:
            raise ConfigError(
                f"{dv} has no target column; ingest it with target=... to train on it."
            )
        df = self.datasets.load(dv)
        kinds = feature_kinds(dv.schema, dv.target)
        labels = df[dv.target].to_list()
        if task == "auto":
            task = infer_task(labels)
        elif task not in ("classification", "regression"):
            raise ConfigError(
                f"task must be 'auto', 'classification' or 'regression', got {task!r}"
            )
        if task == "regression":
            try:
                y = np.array(labels, dtype=float)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"task 'regression' needs a numeric target; {dv.target!r} of {dv} is not"
                ) from None
            if not np.isfinite(y).all():
                raise ConfigError(f"target {dv.target!r} of {dv} has missing or infinite values")
            classes: list[Any] = []
        else:
            missing = sum(1 for v in labels if _missing_label(v))
            if missing:
                raise ConfigError(
                    f"target {dv.target!r} of {dv} has {missing} missing label(s) (null or NaN); "
                    "drop or fill those rows and ingest a new version to train on it."
                )
            classes, codes = encode_classes(labels)
            y = np.array(codes, dtype=np.int64)
        return {"X": to_pandas(df, kinds), "y": y, "kinds": kinds, "classes": classes, "task": task}

    @requires("search")
    def search(
        self,
        dataset: DatasetVersion,
        *,
        name: str,
        space: dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        num_samples: int = 4,
        folds: int = 3,
        seed: int = 0,
        cpus_per_trial: float | None = None,
        max_concurrent_trials: int | None = None,
        progress: str | None = "auto",
        search_alg: Any = "random",
        scheduler: Any = "fifo",
        resources: dict[str, float] | None = None,
        time_budget_s: float | None = None,
        max_failures: int = 0,
        trainable: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        max_steps: int | None = None,
        task: str = "auto",
        estimator: Any = None,
        features: FeatureSpec | Mapping[str, Any] | None = None,
    ) -> SearchResult:
        """Search model families and hyperparameters with Ray Tune; record the experiment and every trial.

        ``search_alg`` is ``"random"`` (default: Tune's seeded
        BasicVariantGenerator, random domains crossed with any
        ``grid_search``), ``"grid"`` (``grid_search`` values only),
        ``"optuna"`` (TPE), ``"hyperopt"`` or a Tune ``Searcher``. With the
        default space, ``num_samples`` samples are drawn for each model family
        under random/grid (two families → ``2 * num_samples`` trials); Optuna
        and HyperOpt pick the family themselves (``tune.choice``), so there
        ``num_samples`` is the number of trials.

        ``scheduler`` is ``"fifo"`` (default), ``"asha"``, ``"hyperband"``,
        ``"median"``, ``"pbt"`` or a Tune ``TrialScheduler``; the built-in
        trainable reports once per CV fold (running mean), so a scheduler can
        stop a poor trial after its first folds. ``resources`` per trial
        (``{"cpu": 1, "gpu": 0.5}``; ``cpus_per_trial`` is an alias) go through
        ``tune.with_resources``. ``max_failures`` retries a failing trial;
        ``time_budget_s`` ends the search. ``trainable=fn`` runs
        ``fn(config, data)`` (it calls ``ray.tune.report``; ``data`` holds
        ``X``, ``y``, ``kinds``, ``classes``, ``folds``, ``seed``) instead of
        the built-in scikit-learn trainable; ``max_steps`` is how many steps
        it reports (default ``folds``).

        ``task`` is ``"classification"``, ``"regression"`` or ``"auto"``
        (default: regression for a numeric target with fractional or more
        than 20 distinct values). ``metric`` defaults to ``f1`` for
        classification (also reported: accuracy, precision, recall) and
        ``r2`` for regression (also: rmse, mae); ``mode`` follows the metric.
        ``estimator`` searches one scikit-learn estimator, by class or import
        path (``"sklearn.svm.SVC"``): the space's keys that are its parameters
        are passed to it. A space's ``family`` may also hold import paths.

        ``features`` (a :class:`~workbench.features.FeatureSpec` or its dict) is the
        preprocessing of every trial (default: the default pipeline); it goes into each trial's
        config as ``config["features"]``, so the refit bundle and :meth:`reproduce` use it. A
        space with its own ``"features"`` key (a spec dict, or ``tune.choice`` over spec dicts,
        e.g. of :func:`feature_choices`) wins over it: the features are then searched.

        Blocks until the search ends and returns its :class:`SearchResult`;
        :meth:`start_search` runs the same search in a background thread. An
        interrupted search (kernel or driver killed) continues with
        :meth:`resume`.

        Bad arguments (unknown names, a metric never reported, a space the
        search algorithm cannot take, resources no node of the cluster has)
        fail with ``ConfigError`` before any trial starts or anything is recorded.
        """
        return self._prepare_search(
            dataset,
            name=name,
            space=space,
            metric=metric,
            mode=mode,
            num_samples=num_samples,
            folds=folds,
            seed=seed,
            cpus_per_trial=cpus_per_trial,
            max_concurrent_trials=max_concurrent_trials,
            progress=progress,
            search_alg=search_alg,
            scheduler=scheduler,
            resources=resources,
            time_budget_s=time_budget_s,
            max_failures=max_failures,
            trainable=trainable,
            max_steps=max_steps,
            task=task,
            estimator=estimator,
            features=features,
        ).run()

    @requires("search")
    def start_search(self, dataset: DatasetVersion, *, name: str, **options: Any) -> SearchHandle:
        """Start :meth:`search` in a background thread of this process and return its handle at once.

        Takes exactly the arguments of :meth:`search`, which are checked, and the
        experiment recorded, before this returns; the cell returns and the kernel
        stays responsive while Tune runs. The :class:`SearchHandle` is a
        ``concurrent.futures.Future`` of the :class:`SearchResult`, with
        ``status()``, ``best()``, ``stop()`` and ``wait()``; as the last
        expression of a notebook cell it shows the live experiment widget.

        Examples
        --------
        >>> handle = bench.experiments.start_search(train, name="bg", num_samples=8)  # doctest: +SKIP
        >>> handle.status()["state"]                                                 # doctest: +SKIP
        'RUNNING'
        >>> handle.wait().best_metrics["f1"]                                         # doctest: +SKIP
        0.97
        """
        args = _arguments(self.search, dataset, name=name, **options)
        return self._prepare_search(**args).start()

    def _prepare_search(
        self,
        dataset: DatasetVersion,
        *,
        name: str,
        space: dict[str, Any] | None,
        metric: str | None,
        mode: str | None,
        num_samples: int,
        folds: int,
        seed: int,
        cpus_per_trial: float | None,
        max_concurrent_trials: int | None,
        progress: str | None,
        search_alg: Any,
        scheduler: Any,
        resources: dict[str, float] | None,
        time_budget_s: float | None,
        max_failures: int,
        trainable: Callable[[dict[str, Any], dict[str, Any]], None] | None,
        max_steps: int | None,
        task: str,
        estimator: Any,
        features: FeatureSpec | Mapping[str, Any] | None = None,
    ) -> _Prepared:
        """Check the options, record the experiment and build its Tuner; nothing runs yet."""
        from ray import tune
        from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

        from workbench.evaluation import metric_mode, task_metrics
        from workbench.experiments import _options as opt
        from workbench.experiments._estimators import (
            default_search_space,
            estimator_class,
            family_task,
        )
        from workbench.experiments._tracking import TrackingCallback
        from workbench.ui import make_progress

        if task not in ("auto", "classification", "regression"):
            raise ConfigError(
                f"task must be 'auto', 'classification' or 'regression', got {task!r}"
            )
        if estimator is not None:
            if trainable is not None:
                raise ConfigError("give either estimator= or trainable=, not both")
            _allow_passed(estimator)
            cls = estimator_class(estimator)
            space = {**(space or {}), "family": f"{cls.__module__}.{cls.__qualname__}"}
        data = self.training_data(dataset, task=task)
        task = data["task"]
        # a user trainable reports what it likes; f1/r2 is also what the torch MLP reports
        metric = metric or ("r2" if task == "regression" else "f1")
        if trainable is None and metric not in task_metrics(task, proba=True):
            raise ConfigError(
                f"metric {metric!r} is never reported for {task}; choose one of "
                f"{list(task_metrics(task, proba=True))}"
            )
        mode = mode or metric_mode(metric)
        if trainable is not None and not callable(trainable):
            raise ConfigError(f"trainable must be a function fn(config, data), got {trainable!r}")
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"metric must be a metric name, got {metric!r}")
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
        if num_samples < 1:
            raise ConfigError("num_samples must be at least 1")
        if folds < 2:
            raise ConfigError(f"folds must be at least 2, got {folds}")
        if max_failures < 0:
            raise ConfigError(f"max_failures must be >= 0, got {max_failures}")
        if time_budget_s is not None and time_budget_s <= 0:
            raise ConfigError(f"time_budget_s must be positive, got {time_budget_s}")
        alg_name = opt.search_alg_name(search_alg)
        sched_name = opt.scheduler_name(scheduler)
        if space is None:
            if trainable is not None:
                raise ConfigError("a user trainable needs its search space: pass space={...}")
            space = default_search_space(search_alg=search_alg, task=task)
        if features is not None and "features" not in space:
            space = {**space, "features": _checked_spec(features, data["kinds"])}
        if trainable is None and "family" not in space:
            raise ConfigError(
                "the search space needs a 'family' key (e.g. tune.grid_search(['logistic_regression', 'random_forest']))"
            )
        if trainable is None:
            for family in _space_families(space["family"]):
                if family_task(family) != task:
                    raise ConfigError(
                        f"model family {family!r} is for {family_task(family)}, but this search is "
                        f"{task} (target {dataset.target!r}); pass task=... or other families"
                    )
                if metric not in task_metrics(task) and not hasattr(
                    estimator_class(family), "predict_proba"
                ):
                    raise ConfigError(
                        f"metric {metric!r} needs class probabilities, and model family "
                        f"{family!r} has no predict_proba; choose one of "
                        f"{list(task_metrics(task))} or another family"
                    )
        if trainable is None:
            for family in _space_families(space["family"]):
                if family not in FAMILIES:
                    _allow_passed(family)
        else:
            _allow_passed(trainable)
        opt.check_space(space, search_alg)
        per_trial = opt.normalize_resources(resources, cpus_per_trial)
        steps = max_steps if max_steps is not None else folds
        sched, sched_settings = opt.make_scheduler(scheduler, max_t=steps, space=space, seed=seed)

        self._connect()
        total = opt.count_trials(space, search_alg, num_samples)
        # an autoscaler's cluster: asks for nodes and says which type it waits for (else None)
        waiting = opt.check_resources(per_trial, count=min(total, max_concurrent_trials or total))
        data.update(
            folds=folds,
            seed=seed,
            checkpoints=opt.needs_checkpoints(scheduler),
            allowed_imports=allowed_imports(),
        )
        fn = _trainable
        if trainable is not None:
            data["fn"] = trainable
            fn = _user_trainable
        searcher = opt.make_search_alg(search_alg, seed=seed)
        recorded_space: dict[str, Any] = {k: repr(v) for k, v in space.items()}
        recorded_space["_resources"] = per_trial
        recorded_space["_options"] = {
            "scheduler": sched_settings,
            "folds": folds,
            "max_steps": steps,
            "max_failures": max_failures,
            "time_budget_s": time_budget_s,
            "max_concurrent_trials": max_concurrent_trials,
            "trainable": "sklearn" if trainable is None else _qualname(trainable),
            "checkpoints": data["checkpoints"],
            "task": data["task"],
        }
        exp_id = self.store.experiments.add(
            name=name,
            dataset_version_id=dataset.id,
            metric=metric,
            mode=mode,
            num_samples=total,
            search_space=recorded_space,
            search_alg=alg_name,
            scheduler=sched_name,
            seed=seed,
            code_version=code_version(),
            packages=package_versions(),
            environment=capture_environment(self.datasets.artifacts),
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
            max_steps=steps,
        )
        callback.waiting, callback.asked_autoscaler = waiting, waiting is not None
        from workbench.experiments._stopper import StopFlag

        stop_flag = StopFlag()
        tune_dir = f"exp-{exp_id}-{name}"
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(fn, data=data), opt.ray_resources(per_trial)),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=mode,
                num_samples=num_samples,
                search_alg=searcher,
                scheduler=sched,
                max_concurrent_trials=max_concurrent_trials,
                time_budget_s=time_budget_s,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=tune_dir,
                storage_path=self.settings.tune_root,  # a path, or a URI every node reaches
                callbacks=[callback, CSVLoggerCallback(), JsonLoggerCallback()],
                progress_reporter=_silent_reporter(),
                verbose=0,
                stop=stop_flag,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                # keep every (tiny) per-fold checkpoint: with num_to_keep set, Tune snapshots its
                # experiment state on every save and PBT may lose the checkpoint it clones
                checkpoint_config=None,
            ),
        )
        # recorded with credentials masked; resume maps it back to this storage's own URI
        location = self.settings.tune_path(tune_dir)
        self.store.experiments.set_tune_path(exp_id, mask_uri(location))
        # the Tuner wrote tuner.pkl: its hash is what a resume checks before unpickling it
        self.store.experiments.set_tune_state_hash(exp_id, state_record(location, complete=False))
        keep = task_metrics(data["task"], proba=True) if trainable is None else None
        return self._prepared(
            tuner, callback, stop_flag, display, steps=steps, keep=keep, location=location
        )

    @requires("search")
    def auto(
        self,
        dataset: DatasetVersion,
        *,
        name: str,
        task: str = "auto",
        num_samples: int = 4,
        time_budget_s: float | None = None,
        seed: int = 0,
        progress: str | None = "auto",
        resources: dict[str, float] | None = None,
        features: FeatureSpec | Mapping[str, Any] | None = None,
        feature_search: bool = False,
        metric: str | None = None,
    ) -> SearchResult:
        """Search every built-in model family of the dataset's task with default spaces.

        The task is inferred from the target unless given; classification
        searches logistic regression, random forest and histogram gradient
        boosting (metric F1), regression searches ridge, random forest and
        histogram gradient boosting regressors (metric R²). Each family gets
        ``num_samples`` random configurations; ASHA stops a configuration
        whose first folds trail the others. Datasets of up to 2,000 rows are
        scored with 5-fold cross-validation, larger ones with 3 folds (and
        datasets over 50,000 rows leave out the random forest, the slowest to
        fit on 2 cores at that size). Blocks until the search ends;
        :meth:`start_auto` runs it in the background.

        ``metric`` ranks the trials instead of F1/R² (any metric :meth:`search` takes, such as
        ``"roc_auc"``; its direction comes from :func:`workbench.evaluation.metric_mode`).
        ``features`` fixes the preprocessing of every trial (see :meth:`search`).
        ``feature_search=True`` searches it with the models: each trial's config draws its
        ``features`` from :func:`feature_choices` of the dataset's kinds and rows (the default
        pipeline, :meth:`FeatureSpec.baseline`, robust scaling with outlier clipping, numeric
        interactions, mutual-information selection), so the best trial, its refit bundle and
        :meth:`reproduce` carry the chosen spec. See ``docs/feature-search.md``.

        Examples
        --------
        >>> result = bench.experiments.auto(train, name="auto-f", feature_search=True)  # doctest: +SKIP
        >>> sorted(result.best_config["features"])[:3]                                 # doctest: +SKIP
        ['categorical_impute', 'clip_quantiles', 'column_encode']
        """
        options = self._auto_options(
            dataset,
            name=name,
            task=task,
            num_samples=num_samples,
            time_budget_s=time_budget_s,
            seed=seed,
            progress=progress,
            resources=resources,
            features=features,
            feature_search=feature_search,
            metric=metric,
        )
        return self.search(dataset, **options)

    @requires("search")
    def start_auto(self, dataset: DatasetVersion, *, name: str, **options: Any) -> SearchHandle:
        """Start :meth:`auto` in a background thread and return its :class:`SearchHandle` at once.

        Takes exactly the arguments of :meth:`auto` (see :meth:`start_search`).
        """
        args = _arguments(self.auto, dataset, name=name, **options)
        return self.start_search(dataset, **self._auto_options(**args))

    def _auto_options(
        self,
        dataset: DatasetVersion,
        *,
        name: str,
        task: str,
        num_samples: int,
        time_budget_s: float | None,
        seed: int,
        progress: str | None,
        resources: dict[str, float] | None,
        features: FeatureSpec | Mapping[str, Any] | None = None,
        feature_search: bool = False,
        metric: str | None = None,
    ) -> dict[str, Any]:
        """The :meth:`search` arguments of an automatic search of ``dataset``."""
        from ray import tune

        from workbench.experiments._estimators import (
            TASK_FAMILIES,
            default_search_space,
            feature_choices,
        )

        if feature_search and features is not None:
            raise ConfigError(
                "give either features= (one spec for every trial) or feature_search=True (specs "
                "searched with the models), not both"
            )
        data = self.training_data(dataset, task=task)
        data_task = data["task"]
        families = TASK_FAMILIES[data_task]
        if dataset.n_rows > 50_000:
            families = tuple(f for f in families if not f.startswith("random_forest"))
        folds = 5 if dataset.n_rows <= 2_000 else 3
        space = default_search_space(families, task=data_task)
        if feature_search:
            # the baseline looks at the rows (text, high-cardinality and null columns)
            sample = self.datasets.load(dataset).head(_FEATURE_SAMPLE_ROWS)
            choices = feature_choices(data["kinds"], sample)
            space["features"] = tune.choice(list(choices.values()))
        return {
            "name": name,
            "space": space,
            "features": features,
            "task": data_task,
            "num_samples": num_samples,
            "folds": folds,
            "seed": seed,
            "scheduler": "asha",
            "time_budget_s": time_budget_s,
            "progress": progress,
            "resources": resources,
            **({"metric": metric} if metric is not None else {}),
        }

    def differences(self, experiment_id: int) -> list[dict[str, Any]]:
        """What differs between the environment a search started in and this process's:
        ``[{"what", "then", "now"}]`` for Python, platform, each package (changed, added:
        ``then`` None, removed: ``now`` None), git commit, uncommitted diff, notebook and its
        cells, Ray. Empty when nothing differs.

        Examples
        --------
        >>> bench.experiments.differences(1)                             # doctest: +SKIP
        [{'what': 'package scikit-learn', 'then': '1.5.2', 'now': '1.6.0'}]
        """
        exp = self.store.experiments.get(int(experiment_id))
        now = capture_environment(self.datasets.artifacts)
        return environment_differences(exp.get("environment"), now, self.datasets.artifacts)

    @requires("search")
    def reproduce(self, experiment_id: int, trial_id: str) -> dict[str, Any]:
        """Re-run a recorded trial of the built-in trainable from its record alone, in this process.

        The dataset version, configuration, folds, seed and task all come from
        the store; the cross-validation is the trial's own code path. Before it
        runs, every difference between the environment the search started in and
        this one is listed (:meth:`differences`). Returns ``{"differences": [...],
        "recorded": ..., "reproduced": ..., "max_abs_diff": ..., "match": bool}``
        (match: every metric within 1e-9). A config naming a model family or feature
        step outside the import allow-list is refused (``ConfigError``) before anything
        is imported.

        Examples
        --------
        >>> r = bench.experiments.reproduce(1, "a1b2c3d4_00001")          # doctest: +SKIP
        >>> r["differences"], r["match"]                                 # doctest: +SKIP
        ([], True)
        """
        from itertools import islice

        from workbench.experiments._estimators import fold_scores, mean_scores

        exp = self.store.experiments.get(experiment_id)
        trial = next(
            (
                t
                for t in self.store.experiments.list_trials(experiment_id)
                if t["trial_id"] == trial_id
            ),
            None,
        )
        if trial is None:
            raise NotFoundError(
                f"experiment {experiment_id} has no trial {trial_id!r}; list them with "
                f"`workbench runs {experiment_id}`"
            )
        options = exp["search_space"].get("_options", {})
        if options.get("trainable", "sklearn") != "sklearn":
            raise ConfigError(
                f"trial {trial_id} ran the user trainable {options['trainable']}; reproduce() "
                "re-runs the built-in scikit-learn trainable only"
            )
        check_config_imports(trial["config"])  # a row is data: nothing outside the allow-list
        differences = self.differences(experiment_id)
        data = self.training_data(
            self.datasets.by_id(exp["dataset_version_id"]), task=options.get("task", "auto")
        )
        # a trial a scheduler stopped early recorded the mean of its first folds: re-run those
        steps = max(
            (m["step"] for m in self.store.experiments.list_trial_metrics(experiment_id, trial_id)),
            default=0,
        )
        folds = options.get("folds", 3)
        per_fold = list(
            islice(
                fold_scores(
                    trial["config"],
                    data["X"],
                    data["y"],
                    data["kinds"],
                    folds=folds,
                    seed=exp["seed"] or 0,
                    task=data["task"],
                ),
                min(steps, folds) or folds,
            )
        )
        reproduced = mean_scores(per_fold)
        # compared on the metrics the trial recorded: one from an older version of the
        # workbench has fewer (no probability metrics) and still reproduces
        recorded = {k: trial["metrics"][k] for k in reproduced if k in trial["metrics"]}
        if not recorded or (exp.get("metric") in reproduced and exp["metric"] not in recorded):
            raise ExperimentError(
                f"trial {trial_id} has no final metrics recorded (status {trial['status']}); "
                "only a finished trial can be compared"
            )
        again = {k: reproduced[k] for k in recorded}
        diff = max(abs(again[k] - recorded[k]) for k in again)
        return {
            "experiment_id": experiment_id,
            "trial_id": trial_id,
            "differences": differences,
            "config": trial["config"],
            "recorded": recorded,
            "reproduced": again,
            "max_abs_diff": diff,
            "match": diff <= 1e-9,
        }

    @requires("search")
    def reproduce_model(self, model: str, version: int | str) -> dict[str, Any]:
        """Refit a registered model version from its record and compare its holdout metrics.

        The version's experiment and trial give the config (its model family, feature spec), its
        params the seed, its training dataset version the rows, and its evaluation the holdout;
        the refit is :meth:`fit_bundle` and the metrics :meth:`evaluate`, as
        ``Stages.register_best`` computed them. Every difference between the environment of the
        search and this one is listed first. Returns ``{"model", "version", "differences",
        "recorded", "reproduced", "max_abs_diff", "match"}`` (match: every recorded metric
        within 1e-9).

        Raises
        ------
        ConfigError
            The version was registered without an experiment and trial, training data or a
            holdout evaluation (nothing to refit from), or its config names an import outside
            the allow-list (nothing was imported).

        Examples
        --------
        >>> r = bench.experiments.reproduce_model("cancer", 1)            # doctest: +SKIP
        >>> r["match"], r["differences"]                                 # doctest: +SKIP
        (True, [])
        """
        row = self.store.models.get_version(model, version)
        name = f"{model}@{row['version']}"
        exp_id, trial_id = row.get("experiment_id"), row.get("trial_id")
        if exp_id is None or trial_id is None or row.get("dataset_version_id") is None:
            raise ConfigError(
                f"{name} was registered without its experiment, trial and training data; only a "
                "version registered from a search (Stages.register_best) can be refitted"
            )
        trial = next(
            (t for t in self.store.experiments.list_trials(exp_id) if t["trial_id"] == trial_id),
            None,
        )
        if trial is None:
            raise NotFoundError(f"trial {trial_id} of experiment {exp_id} ({name}) is not recorded")
        evaluation = self.store.evaluations.latest(row["id"])
        holdout_id = evaluation.get("holdout_version_id") if evaluation else None
        if holdout_id is None:
            raise ConfigError(
                f"{name} has no holdout evaluation recorded, so its metrics cannot be compared"
            )
        config = dict(trial["config"])
        if "features" in row["params"] and "features" not in config:
            config["features"] = row["params"]["features"]
        check_config_imports(config)  # before fit_bundle imports anything
        differences = self.differences(exp_id)
        seed = row["params"].get("seed", 0)
        bundle = self.fit_bundle(self.datasets.by_id(row["dataset_version_id"]), config, seed=seed)
        reproduced = self.evaluate(bundle, self.datasets.by_id(holdout_id))
        recorded = {
            k: v
            for k, v in row["metrics"].items()
            if k in reproduced and isinstance(v, int | float) and not isinstance(v, bool)
        }
        if not recorded:
            raise ConfigError(f"{name} recorded none of the metrics {sorted(reproduced)}")
        again = {k: reproduced[k] for k in recorded}
        diff = max(abs(again[k] - recorded[k]) for k in again)
        return {
            "model": model,
            "version": row["version"],
            "differences": differences,
            "recorded": recorded,
            "reproduced": again,
            "max_abs_diff": diff,
            "match": diff <= 1e-9,
        }

    @requires("search")
    def resume(
        self,
        experiment_id: int,
        *,
        trainable: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        progress: str | None = "auto",
    ) -> SearchResult:
        """Continue an interrupted search (its kernel or driver died) with ``Tuner.restore``.

        Unfinished trials resume from their last checkpoint (or start again)
        under the same trial ids and are marked ``INTERRUPTED`` with one more
        attempt until they run; finished and errored trials are kept as
        recorded (a trial that finished after Tune's last snapshot of its
        state is re-run by Tune, but its record is not touched). A search that
        ran a user function needs it again: ``trainable=fn``. Blocks until the
        search ends; :meth:`start_resume` continues it in the background.
        """
        return self._prepare_resume(experiment_id, trainable=trainable, progress=progress).run()

    @requires("search")
    def start_resume(
        self,
        experiment_id: int,
        *,
        trainable: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        progress: str | None = "auto",
    ) -> SearchHandle:
        """Continue an interrupted search in a background thread (see :meth:`resume`); returns its handle."""
        return self._prepare_resume(experiment_id, trainable=trainable, progress=progress).start()

    def _prepare_resume(
        self,
        experiment_id: int,
        *,
        trainable: Callable[[dict[str, Any], dict[str, Any]], None] | None,
        progress: str | None,
    ) -> _Prepared:
        """Restore the search's Tuner and re-attach its tracking callback; nothing runs yet."""
        from ray import tune

        from workbench.evaluation import task_metrics
        from workbench.experiments import _options as opt
        from workbench.experiments._stopper import StopFlag
        from workbench.experiments._tracking import TrackingCallback
        from workbench.ui import make_progress

        exp = self.store.experiments.get(experiment_id)
        if exp["status"] in ("TERMINATED", "STOPPED"):
            raise ConfigError(
                f"experiment {experiment_id} ended ({exp['status']}); there is nothing to resume. "
                "Start a new search instead."
            )
        path = exp.get("tune_path")
        # a row is data: restore only from our own folder, and only the pickles the search wrote
        path = checked_tune_path(self.settings, path) if path else path
        if path and tune.Tuner.can_restore(path):
            verify_state(path, exp.get("tune_state_hash"), experiment_id=experiment_id)
        if not path or not tune.Tuner.can_restore(path):
            raise ExperimentError(
                f"experiment {experiment_id} has no Tune state to resume from at {mask_uri(path) if path else '(not recorded)'}; "
                "Tune saves it a few seconds into a search, so one killed at once cannot resume: "
                "start it again."
            )
        options = exp["search_space"].get("_options", {})
        recorded = options.get("trainable", "sklearn")
        data = self.training_data(
            self.datasets.by_id(exp["dataset_version_id"]), task=options.get("task", "auto")
        )
        data.update(
            folds=options.get("folds", 3),
            seed=exp["seed"] or 0,
            checkpoints=options.get("checkpoints", opt.needs_checkpoints(exp["scheduler"])),
            allowed_imports=allowed_imports(),  # what this process allowed, for the trials
        )
        fn = _trainable
        if recorded != "sklearn":
            trainable = trainable or _import_qualname(recorded)
            if trainable is None:
                raise ConfigError(
                    f"experiment {experiment_id} ran the user trainable {recorded}, which cannot be "
                    "imported here; pass it again: resume(..., trainable=fn)"
                )
            data["fn"] = trainable
            fn = _user_trainable
        per_trial = exp["search_space"].get("_resources", {"cpu": 1.0, "gpu": 0.0})

        self._connect()
        waiting = opt.check_resources(per_trial)
        tuner = tune.Tuner.restore(
            path,
            trainable=tune.with_resources(
                tune.with_parameters(fn, data=data), opt.ray_resources(per_trial)
            ),
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
        # Tune restores the run config it pickled: find our callback and stopper in it.
        run_config = tuner._local_tuner.get_run_config()
        callback = next(
            (c for c in run_config.callbacks or [] if isinstance(c, TrackingCallback)), None
        )
        if callback is None:
            raise ExperimentError(
                f"the Tune state of experiment {experiment_id} at {mask_uri(path)} has no workbench "
                "tracking callback; it was not started by Experiments.search"
            )
        stop_flag = run_config.stop if isinstance(run_config.stop, StopFlag) else StopFlag()
        finished = {
            t["trial_id"]
            for t in self.store.experiments.list_trials(experiment_id)
            if t["status"] in ("TERMINATED", "ERROR", "STOPPED")
        }
        callback.freeze(finished)
        callback.waiting, callback.asked_autoscaler = waiting, waiting is not None
        self.store.experiments.record_resume(experiment_id)
        # this run's snapshots will replace the last ones: until it ends only tuner.pkl is known
        self.store.experiments.set_tune_state_hash(
            experiment_id, state_record(path, complete=False)
        )
        display = make_progress(progress)
        callback.display = display
        steps = options.get("max_steps") or options.get("folds", 3)
        keep = task_metrics(data["task"], proba=True) if recorded == "sklearn" else None
        return self._prepared(
            tuner, callback, stop_flag, display, steps=steps, keep=keep, location=path
        )

    def _prepared(
        self,
        tuner: Any,
        callback: Any,
        stop_flag: StopFlag,
        display: Any,
        *,
        steps: int,
        keep: tuple[str, ...] | None,
        location: str,
    ) -> _Prepared:
        run = partial(
            self._fit,
            tuner,
            callback,
            stop_flag,
            display,
            steps=steps,
            keep=keep,
            location=location,
        )
        return _Prepared(callback=callback, stop_flag=stop_flag, run=run, experiments=self)

    def _fit(
        self,
        tuner: Any,
        callback: Any,
        stop_flag: StopFlag,
        display: Any,
        *,
        steps: int,
        keep: tuple[str, ...] | None,
        location: str,
    ) -> SearchResult:
        """Run the Tuner to the end and record the experiment's outcome (and the hashes of the
        Tune state it leaves, which a resume checks)."""
        exp_id, name, metric, mode = (
            callback.experiment_id,
            callback.name,
            callback.metric,
            callback.mode,
        )
        from workbench.runtime import warm_trials

        try:
            with _tune_console_quiet(), warm_trials():
                grid_result = tuner.fit()
        except Exception as exc:
            self._record_state(exp_id, location)
            self.store.experiments.set_finished(exp_id, status="ERROR", error=repr(exc))
            raise ExperimentError(f"search {name!r} (experiment {exp_id}) failed: {exc}") from exc
        finally:
            if display is not None:
                display.close()
        self._record_state(exp_id, location)
        ok = [
            r
            for r in grid_result
            if r.error is None
            and r.metrics
            and isinstance(r.metrics.get(metric), int | float)
            and r.metrics[metric] == r.metrics[metric]  # not NaN
        ]
        if not ok:
            status = "STOPPED" if stop_flag.requested else "ERROR"
            self.store.experiments.set_finished(exp_id, status=status, error="no trial finished")
            raise ExperimentError(
                f"no trial of experiment {exp_id} finished; inspect errors with `workbench runs {exp_id}`."
            )
        # A trial a scheduler stopped early reports a mean over fewer steps: prefer complete ones.
        complete = [r for r in ok if r.metrics.get("training_iteration", 0) >= steps] or ok
        sign = 1 if mode == "max" else -1
        best = max(complete, key=lambda r: sign * float(r.metrics[metric]))
        best_id = best.metrics["trial_id"]
        status = "STOPPED" if stop_flag.requested else "TERMINATED"
        self.store.experiments.set_finished(exp_id, status=status, best_trial_id=best_id)
        best_metrics = _numeric(best.metrics)
        if keep:  # the built-in trainable: its metrics, not Tune's bookkeeping
            best_metrics = {k: best_metrics[k] for k in keep if k in best_metrics}
        return SearchResult(
            experiment_id=exp_id,
            name=name,
            best_trial_id=best_id,
            best_config={k: v for k, v in best.config.items()},
            best_metrics=best_metrics,
            trials=self.trials(exp_id),  # with each trial's cv summary
        )

    def _record_state(self, experiment_id: int, location: str) -> None:
        """Hash every state file Tune left after ``fit`` (it syncs its last snapshot first)."""
        try:
            record = state_record(location, complete=True)
        except OSError:  # storage unreachable now: the start's tuner.pkl hash stays
            return
        self.store.experiments.set_tune_state_hash(experiment_id, record)

    def fit_bundle(
        self,
        dataset: DatasetVersion,
        config: dict[str, Any],
        *,
        seed: int = 0,
        features: FeatureSpec | Mapping[str, Any] | None = None,
    ) -> ModelBundle:
        """Fit preprocessing + estimator of ``config`` on the whole dataset version (the torch
        MLP, ``family="torch_mlp"``, trains as its trials do: on all but their seeded
        validation split).

        The preprocessing is ``config["features"]`` (a trial's spec), else ``features``, else
        the default pipeline; the bundle records the spec (``feature_spec``, and
        ``params["features"]``) and the generated column names (``feature_names``, also in its
        signature, which the registry keeps).

        Examples
        --------
        >>> bundle = bench.experiments.fit_bundle(train, {"family": "ridge"}, features={"scale": "robust"})  # doctest: +SKIP
        >>> bundle.feature_names[:2]                                                                         # doctest: +SKIP
        ['age', 'income']
        """
        from workbench.experiments._estimators import family_params, family_task

        family = config.get("family")  # None: family_task's ConfigError says what to pass
        data = self.training_data(dataset, task=family_task(family))
        spec = config.get("features", features)
        if spec is not None:
            config = {**config, "features": _checked_spec(spec, data["kinds"])}
        pipe = make_pipeline(config, data["kinds"], seed=seed)
        pipe.fit(data["X"], data["y"])
        params = {"family": family, **family_params(config), "seed": seed}
        if spec is not None:
            params["features"] = config["features"]
        return ModelBundle(
            pipeline=pipe,
            features=data["kinds"],
            target=dataset.target or "",
            classes=data["classes"],
            task=data["task"],
            params=params,
            feature_spec=config.get("features"),
        )

    def predict(
        self,
        bundle: ModelBundle,
        holdout: DatasetVersion,
        *,
        sensitive_features: Sequence[str] = (),
    ) -> Predictions:
        """A bundle's predictions (and class probabilities, when its estimator gives them) on every
        row of ``holdout``, with the true values and the ``sensitive_features`` columns' groups:
        what metrics, the statistical gate and fairness figures are computed from."""
        from workbench.evaluation import Predictions
        from workbench.features import to_pandas

        if not holdout.target:
            raise ConfigError(f"{holdout} has no target column; ingest it with target=...")
        df = self.datasets.load(holdout)
        missing = [c for c in sensitive_features if c not in df.columns]
        if missing:
            raise ConfigError(
                f"sensitive features {missing} are not columns of {holdout} ({df.columns})"
            )
        X = to_pandas(df, bundle.features)
        preds = bundle.predict_frame(X)
        proba = None
        if bundle.task == "classification" and hasattr(bundle.pipeline, "predict_proba"):
            try:
                proba = bundle.pipeline.predict_proba(X)
            except (AttributeError, NotImplementedError):
                proba = None  # e.g. an SVC without probability=True
        return Predictions.of(
            bundle.task,
            df[holdout.target].to_list(),
            preds,
            classes=bundle.classes,
            proba=proba,
            sensitive={c: df[c].to_list() for c in sensitive_features},
        )

    def evaluate(self, bundle: ModelBundle, holdout: DatasetVersion) -> dict[str, float]:
        """Holdout metrics of a bundle: the flat ``metrics`` of
        :func:`workbench.evaluation.evaluate` on :meth:`predict`'s predictions (accuracy and
        macro precision/recall/F1, with probabilities ROC-AUC, PR-AUC, log-loss and Brier
        score, for a classifier; R², RMSE, MAE and MAPE for a regressor).

        Examples
        --------
        >>> bench.experiments.evaluate(bundle, holdout)["roc_auc"]     # doctest: +SKIP
        0.99
        """
        from workbench.evaluation import prediction_metrics

        return prediction_metrics(self.predict(bundle, holdout))  # evaluate()'s, without details

    def trials(self, experiment_id: int | None = None) -> list[dict[str, Any]]:
        """Trials (of one experiment, else all) with ``config``, ``metrics`` (last reported),
        ``status``, ``duration_s`` and ``cv``, in the order they started.

        ``cv`` is the trial's cross-validation summary from its recorded folds,
        ``{metric: {"mean", "std", "ci_low", "ci_high", "n_folds"}}``
        (:func:`workbench.evaluation.cv_summary`), or None for a trial that recorded no fold
        (a user trainable).

        Examples
        --------
        >>> bench.experiments.trials(1)[0]["cv"]["f1"]["ci_low"]       # doctest: +SKIP
        0.93
        """
        from workbench.experiments._compare import with_cv

        return with_cv(self.store, self.store.experiments.list_trials(experiment_id))

    def list(self) -> list[dict[str, Any]]:
        """Every experiment with ``n_trials``, oldest first."""
        return self.store.experiments.list()

    def get(self, experiment_id: int) -> dict[str, Any]:
        """One experiment's record: ``name``, ``status``, ``metric``, ``mode``, ``num_samples``,
        ``search_alg``, ``scheduler``, ``started_at``/``ended_at``, ``n_trials``...

        Raises
        ------
        NotFoundError
            If there is no such experiment (the message says how to list them).

        Examples
        --------
        >>> bench.experiments.get(1)["status"]                         # doctest: +SKIP
        'TERMINATED'
        """
        return self.store.experiments.get(int(experiment_id))

    def metrics(self, experiment_id: int, trial_id: str) -> list[dict[str, Any]]:
        """Every metric one trial reported: ``step``, ``name``, ``value``, by step then name
        (what a learning curve is drawn from).

        Examples
        --------
        >>> [m["value"] for m in bench.experiments.metrics(1, "t0001") if m["name"] == "f1"]  # doctest: +SKIP
        [0.95, 0.96, 0.97]
        """
        return self.store.experiments.list_trial_metrics(int(experiment_id), str(trial_id))

    @requires("search")
    def record_stop(
        self, experiment_id: int, *, reason: str, actor: str | None = None, via: str | None = None
    ) -> int:
        """Write the ``experiment.stop`` audit entry of a stop someone asked for (the search
        itself is stopped by its handle's ``stop()``); returns the entry's id.

        Examples
        --------
        >>> handle.stop(); bench.experiments.record_stop(handle.experiment_id, reason="enough")  # doctest: +SKIP
        """
        detail: dict[str, Any] = {"reason": reason}
        if via is not None:
            detail["via"] = via
        return self.store.audit(
            "experiment.stop", "experiment", int(experiment_id), detail, actor=actor
        )
