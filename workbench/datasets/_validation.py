"""The engine that runs :class:`~workbench.datasets.Checks` on a polars frame.

Row-level rules (range, categories, regex, uniqueness) run as one pandera ``DataFrameSchema``
on pandera's polars backend (``lazy=True``: every failure collected, with the failing row's
position); dataset-level rules (columns, dtypes, row counts, null shares, PSI) and nullability
are aggregates computed here in one polars ``select`` (a null count costs nothing, so the rows
are looked for only when there are some), and custom callables are called directly. pandera is
imported only when one of its rules is present (its import costs about a second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.datasets._checks import Checks, Column

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = ["validate", "format_report", "run_checks", "Outcome", "psi"]

# pandera's names for the two rules it runs as Column options rather than Checks
_PANDERA_NAMES = {"field_uniqueness": "unique"}


@dataclass
class Outcome:
    """A validation's report, plus which rows failed a row-level error check (for quarantine)."""

    report: list[dict[str, Any]]
    bad_rows: np.ndarray | None = None
    """Boolean mask over the frame's rows, None when no row-level error check failed."""
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dataset_errors(self) -> list[dict[str, Any]]:
        """Failed error checks that are about the whole dataset (cannot be quarantined)."""
        return [r for r in self.errors if r["level"] == "dataset"]


def _result(
    check: str,
    passed: bool,
    detail: str,
    column: str | None = None,
    *,
    severity: str = "error",
    failing: int | None = None,
    examples: list[dict[str, Any]] | None = None,
    level: str = "dataset",
) -> dict[str, Any]:
    return {
        "check": check,
        "column": column,
        "passed": bool(passed),
        "severity": severity,
        "failing": int(failing if failing is not None else (0 if passed else 1)),
        "examples": examples or [],
        "detail": detail,
        "level": level,
    }


def psi(expected: list[float], actual: list[float], *, floor: float = 1e-4) -> float:
    """Population stability index of shares ``actual`` against ``expected`` (same bins).

    ``sum((a - e) * ln(a / e))``, each share floored at ``floor`` so an empty bin counts as rare,
    not infinite. 0 for identical shares; rule of thumb: below 0.1 stable, above 0.25 shifted.

    Examples
    --------
    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.5, 0.5], [0.9, 0.1]), 3)
    0.879
    """
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, floor), max(a, floor)
        total += (a - e) * math.log(a / e)
    return total


def _rows(df: pl.DataFrame, idx: list[int], n: int) -> list[dict[str, Any]]:
    return df[sorted(idx)[:n]].to_dicts() if idx and n else []


def validate(df: pl.DataFrame, checks: Checks, *, examples: int = 5) -> list[dict[str, Any]]:
    """Run every check and return the report: one dict per check.

    Each item: ``check`` (its name), ``column`` (or None), ``passed``, ``severity`` (``"error"``
    rejects, ``"warn"`` only records), ``failing`` (rows that failed a row-level check; for a
    dataset-level one 1 when it failed, or the null count), ``examples`` (up to ``examples``
    failing rows as dicts), ``detail`` (readable text) and ``level`` (``"row"`` or ``"dataset"``).

    Examples
    --------
    >>> import polars as pl
    >>> from workbench.datasets import Checks, Column
    >>> df = pl.DataFrame({"age": [31, 250, 40]})
    >>> report = validate(df, Checks(columns={"age": Column(min=0, max=120)}))
    >>> [(r["check"], r["failing"], r["examples"]) for r in report if not r["passed"]]
    [('range', 1, [{'age': 250}])]
    """
    return run_checks(df, checks, examples=examples).report


def run_checks(df: pl.DataFrame, checks: Checks, *, examples: int = 5) -> Outcome:
    """:func:`validate`, also returning the mask of rows that failed a row-level error check."""
    import numpy as np
    import polars as pl

    report: list[dict[str, Any]] = []
    n = df.height
    bad = np.zeros(n, dtype=bool)
    any_bad = False
    actual = {name: str(dtype) for name, dtype in df.schema.items()}
    sev = checks.severity_of

    # columns and dtypes
    expected_cols = list(checks.schema or {})
    expected_cols += [c for c in checks.columns if c not in expected_cols]
    if checks.schema is not None or checks.columns:
        missing = [c for c in expected_cols if c not in actual]
        extra = [
            c
            for c in actual
            if checks.schema is not None and checks.strict and c not in checks.schema
        ]
        report.append(
            _result(
                "columns",
                not missing and not extra,
                f"missing {missing}, unexpected {extra}"
                if missing or extra
                else "all expected columns present",
                severity=sev("columns"),
                failing=len(missing) + len(extra),
            )
        )
    wanted = {c: t for c, t in (checks.schema or {}).items()}
    wanted.update({c: col.dtype for c, col in checks.columns.items() if col.dtype})
    mistyped: set[str] = set()
    for col, want in wanted.items():
        if col in actual:
            ok = actual[col].lower() == want.lower()
            if not ok:
                mistyped.add(col)
            report.append(
                _result(
                    "type",
                    ok,
                    f"expected {want}, found {actual[col]}"
                    + ("" if ok else "; its value checks were not run"),
                    col,
                    severity=sev("type", col),
                )
            )

    # row counts
    hi = "" if checks.max_rows is None else f", maximum {checks.max_rows}"
    report.append(
        _result(
            "row_count",
            n >= checks.min_rows and (checks.max_rows is None or n <= checks.max_rows),
            f"{n} rows (minimum {checks.min_rows}{hi})",
            severity=sev("row_count"),
        )
    )
    if checks.expected_rows is not None:
        lo, up = checks.expected_rows
        report.append(
            _result(
                "row_band",
                lo <= n <= up,
                f"{n} rows (reference band {lo}-{up})",
                severity=sev("row_band"),
            )
        )

    # aggregates in one pass: null counts, and PSI bin counts of numeric columns
    present = [c for c in df.columns]
    psi_cols = {
        c: col.psi
        for c, col in checks.columns.items()
        if col.psi is not None and c in actual and c not in mistyped
    }
    exprs = [pl.col(c).null_count().alias(f"n:{c}") for c in present]
    # nullability is counted here, not by pandera: a null count is free, NaN one pass
    not_null = [
        c
        for c, col in checks.columns.items()
        if col.nullable is False and c in actual and c not in mistyped
    ]
    exprs += [
        pl.col(c).is_nan().sum().alias(f"nan:{c}") for c in not_null if df.schema[c].is_float()
    ]
    for c, spec in psi_cols.items():
        if "edges" in spec and df.schema[c].is_numeric():
            # nulls drop out of a sum and NaN compares above every edge, so no validity mask
            # per edge; the NaN count comes off the total instead
            x = pl.col(c)
            nan = x.is_nan().sum() if df.schema[c].is_float() else pl.lit(0)
            exprs.append((x.count() - nan).alias(f"v:{c}"))
            exprs += [(x <= e).sum().alias(f"e{i}:{c}") for i, e in enumerate(spec["edges"])]
    stats = df.select(exprs).row(0, named=True) if exprs and n else {}

    # the label
    target = checks.target
    if target is not None:
        if target not in actual:
            report.append(
                _result(
                    "target",
                    False,
                    f"target column {target!r} is absent",
                    target,
                    severity=sev("target", target),
                )
            )
        else:
            nulls = int(stats.get(f"n:{target}", 0))
            s = sev("target_nulls", target)
            idx = (
                np.flatnonzero(df[target].is_null().to_numpy())
                if nulls
                else np.array([], dtype=int)
            )
            if nulls and s == "error":
                bad[idx] = any_bad = True
            report.append(
                _result(
                    "target_nulls",
                    nulls == 0,
                    f"{nulls} null labels",
                    target,
                    severity=s,
                    failing=nulls,
                    examples=_rows(df, idx.tolist(), examples),
                    level="row",
                )
            )

    # null shares
    for c in present:
        if c == target or n == 0:
            continue
        col = checks.columns.get(c)
        lo, up = (
            col.null_fraction
            if col is not None and col.null_fraction
            else (0.0, checks.max_null_fraction)
        )
        nulls = int(stats[f"n:{c}"])
        frac = nulls / n
        band = f"maximum {up:.0%}" if lo == 0 else f"band {lo:.1%}-{up:.1%}"
        ok = lo - 1e-12 <= frac <= up + 1e-12
        report.append(
            _result(
                "nulls",
                ok,
                f"{frac:.1%} null ({band})",
                c,
                severity=sev("nulls", c),
                failing=0 if ok else nulls,
                examples=[] if ok else df.filter(pl.col(c).is_null()).head(examples).to_dicts(),
            )
        )

    # numbers read as text
    for c in checks.numeric:
        if c in actual:
            ok = df.schema[c].is_numeric()
            detail = f"numeric ({actual[c]})" if ok else f"expected numbers, found {actual[c]}"
            ex: list[dict[str, Any]] = []
            if not ok and df.schema[c] == pl.String:
                rows = df.filter(
                    pl.col(c).is_not_null() & pl.col(c).cast(pl.Float64, strict=False).is_null()
                )
                if rows.height:
                    detail += f"; non-numeric values such as {rows[c][0]!r}"
                    ex = rows.head(examples).to_dicts()
            report.append(
                _result("numeric", ok, detail, c, severity=sev("numeric", c), examples=ex)
            )

    # no nulls where none are allowed (NaN counts as null, as in pandera)
    for c in not_null:
        k = int(stats.get(f"n:{c}", 0)) + int(stats.get(f"nan:{c}", 0))
        idx = np.array([], dtype=np.int64)
        if k:
            missing = df[c].is_null()
            if df.schema[c].is_float():
                missing = missing | df[c].is_nan().fill_null(True)
            idx = np.flatnonzero(missing.to_numpy())
            if sev("nullable", c) == "error":
                bad[idx] = any_bad = True
        report.append(
            _result(
                "nullable",
                k == 0,
                f"{k} of {n} rows are null" + (" or NaN" if df.schema[c].is_float() else "")
                if k
                else "no nulls",
                c,
                severity=sev("nullable", c),
                failing=k,
                examples=_rows(df, idx[:examples].tolist(), examples),
                level="row",
            )
        )

    # row-level rules, through pandera
    rules = {c: col for c, col in checks.columns.items() if c in actual and c not in mistyped}
    row_report, failed_idx = _row_rules(df, rules, checks, examples)
    for entry in row_report:
        idx = failed_idx.get((entry["column"], entry["check"]))
        if idx is not None and len(idx) and entry["severity"] == "error":
            bad[idx] = any_bad = True
    report += row_report

    # distributions against the reference
    for c, spec in psi_cols.items():
        report.append(_psi_result(df, c, spec, stats, sev("psi", c)))

    # custom callables
    for cust in checks.custom:
        entry, idx = _custom(df, cust, examples)
        if idx is not None and len(idx) and entry["severity"] == "error":
            bad[idx] = any_bad = True
        report.append(entry)

    errors = [r for r in report if not r["passed"] and r["severity"] == "error"]
    return Outcome(report=report, bad_rows=bad if any_bad else None, errors=errors)


def _row_rules(
    df: pl.DataFrame, rules: dict[str, Column], checks: Checks, examples: int
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], np.ndarray]]:
    """One pandera schema for every row-level rule; report entries in a stable order."""
    import numpy as np
    import polars as pl

    planned: list[tuple[str, str, str]] = []  # (column, rule, detail)
    report: list[dict[str, Any]] = []
    columns: dict[str, Any] = {}
    numbered: dict[tuple[str, int], str] = {}
    pa = None
    for c, col in rules.items():
        dtype = df.schema[c]
        element: list[tuple[str, Any, str]] = []
        if col.min is not None or col.max is not None:
            if not (dtype.is_numeric() or dtype.is_temporal()):
                report.append(
                    _result(
                        "range",
                        False,
                        f"a range needs a numeric column, found {dtype}",
                        c,
                        severity=checks.severity_of("range", c),
                    )
                )
            else:
                element.append(("range", ("range", col.min, col.max), _range_text(col)))
        if col.isin is not None:
            element.append(("isin", ("isin", list(col.isin)), f"values in {_short(col.isin)}"))
        if col.regex is not None:
            if dtype != pl.String:
                report.append(
                    _result(
                        "regex",
                        False,
                        f"a regex needs a String column, found {dtype}",
                        c,
                        severity=checks.severity_of("regex", c),
                    )
                )
            else:
                element.append(("regex", ("regex", col.regex), f"matches {col.regex!r}"))
        if not element and not col.unique:
            continue
        if pa is None:
            import pandera.polars as pa
        built = []
        for i, (rule, spec, detail) in enumerate(element):
            numbered[(c, i)] = rule
            planned.append((c, rule, detail))
            built.append(_pandera_check(pa, spec))
        if col.unique:
            planned.append((c, "unique", "all values distinct"))
        columns[c] = pa.Column(None, nullable=True, unique=col.unique, checks=built)
    if not planned:
        return report, {}
    failures: dict[tuple[str, str], np.ndarray] = {}
    values: dict[tuple[str, str], list[Any]] = {}
    try:
        pa.DataFrameSchema(columns).validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        grouped = fc.group_by(["column", "check", "check_number"], maintain_order=True).agg(
            pl.col("index"), pl.col("failure_case").head(3)
        )
        for row in grouped.iter_rows(named=True):
            rule = _PANDERA_NAMES.get(row["check"]) or numbered.get(
                (row["column"], row["check_number"])
            )
            if rule is None:
                continue
            idx = np.array([i for i in row["index"] if i is not None], dtype=np.int64)
            failures[(row["column"], rule)] = np.unique(idx)
            values[(row["column"], rule)] = row["failure_case"]
    for c, rule, detail in planned:
        idx = failures.get((c, rule), np.array([], dtype=np.int64))
        k = len(idx)
        text = (
            detail
            if not k
            else f"{k} of {df.height} rows fail ({detail}), e.g. {_short(values[(c, rule)])}"
        )
        report.append(
            _result(
                rule,
                k == 0,
                text,
                c,
                severity=checks.severity_of(rule, c),
                failing=k,
                examples=_rows(df, idx[:examples].tolist(), examples),
                level="row",
            )
        )
    return report, failures


def _pandera_check(pa: Any, spec: tuple[Any, ...]) -> Any:
    kind = spec[0]
    if kind == "range":
        _, lo, hi = spec
        if lo is not None and hi is not None:
            return pa.Check.in_range(lo, hi)
        return pa.Check.ge(lo) if lo is not None else pa.Check.le(hi)
    if kind == "isin":
        return pa.Check.isin(spec[1])
    return pa.Check.str_matches(spec[1])


def _range_text(col: Column) -> str:
    if col.min is not None and col.max is not None:
        return f"within [{col.min:g}, {col.max:g}]"
    return f">= {col.min:g}" if col.min is not None else f"<= {col.max:g}"


def _short(values: Any, limit: int = 6) -> str:
    values = list(values)
    more = f", ... ({len(values)} values)" if len(values) > limit else ""
    return "[" + ", ".join(repr(v) for v in values[:limit]) + more + "]"


def _psi_result(
    df: pl.DataFrame, c: str, spec: dict[str, Any], stats: dict[str, Any], severity: str
) -> dict[str, Any]:
    import polars as pl

    threshold = float(spec.get("threshold", 0.2))
    if "edges" in spec:
        if not df.schema[c].is_numeric():
            return _result(
                "psi", False, f"binned on numbers, found {df.schema[c]}", c, severity=severity
            )
        total = int(stats.get(f"v:{c}", 0))
        cum = [int(stats.get(f"e{i}:{c}", 0)) for i in range(len(spec["edges"]))]
        counts = [b - a for a, b in zip([0, *cum], [*cum, total], strict=True)]
    else:
        cats = [str(x) for x in spec["categories"]]
        v = df[c].drop_nulls().cast(pl.String)
        total = v.len()
        vc = dict(v.value_counts().iter_rows()) if total else {}
        counts = [int(vc.get(k, 0)) for k in cats]
        counts.append(total - sum(counts))
    if total == 0:
        return _result("psi", True, "no values to compare", c, severity=severity)
    value = psi(spec["expected"], [k / total for k in counts])
    # A sample of n rows from the reference's own distribution has n * PSI ~ chi2(bins - 1)
    # (PSI is the symmetrised KL divergence, ~ the chi-square statistic / n): below some hundred
    # rows that noise alone passes 0.2, so the bound is also the chi2's 99th percentile / n.
    from scipy.stats import chi2

    noise = float(chi2.ppf(0.99, max(len(counts) - 1, 1))) / total
    limit = max(threshold, noise)
    ok = value <= limit
    why = (
        f"maximum {threshold:g}"
        if limit == threshold
        else (f"maximum {limit:.3f}: sampling noise of {total} rows, above {threshold:g}")
    )
    return _result(
        "psi",
        ok,
        f"PSI {value:.3f} against the reference ({why})",
        c,
        severity=severity,
    ) | {"statistic": round(value, 6), "limit": round(limit, 6)}


def _custom(df: pl.DataFrame, cust: Any, examples: int) -> tuple[dict[str, Any], np.ndarray | None]:
    import numpy as np
    import polars as pl

    name, c = cust.name, cust.column
    if c is not None and c not in df.columns:
        return _result(name, False, f"column {c!r} is absent", c, severity=cust.severity), None
    try:
        out = cust.fn(df[c] if c is not None else df)
    except Exception as exc:  # a user's rule that breaks is a failed rule, named in the report
        return _result(
            name, False, f"raised {type(exc).__name__}: {exc}", c, severity=cust.severity
        ), None
    if isinstance(out, pl.Series) and out.dtype == pl.Boolean and out.len() == df.height:
        idx = np.flatnonzero(~out.fill_null(False).to_numpy())
        k = len(idx)
        return (
            _result(
                name,
                k == 0,
                f"{k} of {df.height} rows fail" if k else "all rows pass",
                c,
                severity=cust.severity,
                failing=k,
                examples=_rows(df, idx[:examples].tolist(), examples),
                level="row",
            ),
            idx,
        )
    if isinstance(out, bool | np.bool_):
        return _result(
            name, bool(out), "passes" if out else "fails", c, severity=cust.severity
        ), None
    return (
        _result(
            name,
            False,
            f"returned {type(out).__name__}; return a boolean Series of {df.height} rows or a bool",
            c,
            severity=cust.severity,
        ),
        None,
    )


def format_report(report: list[dict[str, Any]], *, only_failures: bool = False) -> str:
    """Render a validation report as aligned text: errors first, then warnings, then passes.

    Examples
    --------
    >>> print(format_report([{"check": "row_count", "column": None, "passed": False, "detail": "0 rows"}]))
      FAIL row_count    0 rows
    """
    rows = [r for r in report if not (only_failures and r["passed"])]

    def rank(r: dict[str, Any]) -> int:
        return 2 if r["passed"] else (1 if r.get("severity") == "warn" else 0)

    rows.sort(key=rank)
    lines = []
    for r in rows:
        mark = "ok  " if r["passed"] else ("WARN" if r.get("severity") == "warn" else "FAIL")
        col = f"[{r['column']}] " if r["column"] else ""
        ex = r.get("examples") or []
        eg = f"; first failing row {str(ex[0])[:160]}" if ex and not r["passed"] else ""
        lines.append(f"  {mark} {r['check']:<12} {col}{r['detail']}{eg}")
    return "\n".join(lines)
