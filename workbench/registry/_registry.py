"""Register model versions, move aliases, load verified artifacts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.exceptions import ArtifactCorruptError, ConfigError, NotFoundError
from workbench.governance import Access, requires
from workbench.lineage import ArtifactStore, Store
from workbench.registry._bundle import ModelBundle

__all__ = ["ModelRegistry", "ModelVersion"]


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version as recorded in the store."""

    id: int
    model: str
    version: int
    artifact_hash: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    signature: dict[str, Any]
    aliases: tuple[str, ...]
    experiment_id: int | None
    trial_id: str | None
    dataset_version_id: int | None
    created_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ModelVersion:
        return cls(
            id=row["id"],
            model=row["model"],
            version=row["version"],
            artifact_hash=row["artifact_hash"],
            metrics=row["metrics"],
            params=row["params"],
            signature=row["signature"],
            aliases=tuple(row["aliases"]),
            experiment_id=row["experiment_id"],
            trial_id=row["trial_id"],
            dataset_version_id=row["dataset_version_id"],
            created_at=row["created_at"],
        )

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"

    def __getstate__(self) -> dict[str, Any]:
        # The registry attached for display holds a database connection: never pickle it.
        return {k: v for k, v in self.__dict__.items() if k != "_registry"}


class ModelRegistry:
    """Versions of named models, with aliases whose every move is recorded.

    Examples
    --------
    >>> mv = wb.registry.register("cancer", bundle, metrics={"f1": 0.97})   # doctest: +SKIP
    >>> wb.registry.set_alias("cancer", "champion", mv.version)             # doctest: +SKIP
    >>> wb.registry.load("cancer", "champion").predict_records([{...}])     # doctest: +SKIP
    """

    def __init__(self, store: Store, artifacts: ArtifactStore):
        self.store = store
        self.artifacts = artifacts

    @requires("register")
    def register(
        self,
        model: str,
        bundle: ModelBundle,
        *,
        metrics: dict[str, Any],
        experiment_id: int | None = None,
        trial_id: str | None = None,
        dataset_version_id: int | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Store the bundle as an artifact and record it as the next version of ``model``."""
        if not isinstance(bundle, ModelBundle):
            raise ConfigError(
                "register() takes a workbench.registry.ModelBundle; build one with wb.experiments.fit_bundle(...)."
            )
        digest = self.artifacts.put_object(bundle)
        row = self.store.models.add_version(
            model,
            task=bundle.task,
            artifact_hash=digest,
            params=bundle.params,
            metrics=metrics,
            signature=bundle.signature,
            experiment_id=experiment_id,
            trial_id=trial_id,
            dataset_version_id=dataset_version_id,
            actor=actor,
        )
        return self._bind(ModelVersion.from_row(row))

    def _bind(self, mv: ModelVersion) -> ModelVersion:
        # Not a dataclass field (equality and repr are unchanged): lets a notebook show the version's
        # registry widget (workbench.ui.register_displays).
        object.__setattr__(mv, "_registry", self)
        return mv

    def get(self, model: str, ref: int | str = "champion") -> ModelVersion:
        """A version by number or alias; raises NotFoundError listing what exists."""
        return self._bind(ModelVersion.from_row(self.store.models.get_version(model, ref)))

    def list(self, model: str | None = None) -> list[ModelVersion]:
        return [
            self._bind(ModelVersion.from_row(r)) for r in self.store.models.list_versions(model)
        ]

    def load(self, model: str, ref: int | str = "champion") -> ModelBundle:
        """Load a version's bundle after verifying its row (TamperedError when its artifact hash
        was swapped or the row edited or planted; see docs/audit.md) and its artifact's SHA-256
        (ArtifactCorruptError)."""
        mv = self.get(model, ref)
        bundle = self.artifacts.get_object(mv.artifact_hash)
        if not isinstance(bundle, ModelBundle):
            raise ArtifactCorruptError(
                f"artifact of {mv} is not a model bundle; re-register the model."
            )
        return bundle

    @requires("export")
    def export(
        self,
        model: str,
        ref: int | str = "champion",
        path: str | os.PathLike[str] | None = None,
        *,
        format: str = "mlflow",
        overwrite: bool = False,
    ) -> Path:
        """Write a version as a portable package: ``format="mlflow"`` an MLflow pyfunc model
        directory, ``"container"`` a Ray Serve Docker build context (see docs/packaging.md).

        The artifact's SHA-256 is verified first (ArtifactCorruptError, nothing written); an
        existing non-empty ``path`` is refused unless ``overwrite=True``.

        Examples
        --------
        >>> bench.registry.export("cancer", "champion", "cancer-mlflow")          # doctest: +SKIP
        PosixPath('cancer-mlflow')
        """
        from workbench.registry._package import write_package

        if path is None:
            raise ConfigError("export() needs path=, the folder to write the package to.")
        mv = self.get(model, ref)
        data = self.artifacts.get_bytes(mv.artifact_hash)  # verifies the SHA-256
        manifest = {
            "model": mv.model,
            "version": mv.version,
            "sha256": mv.artifact_hash,
            "signature": mv.signature,
            "packages": (mv.signature or {}).get("packages") or {},
            "metrics": mv.metrics,
        }
        return write_package(data, path, manifest=manifest, format=format, overwrite=overwrite)

    @requires(
        "promote", check=lambda self, model, alias, version, **_: self._four_eyes(model, version)
    )
    def set_alias(
        self, model: str, alias: str, version: int, *, actor: str | None = None, reason: str = ""
    ) -> ModelVersion:
        """Point ``alias`` of ``model`` at ``version`` (promotion when the alias is ``champion``);
        needs the ``approver`` role when roles are enforced, and under the four-eyes rule someone
        other than who registered the version."""
        self.store.models.set_alias(model, alias, version, actor=actor, reason=reason)
        return self.get(model, version)

    def _four_eyes(self, model: str, version: int) -> None:
        access = Access(self.store)
        if not (access.enforced and access.four_eyes):
            return
        mv = self.get(model, version)
        registrant = self.store.access.first_actor("model_version.register", "model_version", mv.id)
        access.require_other_person("promote", registrant, f"{model} version {mv.version}")

    def evaluation(self, model: str, ref: int | str = "champion") -> dict[str, Any] | None:
        """The newest recorded evaluation of a version (number or alias), or None when it has
        none (registered without one, e.g. by ``register()`` directly).

        A dict with ``id``, ``model_version_id``, ``holdout_version_id``, ``metrics`` (flat),
        ``details`` (per-class figures, confusion matrix, ROC/PR/calibration curves or residual
        quantiles: see :func:`workbench.evaluation.evaluate`), ``fairness``, ``cv`` (the
        training trial's per-metric mean, std and 95% interval over folds), ``gate`` (the
        verdict against the champion, when one was judged), ``report_artifact``,
        ``created_at``; absent parts are None.

        Examples
        --------
        >>> ev = bench.registry.evaluation("cancer")                      # doctest: +SKIP
        >>> ev["metrics"]["roc_auc"], ev["cv"]["f1"]["ci_low"]            # doctest: +SKIP
        (0.995, 0.948)
        """
        return self.store.evaluations.latest(self.get(model, ref).id)

    def evaluations(self, model: str, ref: int | str = "champion") -> list[dict[str, Any]]:
        """Every recorded evaluation of a version, oldest first (``[]`` when it has none); each as
        :meth:`evaluation` returns it.

        Examples
        --------
        >>> [e["holdout_version_id"] for e in bench.registry.evaluations("cancer", 2)]  # doctest: +SKIP
        [3]
        """
        return self.store.evaluations.list(self.get(model, ref).id)

    def report(
        self, model: str, ref: int | str = "champion", *, path: str | os.PathLike[str] | None = None
    ) -> str:
        """The HTML evaluation report of a version's newest evaluation (one self-contained page:
        metrics, ROC/PR/calibration curves, confusion matrix, per-class and per-group bars, CV
        intervals, the gate's verdict; see :func:`workbench.evaluation.render_report`).

        The first call renders it and stores it as an artifact attached to the evaluation; later
        calls return that stored page unchanged (a record of the evaluation, its aliases as they
        were then). ``path`` also writes it to that file. Raises NotFoundError when the version
        has no recorded evaluation.

        Examples
        --------
        >>> html = bench.registry.report("cancer", "champion", path="cancer.html")  # doctest: +SKIP
        >>> html.startswith("<!DOCTYPE html>")                                       # doctest: +SKIP
        True
        """
        from workbench.evaluation import render_report

        mv = self.get(model, ref)
        ev = self.store.evaluations.latest(mv.id)
        if ev is None:
            raise NotFoundError(
                f"{mv} has no recorded evaluation, so there is no report; register a version with a "
                "holdout (bench.register_best(..., holdout=...) or stages.register_candidate) to "
                "record one."
            )
        if ev.get("report_artifact"):
            html = self.artifacts.get_bytes(ev["report_artifact"]).decode("utf-8")
        else:
            row = self.store.models.get_version_by_id(mv.id)
            html = render_report(
                {
                    "model": mv.model,
                    "version": mv.version,
                    "aliases": list(mv.aliases),
                    "task": row.get("task"),
                    "created_at": mv.created_at,
                    "trained_on": self._dataset_label(mv.dataset_version_id),
                    "holdout": self._dataset_label(ev.get("holdout_version_id")),
                    "evaluation": ev,
                }
            )
            digest = self.artifacts.put_bytes(html.encode("utf-8"))
            self.store.evaluations.set_report(ev["id"], digest)
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    def _dataset_label(self, dataset_version_id: int | None) -> str | None:
        if dataset_version_id is None:
            return None
        try:
            dv = self.store.datasets.get_version_by_id(dataset_version_id)
        except NotFoundError:
            return f"dataset version id {dataset_version_id} (deleted)"
        return f"{dv['dataset']}@{dv['version']}"

    def history(self, model: str) -> list[dict[str, Any]]:
        """Every move of an alias of ``model``: ``alias``, ``version``, ``previous_version``,
        ``actor``, ``reason``, ``at``, oldest first."""
        return self.store.models.list_alias_history(model)

    def data_versions(self, model: str) -> list[dict[str, Any]]:
        """Every version of the datasets ``model``'s versions were trained on, oldest first:
        ``id``, ``dataset``, ``version``, ``n_rows``, ``n_cols``, ``content_hash``,
        ``created_at``, ``parent_id`` (a version whose dataset version is gone is skipped).

        Examples
        --------
        >>> [(d["dataset"], d["version"]) for d in bench.registry.data_versions("cancer")]  # doctest: +SKIP
        [('cancer', 1), ('cancer', 2)]
        """
        names: set[str] = set()
        for mv in self.store.models.list_versions(model):
            if mv.get("dataset_version_id") is None:
                continue
            try:
                names.add(
                    self.store.datasets.get_version_by_id(mv["dataset_version_id"])["dataset"]
                )
            except NotFoundError:
                continue
        keep = ("id", "dataset", "version", "n_rows", "n_cols", "content_hash", "created_at")
        return [
            {**{k: dv[k] for k in keep}, "parent_id": dv.get("parent_id")}
            for dv in self.store.datasets.list_versions()
            if dv["dataset"] in names
        ]
