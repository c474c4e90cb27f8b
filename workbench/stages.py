"""The composition root: settings, stores, the Ray connection and every lifecycle stage of one home, wired once."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from workbench.config import Settings, storage_refusal
from workbench.datasets import Datasets
from workbench.exceptions import ConfigError
from workbench.experiments import Experiments
from workbench.governance import requires
from workbench.lineage import ArtifactStore, Store
from workbench.monitoring import Monitoring
from workbench.registry import ModelRegistry

if TYPE_CHECKING:
    from workbench.datasets import DatasetVersion
    from workbench.evaluation import Evaluation, Predictions
    from workbench.experiments import SearchResult
    from workbench.registry import ModelBundle, ModelVersion
    from workbench.runtime import RayConnection
    from workbench.serving import Serving

__all__ = ["Stages", "Candidate"]


@dataclass(frozen=True)
class Candidate:
    """A search's best configuration refit on ``train`` and scored on ``holdout``, not yet registered.

    ``predictions`` are its predictions on every holdout row (what the statistical gate pairs
    with the champion's), ``evaluation`` their metrics and details (``metrics`` is
    ``evaluation.metrics``), ``fairness`` the per-group report when sensitive features were
    given (else None).
    """

    bundle: ModelBundle
    metrics: dict[str, float]
    experiment_id: int
    trial_id: str
    train: DatasetVersion
    holdout: DatasetVersion
    predictions: Predictions | None = None
    evaluation: Evaluation | None = None
    fairness: dict[str, Any] | None = None


class Stages:
    """One lineage store, one artifact store, one Ray connection, and each stage built on them once.

    ``serving`` is built on first use, so opening a home imports no Ray; every stage
    that needs Ray (experiments, serving) connects through :meth:`connect`, to
    ``address`` when one is given. :meth:`close` closes what this object opened:
    the store, Serving's HTTP client and a Ray it started (never a cluster it joined).

    Examples
    --------
    >>> stages = Stages.open("/tmp/wb", address="127.0.0.1:6379")      # doctest: +SKIP
    >>> stages.serving.deploy("cancer")                                # doctest: +SKIP
    >>> stages.close()                                                 # doctest: +SKIP
    """

    def __init__(
        self, settings: Settings, *, address: str | None = None, serve_port: int | None = None
    ):
        self.settings = settings
        self.address = address
        self.serve_port = serve_port
        settings.ensure_home()  # created 0700; one owned by another user or writable by others is refused
        self.artifacts = ArtifactStore(settings.artifacts_root)
        # a storage URI is probed (write, read back, delete) before the store opens, so a bad
        # bucket, endpoint or credential raises ConfigError with nothing recorded
        self.storage_probe_s = self.artifacts.probe() if self.artifacts.remote else 0.0
        self.store = Store(settings.db_path)
        self.datasets = Datasets(self.store, self.artifacts)
        self.registry = ModelRegistry(self.store, self.artifacts)
        self.experiments = Experiments(self.store, self.datasets, settings, connect=self.connect)
        self.monitoring = Monitoring(self.store, self.datasets)
        self._ray: RayConnection | None = None
        self._storage_refusal: ConfigError | None = None

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        address: str | None = None,
        serve_port: int | None = None,
        storage: str | os.PathLike[str] | None = None,
    ) -> Stages:
        """The stages of ``home`` (default ``$WORKBENCH_HOME`` or ``./.workbench``), with artifacts and
        Tune on ``storage`` (default ``$WORKBENCH_STORAGE``, else under ``home``)."""
        return cls(Settings.from_env(home, storage=storage), address=address, serve_port=serve_port)

    def connect(self) -> RayConnection:
        """Connect to Ray at ``address`` (else ``$RAY_ADDRESS``, else a private local Ray); idempotent."""
        from workbench.runtime import connect

        if self._ray is None:
            self._ray = connect(self.address)
            self._storage_refusal = self._check_storage()
        if self._storage_refusal is not None:
            raise self._storage_refusal
        return self._ray

    def _check_storage(self) -> ConfigError | None:
        """The refusal of a local-path storage on a cluster whose other nodes cannot see it, else None.

        On several alive nodes, a file written into ``home`` is looked for from a ``num_cpus=0``
        task pinned to each node: nodes of one host (``ray.cluster_utils.Cluster``) or a real
        shared mount see it and nothing is refused; a node in its own mount namespace or on
        another machine does not.
        """
        import ray

        alive = [node for node in ray.nodes() if node.get("Alive")]
        if len(alive) <= 1 or self.settings.storage_shared:
            return None
        unseen = _nodes_not_seeing(self.settings.home, [n["NodeID"] for n in alive])
        return storage_refusal(self.settings, alive_nodes=len(alive), unseen=unseen)

    @cached_property
    def serving(self) -> Serving:
        from workbench.serving import Serving

        return Serving(
            self.store,
            self.artifacts,
            self.settings,
            http_port=self.serve_port,
            connect=self.connect,
        )

    # ------------------------------------------------------------ registering
    def refit_best(
        self,
        search: SearchResult,
        *,
        train: DatasetVersion,
        holdout: DatasetVersion,
        seed: int = 0,
        sensitive_features: Sequence[str] = (),
    ) -> Candidate:
        """Refit ``search``'s best configuration on all of ``train`` and evaluate it on ``holdout``.

        The candidate keeps its holdout :class:`~workbench.evaluation.Predictions` and their
        :func:`~workbench.evaluation.evaluate` result; with ``sensitive_features`` (columns of
        ``holdout``) also their fairness report (per-group metrics and gaps).

        Examples
        --------
        >>> c = stages.refit_best(result, train=train, holdout=holdout)   # doctest: +SKIP
        >>> c.evaluation.details["confusion"]["matrix"]                     # doctest: +SKIP
        [[40, 2], [1, 71]]
        """
        from workbench.evaluation import evaluate

        bundle = self.experiments.fit_bundle(train, search.best_config, seed=seed)
        predictions = self.experiments.predict(
            bundle, holdout, sensitive_features=tuple(sensitive_features)
        )
        evaluation = evaluate(predictions)
        fairness = None
        if sensitive_features:
            from workbench.evaluation import fairness_report

            fairness = fairness_report(predictions)
        return Candidate(
            bundle=bundle,
            metrics=dict(evaluation.metrics),
            experiment_id=search.experiment_id,
            trial_id=search.best_trial_id,
            train=train,
            holdout=holdout,
            predictions=predictions,
            evaluation=evaluation,
            fairness=fairness,
        )

    @requires("register")
    def register_candidate(
        self,
        candidate: Candidate,
        *,
        model: str,
        alias: str | None = None,
        actor: str | None = None,
        reason: str = "",
        gate: Any = None,
    ) -> ModelVersion:
        """Register ``candidate`` as the next version of ``model`` with its holdout metrics (and set ``alias``).

        Lineage records the experiment and trial, the training data and the holdout it was
        evaluated on. One evaluation row is recorded with the version
        (``bench.registry.evaluation(model, version)``): the holdout metrics and details, the
        fairness report when the candidate has one, the CV summary of the trial's recorded
        folds, and ``gate`` (a ``GateVerdict`` or its dict: the verdict against the champion)
        when given.
        """
        from workbench.evaluation import cv_summary

        mv = self.registry.register(
            model,
            candidate.bundle,
            metrics=candidate.metrics,
            experiment_id=candidate.experiment_id,
            trial_id=candidate.trial_id,
            dataset_version_id=candidate.train.id,
            actor=actor,
        )
        self.store.link(
            "dataset_version", candidate.holdout.id, "evaluated", "model_version", mv.id
        )
        folds = self.store.evaluations.list_folds(candidate.experiment_id, candidate.trial_id)
        self.store.evaluations.add(
            mv.id,
            holdout_version_id=candidate.holdout.id,
            metrics=candidate.metrics,
            details=candidate.evaluation.details if candidate.evaluation else None,
            fairness=candidate.fairness,
            cv=cv_summary([f["metrics"] for f in folds]) if folds else None,
            gate=_verdict_dict(gate),
            actor=actor,
        )
        if alias:
            mv = self.registry.set_alias(
                model,
                alias,
                mv.version,
                actor=actor,
                reason=reason
                or f"best trial {candidate.trial_id} of experiment {candidate.experiment_id}",
            )
        return mv

    @requires("register")
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
        """:meth:`refit_best` then :meth:`register_candidate`: the search's best, evaluated on
        ``holdout`` (with per-group figures for ``sensitive_features``), registered."""
        candidate = self.refit_best(
            search, train=train, holdout=holdout, seed=seed, sensitive_features=sensitive_features
        )
        return self.register_candidate(
            candidate, model=model, alias=alias, actor=actor, reason=reason
        )

    # ------------------------------------------------------ from the record alone
    def search_result(self, experiment_id: int) -> SearchResult:
        """The :class:`~workbench.experiments.SearchResult` of a finished experiment, rebuilt from
        its record (its best trial's config and metrics), for :meth:`register_best` in another
        process than the one that searched (the CLI's ``workbench register``).

        Examples
        --------
        >>> stages.register_best(stages.search_result(3), model="cancer",
        ...                      train=train, holdout=holdout)                  # doctest: +SKIP
        """
        from workbench.experiments import SearchResult

        exp = self.experiments.get(experiment_id)
        best = exp.get("best_trial_id")
        trials = self.experiments.trials(experiment_id)
        found = [t for t in trials if t["trial_id"] == best]
        if not best or not found:
            raise ConfigError(
                f"experiment {experiment_id} ({exp.get('status')}) has no best trial yet; wait for "
                f"it to finish (`workbench runs {experiment_id}`) or `workbench resume "
                f"{experiment_id}` if its driver died"
            )
        return SearchResult(
            experiment_id=int(experiment_id),
            name=exp["name"],
            best_trial_id=best,
            best_config=dict(found[0]["config"] or {}),
            best_metrics={k: v for k, v in (found[0]["metrics"] or {}).items()},
            trials=trials,
        )

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Close the store and Serving's HTTP client; stop Ray only if this object started it."""
        from workbench.runtime import release_parked_trials

        if "serving" in self.__dict__:
            self.serving.close()
        release_parked_trials()  # parked trial actors (workbench.runtime._warm_trials) hold CPUs
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None
        self.store.close()

    def __repr__(self) -> str:
        return f"Stages(home={str(self.settings.home)!r})"


def _nodes_not_seeing(
    folder: os.PathLike[str], node_ids: list[str], timeout_s: float = 60.0
) -> list[str]:
    """The ids (shortened) of the nodes where a marker file just written into ``folder`` is not
    visible, or that did not answer within ``timeout_s``."""
    import uuid
    from pathlib import Path

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    marker = Path(folder) / f".node-check-{token}"
    marker.write_text(token)

    @ray.remote(num_cpus=0, max_retries=0)
    def sees(path: str, expected: str) -> bool:
        try:
            with open(path) as f:
                return f.read() == expected
        except OSError:
            return False

    try:
        refs = {
            node: sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(str(marker), token)
            for node in node_ids
        }
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        done = set(ready)
        unseen = []
        for node, ref in refs.items():
            try:
                ok = ref in done and bool(ray.get(ref))
            except Exception:  # the node died or refused the task: it cannot be relied on
                ok = False
            if not ok:
                unseen.append(node[:12])
        return unseen
    finally:
        marker.unlink(missing_ok=True)


def _verdict_dict(gate: Any) -> dict[str, Any] | None:
    """A gate verdict as the JSON-able dict recorded with an evaluation (None stays None)."""
    if gate is None:
        return None
    if isinstance(gate, Mapping):
        return dict(gate)
    if hasattr(gate, "as_dict"):
        return dict(gate.as_dict())
    raise ConfigError(f"gate must be a GateVerdict or its dict, got {gate!r}")
