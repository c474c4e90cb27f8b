"""Validation checks that run before a dataset version is recorded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Checks", "validate", "format_report"]


@dataclass
class Checks:
    """What a dataset must satisfy.

    Parameters
    ----------
    schema : dict, optional
        Expected columns and polars dtype names (``{"age": "Int64"}``); extra columns fail too.
    min_rows : int
        Fewest rows accepted.
    max_null_fraction : float
        Largest share of nulls allowed in any feature column.
    target : str, optional
        Label column: must exist and contain no nulls.
    numeric : list of str
        Columns that must be numeric (a number column read as text means bad values).
    """

    schema: Mapping[str, str] | None = None
    min_rows: int = 1
    max_null_fraction: float = 0.5
    target: str | None = None
    numeric: list[str] = field(default_factory=list)


def _result(check: str, passed: bool, detail: str, column: str | None = None) -> dict[str, Any]:
    return {"check": check, "column": column, "passed": passed, "detail": detail}


def validate(df: pl.DataFrame, checks: Checks) -> list[dict[str, Any]]:
    """Run every check and return the full report (each item: check, column, passed, detail)."""
    import polars as pl

    report = []
    actual = {name: str(dtype) for name, dtype in df.schema.items()}
    if checks.schema is not None:
        missing = [c for c in checks.schema if c not in actual]
        extra = [c for c in actual if c not in checks.schema]
        report.append(
            _result(
                "columns",
                not missing and not extra,
                f"missing {missing}, unexpected {extra}"
                if missing or extra
                else "all expected columns present",
            )
        )
        for col, want in checks.schema.items():
            if col in actual:
                ok = actual[col].lower() == want.lower()
                report.append(_result("type", ok, f"expected {want}, found {actual[col]}", col))
    n = df.height
    report.append(
        _result("row_count", n >= checks.min_rows, f"{n} rows (minimum {checks.min_rows})")
    )
    if checks.target is not None:
        if checks.target not in actual:
            report.append(
                _result(
                    "target", False, f"target column {checks.target!r} is absent", checks.target
                )
            )
        else:
            nulls = df[checks.target].null_count()
            report.append(
                _result("target_nulls", nulls == 0, f"{nulls} null labels", checks.target)
            )
    for col in df.columns:
        if col == checks.target or n == 0:
            continue
        frac = df[col].null_count() / n
        report.append(
            _result(
                "nulls",
                frac <= checks.max_null_fraction,
                f"{frac:.1%} null (maximum {checks.max_null_fraction:.0%})",
                col,
            )
        )
    for col in checks.numeric:
        if col in actual:
            ok = df.schema[col].is_numeric()
            detail = f"numeric ({actual[col]})" if ok else f"expected numbers, found {actual[col]}"
            if not ok and df.schema[col] == pl.String:
                bad = df.filter(
                    pl.col(col).is_not_null() & pl.col(col).cast(pl.Float64, strict=False).is_null()
                )[col]
                if bad.len():
                    detail += f"; non-numeric values such as {bad[0]!r}"
            report.append(_result("numeric", ok, detail, col))
    return report


def format_report(report: list[dict[str, Any]], *, only_failures: bool = False) -> str:
    """Render a validation report as aligned text, failures first."""
    rows = [r for r in report if not (only_failures and r["passed"])]
    rows.sort(key=lambda r: r["passed"])
    lines = []
    for r in rows:
        mark = "ok  " if r["passed"] else "FAIL"
        col = f"[{r['column']}] " if r["column"] else ""
        lines.append(f"  {mark} {r['check']:<12} {col}{r['detail']}")
    return "\n".join(lines)
