"""Ingest files or frames into immutable, content-hashed dataset versions."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.datasets._checks import Checks, infer_checks
from workbench.datasets._hashing import content_hash
from workbench.datasets._sources import Fetched, Source, as_source
from workbench.datasets._validation import format_report, run_checks
from workbench.exceptions import ConfigError, DatasetValidationError, NotFoundError
from workbench.governance import requires
from workbench.lineage import ArtifactStore, Store

if TYPE_CHECKING:
    from datetime import datetime

    import polars as pl

    from workbench.datasets._diff import DatasetDiff
    from workbench.datasets._schedules import IngestionSchedule

__all__ = ["Datasets", "DatasetVersion", "content_hash", "parquet_bytes"]


def parquet_bytes(df: pl.DataFrame) -> bytes:
    """``df`` as the bytes of a zstd Parquet file, the way a version's rows are stored.

    Frames of flat columns (integers, floats, booleans, text, binary, dates, times, datetimes,
    durations) go through pyarrow with settings chosen for a copy that is read back whole: integer
    and temporal columns delta-encoded (``DELTA_BINARY_PACKED``), floats byte-stream-split, no
    dictionary attempt, no column statistics (nothing prunes row groups of an artifact), zstd.
    On 1M rows x 5 columns from PostgreSQL that is a third of the CPU time of polars' writer
    (which tries a dictionary on every column: costly on unique ids and timestamps) and a file
    15x smaller; on 1M normal random floats byte-stream-split costs ~4 ms more than plain. Any other column
    (categorical, enum, decimal, nested, null-typed, objects) keeps polars' own writer, so every
    dtype reads back as it was. Either way ``pl.read_parquet`` gives back an equal frame.

    Examples
    --------
    >>> import io, polars as pl
    >>> df = pl.DataFrame({"id": [1, 2, 3], "x": [0.5, None, 2.0], "s": ["a", "b", None]})
    >>> pl.read_parquet(io.BytesIO(parquet_bytes(df))).equals(df)
    True
    """
    if not all(_flat(t) for t in df.schema.values()):
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd")
        return buf.getvalue()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = df.to_arrow()
    encoding = {}
    for f in table.schema:
        if pa.types.is_integer(f.type) or pa.types.is_temporal(f.type):
            encoding[f.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_float32(f.type) or pa.types.is_float64(f.type):
            encoding[f.name] = "BYTE_STREAM_SPLIT"
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=False,
        column_encoding=encoding,
        write_statistics=False,
    )
    return sink.getvalue().to_pybytes()


def _flat(dtype: Any) -> bool:
    """A polars dtype that :func:`parquet_bytes` writes through pyarrow."""
    import polars as pl

    if dtype in (pl.Int128, pl.UInt128):
        return False
    return (
        dtype.is_integer()
        or dtype.is_float()
        or dtype in (pl.Boolean, pl.String, pl.Binary, pl.Date, pl.Time)
        or isinstance(dtype, pl.Datetime | pl.Duration)
    )


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a named dataset."""

    id: int
    name: str
    version: int
    content_hash: str
    artifact_hash: str
    n_rows: int
    schema: dict[str, str]
    target: str | None
    source: str
    parent_id: int | None
    validation: list[dict[str, Any]]
    source_spec: dict[str, Any] = field(default_factory=dict, compare=False)
    source_state: dict[str, Any] = field(default_factory=dict, compare=False)
    manifest: list[dict[str, Any]] = field(default_factory=list, compare=False)
    created: bool = field(default=False, compare=False)
    """True on the version ``ingest`` returned when it recorded it just now."""
    quarantined: DatasetVersion | None = field(default=None, compare=False)
    """With ``ingest(..., on_error="quarantine")``: the version of ``<name>-quarantine`` that holds
    this batch's failing rows (its parent is this version), None when every row passed."""

    @classmethod
    def from_row(cls, row: dict[str, Any], *, created: bool = False) -> DatasetVersion:
        return cls(
            id=row["id"],
            name=row["dataset"],
            version=row["version"],
            content_hash=row["content_hash"],
            artifact_hash=row["artifact_hash"],
            n_rows=row["n_rows"],
            schema=row["schema"],
            target=row["target"],
            source=row["source"],
            parent_id=row["parent_id"],
            validation=row["validation"],
            source_spec=row.get("source_spec") or {},
            source_state=row.get("source_state") or {},
            manifest=row.get("manifest") or [],
            created=created,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-able row for listings (CLI, widgets, the panel): what the version is, without its
        report or rows; ``failed`` checks, of which ``errors`` and ``warnings`` by severity.

        Examples
        --------
        >>> dv.summary()["failed"]                                    # doctest: +SKIP
        1
        """
        failed = [r for r in self.validation if not r.get("passed", False)]
        warnings = sum(r.get("severity") == "warn" for r in failed)
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "rows": self.n_rows,
            "columns": len(self.schema),
            "target": self.target,
            "content_hash": self.content_hash,
            "source": self.source,
            "parent_id": self.parent_id,
            "checks": len(self.validation),
            "failed": len(failed),
            "errors": len(failed) - warnings,
            "warnings": warnings,
        }

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class Datasets:
    """Dataset versions: ingest with validation, load hash-verified, split, extend.

    Examples
    --------
    >>> dv = wb.datasets.ingest("data.csv", name="cancer", target="diagnosis")   # doctest: +SKIP
    >>> wb.datasets.load(dv).height                                               # doctest: +SKIP
    569
    """

    def __init__(self, store: Store, artifacts: ArtifactStore):
        self.store = store
        self.artifacts = artifacts

    # ------------------------------------------------------------------ ingest
    @requires("ingest")
    def ingest(
        self,
        source: str | Path | pl.DataFrame | Source,
        *,
        name: str,
        target: str | None = None,
        checks: Checks | None = None,
        parent: DatasetVersion | None = None,
        on_error: str = "reject",
    ) -> DatasetVersion:
        """Read a source, validate its rows, and record them as a new version of ``name``.

        ``source`` is a path or URI (files, folders, globs, ``s3://``), a polars frame, or a source
        object (:class:`FileSource`, :class:`SqlSource`, :class:`HttpSource`, :class:`MqttSource`).
        Validation runs first; if any check fails, :class:`DatasetValidationError`
        is raised with the readable report and nothing is recorded. Ingesting
        identical content again returns the existing version, and so does an incremental
        source with nothing new (``created`` is False on both).

        ``checks`` (:class:`Checks`; by default the target must be present and never null, and
        no feature more than half null) decide. A failed ``"warn"`` check is recorded in the
        version's ``validation`` report and does not stop it. When an ``"error"`` check fails,
        ``on_error="reject"`` (the default) raises :class:`DatasetValidationError` with the
        report and records nothing; ``on_error="quarantine"`` records the rows that pass as the
        version of ``name`` and the rows that failed a row-level error check (nulls where none
        are allowed, out of range, unknown category, regex, duplicates, a custom row mask) as a
        version of ``<name>-quarantine`` whose parent is that clean version (``dv.quarantined``);
        both carry the report. A dataset-level failure (missing columns, a dtype, the row count,
        a null share) cannot be split off and rejects either way.

        Examples
        --------
        >>> checks = Checks(columns={"age": Column(min=0, max=120)})               # doctest: +SKIP
        >>> dv = wb.datasets.ingest("people.csv", name="people", checks=checks,
        ...                         on_error="quarantine")                          # doctest: +SKIP
        >>> dv.quarantined.n_rows                                                   # doctest: +SKIP
        3
        """
        if on_error not in ("reject", "quarantine"):
            raise ConfigError(f"on_error must be 'reject' or 'quarantine', got {on_error!r}")
        src = as_source(source)
        last = self._last_version(name)
        fetched = src.fetch(dict(last.source_state) if last else {})
        try:
            if fetched.unchanged and last is not None:
                if fetched.commit:
                    fetched.commit()
                return last
            dv = self._record(
                src,
                fetched,
                name=name,
                target=target,
                checks=checks,
                parent=parent,
                on_error=on_error,
            )
        except BaseException:
            if fetched.abort:
                fetched.abort()
            raise
        if fetched.commit:
            fetched.commit()
        return dv

    def _last_version(self, name: str) -> DatasetVersion | None:
        try:
            return self.get(name)
        except NotFoundError:
            return None

    def _record(
        self,
        src: Source,
        fetched: Fetched,
        *,
        name: str,
        target: str | None,
        checks: Checks | None,
        parent: DatasetVersion | None,
        on_error: str = "reject",
    ) -> DatasetVersion:
        df, where = fetched.frame, fetched.source
        checks = checks or Checks(target=target)
        if checks.target is None:
            checks.target = target
        outcome = run_checks(df, checks)
        report, failed = outcome.report, outcome.errors
        quarantine = on_error == "quarantine" and failed and not outcome.dataset_errors
        if failed and not quarantine:
            why = (
                " (a dataset-level check failed: such failures cannot be quarantined)"
                if on_error == "quarantine"
                else ""
            )
            raise DatasetValidationError(
                f"dataset {name!r} from {where} failed {len(failed)} validation check(s){why}; nothing was "
                f"recorded. Fix the data or the checks and ingest again:\n{format_report(report, only_failures=True)}",
                report,
            )
        try:
            spec = src.to_spec()
        except ConfigError:
            spec = {"kind": src.kind}
        bad_rows = None
        if quarantine:
            import polars as pl

            mask = pl.Series(outcome.bad_rows)
            df, bad_rows = df.filter(~mask), df.filter(mask)
            if df.height < checks.min_rows:
                raise DatasetValidationError(
                    f"dataset {name!r} from {where}: only {df.height} of {df.height + bad_rows.height} rows pass "
                    f"(minimum {checks.min_rows}); nothing was recorded. Fix the data or the checks:\n"
                    f"{format_report(report, only_failures=True)}",
                    report,
                )
        reference = getattr(src, "reference", None)
        if reference is not None and bad_rows is None:
            # a table that keeps its own versions (Delta): record which one, not a copy of its rows
            digest = content_hash(df)
            artifact = self.artifacts.put_bytes(
                json.dumps(reference(fetched), sort_keys=True).encode()
            )
        else:
            digest, artifact = self._store_rows(df)
        common = {"source": where, "target": target, "validation": report, "source_spec": spec}
        if bad_rows is not None:
            bad_digest, bad_artifact = self._store_rows(bad_rows)
        # the clean version and its quarantine are recorded together or not at all
        with self.store.transaction():
            row, created = self.store.datasets.add_version(
                name,
                content_hash=digest,
                artifact_hash=artifact,
                n_rows=df.height,
                n_cols=df.width,
                schema={n: str(t) for n, t in df.schema.items()},
                parent_id=parent.id if parent else None,
                source_state=fetched.state,
                manifest=fetched.manifest,
                **common,
            )
            dv = DatasetVersion.from_row(row, created=created)
            if bad_rows is None:
                return dv
            qrow, qcreated = self.store.datasets.add_version(
                f"{name}-quarantine",
                content_hash=bad_digest,
                artifact_hash=bad_artifact,
                n_rows=bad_rows.height,
                n_cols=bad_rows.width,
                schema={n: str(t) for n, t in bad_rows.schema.items()},
                parent_id=dv.id,
                source_state={},
                manifest=fetched.manifest,
                **common,
            )
        return replace(dv, quarantined=DatasetVersion.from_row(qrow, created=qcreated))

    def _store_rows(self, df: pl.DataFrame) -> tuple[str, str]:
        """``(content hash, artifact hash)`` of ``df``, stored as zstd Parquet (:func:`parquet_bytes`).
        The content hash runs on a second thread while the Parquet copy is encoded (both release
        the GIL); the content hash is of the rows, so it does not depend on how they are encoded."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="wb-hash") as pool:
            digest = pool.submit(content_hash, df)
            artifact = self.artifacts.put_bytes(parquet_bytes(df))
            return digest.result(), artifact

    def infer_checks(
        self,
        dv: DatasetVersion,
        *,
        tolerance: float = 0.1,
        path: str | Path | None = None,
        **options: Any,
    ) -> Checks:
        """Checks inferred from version ``dv`` (see :func:`workbench.datasets.infer_checks`).

        The checks are stored as an artifact (their YAML; ``checks.artifact`` is its hash) and,
        with ``path``, written there to be edited and loaded back with ``Checks.from_yaml``.

        Examples
        --------
        >>> checks = wb.datasets.infer_checks(train, path="checks.yaml")     # doctest: +SKIP
        >>> wb.datasets.ingest("new.csv", name="cancer", checks=Checks.from_yaml("checks.yaml"))  # doctest: +SKIP
        """
        checks = infer_checks(self.load(dv), tolerance=tolerance, target=dv.target, **options)
        text = checks.yaml_text()
        checks.artifact = self.artifacts.put_bytes(text.encode())
        if path is not None:
            Path(path).write_text(text)
        return checks

    # -------------------------------------------------------------------- read
    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        """The given version of a dataset, or its latest."""
        return DatasetVersion.from_row(self.store.datasets.get_version(name, version))

    def by_id(self, dataset_version_id: int) -> DatasetVersion:
        return DatasetVersion.from_row(self.store.datasets.get_version_by_id(dataset_version_id))

    def list(self) -> list[DatasetVersion]:
        return [DatasetVersion.from_row(r) for r in self.store.datasets.list_versions()]

    def load(self, dv: DatasetVersion) -> pl.DataFrame:
        """The version's data, read from its artifact after verifying the artifact's SHA-256.

        A version of a Delta table records the table version instead of a copy (a small JSON
        artifact): its rows are read from the table at that version and checked against the
        version's content hash.
        """
        import polars as pl

        data = self.artifacts.get_bytes(dv.artifact_hash)
        if data[:1] == b"{":  # a reference (Parquet starts with PAR1)
            from workbench.datasets._files import read_delta_reference

            return read_delta_reference(json.loads(data), expected=dv.content_hash)
        return pl.read_parquet(io.BytesIO(data))

    # ---------------------------------------------------- read views, diffs
    def resolve(self, ref: DatasetVersion | str) -> DatasetVersion:
        """A version from ``"name"`` (its latest), ``"name@3"``, or a :class:`DatasetVersion` as is.

        Examples
        --------
        >>> wb.datasets.resolve("cancer@1").version                # doctest: +SKIP
        1
        """
        from workbench.datasets._diff import resolve_ref

        if isinstance(ref, DatasetVersion):
            return ref
        name, version = resolve_ref(ref)
        return self.get(name, version)

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of dataset ``name``, oldest first (:class:`NotFoundError` if it has none)."""
        out = [dv for dv in self.list() if dv.name == name]
        if not out:
            self.get(name)  # raises, saying how to ingest it
        return out

    def report(self, ref: DatasetVersion | str) -> list[dict[str, Any]]:
        """The validation report recorded with a version, one dict per check with every key present:
        ``check, column, passed, severity, failing, examples, detail`` (older records lack some: they
        come back as ``severity="error"``, ``failing=None``, ``examples=[]``)."""
        from workbench.datasets._diff import report_items

        return report_items(self.resolve(ref).validation)

    def diff(
        self,
        a: DatasetVersion | str,
        b: DatasetVersion | str,
        *,
        key: str | list[str] | None = None,
        examples: int = 5,
    ) -> DatasetDiff:
        """What changed from version ``a`` to version ``b`` (see :func:`workbench.datasets.diff`).

        Examples
        --------
        >>> d = wb.datasets.diff("cancer@1", "cancer@2", key="id")   # doctest: +SKIP
        >>> d.added, d.removed, d.changed                            # doctest: +SKIP
        (40, 3, 12)
        """
        from workbench.datasets._diff import diff

        va, vb = self.resolve(a), self.resolve(b)
        return diff(
            self.load(va), self.load(vb), key=key, examples=examples, labels=(str(va), str(vb))
        )

    # --------------------------------------------------------------- schedules
    @requires("schedule")
    def schedule(
        self,
        source: str | Path | pl.DataFrame | Source,
        *,
        name: str,
        cron: str,
        target: str | None = None,
        checks: Checks | None = None,
        enabled: bool = True,
        since: datetime | float | None = None,
    ) -> IngestionSchedule:
        """Ingest ``source`` into ``name`` on a cron timetable (UTC), run by the scheduler actor.

        What is stored is the source's spec (``to_spec()``: no secrets, so a polars frame is
        refused), the cron, ``target`` and ``checks``. Each fire time is one run
        (:meth:`ingestion_runs`): ``recorded`` (a new version), ``unchanged`` (same content, or an
        incremental source with nothing new) or ``failed`` (its error, secrets masked; tried again at
        the next fire time). Scheduling a name again replaces its schedule and keeps its cursor.

        ``since`` (an aware datetime or epoch seconds; default now) is the moment fire times
        are counted from: one in the past makes the latest fire time since then due at once.

        Examples
        --------
        >>> bench.datasets.schedule("/data/sales.csv", name="sales", cron="0 * * * *")  # doctest: +SKIP
        >>> bench.automation.start_scheduler()                         # runs it every hour  # doctest: +SKIP
        """
        from workbench.datasets._schedules import schedule_source

        return schedule_source(
            self,
            source,
            name=name,
            cron=cron,
            target=target,
            checks=checks,
            enabled=enabled,
            since=since,
        )

    def schedules(self) -> list[IngestionSchedule]:
        """Every stored ingestion schedule, enabled or not, by name."""
        from workbench.datasets._schedules import IngestionSchedule

        return [IngestionSchedule.from_row(r) for r in self.store.ingestion.list_schedules()]

    @requires("schedule")
    def unschedule(self, name: str) -> IngestionSchedule:
        """Disable the schedule of ``name`` (its runs stay on record); ``schedule`` enables it again."""
        from workbench.datasets._schedules import IngestionSchedule

        return IngestionSchedule.from_row(self.store.ingestion.set_enabled(name, False))

    def ingestion_runs(self, name: str | None = None) -> list[dict[str, Any]]:
        """The scheduled runs of ``name`` (or of every schedule), oldest first: ``fire_time``,
        ``status`` (running, recorded, unchanged, failed), ``started``, ``ended``,
        ``dataset_version_id``, ``version``, ``error``, ``runner``."""
        from workbench.datasets._schedules import run_record

        return [run_record(r) for r in self.store.ingestion.list_runs(name)]

    def run_due_schedules(
        self, *, now: datetime | float | None = None, runner: str = "notebook"
    ) -> list[dict[str, Any]]:
        """Run every enabled schedule whose cron fired since its cursor; returns the runs made now.

        Each due fire time is claimed in the store first (one run per schedule and fire time), so
        two processes ticking at once never run it twice; missed fire times collapse into one run.
        The scheduler actor calls this every tick (``Engine.tick``'s ``"ingested"``).

        Examples
        --------
        >>> [r["status"] for r in bench.datasets.run_due_schedules()]  # doctest: +SKIP
        ['recorded']
        """
        from workbench.datasets._schedules import run_due

        return run_due(self, now=now, runner=runner)

    # ------------------------------------------------------------- derivations
    @requires("ingest")
    def split(
        self,
        dv: DatasetVersion,
        fractions: dict[str, float],
        *,
        seed: int = 0,
        stratify: bool = True,
    ) -> dict[str, DatasetVersion]:
        """Split a version into named parts (``{"train": .6, "holdout": .2, "live": .2}``), each a version of
        ``<name>-<part>`` derived from ``dv``. Deterministic for a given seed; stratified on the target."""
        import numpy as np
        import polars as pl

        total = sum(fractions.values())
        if not fractions or any(f <= 0 for f in fractions.values()) or abs(total - 1.0) > 1e-9:
            raise ConfigError(f"split fractions must be positive and sum to 1, got {fractions}")
        df = self.load(dv)
        rng = np.random.default_rng(seed)
        groups = (
            [df]
            if not (stratify and dv.target)
            else [g for _, g in sorted(df.group_by(dv.target), key=lambda kv: str(kv[0]))]
        )
        parts: dict[str, list[pl.DataFrame]] = {k: [] for k in fractions}
        for g in groups:
            order = rng.permutation(g.height)
            bounds = np.round(np.cumsum([0.0, *fractions.values()]) * g.height).astype(int)
            for (part, _), lo, hi in zip(fractions.items(), bounds[:-1], bounds[1:], strict=True):
                parts[part].append(g[order[lo:hi].tolist()])
        out = {}
        for part, frames in parts.items():
            frame = pl.concat(frames)
            frame = frame[rng.permutation(frame.height).tolist()]
            out[part] = self.ingest(frame, name=f"{dv.name}-{part}", target=dv.target, parent=dv)
        return out

    @requires("ingest")
    def extend(self, dv: DatasetVersion, new_rows: pl.DataFrame) -> DatasetVersion:
        """A new version of ``dv``'s dataset: its rows plus ``new_rows`` (same columns), validated again."""
        import polars as pl

        old = self.load(dv)
        try:
            combined = pl.concat([old, new_rows.select(old.columns).cast(old.schema)])
        except Exception as exc:
            raise DatasetValidationError(
                f"new rows do not match {dv}'s columns {old.columns}: {exc}. Send rows with exactly those columns."
            ) from exc
        return self.ingest(combined, name=dv.name, target=dv.target, parent=dv)
