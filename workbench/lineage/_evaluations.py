"""Evaluations: every cross-validation fold of a trial, and each holdout evaluation of a model version
(metrics, per-class and curve details, fairness, CV summary, the gate's verdict, the HTML report)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.lineage._db import Repository, _decode, dumps, utcnow

__all__ = ["EvaluationRepository"]


class EvaluationRepository(Repository):
    """``trial_folds`` (one row per trial and fold) and ``model_evaluations`` (one row per holdout
    evaluation of a model version; the newest is the one shown)."""

    # ------------------------------------------------------------------ folds
    def record_folds(
        self, experiment_id: int, trial_id: str, folds: Sequence[Mapping[str, float]]
    ) -> None:
        """Save the metrics of each fold of a trial (fold 0, 1, ...); a fold saved before (a
        resumed trial reporting it again) is replaced, so a trial never holds two of one fold."""
        now = utcnow()
        with self._db.transaction():
            self._db.executemany(
                "INSERT INTO trial_folds (experiment_id, trial_id, fold, metrics_json, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment_id, trial_id, fold) "
                "DO UPDATE SET metrics_json = excluded.metrics_json",
                [
                    (int(experiment_id), str(trial_id), i, dumps(dict(m)), now)
                    for i, m in enumerate(folds)
                ],
            )

    def list_folds(self, experiment_id: int, trial_id: str | None = None) -> list[dict[str, Any]]:
        """``{"trial_id", "fold", "metrics"}`` of one experiment (one trial), by trial then fold."""
        sql = "SELECT trial_id, fold, metrics_json FROM trial_folds WHERE experiment_id = ?"
        params: list[Any] = [int(experiment_id)]
        if trial_id is not None:
            sql += " AND trial_id = ?"
            params.append(str(trial_id))
        return [_decode(r) for r in self._db.rows(sql + " ORDER BY trial_id, fold", params)]

    # ------------------------------------------------------------ evaluations
    def add(
        self,
        model_version_id: int,
        *,
        holdout_version_id: int | None,
        metrics: Mapping[str, float],
        details: Mapping[str, Any] | None = None,
        fairness: Mapping[str, Any] | None = None,
        cv: Mapping[str, Any] | None = None,
        gate: Mapping[str, Any] | None = None,
        report_artifact: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Record one evaluation of a model version on a holdout; returns its decoded row."""
        new_id = self._record(
            "model_evaluations",
            {
                "model_version_id": int(model_version_id),
                "holdout_version_id": holdout_version_id,
                "metrics_json": dumps(dict(metrics)),
                "details_json": dumps(dict(details or {})),
                "fairness_json": None if fairness is None else dumps(dict(fairness)),
                "cv_json": None if cv is None else dumps(dict(cv)),
                "gate_json": None if gate is None else dumps(dict(gate)),
                "report_artifact": report_artifact,
                "created_at": utcnow(),
            },
            node="model_evaluation",
            links=[("model_version", int(model_version_id), "evaluated")],
            audit="model.evaluate",
            detail={"model_version_id": int(model_version_id), "holdout": holdout_version_id},
            actor=actor,
        )
        return self.get(new_id)

    def get(self, evaluation_id: int) -> dict[str, Any]:
        return _decode(
            self._one(
                "SELECT * FROM model_evaluations WHERE id = ?",
                [int(evaluation_id)],
                missing=f"no model evaluation {evaluation_id}; list them with "
                "bench.registry.evaluations(model, version).",
            )
        )

    def latest(self, model_version_id: int) -> dict[str, Any] | None:
        """The newest evaluation of a model version, or None when it has none."""
        row = self._db.row(
            "SELECT * FROM model_evaluations WHERE model_version_id = ? ORDER BY id DESC LIMIT 1",
            [int(model_version_id)],
        )
        return _decode(row) if row else None

    def list(self, model_version_id: int) -> list[dict[str, Any]]:
        """Every evaluation of a model version, oldest first."""
        return [
            _decode(r)
            for r in self._db.rows(
                "SELECT * FROM model_evaluations WHERE model_version_id = ? ORDER BY id",
                [int(model_version_id)],
            )
        ]

    def set_report(self, evaluation_id: int, artifact: str) -> None:
        """Attach the HTML report's artifact hash to an evaluation."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE model_evaluations SET report_artifact = ? WHERE id = ?",
                [artifact, int(evaluation_id)],
            )

    def set_gate(self, evaluation_id: int, verdict: Mapping[str, Any]) -> None:
        """Attach a gate verdict (against the champion) to an evaluation."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE model_evaluations SET gate_json = ? WHERE id = ?",
                [dumps(dict(verdict)), int(evaluation_id)],
            )
