"""The ``Workbench`` entry point: one object per WORKBENCH_HOME, with a namespace per lifecycle stage."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from workbench.evaluation import compare
from workbench.experiments import (
    compare_trials,
    metric_curves,
    plot_metric_curves,
    plot_parallel_coordinates,
)
from workbench.lineage import NODE_TYPES, describe_node, format_chain, lineage_chain
from workbench.stages import Stages
from workbench.ui import register_displays

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.figure import Figure

    from workbench.automation import Automation
    from workbench.config import Settings
    from workbench.datasets import Datasets, DatasetVersion
    from workbench.experiments import Experiments, SearchResult
    from workbench.governance import Access, Audit
    from workbench.lineage import ArtifactStore, Store
    from workbench.monitoring import Monitoring
    from workbench.registry import ModelRegistry, ModelVersion
    from workbench.runtime import RayConnection
    from workbench.serving import Serving
    from workbench.ui import Widgets

__all__ = ["Workbench"]


class Workbench:
    """Everything workbench does, on one lineage store and artifact store.

    The stages are wired once by :class:`workbench.stages.Stages` (``bench.stages``); the
    attributes below are those stages, and the methods shortcuts across them.

    Parameters
    ----------
    home : path, optional
        Where ``lineage.db`` and ``artifacts/`` live; default ``$WORKBENCH_HOME`` or ``./.workbench``.
    address : str, optional
        Ray cluster to join, for searches and serving alike (else ``$RAY_ADDRESS``, else a
        private local Ray started on first use and stopped by :meth:`close`).
    serve_port : int, optional
        HTTP port for Ray Serve on 127.0.0.1 (default ``$WORKBENCH_SERVE_PORT`` or 8000).
    storage : str, optional
        Where artifacts and Tune's experiment state live, as ``storage/artifacts`` and
        ``storage/tune``: a ``pyarrow.fs`` URI every node reaches (``s3://bucket/prefix``,
        ``gs://…``, ``abfs://…``, ``hdfs://…``, ``file:///a/shared/mount``); default
        ``$WORKBENCH_STORAGE``, else ``home`` itself. A URI is probed (a small write, read and
        delete) when the workbench opens: one that cannot be reached or written raises
        :class:`~workbench.exceptions.ConfigError` before anything is recorded. A cluster of
        more than one node refuses a local path. ``lineage.db`` always stays in ``home``.

    Examples
    --------
    >>> import workbench as wb
    >>> bench = wb.Workbench()                                                   # doctest: +SKIP
    >>> data = bench.datasets.ingest("cancer.csv", name="cancer", target="diagnosis")  # doctest: +SKIP
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        address: str | None = None,
        serve_port: int | None = None,
        storage: str | os.PathLike[str] | None = None,
    ):
        self.stages = Stages.open(home, address=address, serve_port=serve_port, storage=storage)
        register_displays()  # in a notebook kernel, model versions display their widget

    # ------------------------------------------------------------------ stages
    @property
    def settings(self) -> Settings:
        return self.stages.settings

    @property
    def address(self) -> str | None:
        return self.stages.address

    @property
    def serve_port(self) -> int | None:
        return self.stages.serve_port

    @property
    def store(self) -> Store:
        return self.stages.store

    @property
    def artifacts(self) -> ArtifactStore:
        return self.stages.artifacts

    @property
    def datasets(self) -> Datasets:
        return self.stages.datasets

    @property
    def registry(self) -> ModelRegistry:
        return self.stages.registry

    @property
    def experiments(self) -> Experiments:
        return self.stages.experiments

    @property
    def monitoring(self) -> Monitoring:
        return self.stages.monitoring

    @property
    def serving(self) -> Serving:
        """Deployments on Ray Serve, on the same Ray connection as everything else (built on first use)."""
        return self.stages.serving

    def connect(self) -> RayConnection:
        """Connect to Ray (``address``, else ``$RAY_ADDRESS``, else local); idempotent."""
        return self.stages.connect()

    @cached_property
    def access(self) -> Access:
        """Who may do what: ``whoami()``, ``grant(user, role)``, ``revoke``, ``grants()``,
        ``set_four_eyes()`` (see docs/governance.md)."""
        from workbench.governance import Access

        return Access(self.store)

    @cached_property
    def audit(self) -> Audit:
        """The audit log: ``verify()`` (the hash chain; names the first edited, deleted or
        reordered entry) and ``entries(limit)`` (see docs/audit.md)."""
        from workbench.governance import Audit

        return Audit(self.store)

    def whoami(self) -> dict[str, Any]:
        """Who is acting, their roles, whether roles are enforced, and what they may do now."""
        return self.access.whoami()

    @cached_property
    def automation(self) -> Automation:
        from workbench.automation import Automation

        return Automation(self.stages)

    def reopen(self) -> Workbench:
        """Another ``Workbench`` on the same home, Ray address and Serve port, with its own store
        connection; close it with :meth:`close` (Ray and Serve stay up: it started neither).

        The notebook widgets read through one, so their polling threads never wait on a
        transaction of this one's connection.

        Examples
        --------
        >>> reader = bench.reopen()                                 # doctest: +SKIP
        >>> reader.experiments.get(1)["status"]                     # doctest: +SKIP
        'TERMINATED'
        """
        return Workbench(
            self.settings.home,
            address=self.address,
            serve_port=self.serve_port,
            storage=self.settings.storage,
        )

    @cached_property
    def widgets(self) -> Widgets:
        """Notebook widgets on this store: ``experiment(id)``, ``registry(model)``, ``deployment(name)``,
        ``monitor(name)``, ``lineage(model)`` (see docs/widgets.md)."""
        from workbench.ui import Widgets

        return Widgets(self)

    # --------------------------------------------------------------- shortcuts
    def register_best(
        self,
        search: SearchResult,
        *,
        model: str,
        train: DatasetVersion,
        holdout: DatasetVersion,
        alias: str | None = None,
        seed: int = 0,
        actor: str | None = None,
        reason: str = "",
        sensitive_features: Sequence[str] = (),
    ) -> ModelVersion:
        """Refit a search's best config on ``train``, score it on ``holdout``, register it (and set ``alias``).

        The registered metrics are the holdout's; lineage records the experiment, the training
        data and the holdout it was evaluated on (:meth:`workbench.stages.Stages.register_best`,
        which the retraining pipeline also uses). The version's evaluation (metrics, details,
        the trial's CV intervals, per-group fairness figures for ``sensitive_features``) is
        recorded with it: read it with ``bench.registry.evaluation(model, version)``.
        """
        return self.stages.register_best(
            search,
            model=model,
            train=train,
            holdout=holdout,
            alias=alias,
            seed=seed,
            actor=actor,
            reason=reason,
            sensitive_features=sensitive_features,
        )

    def compare(
        self,
        model: str,
        challenger: int,
        *,
        holdout: Any,
        metric: str = "f1",
        tolerance: float = 0.0,
        test: str | None = None,
        alpha: float = 0.05,
        resamples: int = 1000,
        seed: int = 0,
        min_samples: int = 100,
        sensitive_features: Sequence[str] = (),
        fairness: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Champion versus ``challenger`` of ``model``, both scored now on the same holdout dataset version.

        Without ``test``: the two values of ``metric`` (``challenger_wins`` when it is no more than
        ``tolerance`` worse, :func:`workbench.evaluation.compare`). With
        ``test="paired_bootstrap"`` or ``"mcnemar"`` (``metric="accuracy"``), or ``fairness``
        bounds over ``sensitive_features``: the statistical verdict of
        :class:`~workbench.automation.Gate` with ``margin=-tolerance`` on the two models' paired
        predictions (the challenger wins only when the interval of its gain lies above
        ``-tolerance``, or McNemar's test rejects at ``alpha``); the same keys, plus ``test``,
        ``n``, ``interval``, ``p_value``, ``evidence``, ``alpha``, ``fairness`` and ``reason``.

        Examples
        --------
        >>> bench.compare("cancer", 2, holdout=holdout, metric="accuracy",
        ...               test="paired_bootstrap")["evidence"]                # doctest: +SKIP
        'not enough evidence'
        """
        champ_bundle = self.registry.load(model, "champion")
        chall_bundle = self.registry.load(model, challenger)
        if test is None and not fairness:
            champ = self.experiments.evaluate(champ_bundle, holdout)
            chall = self.experiments.evaluate(chall_bundle, holdout)
            return compare(champ, chall, metric=metric, tolerance=tolerance).as_dict()
        from workbench.automation import Gate

        gate = Gate(
            metric,
            margin=-tolerance,
            test=test,
            alpha=alpha,
            resamples=resamples,
            seed=seed,
            min_samples=min_samples,
            fairness=dict(fairness or {}),
        )
        sensitive = tuple(sensitive_features)
        verdict = gate.judge(
            self.experiments.predict(champ_bundle, holdout, sensitive_features=sensitive),
            self.experiments.predict(chall_bundle, holdout, sensitive_features=sensitive),
        ).as_dict()
        return {
            "metric": metric,
            "champion": verdict["champion"],
            "challenger": verdict["challenger"],
            "delta": verdict["challenger"] - verdict["champion"],
            "tolerance": tolerance,
            "challenger_wins": verdict["passed"],
            **{k: verdict[k] for k in ("test", "n", "interval", "p_value", "evidence", "alpha")},
            "fairness": verdict["fairness"],
            "reason": verdict["reason"],
        }

    # ------------------------------------------------------ trials across experiments
    def compare_trials(
        self,
        experiments: int | str | Sequence[int | str] | None = None,
        *,
        where: str | Sequence[str] | None = None,
        sort: str | Sequence[str] | None = None,
        limit: int | None = None,
        status: str | Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Trials of several experiments side by side, as flat rows (not :meth:`compare`, which
        scores a champion against a challenger model version).

        ``experiments`` are ids or names (default all); ``where`` conditions such as
        ``"metrics.f1>=0.9"`` or ``"config.family==random_forest"`` must all hold; ``sort`` is a
        column, ``-`` first for descending. Each row has ``experiment_id``, ``experiment``,
        ``trial_id``, ``status``, ``duration_s``, ``config.<key>`` and ``metrics.<key>``; see
        :func:`workbench.experiments.compare_trials`.

        Examples
        --------
        >>> bench.compare_trials(["cancer", "cancer-mlp"], where="status==TERMINATED",
        ...                      sort="-metrics.f1", limit=5)                     # doctest: +SKIP
        """
        return compare_trials(
            self.store, experiments, where=where, sort=sort, limit=limit, status=status
        )

    def plot_trials(
        self,
        experiments: int | str | Sequence[int | str] | None = None,
        *,
        where: str | Sequence[str] | None = None,
        sort: str | Sequence[str] | None = None,
        limit: int | None = None,
        status: str | Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        color: str | None = None,
    ) -> Figure:
        """Parallel-coordinates plot of the trials :meth:`compare_trials` selects: one axis per
        hyperparameter (or ``columns``), one line per trial coloured by ``color`` (default the
        first metric). Returns a matplotlib ``Figure``; a notebook shows it as the cell's value."""
        rows = self.compare_trials(experiments, where=where, sort=sort, limit=limit, status=status)
        return plot_parallel_coordinates(rows, columns, color)

    def plot_curves(
        self,
        metric: str,
        experiments: int | str | Sequence[int | str] | None = None,
        *,
        where: str | Sequence[str] | None = None,
        sort: str | Sequence[str] | None = None,
        limit: int | None = None,
        status: str | Sequence[str] | None = None,
    ) -> Figure:
        """``metric`` per reported step, one line per trial :meth:`compare_trials` selects.
        Returns a matplotlib ``Figure``."""
        rows = self.compare_trials(experiments, where=where, sort=sort, limit=limit, status=status)
        return plot_metric_curves(metric_curves(self.store, rows), metric)

    def lineage(self, model: str, version: int | str = "champion") -> dict[str, Any]:
        """Every record connected to a model version: data, experiment, deployments, drift, retraining."""
        mv = self.registry.get(model, version)
        return lineage_chain(self.store, "model_version", mv.id)

    def lineage_text(self, model: str, version: int | str = "champion") -> str:
        """:meth:`lineage` as text: one line per edge, then each deployment's traffic history."""
        return format_chain(self.store, self.lineage(model, version))

    def lineage_graph(
        self, node_type: str, node_id: int, *, max_nodes: int = 500
    ) -> dict[str, Any]:
        """The lineage graph around any record, JSON-safe: ``root`` (``"type:id"``), ``nodes``
        (``key``, ``type``, ``id``, ``label``: a one-line description) and ``edges`` (``src``,
        ``dst``, ``relation``, ``at``), nodes sorted by type then id, edges in recorded order.

        ``node_type`` is one of ``workbench.lineage.NODE_TYPES`` (``"model_version"``,
        ``"dataset_version"``, ``"deployment"``, ``"drift_result"``...). Drift results that found
        no drift and caused nothing are left out, as in :meth:`lineage`.

        Examples
        --------
        >>> g = bench.lineage_graph("model_version", 3)                  # doctest: +SKIP
        >>> [(e["src"], e["relation"], e["dst"]) for e in g["edges"]][:1]  # doctest: +SKIP
        [('dataset_version:1', 'trained_on', 'model_version:3')]
        """
        chain = lineage_chain(self.store, node_type, int(node_id), max_nodes=max_nodes)
        return {
            "root": f"{node_type}:{int(node_id)}",
            "nodes": [
                {"key": f"{t}:{i}", "type": t, "id": i, "label": label}
                for (t, i), label in sorted(chain["nodes"].items())
            ],
            "edges": [
                {
                    "src": f"{e['src_type']}:{e['src_id']}",
                    "dst": f"{e['dst_type']}:{e['dst_id']}",
                    "relation": e["relation"],
                    "at": e["at"],
                }
                for e in chain["edges"]
            ],
        }

    def lineage_record(self, node_type: str, node_id: int) -> dict[str, Any]:
        """The stored record behind one lineage node, shaped for display: ``type``, ``id``,
        ``description`` (one line) and ``record`` (its fields; a dataset version without its
        column schema, an experiment without its package list; ``{}`` for an unknown type).

        Raises
        ------
        NotFoundError
            If a dataset version, experiment, model version or retrain job with that id does not
            exist (other records that are gone give an empty ``record``).

        Examples
        --------
        >>> bench.lineage_record("model_version", 3)["description"]       # doctest: +SKIP
        'model cancer v3 [champion] (accuracy=0.965, f1=0.962, ...)'
        """
        node_id = int(node_id)
        row: dict[str, Any]
        if node_type == "dataset_version":
            row = self.store.datasets.get_version_by_id(node_id)
            row.pop("schema", None)
        elif node_type == "experiment":
            row = self.store.experiments.get(node_id)
            row.pop("packages", None)
        elif node_type == "model_version":
            row = self.store.models.get_version_by_id(node_id)
        elif node_type == "retrain_job":
            row = self.store.retraining.get_job(node_id)
        elif node_type in NODE_TYPES:
            row = self.store.node(node_type, node_id) or {}
        else:
            row = {}
        return {
            "type": node_type,
            "id": node_id,
            "description": describe_node(self.store, node_type, node_id),
            "record": row,
        }

    def deployments(self) -> list[dict[str, Any]]:
        """Every recorded deployment with its model and the traffic weights last recorded for it.

        Read from the store only (no Ray): ``weights`` maps version numbers to shares (empty before
        the first traffic record); ``serving.health(name)`` asks the running router instead.

        Examples
        --------
        >>> [(d["name"], d["weights"]) for d in bench.deployments()]         # doctest: +SKIP
        [('cancer', {1: 0.9, 2: 0.1})]
        """
        out = []
        for row in self.store.deployments.list():
            history = self.store.deployments.list_traffic(row["name"])
            weights = history[-1]["weights"] if history else {}
            out.append(
                {
                    **row,
                    "weights": {int(k): float(v) for k, v in weights.items()},
                    "traffic_changed_at": history[-1]["at"] if history else None,
                }
            )
        return out

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` audit entries (who did what to which record, and when), newest first."""
        return self.store.audit_log(int(limit))

    def status(self) -> dict[str, Any]:
        """Counts of what the store holds, and where it lives."""
        return {
            "home": str(self.settings.home),
            "lineage_db": str(self.settings.db_path),
            "artifacts": self.artifacts.display,
            "storage": self.settings.storage_display if self.settings.storage else None,
            **self.store.counts(),
            "migrations": self.store.applied_migrations(),
        }

    def close(self) -> None:
        """Close the store and Serving's HTTP client; stop Ray only if this workbench started it."""
        self.stages.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workbench(home={str(self.settings.home)!r})"
