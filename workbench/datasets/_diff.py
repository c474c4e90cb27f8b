"""What changed between two dataset versions: schema, rows (by key, or as a multiset of whole rows), statistics.

Pure functions on polars frames; :meth:`Datasets.diff <workbench.datasets.Datasets.diff>` loads two
recorded versions and calls :func:`diff`. Every step is a vectorised polars operation (one full join
by key, or one hash per row), so two million-row versions compare in well under two seconds.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench._numbers import is_int_text
from workbench.exceptions import ConfigError
from workbench.runtime import jsonable

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DatasetDiff", "diff"]

# Names no real column uses: b's side of the join, and the row numbers that point back at a and b.
_B = "__wb_diff_b"
_IA = "__wb_diff_row_a"
_IB = "__wb_diff_row_b"
_N = "__wb_diff_n"
_TOP = 5


@dataclass(frozen=True)
class DatasetDiff:
    """What changed from version ``a`` to version ``b``.

    Attributes
    ----------
    a, b : str
        Labels of the two sides (``"cancer@1"``).
    key : tuple of str or None
        Columns that identify a row; ``None``: rows compared whole, as a multiset.
    rows_a, rows_b : int
        Row counts.
    added_columns, removed_columns : dict
        ``{column: dtype}`` only in ``b`` / only in ``a``.
    type_changes : dict
        ``{column: (dtype in a, dtype in b)}``.
    added, removed, unchanged : int
        Rows only in ``b``, only in ``a``, in both with equal values (on the common columns).
        ``rows_a == removed + changed + unchanged`` and ``rows_b == added + changed + unchanged``.
    changed : int or None
        Rows whose key is in both with some value changed (``None`` without a key).
    changed_columns : dict
        ``{column: rows where it changed}`` (by key only).
    added_examples, removed_examples : list of dict
        Up to ``examples`` whole rows of ``b`` / of ``a``.
    changed_examples : list of dict
        Up to ``examples`` ``{"key": {...}, "changes": {column: [old, new]}}``.
    stats : list of dict
        Per column: ``kind`` (numeric, categorical, other), ``a`` and ``b`` statistics (``None`` for
        the side without the column) and ``shift`` (b minus a; for categories the total variation
        distance between their shares).
    """

    a: str
    b: str
    key: tuple[str, ...] | None
    rows_a: int
    rows_b: int
    added_columns: dict[str, str] = field(default_factory=dict)
    removed_columns: dict[str, str] = field(default_factory=dict)
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    added: int = 0
    removed: int = 0
    changed: int | None = None
    unchanged: int = 0
    changed_columns: dict[str, int] = field(default_factory=dict)
    added_examples: list[dict[str, Any]] = field(default_factory=list)
    removed_examples: list[dict[str, Any]] = field(default_factory=list)
    changed_examples: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def schema_changed(self) -> bool:
        """True when a column was added, removed or changed type."""
        return bool(self.added_columns or self.removed_columns or self.type_changes)

    @property
    def empty(self) -> bool:
        """True when nothing changed: same columns and types, no row added, removed or changed."""
        return not self.schema_changed and not self.added and not self.removed and not self.changed

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON's types (dates and other values as text, NaN as ``None``).

        Examples
        --------
        >>> import json, polars as pl
        >>> d = diff(pl.DataFrame({"x": [1, 2]}), pl.DataFrame({"x": [2, 3]}))
        >>> json.loads(json.dumps(d.to_dict()))["added"]
        1
        """
        out = jsonable(dataclasses.asdict(self), default=str, finite=True)
        out["empty"] = self.empty
        out["schema_changed"] = self.schema_changed
        return out

    # ------------------------------------------------------------------ text
    def summary(self) -> str:
        """One line: row counts and what happened to them."""
        parts = [f"+{self.added} added", f"-{self.removed} removed"]
        if self.changed is not None:
            parts.append(f"~{self.changed} changed")
        parts.append(f"{self.unchanged} unchanged")
        by = f"by key {', '.join(self.key)}" if self.key else "as whole rows"
        return (
            f"{self.a} -> {self.b}: rows {self.rows_a} -> {self.rows_b} ({', '.join(parts)}; {by})"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        if not self.schema_changed:
            lines.append("columns: unchanged")
        for c, t in self.added_columns.items():
            lines.append(f"  + column {c} ({t})")
        for c, t in self.removed_columns.items():
            lines.append(f"  - column {c} ({t})")
        for c, (ta, tb) in self.type_changes.items():
            lines.append(f"  ~ column {c}: {ta} -> {tb}")
        if self.changed_columns:
            shown = ", ".join(f"{c} ({n})" for c, n in self.changed_columns.items() if n)
            lines.append(f"changed columns (rows): {shown or 'none'}")
        for title, rows in (
            ("added rows", self.added_examples),
            ("removed rows", self.removed_examples),
        ):
            if rows:
                lines.append(f"{title} (first {len(rows)}):")
                lines += [f"  {_short(r)}" for r in rows]
        if self.changed_examples:
            lines.append(f"changed rows (first {len(self.changed_examples)}):")
            for ex in self.changed_examples:
                changes = "; ".join(
                    f"{c}: {_value(o)} -> {_value(n)}" for c, (o, n) in ex["changes"].items()
                )
                lines.append(f"  {_short(ex['key'])}  {changes}")
        shifted = [s for s in self.stats if _shifted(s)]
        if shifted:
            lines.append("column statistics (a -> b):")
            lines += [f"  {_stat_line(s)}" for s in shifted]
        elif self.stats:
            lines.append("column statistics: unchanged")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        out = [f"<div class='wb-diff'><b>{e(self.summary())}</b>"]
        schema = (
            [(f"+ {c}", t) for c, t in self.added_columns.items()]
            + [(f"- {c}", t) for c, t in self.removed_columns.items()]
            + [(f"~ {c}", f"{ta} → {tb}") for c, (ta, tb) in self.type_changes.items()]
        )
        if schema:
            out.append(_html_table(["column", "type"], schema, "schema changes"))
        if any(self.changed_columns.values()):
            out.append(
                _html_table(
                    ["column", "rows changed"],
                    [(c, n) for c, n in self.changed_columns.items() if n],
                    "changed columns",
                )
            )
        for title, rows in (
            ("added rows", self.added_examples),
            ("removed rows", self.removed_examples),
        ):
            if rows:
                cols = list(rows[0])
                out.append(_html_table(cols, [[r.get(c) for c in cols] for r in rows], title))
        if self.changed_examples:
            body = [
                (_short(ex["key"]), c, o, n)
                for ex in self.changed_examples
                for c, (o, n) in ex["changes"].items()
            ]
            out.append(_html_table(["key", "column", "old", "new"], body, "changed rows"))
        if self.stats:
            body = [
                (s["column"], s["kind"], *_stat_cells(s)) for s in self.stats if s["kind"] != "key"
            ]
            out.append(
                _html_table(
                    ["column", "kind", "null rate a → b", "mean a → b", "std a → b", "top / shift"],
                    body,
                    "column statistics",
                )
            )
        out.append("</div>")
        return "".join(out)


def _short(row: dict[str, Any], width: int = 100) -> str:
    text = ", ".join(f"{k}={_value(v)}" for k, v in row.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def _value(v: Any) -> str:
    """A value as a reader writes it: text quoted, dates and decimals plain."""
    return repr(v) if isinstance(v, str) else str(v)


def _num(v: Any) -> str:
    return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _pair(s: dict[str, Any], name: str) -> str:
    a = (s.get("a") or {}).get(name)
    b = (s.get("b") or {}).get(name)
    return f"{_num(a)} → {_num(b)}"


def _stat_cells(s: dict[str, Any]) -> tuple[str, str, str, str]:
    null = _pair(s, "null_rate")
    if s["kind"] == "numeric":
        return null, _pair(s, "mean"), _pair(s, "std"), ""
    if s["kind"] == "categorical":
        tops = [
            ", ".join(f"{v}: {n}" for v, n in (s.get(side) or {}).get("top", [])[:3])
            for side in ("a", "b")
        ]
        tvd = (s.get("shift") or {}).get("tvd")
        return null, "", "", f"{tops[0] or '–'} → {tops[1] or '–'} (tvd {_num(tvd)})"
    return null, "", "", ""


def _shifted(s: dict[str, Any]) -> bool:
    if s["kind"] == "key":
        return False
    if s.get("a") is None or s.get("b") is None:
        return True
    return any(v not in (0, 0.0, None) for v in (s.get("shift") or {}).values())


def _stat_line(s: dict[str, Any]) -> str:
    null, mean, std, top = _stat_cells(s)
    parts = [f"null {null}"]
    if mean:
        parts += [f"mean {mean}", f"std {std}"]
    if top:
        parts.append(top)
    return f"{s['column']:<16} " + ", ".join(parts)


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{e(_num(v) if not isinstance(v, str) else v)}</td>" for v in r)
        + "</tr>"
        for r in rows
    )
    return f"<div><i>{e(title)}</i><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


# ---------------------------------------------------------------------- diff
def diff(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    key: str | Sequence[str] | None = None,
    examples: int = 5,
    labels: tuple[str, str] = ("a", "b"),
) -> DatasetDiff:
    """What changed from frame ``a`` to frame ``b``.

    Parameters
    ----------
    a, b : polars.DataFrame
        The old and the new rows.
    key : str or list of str, optional
        Column(s) identifying a row, unique on each side: rows are then added, removed or
        changed (which columns, old -> new). Without a key, rows are compared whole, as a multiset of
        row hashes on the columns both sides share (a row twice in ``b`` and once in ``a`` is one
        added).
    examples : int
        At most this many example rows of each kind.
    labels : (str, str)
        How the two sides are named in the result.

    Raises
    ------
    ConfigError
        A key column missing from a side, or a key value shared by several rows.

    Examples
    --------
    >>> import polars as pl
    >>> old = pl.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
    >>> new = pl.DataFrame({"id": [2, 3, 4], "x": [2.0, 3.5, 4.0]})
    >>> d = diff(old, new, key="id")
    >>> d.added, d.removed, d.changed, d.unchanged
    (1, 1, 1, 1)
    >>> d.changed_examples[0]
    {'key': {'id': 3}, 'changes': {'x': [3.0, 3.5]}}
    """
    import polars as pl

    if examples < 0:
        raise ConfigError(f"examples must be 0 or more, got {examples}")
    keys = _keys(key)
    sa, sb = dict(a.schema), dict(b.schema)
    common = [c for c in a.columns if c in sb]
    added_columns = {c: str(t) for c, t in sb.items() if c not in sa}
    removed_columns = {c: str(t) for c, t in sa.items() if c not in sb}
    type_changes = {c: (str(sa[c]), str(sb[c])) for c in common if sa[c] != sb[c]}
    ca, cb = _aligned(a, b, common, type_changes)
    base: dict[str, Any] = dict(
        a=labels[0],
        b=labels[1],
        key=keys,
        rows_a=a.height,
        rows_b=b.height,
        added_columns=added_columns,
        removed_columns=removed_columns,
        type_changes=type_changes,
        stats=_stats(a, b, keys or ()),
    )
    if keys is None:
        rows = _by_rows(a, b, ca, cb, examples)
    else:
        for side, frame in ((labels[0], a), (labels[1], b)):
            missing = [k for k in keys if k not in frame.columns]
            if missing:
                raise ConfigError(
                    f"key column(s) {missing} are not in {side} (its columns: {frame.columns}); "
                    "pick key columns both versions have, or diff without key=."
                )
            _unique(frame, keys, side)
        rows = _by_key(a, b, ca, cb, keys, [c for c in common if c not in keys], examples, pl)
    return DatasetDiff(**base, **rows)


def _keys(key: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if key is None:
        return None
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"key must be a column name or a list of them, got {key!r}")
    return keys


def _aligned(
    a: pl.DataFrame, b: pl.DataFrame, common: list[str], type_changes: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The common columns of both sides with equal types, so values compare and hash alike."""
    import polars as pl

    ca, cb = a.select(common), b.select(common)
    casts_a, casts_b = [], []
    for c in type_changes:
        target = _common_type(ca.get_column(c), cb.get_column(c))
        if target is None:  # no type holds both sides' values: their hashes never match
            casts_a.append(pl.col(c).hash(seed=1).alias(c))
            casts_b.append(pl.col(c).hash(seed=2).alias(c))
        else:
            casts_a.append(pl.col(c).cast(target))
            casts_b.append(pl.col(c).cast(target))
    if casts_a:
        ca, cb = ca.with_columns(casts_a), cb.with_columns(casts_b)
    return ca, cb


def _common_type(sa: pl.Series, sb: pl.Series) -> Any:
    """A type both columns' values cast to without loss of meaning, or None.

    Numbers compare as Float64 (an Int64 -> Float64 change keeps 1 == 1.0); anything involving
    text compares as text; other changes (``List(Int64)`` -> ``List(Float64)``, Date -> Datetime)
    in one side's type when the other side's values cast to it exactly (strict), else as text.
    """
    import polars as pl

    ta, tb = sa.dtype, sb.dtype
    if ta.is_numeric() and tb.is_numeric():
        return pl.Float64
    candidates = [pl.String] if pl.String in (ta, tb) else [tb, ta, pl.String]
    for target in candidates:
        try:
            sa.cast(target, strict=True)
            sb.cast(target, strict=True)
        except Exception:
            continue
        return target
    return None


def _unique(frame: pl.DataFrame, keys: tuple[str, ...], side: str) -> None:
    import polars as pl

    one = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    if frame.select(one.n_unique()).item() == frame.height:  # the common case, 20x cheaper
        return
    dup = frame.select(keys).filter(one.is_duplicated())
    if dup.height:
        raise ConfigError(
            f"key {list(keys)} is not unique in {side}: {dup.height} rows share a key value "
            f"(e.g. {dup.row(0, named=True)}); pick columns that identify one row, or diff without key=."
        )


def _rows(frame: pl.DataFrame, index: pl.Series) -> list[dict[str, Any]]:
    return frame[index.to_list()].to_dicts() if index.len() else []


def _by_key(
    a: pl.DataFrame,
    b: pl.DataFrame,
    ca: pl.DataFrame,
    cb: pl.DataFrame,
    keys: tuple[str, ...],
    values: list[str],
    examples: int,
    pl: Any,
) -> dict[str, Any]:
    ia = ca.with_row_index(_IA)
    ib = cb.with_row_index(_IB)
    j = ia.join(ib, on=list(keys), how="full", nulls_equal=True, suffix=_B, coalesce=True)
    removed = j.filter(pl.col(_IB).is_null())
    added = j.filter(pl.col(_IA).is_null())
    both = j.filter(pl.col(_IA).is_not_null() & pl.col(_IB).is_not_null())
    masks = both.select(
        pl.col(_IA),
        pl.col(_IB),
        *(pl.col(c).eq_missing(pl.col(c + _B)).not_().alias(c) for c in values),
    )
    changed_columns: dict[str, int] = {}
    if values:
        sums = masks.select(pl.col(values).sum()).row(0)
        changed_columns = {c: int(n) for c, n in zip(values, sums, strict=True)}
        changed = masks.filter(pl.any_horizontal(values))
    else:
        changed = masks.clear()
    # the first rows in a's order (bottom_k is O(n) but returns them unordered)
    first = changed.bottom_k(examples, by=_IA).sort(_IA) if examples else changed.clear()
    changed_examples = []
    if first.height:
        old = a[first[_IA].to_list()]
        new = b[first[_IB].to_list()]
        for i, flags in enumerate(first.select(values).iter_rows()):
            row_a, row_b = old.row(i, named=True), new.row(i, named=True)
            changed_examples.append(
                {
                    "key": {k: row_a[k] for k in keys},
                    "changes": {
                        c: [row_a[c], row_b[c]] for c, f in zip(values, flags, strict=True) if f
                    },
                }
            )
    return {
        "added": added.height,
        "removed": removed.height,
        "changed": changed.height,
        "unchanged": both.height - changed.height,
        "changed_columns": changed_columns,
        "added_examples": _rows(b, added[_IB].bottom_k(examples).sort()) if examples else [],
        "removed_examples": _rows(a, removed[_IA].bottom_k(examples).sort()) if examples else [],
        "changed_examples": changed_examples,
    }


def _by_rows(
    a: pl.DataFrame, b: pl.DataFrame, ca: pl.DataFrame, cb: pl.DataFrame, examples: int
) -> dict[str, Any]:
    import polars as pl

    if not ca.width:  # nothing in common: every row of a went, every row of b came
        return {
            "added": b.height,
            "removed": a.height,
            "unchanged": 0,
            "added_examples": b.head(examples).to_dicts(),
            "removed_examples": a.head(examples).to_dicts(),
        }
    # One 64-bit hash per row of the common columns (equal types, so equal rows hash alike); a
    # collision between two different rows is a 1 in 2**64 event per pair.
    ha, hb = ca.hash_rows(seed=0), cb.hash_rows(seed=0)
    counts = (
        pl.DataFrame({"h": ha})
        .group_by("h")
        .len("na")
        .join(pl.DataFrame({"h": hb}).group_by("h").len("nb"), on="h", how="full", coalesce=True)
        .fill_null(0)
        .with_columns(d=pl.col("nb").cast(pl.Int64) - pl.col("na").cast(pl.Int64))
    )
    totals = counts.select(
        added=pl.col("d").clip(lower_bound=0).sum(),
        removed=(-pl.col("d")).clip(lower_bound=0).sum(),
        unchanged=pl.min_horizontal("na", "nb").sum(),
    ).row(0, named=True)
    out: dict[str, Any] = {k: int(v or 0) for k, v in totals.items()}
    out["added_examples"] = []
    out["removed_examples"] = []
    if examples:
        surplus_b = counts.filter(pl.col("d") > 0).select("h", pl.col("d").alias(_N))
        surplus_a = counts.filter(pl.col("d") < 0).select("h", (-pl.col("d")).alias(_N))
        out["added_examples"] = _surplus(b, hb, surplus_b, examples)
        out["removed_examples"] = _surplus(a, ha, surplus_a, examples)
    return out


def _surplus(
    frame: pl.DataFrame, hashes: pl.Series, surplus: pl.DataFrame, examples: int
) -> list[dict[str, Any]]:
    """The first rows of ``frame`` that are extra: a row 3 times here and once on the other side
    shows twice (its last two occurrences count as the extra ones)."""
    import polars as pl

    if not surplus.height:
        return []
    rows = (
        frame.with_columns(hashes.alias(_IA))
        .with_row_index(_IB)
        .filter(pl.col(_IA).is_in(surplus["h"].implode()))
        .join(surplus.rename({"h": _IA}), on=_IA, how="left")
        .filter(pl.int_range(pl.len()).over(_IA) >= pl.len().over(_IA) - pl.col(_N))
        .sort(_IB)
        .head(examples)
    )
    return rows.drop(_IA, _IB, _N).to_dicts()


# --------------------------------------------------------------------- stats
def _kind(dtype: Any) -> str:
    import polars as pl

    if dtype.is_numeric():
        return "numeric"
    if dtype in (pl.String, pl.Boolean) or isinstance(dtype, pl.Categorical | pl.Enum):
        return "categorical"
    return "other"


def _side_stats(frame: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, Any]]:
    """Null rate for every column, mean and std for numerics, top categories with counts for the rest."""
    import polars as pl

    n = frame.height
    exprs = []
    for c in columns:
        exprs.append(pl.col(c).null_count().alias(f"{c}\0nulls"))
        if _kind(frame.schema[c]) == "numeric":
            exprs += [
                pl.col(c).cast(pl.Float64).fill_nan(None).mean().alias(f"{c}\0mean"),
                pl.col(c).cast(pl.Float64).fill_nan(None).std().alias(f"{c}\0std"),
            ]
    row = frame.select(exprs).row(0, named=True) if exprs else {}
    out: dict[str, dict[str, Any]] = {}
    for c in columns:
        s: dict[str, Any] = {"null_rate": row[f"{c}\0nulls"] / n if n else 0.0}
        kind = _kind(frame.schema[c])
        if kind == "numeric":
            s["mean"], s["std"] = row[f"{c}\0mean"], row[f"{c}\0std"]
        elif kind == "categorical":
            counts = (
                frame.get_column(c).drop_nulls().alias("value").value_counts(sort=True, name=_N)
            )
            s["top"] = [[v, int(k)] for v, k in counts.head(_TOP).iter_rows()]
            s["_counts"] = counts
        out[c] = s
    return out


def _tvd(ca: pl.DataFrame, cb: pl.DataFrame) -> float | None:
    """Total variation distance between two category distributions (0: same shares, 1: disjoint)."""
    import polars as pl

    na, nb = ca[_N].sum(), cb[_N].sum()
    if not na or not nb:
        return None
    if ca.schema["value"] != cb.schema["value"]:
        ca = ca.with_columns(pl.col("value").cast(pl.String))
        cb = cb.with_columns(pl.col("value").cast(pl.String))
    j = ca.join(cb, on="value", how="full", coalesce=True, suffix=_B).fill_null(0)
    return float(j.select((pl.col(_N) / na - pl.col(_N + _B) / nb).abs().sum() / 2).item())


def _stats(a: pl.DataFrame, b: pl.DataFrame, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    columns = [*a.columns, *(c for c in b.columns if c not in a.schema)]
    st_a = _side_stats(a, [c for c in a.columns if c not in keys])
    st_b = _side_stats(b, [c for c in b.columns if c not in keys])
    out = []
    for c in columns:
        if c in keys:
            out.append({"column": c, "kind": "key", "a": None, "b": None, "shift": {}})
            continue
        sa, sb = st_a.get(c), st_b.get(c)
        kinds = {_kind(f.schema[c]) for f in (a, b) if c in f.schema}
        kind = kinds.pop() if len(kinds) == 1 else "other"
        shift: dict[str, Any] = {}
        if sa is not None and sb is not None:
            shift["null_rate"] = sb["null_rate"] - sa["null_rate"]
            if kind == "numeric":
                for m in ("mean", "std"):
                    shift[m] = None if sa[m] is None or sb[m] is None else sb[m] - sa[m]
            elif kind == "categorical":
                shift["tvd"] = _tvd(sa["_counts"], sb["_counts"])
        out.append(
            {
                "column": c,
                "kind": kind,
                "a": _public(sa, kind),
                "b": _public(sb, kind),
                "shift": shift,
            }
        )
    return out


def _public(s: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    if s is None:
        return None
    keep = {"numeric": ("null_rate", "mean", "std"), "categorical": ("null_rate", "top")}
    return {k: s[k] for k in keep.get(kind, ("null_rate",)) if k in s}


# -------------------------------------------------------------- read views
def resolve_ref(ref: str) -> tuple[str, int | None]:
    """``"cancer@3"`` -> ``("cancer", 3)``; ``"cancer"`` -> ``("cancer", None)`` (the latest)."""
    text = str(ref).strip()
    name, sep, version = text.rpartition("@")
    if not sep:
        name, version = text, ""
    if not name or (sep and not (is_int_text(version) and version[0] not in "+-")):
        raise ConfigError(f"use NAME or NAME@VERSION (e.g. cancer@2), got {ref!r}")
    return name, int(version) if version else None


#: What a report item holds when the record predates a key (every check then stopped ingestion).
_REPORT_DEFAULTS: dict[str, Any] = {
    "check": "?",
    "column": None,
    "passed": False,
    "severity": "error",
    "failing": None,
    "examples": [],
    "detail": "",
}


def report_items(report: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A validation report with every key of ``{check, column, passed, severity, failing, examples,
    detail}`` present in each item, JSON-safe."""
    out = []
    for item in report or []:
        row = {**_REPORT_DEFAULTS, **(item if isinstance(item, dict) else {"detail": str(item)})}
        row["passed"] = bool(row["passed"])
        if row["examples"] is None:
            row["examples"] = []
        elif not isinstance(row["examples"], list):
            row["examples"] = [row["examples"]]
        out.append(jsonable(row, default=str, finite=True))
    return out
