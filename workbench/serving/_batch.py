"""Batch scoring: a registered model version run over a whole dataset version on Ray Data, recorded as a new version."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.datasets import Checks, Datasets, DatasetVersion, FrameSource
from workbench.exceptions import ConfigError, DatasetValidationError
from workbench.features import feature_kinds

if TYPE_CHECKING:
    import pyarrow as pa

    from workbench.lineage import ArtifactStore, Store
    from workbench.registry import ModelBundle

__all__ = [
    "BundleScorer",
    "model_reference",
    "score_table",
    "output_columns",
    "check_inputs",
    "actor_pool",
    "score_version",
]

# The edge from a scored dataset version to the model version that scored it.
SCORED_BY = "scored_by"
# Blocks handed to Ray Data: enough of them that every actor of the pool gets work (one block
# goes to one actor), few enough that per-block overhead stays small next to the predictions.
_BLOCKS = 32


def model_reference(model_ref: Any) -> tuple[str, int | str]:
    """``(model, version or alias)`` of a model version, ``"model@version"``, ``"model@alias"`` or
    ``"model"`` (its champion, as :meth:`Serving.deploy` defaults to); the registry resolves it.

    Examples
    --------
    >>> model_reference("cancer@2"), model_reference("cancer@champion"), model_reference("cancer")
    (('cancer', '2'), ('cancer', 'champion'), ('cancer', 'champion'))
    """
    model, version = getattr(model_ref, "model", None), getattr(model_ref, "version", None)
    if isinstance(model, str) and isinstance(version, int):  # a ModelVersion
        return model, version
    if isinstance(model_ref, str):
        model, sep, ref = model_ref.partition("@")
        if model and (ref or not sep) and "@" not in ref:
            return model, ref or "champion"
    raise ConfigError(
        f"cannot read a model version from {model_ref!r}; pass a ModelVersion, 'model@version' "
        "or 'model@alias' (e.g. 'cancer@2', 'cancer@champion')."
    )


def output_columns(output: str, signature: Mapping[str, Any]) -> list[str]:
    """The columns scoring appends: ``output``, then ``<output>_proba_<label>`` per class of a classifier.

    Examples
    --------
    >>> output_columns("prediction", {"task": "classification", "classes": ["B", "M"]})
    ['prediction', 'prediction_proba_B', 'prediction_proba_M']
    >>> output_columns("y_hat", {"task": "regression", "classes": []})
    ['y_hat']
    """
    if signature.get("task") == "regression":
        return [output]
    return [output] + [f"{output}_proba_{label}" for label in signature.get("classes", [])]


def check_inputs(
    signature: Mapping[str, Any], schema: Mapping[str, str], *, output: str, what: str
) -> None:
    """Refuse a dataset whose columns the model cannot take, before any work is done.

    Every feature of the model's ``signature`` must be a column of ``schema`` (column → polars
    dtype name) of the kind the model was trained on (number, string, boolean): a string column
    fed to a numeric feature fails, and a number fed to a one-hot encoded feature would silently
    encode to all zeros. The columns scoring appends must not exist yet.

    Raises
    ------
    DatasetValidationError
        Naming every missing or mistyped column; ``report`` holds one failed check per column.
    ConfigError
        An output column already exists (pass another ``output``).

    Examples
    --------
    >>> sig = {"features": {"age": "number", "city": "string"}, "task": "regression"}
    >>> check_inputs(sig, {"age": "Int64", "city": "String"}, output="y_hat", what="d@1")
    >>> check_inputs(sig, {"age": "Int64"}, output="y_hat", what="d@1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.exceptions.DatasetValidationError: d@1 lacks column(s) ['city'] the model needs; ...
    """
    wanted: dict[str, str] = dict(signature.get("features", {}))
    have = feature_kinds(schema, None)
    missing = [c for c in wanted if c not in have]
    # Bundles from before the "datetime" kind took Date/Datetime columns as strings: still theirs.
    mistyped = {
        c: (k, schema[c])
        for c, k in wanted.items()
        if c in have and have[c] != k and (k, have[c]) != ("string", "datetime")
    }
    report = [
        {"check": "model_feature", "column": c, "passed": False, "detail": "column absent"}
        for c in missing
    ] + [
        {
            "check": "model_feature",
            "column": c,
            "passed": False,
            "detail": f"the model takes a {kind}, the column is {dtype}",
        }
        for c, (kind, dtype) in mistyped.items()
    ]
    if missing or mistyped:
        parts = []
        if missing:
            parts.append(f"lacks column(s) {missing} the model needs")
        if mistyped:
            parts.append(
                "has column(s) of another kind than the model was trained on: "
                + ", ".join(
                    f"{c!r} ({dtype}, the model takes a {k})" for c, (k, dtype) in mistyped.items()
                )
            )
        raise DatasetValidationError(
            f"{what} {'; '.join(parts)}; nothing was scored or recorded. Score a dataset version with "
            "those columns, or a model version trained on this dataset's columns.",
            report,
        )
    taken = [c for c in output_columns(output, signature) if c in schema]
    if taken:
        raise ConfigError(
            f"{what} already has column(s) {taken}; pass another output=..., "
            f"e.g. output={output + '_2'!r}."
        )


def actor_pool(
    concurrency: int | tuple[int, int] | None, *, num_gpus: float, cluster: Mapping[str, float]
) -> Any:
    """The Ray Data ``ActorPoolStrategy`` for ``concurrency`` actors, checked against ``cluster``
    (``ray.cluster_resources()``).

    ``None`` is an autoscaling pool of 1 to as many actors as the cluster has CPUs (GPUs when
    ``num_gpus``); an int a fixed pool; ``(min, max)`` an autoscaling one. ``num_gpus`` above the
    cluster's GPUs is refused at once: Ray would otherwise wait for a GPU that never comes.
    """
    from ray.data import ActorPoolStrategy

    if num_gpus < 0:
        raise ConfigError(f"num_gpus must be 0 or more, got {num_gpus}.")
    gpus = float(cluster.get("GPU", 0.0))
    if num_gpus > 0 and gpus < num_gpus:
        raise ConfigError(
            f"num_gpus={num_gpus} per scoring actor, but this Ray cluster has {gpus:g} GPU(s); "
            "score on CPU with num_gpus=0 (the default), or join a cluster with GPU nodes."
        )
    if concurrency is None:
        slots = gpus / num_gpus if num_gpus > 0 else float(cluster.get("CPU", 1.0))
        return ActorPoolStrategy(min_size=1, max_size=max(1, int(slots)))
    if isinstance(concurrency, bool) or not isinstance(concurrency, int | tuple | list):
        raise ConfigError(f"concurrency must be an int or (min, max), got {concurrency!r}.")
    if isinstance(concurrency, int):
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}.")
        return ActorPoolStrategy(size=concurrency)
    if len(concurrency) != 2 or not all(isinstance(n, int) for n in concurrency):
        raise ConfigError(f"concurrency must be an int or (min, max), got {concurrency!r}.")
    low, high = concurrency
    if not 1 <= low <= high:
        raise ConfigError(f"concurrency (min, max) needs 1 <= min <= max, got {concurrency!r}.")
    return ActorPoolStrategy(min_size=low, max_size=high)


def score_table(bundle: ModelBundle, batch: pa.Table, *, output: str = "prediction") -> pa.Table:
    """``batch`` with the bundle's predictions appended (and class probabilities, when the
    bundle's pipeline gives them): the work of one Ray Data batch, runnable in-process.

    The feature columns go through :func:`workbench.features.to_pandas`, as for evaluation, and
    predictions come from :meth:`ModelBundle.predict_frame`, as a Serve replica's.

    Examples
    --------
    >>> scored = score_table(bundle, pa.table({"mean radius": [14.1], ...}))   # doctest: +SKIP
    >>> scored.column("prediction").to_pylist()                                  # doctest: +SKIP
    ['B']
    """
    import polars as pl
    import pyarrow as pa

    from workbench.features import to_pandas

    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)  # a Table, never a lone array
    if frame.height == 0:
        return _empty_scored(bundle, batch, output)
    X = to_pandas(frame, bundle.features)
    out = batch.append_column(output, pa.array(bundle.predict_frame(X)))
    proba = _probabilities(bundle, X)
    if proba is not None:
        for label, column in proba.items():
            out = out.append_column(f"{output}_proba_{label}", pa.array(column, pa.float64()))
    return out


def _probabilities(bundle: ModelBundle, X: Any) -> dict[Any, Any] | None:
    """Class label → probability column, or None (a regressor, or a pipeline without ``predict_proba``)."""
    pipeline = bundle.pipeline
    if bundle.task == "regression" or not hasattr(pipeline, "predict_proba"):
        return None
    proba = pipeline.predict_proba(X)
    # the estimator's classes are the integer codes of bundle.classes (see ModelBundle)
    codes = getattr(pipeline, "classes_", range(proba.shape[1]))
    return {bundle.classes[int(code)]: proba[:, j] for j, code in enumerate(codes)}


def _empty_scored(bundle: ModelBundle, batch: pa.Table, output: str) -> pa.Table:
    import pyarrow as pa

    label = pa.float64() if bundle.task == "regression" else pa.array(bundle.classes).type
    out = batch.append_column(output, pa.array([], label))
    if bundle.task != "regression" and hasattr(bundle.pipeline, "predict_proba"):
        for name in output_columns(output, bundle.signature)[1:]:
            out = out.append_column(name, pa.array([], pa.float64()))
    return out


class BundleScorer:
    """Ray Data callable class: loads a model bundle once per actor, then scores pyarrow batches.

    The bundle is read by hash from the artifact store root (a local path or a storage URI the
    actor's node reads, exactly as a Serve replica reads it) and verified before unpickling, so a
    node that shares no disk with the driver scores too.

    Parameters
    ----------
    artifacts_root : str
        Root of the artifact store (``ArtifactStore.uri``).
    artifact_hash : str
        SHA-256 of the model version's bundle.
    output : str
        Name of the prediction column.

    Examples
    --------
    >>> ds.map_batches(BundleScorer, batch_format="pyarrow",                        # doctest: +SKIP
    ...     fn_constructor_kwargs={"artifacts_root": root, "artifact_hash": sha},
    ...     compute=ray.data.ActorPoolStrategy(size=2))
    """

    def __init__(self, artifacts_root: str, artifact_hash: str, output: str = "prediction"):
        from workbench.lineage import ArtifactStore
        from workbench.registry import ModelBundle

        bundle = ArtifactStore(artifacts_root).get_object(artifact_hash)  # verifies the SHA-256
        if not isinstance(bundle, ModelBundle):
            raise ConfigError(
                f"artifact {artifact_hash[:12]}… is not a ModelBundle; re-register the model version."
            )
        self.bundle = bundle
        self.output = output

    def __call__(self, batch: pa.Table) -> pa.Table:
        return score_table(self.bundle, batch, output=self.output)


class _ScoredFrame(FrameSource):
    """The scored rows, described by what made them (recorded as the version's ``source``)."""

    def __init__(self, frame: Any, description: str):
        super().__init__(frame)
        self._description = description

    def describe(self) -> str:
        return self._description


def score_version(
    *,
    store: Store,
    artifacts: ArtifactStore,
    connect: Callable[[], Any],
    model_version: Mapping[str, Any],
    dataset_version: DatasetVersion | str,
    name: str | None,
    batch_size: int,
    num_gpus: float,
    concurrency: int | tuple[int, int] | None,
    output: str,
) -> DatasetVersion:
    """Score every row of ``dataset_version`` with ``model_version`` (its store row, artifact
    verified) on Ray Data and record the result; what :meth:`Serving.score` runs."""
    if not isinstance(dataset_version, DatasetVersion | str):
        raise ConfigError(
            f"score() takes a DatasetVersion or 'name@version' (e.g. 'cancer@2'), got "
            f"{type(dataset_version).__name__}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}.")
    if not isinstance(output, str) or not output:
        raise ConfigError(f"output must be a non-empty column name, got {output!r}.")
    datasets = Datasets(store, artifacts)
    dataset_version = datasets.resolve(dataset_version)  # "name" (its latest) or "name@3" too
    ref = f"{model_version['model']}@{model_version['version']}"
    check_inputs(
        model_version["signature"], dataset_version.schema, output=output, what=str(dataset_version)
    )
    import ray

    from workbench.runtime import release_parked_trials

    connect()
    release_parked_trials()  # the batch's actors need the CPUs parked trial actors hold
    compute = actor_pool(concurrency, num_gpus=num_gpus, cluster=ray.cluster_resources())
    scored = _run(
        datasets.load(dataset_version).to_arrow(),  # the version's artifact, hash-verified
        artifacts_root=artifacts.uri,
        artifact_hash=model_version["artifact_hash"],
        output=output,
        batch_size=batch_size,
        num_gpus=num_gpus,
        compute=compute,
    )
    import polars as pl

    frame = pl.from_arrow(scored)
    assert isinstance(frame, pl.DataFrame)
    dv = datasets.ingest(
        _ScoredFrame(frame, f"{dataset_version} scored by {ref}"),
        name=name or f"{dataset_version.name}-scored",
        # the input rows were validated when they were ingested, and their null shares may have
        # been allowed by checks of their own: the scored version only adds model outputs
        checks=Checks(max_null_fraction=1.0),
        parent=dataset_version,
    )
    # Idempotent, so scoring the same rows with the same model again (the same content: the
    # existing version comes back) records the edge once; it also restores one a crash lost.
    store.link("dataset_version", dv.id, SCORED_BY, "model_version", model_version["id"])
    return dv


def _run(
    table: pa.Table,
    *,
    artifacts_root: str,
    artifact_hash: str,
    output: str,
    batch_size: int,
    num_gpus: float,
    compute: Any,
    scorer: type[BundleScorer] | None = None,
) -> pa.Table:
    """Send ``table`` through Ray's object store in blocks, score them on an actor pool, and
    gather the result in the input's row order (``scorer``: a :class:`BundleScorer` subclass
    to map instead, for tests that slow one block down)."""
    import pyarrow as pa
    import ray

    rows = max(batch_size, math.ceil(table.num_rows / _BLOCKS)) if table.num_rows else 1
    blocks = [table.slice(start, rows) for start in range(0, table.num_rows, rows)] or [table]
    # from_blocks is from_arrow without its remote metadata task per table (the metadata is read
    # here): 25 blocks took 5 s in those tasks on 2 loaded cores, before any scoring started
    ds = ray.data.from_blocks(blocks)
    # the dataset holds its own copy of the DataContext: the global settings are untouched
    ds.context.execution_options.preserve_order = True
    scored = ds.map_batches(
        scorer or BundleScorer,
        fn_constructor_kwargs={
            "artifacts_root": artifacts_root,
            "artifact_hash": artifact_hash,
            "output": output,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=compute,
        num_gpus=num_gpus or None,
        udf_modifying_row_count=False,
    )
    parts: Sequence[pa.Table] = ray.get(scored.to_arrow_refs())
    return pa.concat_tables(parts) if parts else table
