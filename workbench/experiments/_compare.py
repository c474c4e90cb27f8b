"""Compare trials across experiments: one flat table, a small filter language, and two plots.

The table is built from what the lineage store already holds (``experiments``,
``trials``, ``trial_metrics``) through read-only ``Store.query`` calls. Trial
columns are read with ``t.*``, so columns added by later migrations (resources,
node, attempts...) show up without a change here.
"""

from __future__ import annotations

import copy
import difflib
import functools
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench._numbers import is_int_text, parse_float
from workbench.exceptions import ConfigError, NotFoundError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from workbench.lineage import Store

__all__ = [
    "compare_trials",
    "with_cv",
    "trial_columns",
    "metric_curves",
    "plot_parallel_coordinates",
    "plot_metric_curves",
]

#: Columns every row has, in display order.
BASE_COLUMNS = ("experiment_id", "experiment", "trial_id", "status", "duration_s")
#: Trial-table columns that are either renamed, internal or spread into ``config.*``/``metrics.*``.
_SKIP = {
    "id",
    "experiment_id",
    "experiment",
    "trial_id",
    "status",
    "duration_s",
    "config",
    "metrics",
    "cv",
}
OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
#: The longest ``where`` condition read; longer ones are refused before any parsing.
MAX_WHERE_CHARS = 1000


def _split_where(expr: str) -> tuple[str, str, str] | None:
    """``"metrics.f1 >= 0.9"`` -> ``("metrics.f1", ">=", "0.9")``; ``None`` when it is not
    ``COLUMN OP VALUE``. One pass to the first operator character (linear: the old regex's lazy
    groups took 0.9 s on 8,000 spaces); the value is everything after the operator, a literal.

    >>> _split_where(" metrics.f1>=0.9; DROP TABLE trials ")
    ('metrics.f1', '>=', '0.9; DROP TABLE trials')
    >>> _split_where("a = 1") is None, _split_where(">= 1") is None
    (True, True)
    """
    at = next((i for i, ch in enumerate(expr) if ch in "=!<>"), -1)
    if at < 0:
        return None
    op = expr[at : at + 2] if expr[at : at + 2] in OPERATORS else expr[at]
    if op not in OPERATORS:
        return None
    column, value = expr[:at].strip(), expr[at + len(op) :].strip()
    if not column or not value:
        return None
    return column, op, value


# ------------------------------------------------------------------------------------------ table
def compare_trials(
    store: Store,
    experiments: int | str | Iterable[int | str] | None = None,
    *,
    where: str | Sequence[str] | None = None,
    sort: str | Sequence[str] | None = None,
    limit: int | None = None,
    status: str | Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Trials of one or more experiments as flat rows, filtered and sorted.

    Parameters
    ----------
    store : Store
        The lineage store.
    experiments : int, str or list of them, optional
        Experiment ids or names (a name matches every experiment of that name); default all.
    where : str or list of str, optional
        Conditions that must all hold, each ``COLUMN OP VALUE`` with ``OP`` one of
        ``== != >= <= > <``, e.g. ``"metrics.f1>=0.9"``, ``"config.family==random_forest"``,
        ``"status!=ERROR"``. Numbers compare as numbers, text as text; a missing value
        fails every comparison except ``!=`` (and ``==null``).
    sort : str or list of str, optional
        Column(s) to sort by; a leading ``-`` sorts descending. Missing values come last.
        Default: experiment, then the order trials started in.
    limit : int, optional
        Keep at most this many rows (after filtering and sorting).
    status : str or list of str, optional
        Keep trials with this status (``TERMINATED``, ``ERROR``, ``RUNNING``, ``STOPPED``...).

    Returns
    -------
    list of dict
        One dict per trial: ``experiment_id``, ``experiment`` (its name), ``trial_id``,
        ``status``, ``duration_s``, the other trial columns (``started_at``, ``ended_at``,
        ``error``...), ``config.<key>`` per hyperparameter (nested dicts joined with ``.``),
        ``metrics.<key>`` per final metric and, for a trial that recorded its folds,
        ``cv.<metric>.<stat>`` with ``stat`` one of ``mean``, ``std``, ``ci_low``,
        ``ci_high``, ``n_folds`` (:func:`workbench.evaluation.cv_summary`; e.g.
        ``"cv.f1.ci_low>=0.9"`` in ``where``). A trial that has not finished shows the
        latest value it reported.

    Raises
    ------
    NotFoundError
        An experiment id or name does not exist.
    ConfigError
        A ``where`` or ``sort`` expression cannot be parsed or names no column.

    Examples
    --------
    >>> rows = compare_trials(store, ["cancer"], where="metrics.f1>=0.9", sort="-metrics.f1")  # doctest: +SKIP
    >>> rows[0]["config.family"], rows[0]["metrics.f1"]                                          # doctest: +SKIP
    ('random_forest', 0.97)
    """
    exp_ids = _resolve_experiments(store, experiments)
    statuses = _as_list(status)
    rows = _load_rows(store, exp_ids, [s.upper() for s in statuses])
    columns = _known_columns(rows)
    for cond in _parse_where(where, columns, check=bool(rows)):
        rows = [r for r in rows if cond.matches(r)]
    rows = _sort(rows, sort, columns, check=bool(rows))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(f"limit must be a whole number >= 0, not {limit!r}.")
        rows = rows[:limit]
    return rows


def trial_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every column that appears in ``rows``: base columns first, other trial columns in the
    order they appear, then ``config.*`` and ``metrics.*``, each sorted by name.

    Examples
    --------
    >>> trial_columns([{"trial_id": "a", "config.lr": 0.1, "metrics.f1": 0.9}])
    ['trial_id', 'config.lr', 'metrics.f1']
    """
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    base = [c for c in BASE_COLUMNS if c in seen]
    config = sorted(c for c in seen if c.startswith("config."))
    metrics = sorted(c for c in seen if c.startswith("metrics."))
    cv = sorted(c for c in seen if c.startswith("cv."))
    grouped = {*base, *config, *metrics, *cv}
    other = [c for c in seen if c not in grouped]
    return [*base, *other, *config, *metrics, *cv]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [value]
    return list(value)


def _resolve_experiments(store: Store, experiments: Any) -> list[int]:
    known = store.experiments.list_names()
    if experiments is None:
        return [e["id"] for e in known]
    by_id = {e["id"]: e for e in known}
    out: dict[int, None] = {}
    for ref in _as_list(experiments):
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise ConfigError(f"experiments are given by id or name, not {ref!r}.")
        text = str(ref).strip()
        matched = []
        if isinstance(ref, int) or text.isdigit():
            matched = [int(text)] if int(text) in by_id else []
        if not matched and isinstance(ref, str):
            matched = [e["id"] for e in known if e["name"] == text]
        if not matched:
            listing = ", ".join(f"{e['id']} {e['name']!r}" for e in known[-10:]) or "none yet"
            raise NotFoundError(
                f"experiment {ref!r} does not exist (by id or name); "
                f"experiments: {listing}. List them with `workbench runs` or "
                "`bench.experiments.list()`."
            )
        out.update(dict.fromkeys(matched))
    return list(out)


def _load_rows(store: Store, exp_ids: list[int], statuses: list[str]) -> list[dict[str, Any]]:
    trials = store.experiments.list_trials(experiment_ids=exp_ids, statuses=statuses)
    order = {e: i for i, e in enumerate(exp_ids)}
    trials.sort(key=lambda t: (order[t["experiment_id"]], t["id"]))
    latest = store.experiments.get_latest_metrics([t["id"] for t in trials if not t.get("metrics")])
    return [_flatten(t, latest.get(t["id"], {})) for t in with_cv(store, trials)]


def with_cv(store: Store, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``trials`` (rows of ``store.experiments.list_trials``), each given ``cv``: the summary of
    its recorded folds (:func:`workbench.evaluation.cv_summary`), or None when it recorded none.

    Examples
    --------
    >>> rows = with_cv(store, store.experiments.list_trials(1))   # doctest: +SKIP
    >>> rows[0]["cv"]["f1"]["n_folds"]                             # doctest: +SKIP
    3
    """
    from workbench.evaluation import cv_summary

    folds: dict[tuple[int, str], list[dict[str, float]]] = {}
    for exp_id in dict.fromkeys(t["experiment_id"] for t in trials):
        for f in store.evaluations.list_folds(exp_id):
            folds.setdefault((exp_id, f["trial_id"]), []).append(f["metrics"])
    for t in trials:
        recorded = folds.get((t["experiment_id"], t["trial_id"]))
        t["cv"] = cv_summary(recorded) if recorded else None
    return trials


def _flatten(trial: dict[str, Any], latest: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "experiment_id": trial["experiment_id"],
        "experiment": trial["experiment"],
        "trial_id": trial["trial_id"],
        "status": trial["status"],
        "duration_s": trial.get("duration_s"),
    }
    for key, value in trial.items():
        if key in _SKIP:
            continue
        _put(row, key, value)
    _put(row, "config", trial.get("config") or {})
    _put(row, "metrics", trial.get("metrics") or latest)
    if trial.get("cv"):
        _put(row, "cv", trial["cv"])
    return row


def _put(row: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _put(row, f"{key}.{k}", v)
    else:
        row[key] = value


def _known_columns(rows: list[dict[str, Any]]) -> list[str]:
    columns = trial_columns(rows)
    return columns + [c for c in BASE_COLUMNS if c not in columns]


# ------------------------------------------------------------------------------- filter and sort
class _Condition:
    """One parsed ``COLUMN OP VALUE`` condition."""

    def __init__(self, expr: str, column: str, op: str, raw: str):
        self.expr, self.column, self.op, self.raw = expr, column, op, raw
        self.value = _literal(raw)

    def matches(self, row: Mapping[str, Any]) -> bool:
        cell = row.get(self.column)
        if self.op in ("==", "!="):
            return _equal(cell, self.value, self.raw) == (self.op == "==")
        if cell is None or self.value is None:
            return False
        if _is_number(cell):
            if not _is_number(self.value):
                raise ConfigError(
                    f"where {self.expr!r}: {self.column} holds numbers; compare it with a number."
                )
            left, right = float(cell), float(self.value)
        else:
            left, right = str(cell), self.value if isinstance(self.value, str) else self.raw
        return {
            ">=": left >= right,
            "<=": left <= right,
            ">": left > right,
            "<": left < right,
        }[self.op]


def _parse_where(
    where: str | Sequence[str] | None, columns: list[str], *, check: bool
) -> list[_Condition]:
    conditions = []
    for expr in _as_list(where):
        if not isinstance(expr, str):
            raise ConfigError(f"where conditions are strings like 'metrics.f1>=0.9', not {expr!r}.")
        if len(expr) > MAX_WHERE_CHARS:
            raise ConfigError(
                f"where condition of {len(expr)} characters refused ({MAX_WHERE_CHARS} at most): "
                f"write COLUMN OP VALUE, e.g. 'metrics.f1>=0.9', one condition per list item."
            )
        parts = _split_where(expr)
        if parts is None:
            raise ConfigError(
                f"cannot read where condition {expr!r}: write COLUMN OP VALUE with OP one of "
                f"{' '.join(OPERATORS)}, e.g. 'metrics.f1>=0.9' or 'config.family==random_forest'. "
                f"Columns: {', '.join(columns)}."
            )
        if check:
            _check_column(parts[0], columns, f"where {expr!r}")
        conditions.append(_Condition(expr, *parts))
    return conditions


def _check_column(column: str, columns: list[str], what: str) -> None:
    if column in columns:
        return
    close = (
        difflib.get_close_matches(column, columns, n=1)
        or [c for c in columns if c.endswith(f".{column}")][:1]
    )
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{what}: no column {column!r}.{hint} Columns: {', '.join(columns)}.")


def _literal(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    low = raw.lower()
    if low in ("null", "none"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if is_int_text(raw):  # ASCII digits only: not '²', '1_000' or 5,000 digits
        return int(raw)
    try:
        return parse_float(raw)
    except ValueError:
        return raw


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(cell: Any, value: Any, raw: str) -> bool:
    if cell is None or value is None:
        return cell is None and value is None
    if isinstance(cell, bool) or isinstance(value, bool):
        return cell is value or str(cell).lower() == raw.strip("'\"").lower()
    if _is_number(cell) and _is_number(value):
        return float(cell) == float(value)
    text = value if isinstance(value, str) else raw
    return str(cell) == text


def _sort(
    rows: list[dict[str, Any]], sort: str | Sequence[str] | None, columns: list[str], *, check: bool
) -> list[dict[str, Any]]:
    keys = _as_list(sort)
    for key in keys:
        if not isinstance(key, str) or not key.lstrip("-+"):
            raise ConfigError(f"sort keys are column names like '-metrics.f1', not {key!r}.")
        if check:
            _check_column(key.lstrip("-+"), columns, f"sort {key!r}")
    # stable sorts from the last key to the first give a lexicographic multi-key sort
    for key in reversed(keys):
        column, descending = key.lstrip("-+"), key.startswith("-")
        present = [r for r in rows if not _missing(r.get(column))]
        missing = [r for r in rows if _missing(r.get(column))]
        present.sort(key=lambda r, c=column: _sort_key(r[c]), reverse=descending)
        rows = present + missing
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sort_key(value: Any) -> tuple[int, Any]:
    if _is_number(value):
        return (0, float(value))
    return (1, str(value))


# ---------------------------------------------------------------------------------------- curves
def metric_curves(
    store: Store, trials: Iterable[Mapping[str, Any] | tuple[int, str] | str]
) -> list[dict[str, Any]]:
    """Per-step metric series of trials, as recorded while they ran.

    Parameters
    ----------
    store : Store
        The lineage store.
    trials : iterable
        Rows from :func:`compare_trials` (anything with ``experiment_id`` and ``trial_id``),
        ``(experiment_id, trial_id)`` pairs, or bare trial ids (when unique across experiments).

    Returns
    -------
    list of dict
        Per trial, in the order given: ``experiment_id``, ``experiment``, ``trial_id``,
        ``status`` and ``series``: ``{metric: {"step": [...], "value": [...]}}``.

    Examples
    --------
    >>> curves = metric_curves(store, compare_trials(store, "cancer"))   # doctest: +SKIP
    >>> curves[0]["series"]["f1"]["step"]                                 # doctest: +SKIP
    [1, 2, 3]
    """
    keys = [_trial_key(store, t) for t in trials]
    found: dict[tuple[int, str], dict[str, Any]] = {}
    by_exp: dict[int, list[str]] = {}
    for exp_id, trial_id in keys:
        by_exp.setdefault(exp_id, []).append(trial_id)
    for exp_id, ids in by_exp.items():
        for t in store.experiments.list_trials(exp_id, trial_ids=list(dict.fromkeys(ids))):
            found[(exp_id, t["trial_id"])] = {
                "pk": t["id"],
                "experiment_id": exp_id,
                "experiment": t["experiment"],
                "trial_id": t["trial_id"],
                "status": t["status"],
                "series": {},
            }
    missing = [k for k in keys if k not in found]
    if missing:
        exp_id, trial_id = missing[0]
        raise NotFoundError(
            f"experiment {exp_id} has no trial {trial_id!r}; list its trials with "
            f"`workbench runs {exp_id}` or `bench.compare_trials({exp_id})`."
        )
    by_pk = {v["pk"]: v for v in found.values()}
    for m in store.experiments.list_metrics(list(by_pk)):
        series = by_pk[m["trial_pk"]]["series"].setdefault(m["name"], {"step": [], "value": []})
        series["step"].append(m["step"])
        series["value"].append(m["value"])
    # a trial asked for twice gets two independent copies
    return [copy.deepcopy({k: v for k, v in found[key].items() if k != "pk"}) for key in keys]


def _trial_key(store: Store, trial: Any) -> tuple[int, str]:
    if isinstance(trial, Mapping):
        if "experiment_id" not in trial or "trial_id" not in trial:
            raise ConfigError(
                "a trial row needs 'experiment_id' and 'trial_id' (rows from compare_trials have both)."
            )
        return int(trial["experiment_id"]), str(trial["trial_id"])
    if isinstance(trial, tuple) and len(trial) == 2:
        return int(trial[0]), str(trial[1])
    if isinstance(trial, str):
        hits = store.experiments.list_experiments_of_trial(trial)
        if len(hits) == 1:
            return int(hits[0]), trial
        if not hits:
            raise NotFoundError(
                f"no trial {trial!r} in any experiment; list trials with `workbench trials`."
            )
        raise ConfigError(
            f"trial id {trial!r} exists in experiments "
            f"{', '.join(str(h) for h in hits)}; "
            "pass (experiment_id, trial_id) instead."
        )
    raise ConfigError(
        f"trials are rows from compare_trials, (experiment_id, trial_id) pairs or trial ids, not {trial!r}."
    )


# ----------------------------------------------------------------------------------------- plots
@functools.cache
def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib comes with alibi-detect
        raise ConfigError("plots need matplotlib: pip install matplotlib") from exc

    class TrialFigure(Figure):
        """A matplotlib ``Figure`` that a notebook shows as a PNG, with no pyplot state involved.

        A plain ``Figure`` made without pyplot displays as ``<Figure size ...>`` text in Jupyter
        unless the inline backend happens to be active; ``_repr_png_`` makes it show either way.
        """

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=100)
            return buf.getvalue()

    return TrialFigure


def _figure(figsize: tuple[float, float]) -> Figure:
    return _figure_class()(figsize=figsize, layout="constrained")


def _label(row: Mapping[str, Any]) -> str:
    exp = row.get("experiment", row.get("experiment_id", ""))
    return f"{exp}/{row.get('trial_id', '?')}"


def plot_parallel_coordinates(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    color: str | None = None,
    *,
    cmap: str = "viridis",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Parallel-coordinates plot of trials: one vertical axis per column, one line per trial.

    Numeric columns are scaled to [0, 1] between their real minimum and maximum, which are
    labelled on the axis (a positive column spanning three decades or more is drawn on a log
    scale); other columns (text, booleans) get one evenly spaced tick per distinct value,
    labelled with it. Lines are coloured by ``color`` and a colour bar shows its scale.

    Parameters
    ----------
    rows : list of dict
        Rows from :func:`compare_trials`.
    columns : list of str, optional
        Axes, left to right; default every ``config.*`` column, then ``color``.
    color : str, optional
        Numeric column that colours the lines; default the first ``metrics.*`` column.
    cmap : str
        Matplotlib colormap name.
    figsize : (width, height), optional
        Default grows with the number of axes.

    Returns
    -------
    matplotlib.figure.Figure
        Not shown: in a notebook, leave it as the cell's last expression or call ``display(fig)``.

    Examples
    --------
    >>> fig = plot_parallel_coordinates(rows, color="metrics.f1")   # doctest: +SKIP
    >>> fig.savefig("trials.png")                                    # doctest: +SKIP
    """
    if not rows:
        raise ConfigError("no trials to plot; check the experiments and where conditions.")
    available = trial_columns(rows)
    if color is None:
        color = next((c for c in available if c.startswith("metrics.")), None)
    elif color not in available:
        _check_column(color, available, "color")
    if columns is None:
        columns = [c for c in available if c.startswith("config.")]
        if color is not None and color not in columns:
            columns.append(color)
    columns = list(columns)
    if not columns:
        raise ConfigError(f"nothing to plot: pass columns=[...]; columns: {', '.join(available)}.")
    for c in columns:
        _check_column(c, available, "columns")

    fig = _figure(figsize or (max(6.0, 1.8 * len(columns) + 2.0), 4.5))
    ax = fig.add_subplot()
    axes = [_AxisScale(c, [r.get(c) for r in rows]) for c in columns]
    n = len(columns)
    xs = list(range(n)) if n > 1 else [0]

    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    shade = None
    if color is not None:
        values = [r.get(color) for r in rows]
        numbers = [float(v) for v in values if _is_number(v) and not _missing(v)]
        if not numbers and any(not _missing(v) for v in values):
            raise ConfigError(f"color {color!r} must be a numeric column (a metric).")
        if numbers:
            from matplotlib.cm import ScalarMappable
            from matplotlib.colors import Normalize

            lo, hi = min(numbers), max(numbers)
            norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
            shade = (norm, color)
            fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=ax, label=color)

    for row in rows:
        # a trial without a value on an axis (another model family's hyperparameter) skips that
        # axis: its line joins its neighbours instead of breaking into unreadable pieces
        points = [
            (x, scale.position(row.get(c)))
            for x, scale, c in zip(xs, axes, columns, strict=True)
            if not _missing(row.get(c))
        ]
        value = row.get(color) if color else None
        if shade is not None and _is_number(value) and not _missing(value):
            line_color = colormap(shade[0](float(value)))
        else:
            line_color = (0.6, 0.6, 0.6, 0.8)  # no value for the colour metric
        ax.plot(
            [x for x, _ in points],
            [y for _, y in points],
            color=line_color,
            linewidth=1.4,
            alpha=0.85,
            marker="o",
            markersize=3,
            label=_label(row),
        )

    ax.set_xlim(-0.05 if n > 1 else -1, (n - 1) + 0.05 if n > 1 else 1)
    ax.set_ylim(-0.04, 1.04)
    ax.set_yticks([])
    ax.set_xticks(xs, [s.title for s in axes], rotation=20, ha="right")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.vlines(xs, 0, 1, colors="0.3", linewidth=1.0)
    x0, x1 = ax.get_xlim()
    for x, scale in zip(xs, axes, strict=True):
        sec = ax.secondary_yaxis((x - x0) / (x1 - x0))
        sec.set_yticks(scale.ticks, scale.labels)
        sec.tick_params(labelsize=8)
        sec.set_gid(f"axis:{scale.column}")
    ax.set_title(f"{len(rows)} trials" + (f", coloured by {color}" if color else ""))
    return fig


class _AxisScale:
    """Where a column's values sit on its [0, 1] axis, and what its ticks say."""

    def __init__(self, column: str, values: list[Any]):
        self.column = column
        present = [v for v in values if not _missing(v)]
        self.numeric = bool(present) and all(_is_number(v) for v in present)
        self.log = False
        self.categories: list[str] = []
        if self.numeric:
            nums = [float(v) for v in present]
            self.lo, self.hi = min(nums), max(nums)
            self.log = self.lo > 0 and self.hi / self.lo >= 1000
            if self.log:
                self.lo, self.hi = math.log10(self.lo), math.log10(self.hi)
            tick_values = [self.lo + (self.hi - self.lo) * i / 4 for i in range(5)]
            if self.hi == self.lo:
                tick_values = [self.lo]
            self.ticks = [self._scaled(v) for v in tick_values]
            self.labels = [f"{10**v if self.log else v:.4g}" for v in tick_values]
        else:
            self.categories = sorted({str(v) for v in present})
            self.ticks = [self.position_of_category(c) for c in self.categories]
            self.labels = list(self.categories)
        self.title = column + (" (log)" if self.log else "")

    def _scaled(self, v: float) -> float:
        return 0.5 if self.hi == self.lo else (v - self.lo) / (self.hi - self.lo)

    def position_of_category(self, text: str) -> float:
        k = len(self.categories)
        return 0.5 if k == 1 else self.categories.index(text) / (k - 1)

    def position(self, value: Any) -> float:
        if _missing(value):
            return math.nan  # matplotlib leaves a gap
        if self.numeric:
            v = float(value)
            return self._scaled(math.log10(v) if self.log else v)
        return self.position_of_category(str(value))


def plot_metric_curves(
    curves: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    figsize: tuple[float, float] = (7.0, 4.5),
    legend: bool | None = None,
) -> Figure:
    """One line per trial: ``metric`` against the step it was reported at.

    Parameters
    ----------
    curves : list of dict
        From :func:`metric_curves`.
    metric : str
        Metric name (``"f1"``; a ``"metrics."`` prefix is accepted).
    figsize : (width, height)
    legend : bool, optional
        Default: a legend when there are at most 12 lines.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_metric_curves(metric_curves(store, rows), "f1")   # doctest: +SKIP
    """
    name = metric.removeprefix("metrics.")
    drawn = [c for c in curves if name in c.get("series", {})]
    if not drawn:
        names = sorted({m for c in curves for m in c.get("series", {})})
        raise ConfigError(
            f"no trial reported metric {name!r}; "
            + (f"metrics: {', '.join(names)}." if names else "these trials reported no metrics.")
        )
    fig = _figure(figsize)
    ax = fig.add_subplot()
    for c in drawn:
        s = c["series"][name]
        ax.plot(s["step"], s["value"], marker="o", markersize=3, linewidth=1.4, label=_label(c))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per step, {len(drawn)} trial{'s' if len(drawn) != 1 else ''}")
    ax.grid(True, alpha=0.3)
    if legend if legend is not None else len(drawn) <= 12:
        ax.legend(fontsize=8, loc="best")
    return fig
