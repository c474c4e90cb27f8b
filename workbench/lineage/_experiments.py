"""Experiments, their trials and every metric a trial reported."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from workbench.lineage._db import Repository, dumps, utcnow

__all__ = ["ExperimentRepository"]

# SQLite's default limit of host parameters is 999 before 3.32 and 32,766 after: stay below both.
_CHUNK = 900

# A trial in one of these states has ended; any other state left by a dead driver is interrupted.
_TRIAL_ENDED = ("TERMINATED", "ERROR", "STOPPED")


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield list(items[i : i + _CHUNK])


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" for _ in items)


class ExperimentRepository(Repository):
    """``experiments``, ``trials`` and ``trial_metrics``."""

    def add(
        self,
        *,
        name: str,
        dataset_version_id: int | None,
        metric: str,
        mode: str,
        num_samples: int,
        search_space: dict[str, Any],
        search_alg: str,
        scheduler: str,
        seed: int | None,
        code_version: dict[str, Any],
        packages: dict[str, str],
        environment: dict[str, Any] | None = None,
    ) -> int:
        """Record a search starting (status RUNNING), with ``environment``: what it runs on
        (``environment_json``; see ``workbench.experiments._environment``)."""
        db = self._db
        with db.transaction():
            return self._record(
                "experiments",
                {
                    "name": name,
                    "status": "RUNNING",
                    "dataset_version_id": dataset_version_id,
                    "metric": metric,
                    "mode": mode,
                    "num_samples": num_samples,
                    "search_space_json": dumps(search_space),
                    "search_alg": search_alg,
                    "scheduler": scheduler,
                    "seed": seed,
                    "code_version_json": dumps(code_version),
                    "packages_json": dumps(packages),
                    "environment_json": dumps(environment or {}),
                    "started_at": utcnow(),
                },
                node="experiment",
                links=[("dataset_version", dataset_version_id, "used_by")],
                audit="experiment.start",
                detail={"name": name},
            )

    def set_tune_path(self, experiment_id: int, path: str) -> None:
        """Where Tune keeps the experiment's state (what ``Tuner.restore`` resumes from)."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE experiments SET tune_path = ? WHERE id = ?", (path, experiment_id)
            )

    def set_tune_state_hash(self, experiment_id: int, record: str) -> None:
        """The hashes of the Tune state files a search wrote (``tune_state_hash``), checked before
        ``Tuner.restore`` unpickles them."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE experiments SET tune_state_hash = ? WHERE id = ?", (record, experiment_id)
            )

    def record_resume(self, experiment_id: int) -> list[str]:
        """Mark an interrupted experiment RUNNING again and its unfinished trials INTERRUPTED.

        Trials that had not ended (RUNNING, PENDING, PAUSED) when the driver died
        get status ``INTERRUPTED`` and one more attempt; finished ones are left
        as they are. Returns the interrupted trial ids (also in the audit log).
        """
        db = self._db
        with db.transaction():
            ids = [
                r["trial_id"]
                for r in db.rows(
                    f"SELECT trial_id FROM trials WHERE experiment_id = ? AND status NOT IN "
                    f"({_marks(_TRIAL_ENDED)}) ORDER BY id",
                    (experiment_id, *_TRIAL_ENDED),
                )
            ]
            db.executemany(
                "UPDATE trials SET status = 'INTERRUPTED', attempts = attempts + 1 "
                "WHERE experiment_id = ? AND trial_id = ?",
                [(experiment_id, i) for i in ids],
            )
            db.execute(
                "UPDATE experiments SET status = 'RUNNING', resumes = resumes + 1, ended_at = NULL, "
                "error = NULL WHERE id = ?",
                (experiment_id,),
            )
            db.audit("experiment.resume", "experiment", experiment_id, {"interrupted": ids})
            return ids

    def set_finished(
        self,
        experiment_id: int,
        *,
        status: str,
        best_trial_id: str | None = None,
        error: str | None = None,
    ) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE experiments SET status = ?, best_trial_id = ?, error = ?, ended_at = ? WHERE id = ?",
                (status, best_trial_id, error, utcnow(), experiment_id),
            )
            self._db.audit("experiment.finish", "experiment", experiment_id, {"status": status})

    def get(self, experiment_id: int) -> dict[str, Any]:
        """One experiment with ``n_trials``."""
        return self._one(
            "SELECT e.*, (SELECT COUNT(*) FROM trials t WHERE t.experiment_id = e.id) AS n_trials "
            "FROM experiments e WHERE e.id = ?",
            [experiment_id],
            missing=f"experiment {experiment_id} does not exist; list them with `workbench runs`.",
        )

    def list(self) -> list[dict[str, Any]]:
        """Every experiment with ``n_trials``, oldest first."""
        return self._db.rows(
            "SELECT e.*, (SELECT COUNT(*) FROM trials t WHERE t.experiment_id = e.id) AS n_trials FROM experiments e ORDER BY e.id"
        )

    def list_names(self) -> list[dict[str, Any]]:
        """``id`` and ``name`` of every experiment, oldest first (cheap: no trial counts)."""
        return self._db.rows("SELECT id, name FROM experiments ORDER BY id")

    def record_trial_events(
        self,
        experiment_id: int,
        trials: Iterable[dict[str, Any]],
        metrics: Iterable[tuple[str, int, dict[str, float]]] = (),
    ) -> None:
        """Upsert trial rows and append per-step metrics, all in one transaction.

        ``trials`` items carry ``trial_id`` and any of ``config``, ``status``,
        ``metrics``, ``error``, ``started_at``, ``ended_at``, ``duration_s``,
        ``resources``, ``node``, ``attempts``, ``stopped_early``, ``checkpoint_path``
        (``retry=True`` adds one to the stored attempts);
        ``metrics`` items are ``(trial_id, step, {name: value})``.
        """
        db = self._db
        with db.transaction():
            for t in trials:
                pk = db.scalar(
                    "SELECT id FROM trials WHERE experiment_id = ? AND trial_id = ?",
                    (experiment_id, t["trial_id"]),
                )
                fields = {
                    "config_json": dumps(t["config"]) if "config" in t else None,
                    "status": t.get("status"),
                    "metrics_json": dumps(t["metrics"]) if "metrics" in t else None,
                    "error": t.get("error"),
                    "started_at": t.get("started_at"),
                    "ended_at": t.get("ended_at"),
                    "duration_s": t.get("duration_s"),
                    "resources_json": dumps(t["resources"]) if "resources" in t else None,
                    "node": t.get("node"),
                    "attempts": t.get("attempts"),
                    "stopped_early": int(t["stopped_early"]) if "stopped_early" in t else None,
                    "checkpoint_path": t.get("checkpoint_path"),
                }
                fields = {k: v for k, v in fields.items() if v is not None}
                if pk is None:
                    fields.setdefault("config_json", "{}")
                    fields.setdefault("status", "PENDING")
                    fields.setdefault("started_at", utcnow())
                    db.insert(
                        "trials",
                        {"experiment_id": experiment_id, "trial_id": t["trial_id"], **fields},
                    )
                elif fields:
                    sets = ", ".join(f"{k} = ?" for k in fields)
                    db.execute(f"UPDATE trials SET {sets} WHERE id = ?", [*fields.values(), pk])
                if pk is not None and t.get("retry"):
                    db.execute("UPDATE trials SET attempts = attempts + 1 WHERE id = ?", (pk,))
            rows = []
            for trial_id, step, values in metrics:
                pk = db.scalar(
                    "SELECT id FROM trials WHERE experiment_id = ? AND trial_id = ?",
                    (experiment_id, trial_id),
                )
                rows += [(pk, step, k, float(v)) for k, v in values.items()]
            db.executemany(
                "INSERT OR REPLACE INTO trial_metrics (trial_pk, step, name, value) VALUES (?, ?, ?, ?)",
                rows,
            )

    def list_trials(
        self,
        experiment_id: int | None = None,
        *,
        experiment_ids: Sequence[int] | None = None,
        statuses: Sequence[str] = (),
        trial_ids: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Trials (with ``experiment``, the experiment's name) in the order they were recorded.

        ``experiment_id`` or ``experiment_ids`` narrow to some experiments, ``statuses`` to
        some states, ``trial_ids`` to some of Tune's trial ids.
        """
        base = "SELECT t.*, e.name AS experiment FROM trials t JOIN experiments e ON e.id = t.experiment_id WHERE 1"
        ids = [experiment_id] if experiment_id is not None else experiment_ids
        if ids is not None and not ids:
            return []
        if trial_ids is not None and not trial_ids:
            return []
        out: list[dict[str, Any]] = []
        for exp_chunk in _chunks(list(ids)) if ids is not None else [None]:
            for trial_chunk in _chunks(list(trial_ids)) if trial_ids is not None else [None]:
                sql, params = base, []
                if exp_chunk is not None:
                    sql += f" AND t.experiment_id IN ({_marks(exp_chunk)})"
                    params += exp_chunk
                if trial_chunk is not None:
                    sql += f" AND t.trial_id IN ({_marks(trial_chunk)})"
                    params += trial_chunk
                if statuses:
                    sql += f" AND t.status IN ({_marks(statuses)})"
                    params += list(statuses)
                out += self._db.rows(sql + " ORDER BY t.id", params)
        out.sort(key=lambda t: t["id"])
        return out

    def list_experiments_of_trial(self, trial_id: str) -> list[int]:
        """Ids of the experiments that have a trial called ``trial_id``."""
        return [
            r["experiment_id"]
            for r in self._db.rows(
                "SELECT experiment_id FROM trials WHERE trial_id = ? ORDER BY experiment_id",
                [trial_id],
            )
        ]

    def list_trial_metrics(self, experiment_id: int, trial_id: str) -> list[dict[str, Any]]:
        """``step``, ``name``, ``value`` of every metric one trial reported."""
        return self._db.rows(
            "SELECT m.step, m.name, m.value FROM trial_metrics m JOIN trials t ON t.id = m.trial_pk "
            "WHERE t.experiment_id = ? AND t.trial_id = ? ORDER BY m.step, m.name",
            [experiment_id, trial_id],
        )

    def list_metrics(self, trial_pks: Sequence[int]) -> list[dict[str, Any]]:
        """``trial_pk``, ``step``, ``name``, ``value`` of the trials with these row ids,
        ordered by trial, name and step."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(trial_pks)):
            out += self._db.rows(
                "SELECT trial_pk, step, name, value FROM trial_metrics "
                f"WHERE trial_pk IN ({_marks(chunk)}) ORDER BY trial_pk, name, step",
                chunk,
            )
        return out

    def get_latest_metrics(self, trial_pks: Sequence[int]) -> dict[int, dict[str, float]]:
        """The last reported value of each metric, per trial row id."""
        out: dict[int, dict[str, float]] = {}
        for chunk in _chunks(list(trial_pks)):
            for m in self._db.rows(
                "SELECT trial_pk, name, value FROM trial_metrics "
                f"WHERE trial_pk IN ({_marks(chunk)}) ORDER BY trial_pk, step",
                chunk,
            ):
                out.setdefault(m["trial_pk"], {})[m["name"]] = m["value"]
        return out
