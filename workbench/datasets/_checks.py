"""What a dataset must satisfy: declared by hand, or inferred from a reference and edited as YAML.

One :class:`Checks` holds every rule: the columns and their dtypes, row counts, null shares,
per-column rules (:class:`Column`: nullability, range, categories, uniqueness, regex, a
distribution band) and custom callables (:class:`Custom`). Each rule has a severity: ``"error"``
rejects the data, ``"warn"`` is recorded in the report and lets it through. The engine that runs
them is :mod:`workbench.datasets._validation` (pandera's polars backend for the row-level rules).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Checks", "Column", "Custom", "infer_checks", "SEVERITIES", "DEFAULT_SEVERITY"]

SEVERITIES = ("error", "warn")
# Checks relative to a reference describe drift, not broken data: they warn unless told otherwise.
DEFAULT_SEVERITY = {"psi": "warn", "row_band": "warn"}
# PSI rule of thumb (Siddiqi, credit scoring): < 0.1 no shift, 0.1-0.25 moderate, > 0.25 major.
PSI_THRESHOLD = 0.2


def _severity(value: Any, what: str) -> None:
    if value not in SEVERITIES:
        raise ConfigError(f"severity of {what} must be 'error' or 'warn', got {value!r}")


@dataclass
class Column:
    """Rules for one column; each rule left as None is not checked.

    Parameters
    ----------
    dtype : str, optional
        Polars dtype name (``"Int64"``, ``"String"``); compared case-insensitively.
    nullable : bool, optional
        ``False``: a null is a failing row.
    min, max : float, optional
        Inclusive range; nulls are not range failures (``nullable`` covers them).
    isin : list, optional
        Allowed values (categories).
    unique : bool
        Every value distinct; every copy of a repeated value is a failing row.
    regex : str, optional
        Pattern each string value must match (``re.search`` semantics, as pandera's ``str_matches``).
    null_fraction : (float, float), optional
        Band the column's share of nulls must lie in; replaces ``Checks.max_null_fraction`` here.
    psi : dict, optional
        Distribution relative to a reference (what :func:`infer_checks` writes): ``edges`` (inner
        bin edges, numbers) or ``categories``, ``expected`` (the reference's share per bin, the
        last bin of categories being "other") and ``threshold`` (largest population stability
        index accepted, 0.2 by default).
    severity : str or dict
        ``"error"`` or ``"warn"`` for all this column's rules, or per rule
        (``{"range": "warn"}``; rules not named keep their default).

    Examples
    --------
    >>> Column("Int64", nullable=False, min=0, max=120, severity={"range": "warn"}).to_dict()
    {'dtype': 'Int64', 'nullable': False, 'min': 0, 'max': 120, 'severity': {'range': 'warn'}}
    """

    dtype: str | None = None
    nullable: bool | None = None
    min: float | None = None
    max: float | None = None
    isin: list[Any] | None = None
    unique: bool = False
    regex: str | None = None
    null_fraction: tuple[float, float] | None = None
    psi: dict[str, Any] | None = None
    severity: str | dict[str, str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.severity, Mapping):
            for rule, sev in self.severity.items():
                _severity(sev, f"rule {rule!r}")
        elif self.severity is not None:
            _severity(self.severity, "a column")
        if self.null_fraction is not None:
            lo, hi = (float(x) for x in self.null_fraction)
            if not 0.0 <= lo <= hi <= 1.0:
                raise ConfigError(
                    f"null_fraction must be a band 0 <= low <= high <= 1, got {self.null_fraction}"
                )
            self.null_fraction = (lo, hi)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"min {self.min} is above max {self.max}; swap them")
        if self.psi is not None:
            psi = dict(self.psi)
            bins = len(psi.get("edges", psi.get("categories", []))) + 1
            if ("edges" in psi) == ("categories" in psi) or len(psi.get("expected", [])) != bins:
                raise ConfigError(
                    "psi needs 'edges' (inner bin edges) or 'categories', and 'expected' with one share "
                    f"per bin ({bins}); got {sorted(psi)}. Re-run infer_checks to write it."
                )
            psi.setdefault("threshold", PSI_THRESHOLD)
            self.psi = psi

    def severity_of(self, rule: str, default: str) -> str:
        if isinstance(self.severity, Mapping):
            return self.severity.get(rule, default)
        return self.severity or default

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name == "unique" and not v):
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass
class Custom:
    """A rule written as a Python callable (not serialisable).

    Parameters
    ----------
    fn : callable
        Gets the column (a polars Series) when ``column`` is given, else the whole frame, and returns
        a boolean Series (True = the row passes; a row-level rule, quarantinable) or one bool (a
        dataset-level rule).
    name : str
        The ``check`` name in the report.
    column : str, optional
    severity : str

    Examples
    --------
    >>> adult = Custom(lambda age: age >= 18, name="adult", column="age")
    >>> total = Custom(lambda df: df["amount"].sum() < 1e6, name="total", severity="warn")
    """

    fn: Callable[[Any], Any]
    name: str = "custom"
    column: str | None = None
    severity: str = "error"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(
                f"Custom check {self.name!r} needs a callable, got {type(self.fn).__name__}"
            )
        _severity(self.severity, f"custom check {self.name!r}")


@dataclass
class Checks:
    """What a dataset must satisfy; every rule reports one line (see :func:`validate`).

    Parameters
    ----------
    schema : dict, optional
        Expected columns and polars dtype names (``{"age": "Int64"}``); with ``strict`` (the
        default) extra columns fail too.
    min_rows, max_rows : int
        Row count accepted (``row_count``, an error).
    expected_rows : (int, int), optional
        Row-count band relative to a reference (``row_band``, a warning by default).
    max_null_fraction : float
        Largest share of nulls allowed in any feature column without its own ``null_fraction``.
    target : str, optional
        Label column: must exist and contain no nulls (a null label is a failing row).
    numeric : list of str
        Columns that must be numeric (a number column read as text means bad values).
    columns : dict of str to Column
        Per-column rules.
    custom : list of Custom
        Rules written as callables.
    strict : bool
        With a ``schema``, columns it does not name fail the ``columns`` check.
    severity : dict
        Severity per check name, for the dataset-level checks and as every column's default
        (``{"row_count": "warn", "psi": "error"}``); unnamed checks are errors, except
        ``psi`` and ``row_band`` (warnings).
    artifact : str, optional
        Hash of the stored copy (set by ``Datasets.infer_checks``).

    Examples
    --------
    >>> from workbench.datasets import Checks, Column
    >>> c = Checks(target="y", columns={"age": Column("Int64", nullable=False, min=0, max=120)})
    >>> Checks.from_dict(c.to_dict()) == c
    True
    """

    schema: Mapping[str, str] | None = None
    min_rows: int = 1
    max_rows: int | None = None
    expected_rows: tuple[int, int] | None = None
    max_null_fraction: float = 0.5
    target: str | None = None
    numeric: list[str] = field(default_factory=list)
    columns: dict[str, Column] = field(default_factory=dict)
    custom: list[Custom] = field(default_factory=list)
    strict: bool = True
    severity: dict[str, str] = field(default_factory=dict)
    artifact: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.columns = {
            name: c if isinstance(c, Column) else Column(**c)
            for name, c in dict(self.columns).items()
        }
        for rule, sev in self.severity.items():
            _severity(sev, f"check {rule!r}")
        if self.expected_rows is not None:
            lo, hi = (int(x) for x in self.expected_rows)
            self.expected_rows = (lo, hi)
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ConfigError(f"max_rows {self.max_rows} is below min_rows {self.min_rows}")

    def severity_of(self, rule: str, column: str | None = None) -> str:
        """The severity a check named ``rule`` (on ``column``) reports with."""
        default = self.severity.get(rule, DEFAULT_SEVERITY.get(rule, "error"))
        col = self.columns.get(column) if column is not None else None
        return col.severity_of(rule, default) if col is not None else default

    # ----------------------------------------------------------- serialising
    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-ready); refuses custom callables, which cannot be written down.

        Examples
        --------
        >>> Checks(min_rows=10).to_dict()["min_rows"]
        10
        """
        if self.custom:
            names = [c.name for c in self.custom]
            raise ConfigError(
                f"checks with custom callables {names} cannot be serialised; keep them in code and "
                "add them after loading (checks.custom.append(Custom(...)))."
            )
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("custom", "artifact"):
                continue
            v = getattr(self, f.name)
            if f.name == "columns":
                v = {name: c.to_dict() for name, c in v.items()}
            elif f.name == "schema" and v is not None:
                v = dict(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checks:
        """Checks from :meth:`to_dict`'s output (or a hand-written mapping of the same keys).

        Examples
        --------
        >>> Checks.from_dict({"min_rows": 5, "columns": {"x": {"min": 0}}}).columns["x"].min
        0
        """
        known = {f.name for f in fields(cls)} - {"custom", "artifact"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown check setting(s) {sorted(unknown)}; known: {sorted(known)}")
        cols = {}
        col_known = {f.name for f in fields(Column)}
        for name, spec in (data.get("columns") or {}).items():
            spec = dict(spec or {})
            bad = set(spec) - col_known
            if bad:
                raise ConfigError(
                    f"column {name!r}: unknown rule(s) {sorted(bad)}; known: {sorted(col_known)}"
                )
            if spec.get("null_fraction") is not None:
                spec["null_fraction"] = tuple(spec["null_fraction"])
            cols[name] = Column(**spec)
        kw = {k: v for k, v in data.items() if k != "columns"}
        if kw.get("expected_rows") is not None:
            kw["expected_rows"] = tuple(kw["expected_rows"])
        return cls(**kw, columns=cols)

    def to_yaml(self, path: str | Path) -> Path:
        """Write the checks as an editable YAML file (edit it, then :meth:`from_yaml`).

        Examples
        --------
        >>> Checks(target="y").to_yaml("checks.yaml")   # doctest: +SKIP
        """
        path = Path(path)
        path.write_text(self.yaml_text())
        return path

    def yaml_text(self) -> str:
        import yaml

        head = (
            "# workbench dataset checks: edit and load back with Checks.from_yaml(path).\n"
            "# severity: 'error' rejects the data, 'warn' records it. Per column: dtype, nullable,\n"
            "# min, max, isin, unique, regex, null_fraction [low, high], psi {edges|categories,\n"
            "# expected, threshold} (population stability index vs the reference).\n"
        )
        return head + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Checks:
        """Load checks written by :meth:`to_yaml` (and maybe edited by hand).

        Examples
        --------
        >>> checks = Checks.from_yaml("checks.yaml")   # doctest: +SKIP
        """
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"checks file {path} does not exist; write one with Checks.to_yaml"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"checks file {path} is not valid YAML: {exc}. Fix the file and load it again."
            ) from exc
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"checks file {path} must hold a mapping of settings, got {type(data).__name__}"
            )
        return cls.from_dict(data)


# ------------------------------------------------------------------ inference
def _psi_reference(s: pl.Series, bins: int, max_categories: int) -> dict[str, Any] | None:
    import polars as pl

    v = s.drop_nulls()
    if s.dtype.is_float():
        v = v.filter(v.is_not_nan())
    if v.len() == 0:
        return None
    if s.dtype.is_numeric() and s.dtype != pl.Boolean:
        qs = [v.quantile(i / bins, interpolation="linear") for i in range(1, bins)]
        edges = sorted({float(q) for q in qs if q is not None})
        if not edges:
            return None
        counts = _bin_counts(v, edges)
        return {"edges": edges, "expected": [round(c / v.len(), 6) for c in counts]}
    if s.dtype in (pl.String, pl.Categorical, pl.Enum, pl.Boolean):
        freq = v.cast(pl.String).value_counts(sort=True)
        if freq.height > max_categories:
            return None
        cats = [str(c) for c in freq[freq.columns[0]].to_list()]
        shares = [round(c / v.len(), 6) for c in freq["count"].to_list()]
        return {"categories": cats, "expected": [*shares, 0.0]}
    return None


def _bin_counts(v: pl.Series, edges: list[float]) -> list[int]:
    """Counts per bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` of a null-free numeric series."""
    cum = [int((v <= e).sum()) for e in edges]
    return [b - a for a, b in zip([0, *cum], [*cum, v.len()], strict=True)]


def infer_checks(
    reference: pl.DataFrame,
    *,
    tolerance: float = 0.1,
    target: str | None = None,
    max_categories: int = 20,
    psi_bins: int = 10,
    psi_threshold: float = PSI_THRESHOLD,
    min_unique_rows: int = 20,
) -> Checks:
    """Checks that a reference frame passes, loose enough for new batches of the same data.

    From the reference: every column's dtype (extra columns fail), nullability (no nulls in the
    reference: a null is a failing row), numeric ranges widened by ``tolerance * (max - min)`` on
    each side, the category set of string columns with at most ``max_categories`` values, a null
    share band ``rate ± tolerance`` for columns that had nulls, a row-count band ``n × (1 ±
    tolerance)`` (a warning), uniqueness of integer/string columns whose values are all distinct
    (``min_unique_rows`` rows or more: identifiers, which get no range and no distribution
    check, since new batches bring new ids), and a distribution check per column: the population
    stability index (PSI) of the batch against the reference's deciles (numbers) or category
    shares, above ``psi_threshold`` a warning. PSI is used rather than a mean-within-k-standard-
    errors test because it does not tighten as batches grow (a million-row batch would fail a
    standard-error test on a shift of no practical size) and it covers categories too.

    Parameters
    ----------
    reference : polars.DataFrame
    tolerance : float
        Relative widening of ranges, bands and row counts.
    target : str, optional
        Label column (must be present and never null).

    Examples
    --------
    >>> import polars as pl
    >>> ref = pl.DataFrame({"x": [float(i) for i in range(100)], "c": ["a", "b"] * 50})
    >>> checks = infer_checks(ref, tolerance=0.1)
    >>> checks.columns["x"].min, checks.columns["x"].max, checks.columns["c"].isin
    (-9.9, 108.9, ['a', 'b'])
    """
    import polars as pl

    if not isinstance(reference, pl.DataFrame):
        raise ConfigError(f"infer_checks needs a polars DataFrame, got {type(reference).__name__}")
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0, got {tolerance}")
    n = reference.height
    cols: dict[str, Column] = {}
    for name, dtype in reference.schema.items():
        s = reference[name]
        nulls = s.null_count()
        col = Column(dtype=str(dtype), nullable=False if nulls == 0 else None)
        if nulls and n:
            rate = nulls / n
            col.null_fraction = (max(0.0, rate - tolerance), min(1.0, rate + tolerance))
        if dtype.is_numeric() and dtype != pl.Boolean and s.drop_nulls().len():
            v = s.drop_nulls()
            if dtype.is_float():
                v = v.filter(v.is_not_nan())
            if v.len():
                lo, hi = float(v.min()), float(v.max())
                pad = tolerance * (hi - lo) if hi > lo else tolerance * abs(hi)
                if dtype.is_integer():  # whole bounds for whole numbers
                    col.min, col.max = math.floor(lo - pad), math.ceil(hi + pad)
                else:
                    col.min, col.max = _readable(lo - pad, pad), _readable(hi + pad, pad)
        elif dtype in (pl.String, pl.Categorical, pl.Enum):
            values = s.drop_nulls().cast(pl.String).unique().sort().to_list()
            if len(values) <= max_categories and len(values) < max(2, n // 2):
                col.isin = values
        if (
            (dtype.is_integer() or dtype == pl.String)
            and nulls == 0
            and n >= min_unique_rows
            and s.n_unique() == n
        ):
            # an identifier: new batches bring new ids, so no range and no distribution
            col.unique, col.min, col.max = True, None, None
        psi = None if col.unique else _psi_reference(s, psi_bins, max_categories)
        if psi is not None:
            col.psi = {**psi, "threshold": psi_threshold}
        cols[name] = col
    band = (math.floor(n * (1 - tolerance)), math.ceil(n * (1 + tolerance)))
    return Checks(
        schema={k: str(t) for k, t in reference.schema.items()},
        min_rows=1,
        expected_rows=band,
        target=target,
        columns=cols,
    )


def _readable(x: float, pad: float) -> float:
    """``x`` to 12 significant digits, so the YAML stays readable, when the widening dwarfs the change."""
    short = float(f"{x:.12g}")
    return short if abs(short - x) < pad / 2 else x
