"""The evaluation report of one model version: one self-contained HTML page (inline CSS and SVG
drawn here, no script, no external URL) built from a recorded evaluation; pure, no Ray, no store."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["render_report"]

# chart geometry (SVG user units)
_W, _H, _PAD = 320, 260, 36
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f5f5f5}
td.l,th.l{text-align:left}
.meta td{text-align:left;border:none;padding:1px 12px 1px 0}
.charts{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center}
svg text{font-size:10px;fill:#444}
.legend{font-size:12px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.verdict{padding:8px 12px;border-radius:4px;font-size:14px}
.passed{background:#e6f4ea;border:1px solid #34a853}.refused{background:#fce8e6;border:1px solid #d93025}
.muted{color:#777;font-size:12px}
"""


def fmt(value: Any) -> str:
    """How the report (and the widgets) write a number: 4 decimals for a float, as is otherwise,
    ``–`` for a missing or non-finite value.

    Examples
    --------
    >>> fmt(0.98765), fmt(12), fmt(None), fmt(float("nan"))
    ('0.9877', '12', '–', '–')
    """
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "–"
    return escape(str(value))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _attr(value: Any) -> str:
    """A ``data-value`` attribute: the stored number at full precision (what a test compares)."""
    v = _num(value)
    return "" if v is None else f' data-value="{v!r}"'


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def render_report(context: Mapping[str, Any]) -> str:
    """One self-contained HTML evaluation report of a model version.

    Parameters
    ----------
    context
        ``model``, ``version``, ``aliases`` (list), ``task``, ``created_at`` (of the version),
        ``trained_on`` and ``holdout`` (dataset versions as text such as ``"cancer@2"``, or
        None), and ``evaluation``: a recorded evaluation row as
        :meth:`workbench.registry.ModelRegistry.evaluation` returns it (``metrics``,
        ``details``, ``fairness``, ``cv``, ``gate``, ``created_at``, ``id``).

    Returns
    -------
    str
        The HTML page: a header, the metrics table (``id="metrics"``), ROC and PR curves per
        class (``id="roc-curve"``, ``"pr-curve"``), the confusion matrix as a heat-mapped table
        (``"confusion-matrix"``), the calibration curve with its diagonal
        (``"calibration-curve"``), per-class bars (``"per-class-bars"``), per-group bars and
        gaps when fairness was recorded (``"group-bars-<feature>"``, ``"fairness-gaps"``), CV
        intervals (``"cv-intervals"``), the gate's verdict (``"gate-verdict"``) and, for a
        regressor, residual quantiles (``"residual-quantiles"``). A part whose data is absent
        is left out. Every number comes from ``context`` and is written with :func:`fmt`;
        each also carries its exact value in a ``data-value`` attribute. All text is escaped.

    Examples
    --------
    >>> html = render_report({"model": "m<1>", "version": 1, "evaluation": {
    ...     "metrics": {"accuracy": 0.9}, "details": {"task": "classification", "n": 10}}})
    >>> "m&lt;1&gt;" in html, 'data-metric="accuracy"' in html, "<script" in html
    (True, True, False)
    """
    ev = dict(context.get("evaluation") or {})
    details = dict(ev.get("details") or {})
    model, version = context.get("model", ""), context.get("version", "")
    title = f"{model}@{version}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Evaluation report: {_e(title)}</title>",
        f"<style>{_CSS}</style></head>",
        f'<body data-model="{_e(model)}" data-version="{_e(version)}">',
        _header(context, ev, details),
        _metrics_table(ev.get("metrics") or {}),
        _gate(ev.get("gate")),
        _curves(details),
        _confusion(details.get("confusion")),
        _per_class(details.get("per_class")),
        _residuals(details.get("residuals")),
        _cv(ev.get("cv")),
        _fairness(ev.get("fairness")),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------- parts
def _header(context: Mapping[str, Any], ev: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    aliases = ", ".join(str(a) for a in context.get("aliases") or ()) or "–"
    rows = [
        ("task", context.get("task") or details.get("task")),
        ("aliases", aliases),
        ("trained on", context.get("trained_on")),
        ("holdout", context.get("holdout")),
        ("holdout rows", details.get("n")),
        ("version created", context.get("created_at")),
        ("evaluated", ev.get("created_at")),
    ]
    cells = "".join(
        f'<tr data-field="{_e(k)}"><td class="muted">{_e(k)}</td><td>'
        f"{'–' if v is None else _e(v)}</td></tr>"
        for k, v in rows
    )
    return (
        f'<header id="report-header"><h1>Evaluation report: {_e(context.get("model", ""))}'
        f" version {_e(context.get('version', ''))}</h1>"
        f'<table class="meta">{cells}</table></header>'
    )


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return ""
    rows = "".join(
        f'<tr data-metric="{_e(k)}"><td class="l">{_e(k)}</td><td{_attr(v)}>{fmt(v)}</td></tr>'
        for k, v in metrics.items()
    )
    return (
        '<section id="metrics-section"><h2>Metrics on the holdout</h2>'
        f'<table id="metrics"><tr><th class="l">metric</th><th>value</th></tr>{rows}</table>'
        "</section>"
    )


def _gate(gate: Mapping[str, Any] | None) -> str:
    if not gate:
        return ""
    passed = bool(gate.get("passed"))
    rows = [
        ("metric", gate.get("metric")),
        ("champion", gate.get("champion")),
        ("challenger", gate.get("challenger")),
        ("margin", gate.get("margin")),
        ("test", gate.get("test") or "point comparison"),
        ("holdout rows (n)", gate.get("n")),
        ("alpha", gate.get("alpha")),
        ("p-value", gate.get("p_value")),
        ("evidence", gate.get("evidence")),
    ]
    cells = "".join(
        f'<tr data-field="{_e(k)}"><td class="l">{_e(k)}</td><td{_attr(v)}>{fmt(v)}</td></tr>'
        for k, v in rows
        if v is not None
    )
    interval = gate.get("interval")
    if interval and len(interval) == 2:
        lo, hi = interval
        cells += (
            '<tr data-field="interval"><td class="l">interval of the gain</td>'
            f'<td data-low="{_num(lo)!r}" data-high="{_num(hi)!r}">[{fmt(lo)}, {fmt(hi)}]</td></tr>'
        )
    for kind in ("guarded", "fairness"):
        for name, figs in (gate.get(kind) or {}).items():
            figs = figs if isinstance(figs, Mapping) else {}
            text = ", ".join(_figure(k, v) for k, v in figs.items() if k != "passed")
            ok = figs.get("passed")
            mark = "" if ok is None else f' data-passed="{str(bool(ok)).lower()}"'
            cells += (
                f'<tr data-field="{kind}" data-name="{_e(name)}"{mark}><td class="l">{kind}: '
                f"{_e(name)}</td><td>{text}{'' if ok is None else (' · ok' if ok else ' · FAILED')}"
                "</td></tr>"
            )
    word = "passed" if passed else "refused"
    return (
        f'<section id="gate-verdict" data-passed="{str(passed).lower()}">'
        "<h2>Gate verdict against the champion</h2>"
        f'<p class="verdict {word}"><b>{word}</b>: {_e(gate.get("reason", ""))}</p>'
        f"<table>{cells}</table></section>"
    )


def _figure(key: str, value: Any) -> str:
    """One figure of a guarded metric or a fairness bound: ``name value`` or ``name [low, high]``."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{_e(key)} [{fmt(value[0])}, {fmt(value[1])}]"
    return f"{_e(key)} {fmt(value)}"


def _curves(details: Mapping[str, Any]) -> str:
    figs = []
    roc = details.get("roc") or {}
    if roc:
        figs.append(_line_chart("roc-curve", "roc", roc, "fpr", "tpr", "ROC curve", diagonal=True))
    pr = details.get("pr") or {}
    if pr:
        figs.append(_line_chart("pr-curve", "pr", pr, "recall", "precision", "Precision-recall"))
    cal = details.get("calibration")
    if cal and cal.get("prob_pred"):
        series = {"observed": {"x": cal["prob_pred"], "y": cal["prob_true"]}}
        figs.append(
            _line_chart(
                "calibration-curve",
                "calibration",
                series,
                "x",
                "y",
                "Calibration (mean predicted vs observed)",
                diagonal=True,
                dots=True,
                counts=cal.get("counts"),
            )
        )
    if not figs:
        return ""
    return (
        '<section id="curves"><h2>Curves</h2><div class="charts">'
        + "".join(figs)
        + "</div></section>"
    )


def _sx(x: float) -> float:
    return round(_PAD + x * (_W - 2 * _PAD), 2)


def _sy(y: float) -> float:
    return round(_H - _PAD - y * (_H - 2 * _PAD), 2)


def _axes(xlabel: str, ylabel: str) -> str:
    x0, x1, y0, y1 = _sx(0), _sx(1), _sy(0), _sy(1)
    ticks = "".join(
        f'<text x="{_sx(t)}" y="{y0 + 14}" text-anchor="middle">{t:g}</text>'
        f'<text x="{x0 - 6}" y="{_sy(t) + 3}" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1)
    )
    return (
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff" stroke="#999"/>'
        f"{ticks}"
        f'<text x="{(x0 + x1) / 2}" y="{_H - 4}" text-anchor="middle">{_e(xlabel)}</text>'
        f'<text x="10" y="{(y0 + y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 10 {(y0 + y1) / 2})">{_e(ylabel)}</text>'
    )


def _line_chart(
    chart_id: str,
    kind: str,
    series: Mapping[str, Mapping[str, Any]],
    xkey: str,
    ykey: str,
    caption: str,
    *,
    diagonal: bool = False,
    dots: bool = False,
    counts: Sequence[Any] | None = None,
) -> str:
    body = [_axes(xkey if xkey != "x" else "mean predicted", ykey if ykey != "y" else "observed")]
    if diagonal:
        body.append(
            f'<line class="diagonal" x1="{_sx(0)}" y1="{_sy(0)}" x2="{_sx(1)}" y2="{_sy(1)}" '
            'stroke="#bbb" stroke-dasharray="4 3"/>'
        )
    legend = []
    for i, (name, s) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        xs, ys = list(s.get(xkey) or ()), list(s.get(ykey) or ())
        pts = " ".join(
            f"{_sx(x)},{_sy(y)}"
            for x, y in zip(xs, ys, strict=False)
            if _num(x) is not None and _num(y) is not None
        )
        auc = s.get("auc")
        auc_attr = "" if _num(auc) is None else f' data-auc="{_num(auc)!r}"'
        body.append(
            f'<polyline class="series" data-class="{_e(name)}"{auc_attr} '
            f'data-points="{len(xs)}" points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>'
        )
        if dots:
            for j, (x, y) in enumerate(zip(xs, ys, strict=False)):
                if _num(x) is None or _num(y) is None:
                    continue
                n = counts[j] if counts is not None and j < len(counts) else None
                body.append(
                    f'<circle cx="{_sx(x)}" cy="{_sy(y)}" r="3" fill="{color}">'
                    f"<title>predicted {fmt(x)}, observed {fmt(y)}"
                    f"{'' if n is None else f', {fmt(n)} rows'}</title></circle>"
                )
        label = _e(name) + ("" if auc is None else f" (AUC {fmt(auc)})")
        legend.append(
            f'<span style="background:{color}"></span><b class="series-label" data-class="{_e(name)}">'
            f"{label}</b>"
        )
    return (
        f'<figure><svg id="{chart_id}" data-chart="{kind}" role="img" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}">{"".join(body)}</svg>'
        f'<figcaption>{_e(caption)}<div class="legend">{"".join(legend)}</div></figcaption></figure>'
    )


def _confusion(conf: Mapping[str, Any] | None) -> str:
    if not conf or not conf.get("matrix"):
        return ""
    labels, matrix = list(conf.get("labels") or ()), conf["matrix"]
    top = max((int(v) for row in matrix for v in row), default=0) or 1
    head = "".join(f'<th data-predicted="{_e(c)}">{_e(c)}</th>' for c in labels)
    rows = []
    for t, row in zip(labels, matrix, strict=False):
        cells = []
        for p, v in zip(labels, row, strict=False):
            share = int(v) / top
            fg = "#fff" if share > 0.65 else "#222"
            cells.append(
                f'<td data-true="{_e(t)}" data-predicted="{_e(p)}" data-count="{int(v)}" '
                f'style="background:rgba(31,119,180,{share:.3f});color:{fg}">{int(v)}</td>'
            )
        rows.append(f'<tr><th class="l" data-true="{_e(t)}">{_e(t)}</th>{"".join(cells)}</tr>')
    return (
        '<section id="confusion"><h2>Confusion matrix</h2>'
        '<p class="muted">rows: true class, columns: predicted class</p>'
        f'<table id="confusion-matrix" data-chart="confusion"><tr><th class="l">true \\ predicted</th>'
        f"{head}</tr>{''.join(rows)}</table></section>"
    )


def _bars(
    chart_id: str,
    groups: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str],
    *,
    group_attr: str,
    extra: str = "",
) -> str:
    """Grouped horizontal bars: one block per group, one bar per metric; the scale is [0, 1] when
    every value lies in it, else [0, largest]."""
    values = [_num(g.get(m)) for g in groups.values() for m in metrics]
    finite = [v for v in values if v is not None]
    top = 1.0 if all(0 <= v <= 1 for v in finite) else max([abs(v) for v in finite] or [1.0])
    top = top or 1.0
    bar_h, gap, label_w, bar_w = 12, 10, 110, 260
    height = len(groups) * (len(metrics) * bar_h + gap) + 24
    body, y = [], 4
    for gname, g in groups.items():
        body.append(f'<text x="0" y="{y + 10}" font-weight="bold">{_e(gname)}</text>')
        for i, m in enumerate(metrics):
            v = _num(g.get(m))
            w = 0 if v is None else round(bar_w * max(v, 0) / top, 2)
            color = _PALETTE[i % len(_PALETTE)]
            body.append(
                f'<rect class="bar" {group_attr}="{_e(gname)}" data-metric="{_e(m)}"{_attr(v)} '
                f'x="{label_w}" y="{y}" width="{w}" height="{bar_h - 2}" fill="{color}">'
                f"<title>{_e(gname)} {_e(m)} {fmt(v)}</title></rect>"
                f'<text x="{label_w + w + 4}" y="{y + 9}">{_e(m)} {fmt(v)}</text>'
            )
            y += bar_h
        y += gap
    return (
        f'<svg id="{_e(chart_id)}" data-chart="bars"{extra} role="img" width="{label_w + bar_w + 90}"'
        f' height="{height}" viewBox="0 0 {label_w + bar_w + 90} {height}">{"".join(body)}</svg>'
    )


def _per_class(per_class: Mapping[str, Any] | None) -> str:
    if not per_class:
        return ""
    metrics = ("precision", "recall", "f1")
    rows = "".join(
        f'<tr data-class="{_e(c)}"><td class="l">{_e(c)}</td>'
        + "".join(f'<td data-metric="{m}"{_attr(v.get(m))}>{fmt(v.get(m))}</td>' for m in metrics)
        + f'<td data-metric="support"{_attr(v.get("support"))}>{fmt(v.get("support"))}</td></tr>'
        for c, v in per_class.items()
    )
    return (
        '<section id="per-class"><h2>Per class</h2>'
        + _bars("per-class-bars", per_class, metrics, group_attr="data-class")
        + '<table id="per-class-table"><tr><th class="l">class</th><th>precision</th><th>recall</th>'
        f"<th>f1</th><th>support</th></tr>{rows}</table></section>"
    )


def _residuals(res: Mapping[str, Any] | None) -> str:
    if not res or not res.get("quantiles"):
        return ""
    q = res["quantiles"]
    vals = [v for v in (_num(x) for x in q.values()) if v is not None]
    lo, hi = min(vals + [0.0]), max(vals + [0.0])
    span = (hi - lo) or 1.0
    w, left = 420, 20

    def sx(v: float) -> float:
        return round(left + (v - lo) / span * w, 2)

    marks = "".join(
        f'<line class="quantile" data-quantile="{_e(k)}"{_attr(v)} x1="{sx(_num(v) or 0)}" y1="14" '
        f'x2="{sx(_num(v) or 0)}" y2="46" stroke="#1f77b4" stroke-width="2"><title>q{_e(k)} {fmt(v)}'
        f'</title></line><text x="{sx(_num(v) or 0)}" y="60" text-anchor="middle">{fmt(v)}</text>'
        for k, v in q.items()
        if _num(v) is not None
    )
    zero = f'<line x1="{sx(0)}" y1="8" x2="{sx(0)}" y2="52" stroke="#999" stroke-dasharray="3 3"/>'
    rows = "".join(
        f'<tr data-quantile="{_e(k)}"><td class="l">{_e(k)}</td><td{_attr(v)}>{fmt(v)}</td></tr>'
        for k, v in q.items()
    )
    mean = res.get("mean")
    return (
        '<section id="residuals"><h2>Residuals (true − predicted)</h2>'
        f'<svg id="residual-quantiles" data-chart="residuals" role="img" width="{w + 2 * left}" '
        f'height="70" viewBox="0 0 {w + 2 * left} 70">{zero}{marks}</svg>'
        f'<table><tr><th class="l">quantile</th><th>residual</th></tr>{rows}'
        f'<tr data-quantile="mean"><td class="l">mean</td><td{_attr(mean)}>{fmt(mean)}</td></tr>'
        "</table></section>"
    )


def _cv(cv: Mapping[str, Any] | None) -> str:
    if not cv:
        return ""
    entries = {k: v for k, v in cv.items() if isinstance(v, Mapping)}
    if not entries:
        return ""
    row_h, label_w, w = 30, 90, 300
    height = len(entries) * row_h + 10
    body, rows = [], []
    for i, (name, s) in enumerate(entries.items()):
        mean, lo, hi = _num(s.get("mean")), _num(s.get("ci_low")), _num(s.get("ci_high"))
        y = 8 + i * row_h
        pts = [v for v in (mean, lo, hi) if v is not None]
        a, b = (min(pts), max(pts)) if pts else (0.0, 1.0)
        # each metric on its own axis, the interval in its middle half (the ends are labelled)
        pad = (b - a) * 0.5 or (abs(a) * 0.05 or 0.05)
        a, b = a - pad, b + pad

        def sx(v: float, a: float = a, b: float = b) -> float:
            return round(label_w + (v - a) / (b - a) * w, 2)

        body.append(f'<text x="0" y="{y + 10}">{_e(name)}</text>')
        body.append(
            f'<line x1="{label_w}" y1="{y + 7}" x2="{label_w + w}" y2="{y + 7}" stroke="#ddd"/>'
            f'<text class="axis" x="{label_w}" y="{y + 20}" fill="#999">{a:.3f}</text>'
            f'<text class="axis" x="{label_w + w}" y="{y + 20}" text-anchor="end" fill="#999">'
            f"{b:.3f}</text>"
        )
        if lo is not None and hi is not None:
            body.append(
                f'<rect class="ci" data-metric="{_e(name)}" data-low="{lo!r}" data-high="{hi!r}" '
                f'x="{sx(lo)}" y="{y + 4}" width="{max(sx(hi) - sx(lo), 1.0):.2f}" height="6" '
                'fill="#1f77b4" opacity="0.8"/>'
            )
        if mean is not None:
            body.append(
                f'<circle class="mean" data-metric="{_e(name)}" data-value="{mean!r}" '
                f'cx="{sx(mean)}" cy="{y + 7}" r="4" fill="#d62728"><title>{_e(name)} mean '
                f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]</title></circle>"
            )
        body.append(
            f'<text x="{label_w + w + 6}" y="{y + 10}">{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]</text>'
        )
        rows.append(
            f'<tr data-metric="{_e(name)}"><td class="l">{_e(name)}</td>'
            + "".join(
                f'<td data-stat="{k}"{_attr(s.get(k))}>{fmt(s.get(k))}</td>'
                for k in ("mean", "std", "ci_low", "ci_high", "n_folds")
            )
            + "</tr>"
        )
    svg_w = label_w + w + 190
    return (
        '<section id="cv"><h2>Cross-validation of the training trial (mean and 95% interval)</h2>'
        f'<svg id="cv-intervals" data-chart="cv" role="img" width="{svg_w}" height="{height}" '
        f'viewBox="0 0 {svg_w} {height}">{"".join(body)}</svg>'
        '<table id="cv-table"><tr><th class="l">metric</th><th>mean</th><th>std</th>'
        f"<th>ci_low</th><th>ci_high</th><th>folds</th></tr>{''.join(rows)}</table>"
        '<p class="muted">The interval treats the folds as independent draws; folds of one split '
        "share training rows, so it is optimistic for new data.</p></section>"
    )


def _fairness(fair: Mapping[str, Any] | None) -> str:
    if not fair:
        return ""
    out = ['<section id="fairness"><h2>Fairness</h2>']
    feats = fair.get("sensitive_features") or list((fair.get("by_group") or {}).keys())
    out.append(f'<p class="muted">sensitive features: {_e(", ".join(map(str, feats)))}</p>')
    for feature, groups in (fair.get("by_group") or {}).items():
        groups = {g: v for g, v in groups.items() if isinstance(v, Mapping)}
        metrics = [m for m in dict.fromkeys(k for v in groups.values() for k in v) if m != "count"]
        out.append(f"<h3>by {_e(feature)}</h3>")
        out.append(
            _bars(
                f"group-bars-{feature}",
                groups,
                metrics,
                group_attr="data-group",
                extra=f' data-feature="{_e(feature)}"',
            )
        )
        head = "".join(f"<th>{_e(m)}</th>" for m in [*metrics, "count"])
        rows = "".join(
            f'<tr data-feature="{_e(feature)}" data-group="{_e(g)}"><td class="l">{_e(g)}</td>'
            + "".join(
                f'<td data-metric="{_e(m)}"{_attr(v.get(m))}>{fmt(v.get(m))}</td>'
                for m in [*metrics, "count"]
            )
            + "</tr>"
            for g, v in groups.items()
        )
        out.append(
            f'<table class="group-table"><tr><th class="l">group</th>{head}</tr>{rows}</table>'
        )
    gaps = fair.get("gaps") or {}
    if gaps:
        names = list(dict.fromkeys(k for v in gaps.values() if isinstance(v, Mapping) for k in v))
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        rows = "".join(
            f'<tr data-feature="{_e(f)}"><td class="l">{_e(f)}</td>'
            + "".join(
                f'<td data-gap="{_e(n)}"{_attr(v.get(n))}>{fmt(v.get(n))}</td>' for n in names
            )
            + "</tr>"
            for f, v in gaps.items()
            if isinstance(v, Mapping)
        )
        out.append(
            '<h3>gaps between groups</h3><table id="fairness-gaps"><tr><th class="l">feature</th>'
            f"{head}</tr>{rows}</table>"
        )
    overall = fair.get("overall") or {}
    if overall:
        out.append(
            '<p class="muted">overall: '
            + ", ".join(f"{_e(k)} {fmt(v)}" for k, v in overall.items())
            + "</p>"
        )
    notes = [str(n) for n in fair.get("notes") or []]
    if notes:  # small groups, undefined rates: what to read the figures with
        out.append(
            '<ul id="fairness-notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
        )
    out.append("</section>")
    return "".join(out)
