// workbench widgets: experiment, registry, deployment, monitor, lineage, dataset.
// One ES module (anywidget loads it as-is: no build step, no CDN, no imports); the
// synced trait "kind" picks the renderer. Charts are small hand-written SVG.

const SVGNS = "http://www.w3.org/2000/svg";
const STATUS_COLORS = {
  RUNNING: "#1f77b4", PENDING: "#8c8c8c", TERMINATED: "#2ca02c", STOPPED: "#ff7f0e",
  INTERRUPTED: "#9467bd", ERROR: "#d62728",
};
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const NODE_COLORS = {
  dataset_version: "#4e79a7", experiment: "#f28e2b", model_version: "#59a14f", deployment: "#e15759",
  monitor: "#76b7b2", drift_result: "#edc948", alert: "#ff9da7", retrain_job: "#b07aa1", retrain_step: "#9c755f",
};

// ------------------------------------------------------------------ DOM helpers
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** Attributes that disable a button whose action the user's roles do not allow (model "denied":
 * {action: why}, empty in an open home), with the reason as its tooltip. */
function deny(model, action) {
  const why = (model.get("denied") || {})[action];
  return why ? { disabled: true, title: why, "data-denied": action } : {};
}

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) node.append(c);
  return node;
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toFixed(digits)));
  return v.toPrecision(3);
}

function pct(v) { return `${(100 * (v || 0)).toFixed(v > 0 && v < 0.01 ? 1 : 0)}%`; }
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], { hour12: false }); }
function shortTime(iso) { return iso ? String(iso).replace("T", " ").slice(0, 19) : "–"; }
function isoSeconds(iso) { return Date.parse(iso) / 1000; }

// Coalesce bursts of trait changes into one redraw per animation frame.
function scheduler(fn) {
  let queued = false;
  const raf = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (f) => setTimeout(f, 16);
  return () => {
    if (queued) return;
    queued = true;
    raf(() => { queued = false; fn(); });
  };
}

function listen(model, names, fn) {
  const events = names.map((n) => `change:${n}`);
  for (const ev of events) model.on(ev, fn);
  return () => { for (const ev of events) model.off(ev, fn); };
}

// Large tables arrive as one JSON string trait ("rows_json"): parse once per change.
function packed(model, name, empty) {
  const raw = model.get(`${name}_json`);
  const cache = (model.__wbPacked ||= {});
  if (!cache[name] || cache[name].raw !== raw) {
    let value = empty;
    try { value = raw ? JSON.parse(raw) : empty; } catch (e) { value = empty; }
    cache[name] = { raw, value };
  }
  return cache[name].value;
}

function send(model, action, params) { model.send({ action, params: params || {} }); }

// An inline confirmation (no window.confirm: it blocks the page and is invisible in tests).
function confirmBar(host, text, onYes) {
  host.replaceChildren(
    h("div", { class: "wb-confirm", role: "alertdialog" },
      h("span", { text }),
      h("button", { class: "wb-btn wb-danger", text: "Confirm", onclick: () => { host.replaceChildren(); onYes(); } }),
      h("button", { class: "wb-btn", text: "Cancel", onclick: () => host.replaceChildren() }),
    ),
  );
}

function noticeLine(model) {
  const line = h("div", { class: "wb-notice" });
  const update = () => {
    const n = model.get("notice") || {};
    const busy = model.get("busy");
    const err = model.get("error");
    line.className = `wb-notice ${err ? "wb-error" : n.level === "error" ? "wb-error" : n.level === "ok" ? "wb-ok" : ""}`;
    line.textContent = err ? `cannot read the store: ${err}` : busy ? `${busy}…` : n.text || "";
  };
  update();
  return { line, off: listen(model, ["notice", "busy", "error"], update) };
}

// a widget with confirmed actions: its box (appended to root), head, confirmation host and notice line
function actionFrame(model, root, kind) {
  const box = h("div", { class: `wb-widget wb-${kind}` });
  root.append(box);
  const head = h("div", { class: "wb-head" });
  const confirmHost = h("div", {});
  const { line: notice, off: offNotice } = noticeLine(model);
  return { box, head, confirmHost, notice, offNotice };
}

// ------------------------------------------------------------------ scales and axes
function niceTicks(lo, hi, n = 5) {
  if (!(isFinite(lo) && isFinite(hi))) return [];
  if (lo === hi) return [lo];
  const span = hi - lo;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / n)));
  const err = (span / n) / step0;
  const step = step0 * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

// Tick labels with as many decimals as the step between ticks needs (0.949, 0.95 not 0.95, 0.95).
function tickFormat(ticks) {
  if (ticks.length < 2) return (t) => fmt(t, 3);
  const step = Math.abs(ticks[1] - ticks[0]);
  const big = Math.max(...ticks.map(Math.abs));
  if (big >= 1e5 || (big > 0 && big < 1e-3)) return (t) => (t === 0 ? "0" : t.toPrecision(2));
  const decimals = Math.max(0, Math.min(8, Math.ceil(-Math.log10(step) - 1e-9)));
  return (t) => t.toFixed(decimals);
}

// Clock ticks on round seconds/minutes/hours, at most about n of them.
function timeTicks(lo, hi, n = 4) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  const step = steps.find((st) => (hi - lo) / st <= n) || 86400 * Math.ceil((hi - lo) / n / 86400);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(t);
  return out;
}

function extent(values, pad = 0) {
  const v = values.filter((x) => typeof x === "number" && isFinite(x));
  if (!v.length) return [0, 1];
  let lo = Math.min(...v), hi = Math.max(...v);
  if (lo === hi) { const d = Number.isInteger(lo) ? 1 : Math.abs(lo) * 0.05 || 1; lo -= d; hi += d; }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

function scale(domain, range, log = false) {
  const [d0, d1] = log ? domain.map(Math.log10) : domain;
  const [r0, r1] = range;
  const f = (v) => r0 + ((log ? Math.log10(v) : v) - d0) / (d1 - d0 || 1) * (r1 - r0);
  return f;
}

// A chart frame: axes with ticks and labels; returns {svg, x, y, plot} for drawing.
function frame({ width = 420, height = 220, xDomain, yDomain, xLabel, yLabel, yLog = false, xTime = false, xInt = false, title, xTickFmt, yTickFmt }) {
  const m = { l: 58, r: 12, t: title ? 24 : 10, b: 40 };
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "wb-chart", role: "img" });
  if (title) svg.append(s("text", { x: m.l, y: 15, class: "wb-chart-title", text: title }));
  const x = scale(xDomain, [m.l, width - m.r]);
  const y = scale(yDomain, [height - m.b, m.t], yLog);
  const axis = s("g", { class: "wb-axis" });
  axis.append(s("line", { x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }));
  axis.append(s("line", { x1: m.l, x2: m.l, y1: m.t, y2: height - m.b }));
  let xt = xTime ? timeTicks(xDomain[0], xDomain[1], 4) : niceTicks(xDomain[0], xDomain[1], 5);
  if (xInt) xt = xt.filter((t) => Number.isInteger(t));
  const xf = tickFormat(xt);
  for (const t of xt) {
    axis.append(s("line", { x1: x(t), x2: x(t), y1: height - m.b, y2: height - m.b + 4 }));
    axis.append(s("text", { x: x(t), y: height - m.b + 15, "text-anchor": "middle", text: xTickFmt ? xTickFmt(t) : xTime ? clock(t) : xf(t) }));
  }
  let yt;
  if (yLog) {
    yt = [];
    for (let e = Math.floor(Math.log10(yDomain[0])); e <= Math.ceil(Math.log10(yDomain[1])); e++) {
      const v = Math.pow(10, e);
      if (v >= yDomain[0] * 0.999 && v <= yDomain[1] * 1.001) yt.push(v);
    }
  } else yt = niceTicks(yDomain[0], yDomain[1], 4);
  const yf = tickFormat(yt);
  for (const t of yt) {
    axis.append(s("line", { x1: m.l, x2: width - m.r, y1: y(t), y2: y(t), class: "wb-grid" }));
    axis.append(s("text", { x: m.l - 5, y: y(t) + 4, "text-anchor": "end", text: yTickFmt ? yTickFmt(t) : yLog ? t.toExponential(0) : yf(t) }));
  }
  if (xLabel) axis.append(s("text", { x: (m.l + width - m.r) / 2, y: height - 6, "text-anchor": "middle", class: "wb-axis-label", text: xLabel }));
  if (yLabel) axis.append(s("text", { x: 12, y: (m.t + height - m.b) / 2, "text-anchor": "middle", class: "wb-axis-label", transform: `rotate(-90 12 ${(m.t + height - m.b) / 2})`, text: yLabel }));
  svg.append(axis);
  const plot = s("g", { class: "wb-plot" });
  svg.append(plot);
  return { svg, x, y, plot, m, width, height };
}

function pathOf(points, x, y) {
  let d = "";
  let pen = false;
  for (const [px, py] of points) {
    if (py === null || py === undefined || !isFinite(py)) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${x(px).toFixed(1)},${y(py).toFixed(1)}`;
    pen = true;
  }
  return d;
}

function legend(items) {
  return h("div", { class: "wb-legend" },
    items.map(([label, color, dashed]) => h("span", { class: "wb-legend-item" },
      h("span", { class: `wb-swatch${dashed ? " wb-dashed" : ""}`, style: `background:${dashed ? "transparent" : color};border-color:${color}` }),
      label)));
}

// Line chart: series = [{name, color, points: [[x, y]], width, opacity, dash, dots}]
function lineChart(opts) {
  const all = opts.series.flatMap((se) => se.points);
  const xs = all.map((p) => p[0]);
  let ys = all.map((p) => p[1]).concat((opts.hlines || []).map((l) => l.y));
  if (opts.yLog) ys = ys.filter((v) => v > 0);
  let yDomain = opts.yDomain || extent(ys, 0.05);
  if (opts.yLog) yDomain = [Math.max(Math.min(...ys, 1) / 2, 1e-12), Math.max(...ys, 1e-12) * 1.5];
  if (opts.yZero && !opts.yLog) yDomain = [Math.min(0, yDomain[0]), yDomain[1] <= 0 ? 1 : yDomain[1]];
  const f = frame({ ...opts, xDomain: opts.xDomain || extent(xs), yDomain });
  for (const l of opts.hlines || []) {
    f.plot.append(s("line", { x1: f.m.l, x2: f.width - f.m.r, y1: f.y(l.y), y2: f.y(l.y), stroke: l.color, "stroke-dasharray": "5 3", "stroke-width": 1.5 }));
    f.plot.append(s("text", { x: f.width - f.m.r - 2, y: f.y(l.y) - 4, "text-anchor": "end", class: "wb-hline-label", fill: l.color, text: l.label }));
  }
  for (const v of opts.vlines || []) {
    f.plot.append(s("line", { x1: f.x(v.x), x2: f.x(v.x), y1: f.m.t, y2: f.height - f.m.b, stroke: v.color, "stroke-width": 1.5, "stroke-dasharray": "2 2" },
      s("title", { text: v.label })));
    f.plot.append(s("text", { x: f.x(v.x) + 3, y: f.m.t + 10, class: "wb-hline-label", fill: v.color, text: v.short || "" }));
  }
  for (const se of opts.series) {
    const d = se.width === 0 ? "" : pathOf(opts.yLog ? se.points.filter((p) => p[1] > 0) : se.points, f.x, f.y);
    if (d) f.plot.append(s("path", { d, fill: "none", stroke: se.color, "stroke-width": se.width ?? 1.5, "stroke-opacity": se.opacity ?? 1, "stroke-dasharray": se.dash, "data-series": se.name }, s("title", { text: se.name })));
    if (se.dots) for (const [px, py, c] of se.points) {
      if (py === null || (opts.yLog && !(py > 0))) continue;
      f.plot.append(s("circle", { cx: f.x(px), cy: f.y(py), r: 3, fill: c || se.color }, s("title", { text: `${se.name}: ${fmt(py)}` })));
    }
  }
  return f.svg;
}

// ------------------------------------------------------------------ experiment
function renderExperiment(model, root) {
  const box = h("div", { class: "wb-widget wb-experiment" });
  root.append(box);
  const head = h("div", { class: "wb-head" });
  const chips = h("div", { class: "wb-chips" });
  const bestLine = h("div", { class: "wb-best" });
  const stopBtn = h("button", { class: "wb-btn wb-danger wb-stop", text: "Stop search" });
  const { line: notice, off: offNotice } = noticeLine(model);
  const charts = h("div", { class: "wb-charts" });
  const pc = h("div", { class: "wb-pc" });
  const filter = h("input", { class: "wb-filter", type: "search", placeholder: "filter: text, or column>value (e.g. f1>0.9, status=ERROR)" });
  const pager = h("div", { class: "wb-pager" });
  const table = h("table", { class: "wb-table" });
  box.append(head, h("div", { class: "wb-row" }, chips, stopBtn), bestLine, notice, charts, pc,
    h("div", { class: "wb-row" }, filter, pager), h("div", { class: "wb-table-wrap" }, table));

  const ui = { sort: 2, desc: null, page: 0, per: 50, hidden: new Set(), filter: "" };
  stopBtn.addEventListener("click", () => { stopBtn.disabled = true; send(model, "stop"); });
  filter.addEventListener("input", () => { ui.filter = filter.value.trim(); ui.page = 0; drawTable(); });

  function matches(row, cols) {
    if (ui.hidden.has(row[1])) return false;
    if (!ui.filter) return true;
    const m = ui.filter.match(/^([\w.\-]+)\s*(>=|<=|!=|=|>|<)\s*(.+)$/);
    if (m) {
      const i = cols.indexOf(m[1]) >= 0 ? cols.indexOf(m[1]) : cols.indexOf(`config.${m[1]}`) >= 0 ? cols.indexOf(`config.${m[1]}`) : cols.indexOf(`metrics.${m[1]}`);
      if (i < 0) return false;
      const a = row[i], bNum = Number(m[3]);
      const b = typeof a === "number" && !Number.isNaN(bNum) ? bNum : m[3];
      const av = typeof b === "number" ? a : String(a ?? "");
      if (a === null || a === undefined) return m[2] === "!=";
      return { ">": av > b, "<": av < b, ">=": av >= b, "<=": av <= b, "=": av == b, "!=": av != b }[m[2]];
    }
    const q = ui.filter.toLowerCase();
    return row.some((c) => c !== null && String(c).toLowerCase().includes(q));
  }

  function visibleRows() {
    const cols = model.get("columns") || [];
    const rows = (packed(model, "rows", [])).filter((r) => matches(r, cols));
    const exp = model.get("experiment") || {};
    const desc = ui.desc ?? (ui.sort === 2 ? exp.mode !== "min" : false);
    const k = ui.sort;
    rows.sort((a, b) => {
      const x = a[k], y = b[k];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return desc ? -c : c;
    });
    return { cols, rows, desc };
  }

  function drawTable() {
    const { cols, rows, desc } = visibleRows();
    const best = (model.get("best") || {}).trial_id;
    const pages = Math.max(1, Math.ceil(rows.length / ui.per));
    ui.page = Math.min(ui.page, pages - 1);
    const slice = rows.slice(ui.page * ui.per, (ui.page + 1) * ui.per);
    const thead = h("tr", {}, cols.map((c, i) => h("th", {
      class: i === ui.sort ? (desc ? "wb-sorted-desc" : "wb-sorted-asc") : "",
      title: "sort", onclick: () => { ui.desc = ui.sort === i ? !desc : i === 2 ? null : false; ui.sort = i; drawTable(); },
    }, c.replace(/^(config|metrics)\./, ""))));
    const body = slice.map((r) => h("tr", { class: r[0] === best ? "wb-best-row" : "" },
      r.map((c, i) => i === 1
        ? h("td", {}, h("span", { class: "wb-status", style: `background:${STATUS_COLORS[c] || "#999"}`, text: c }))
        : h("td", { class: typeof c === "number" ? "wb-num" : "" , text: fmt(c) }))));
    table.replaceChildren(h("thead", {}, thead), h("tbody", {}, body));
    pager.replaceChildren(
      h("span", { text: `${rows.length} of ${(packed(model, "rows", [])).length} trials · page ${ui.page + 1}/${pages} ` }),
      h("button", { class: "wb-btn", text: "‹", disabled: ui.page === 0, onclick: () => { ui.page--; drawTable(); } }),
      h("button", { class: "wb-btn", text: "›", disabled: ui.page >= pages - 1, onclick: () => { ui.page++; drawTable(); } }),
    );
    drawPC(rows, cols);
  }

  function drawHead() {
    const exp = model.get("experiment") || {};
    head.replaceChildren(
      h("span", { class: "wb-title", text: `experiment #${exp.id ?? "?"} ${exp.name || ""}` }),
      h("span", { class: "wb-status", style: `background:${STATUS_COLORS[exp.status] || "#999"}`, text: exp.status || "?" }),
      h("span", { class: "wb-muted", text: ` ${exp.search_alg || ""} · ${exp.scheduler || ""} · ${exp.n_trials ?? 0}/${exp.num_samples ?? "?"} trials · ${exp.mode || ""} ${exp.metric || ""}` }),
      ...(model.get("waiting") ? [h("span", { class: "wb-waiting", text: ` · ${model.get("waiting")}` })] : []),
    );
    const counts = exp.counts || {};
    chips.replaceChildren(...Object.keys(STATUS_COLORS).filter((k) => counts[k]).map((k) => h("button", {
      class: `wb-chip${ui.hidden.has(k) ? " wb-off" : ""}`, style: `border-color:${STATUS_COLORS[k]}`, title: "show/hide",
      onclick: () => { ui.hidden.has(k) ? ui.hidden.delete(k) : ui.hidden.add(k); drawHead(); drawTable(); },
    }, h("span", { class: "wb-dot", style: `background:${STATUS_COLORS[k]}` }), `${k} ${counts[k]}`)));
    const best = model.get("best") || {};
    bestLine.textContent = best.trial_id
      ? `best ${exp.metric} = ${fmt(best.value)} (trial ${best.trial_id}) · ${Object.entries(best.config || {}).map(([k, v]) => `${k}=${fmt(v, 3)}`).join(", ")}`
      : "best: no result yet";
    const canStop = model.get("can_stop");
    const stopping = model.get("stop_requested");
    stopBtn.style.display = canStop || (stopping && exp.status === "RUNNING") ? "" : "none";
    const denied = (model.get("denied") || {}).search;
    stopBtn.disabled = !canStop || stopping || !!denied;
    stopBtn.title = denied || "";
    stopBtn.textContent = stopping ? "Stopping…" : "Stop search";
  }

  function drawCharts() {
    const exp = model.get("experiment") || {};
    const curves = packed(model, "curves", {});
    const cols = model.get("columns") || [];
    const status = Object.fromEntries((packed(model, "rows", [])).map((r) => [r[0], r[1]]));
    const best = (model.get("best") || {}).trial_id;
    const ids = Object.keys(curves).filter((k) => curves[k].length);
    const many = ids.length > 60;
    const series = ids.filter((k) => k !== best).map((k) => ({
      name: `${k} (${status[k] || "?"})`, color: STATUS_COLORS[status[k]] || "#999", points: curves[k],
      width: many ? 1 : 1.5, opacity: many ? 0.35 : 0.8, dots: !many && curves[k].length < 12,
    }));
    if (best && curves[best]) series.push({ name: `${best} (best)`, color: "#000", points: curves[best], width: 3, dots: curves[best].length < 12 });
    const metric = exp.metric || cols[2] || "metric";
    const curveChart = series.length
      ? lineChart({ title: `${metric} per step, one line per trial`, series, xLabel: "step (fold / iteration)", yLabel: metric, width: 460, xInt: true })
      : h("div", { class: "wb-empty", text: "no metrics reported yet" });
    const bc = model.get("best_curve") || [];
    const bestChart = bc.length
      ? lineChart({ title: `best ${metric} so far`, series: [{ name: "best so far", color: "#2ca02c", points: bc.flatMap((p, i) => i ? [[p[0] - 0.0001, bc[i - 1][1]], [p[0], p[1]]] : [[p[0], p[1]]]), width: 2.5 }, { name: "finished trials", color: "#2ca02c", points: bc.map((p) => [p[0], p[1]]), width: 0, dots: true }], xLabel: "finished trials", yLabel: metric, width: 340, xInt: true, xDomain: [Math.min(1, bc[0][0]), Math.max(2, bc[bc.length - 1][0])] })
      : h("div", { class: "wb-empty", text: "no finished trial yet" });
    charts.replaceChildren(h("div", { class: "wb-card" }, curveChart, legend(Object.keys(STATUS_COLORS).filter((k) => Object.values(status).includes(k)).map((k) => [k, STATUS_COLORS[k]]).concat(best ? [["best trial", "#000"]] : []))), h("div", { class: "wb-card" }, bestChart));
  }

  function drawPC(rows, cols) {
    const mi = 2;
    const axes = [];
    for (let i = 4; i < cols.length; i++) {
      if (!cols[i].startsWith("config.")) continue;
      const vals = rows.map((r) => r[i]).filter((v) => v !== null && v !== undefined);
      if (new Set(vals.map(String)).size < 2) continue;
      axes.push(i);
    }
    axes.push(mi);
    const withMetric = rows.filter((r) => typeof r[mi] === "number");
    if (axes.length < 2 || withMetric.length < 2) { pc.replaceChildren(); return; }
    // Text ticks sit left of their axis: leave room for the first axis' labels.
    const firstText = rows.some((r) => typeof r[axes[0]] === "string");
    const left = firstText ? 130 : 60, top = 30, bottom = 30, right = 60, height = 260;
    const width = Math.max(520, left + right + 150 * (axes.length - 1));
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "wb-chart" });
    svg.append(s("text", { x: 8, y: 16, class: "wb-chart-title", text: `parallel coordinates: ${withMetric.length} trials, coloured by ${cols[mi]}` }));
    const ax = axes.map((i, j) => {
      const x = left + (j * (width - left - right)) / (axes.length - 1);
      const vals = rows.map((r) => r[i]).filter((v) => v !== null && v !== undefined);
      const numeric = vals.every((v) => typeof v === "number");
      let y, ticks;
      if (numeric) {
        const lo = Math.min(...vals), hi = Math.max(...vals);
        const log = lo > 0 && hi / lo >= 1000;
        const dom = lo === hi ? [lo - 1, hi + 1] : [lo, hi];
        y = scale(dom, [height - bottom, top], log);
        ticks = log ? [lo, Math.sqrt(lo * hi), hi] : niceTicks(dom[0], dom[1], 4);
        const tf = log ? (t) => t.toPrecision(2) : tickFormat(ticks);
        return { i, x, y, ticks, numeric, tf };
      } else {
        const cats = [...new Set(vals.map(String))].sort();
        const step = (height - top - bottom) / Math.max(1, cats.length - 1);
        y = (v) => (cats.length === 1 ? (top + height - bottom) / 2 : height - bottom - cats.indexOf(String(v)) * step);
        ticks = cats;
      }
      return { i, x, y, ticks, numeric };
    });
    const [mlo, mhi] = extent(withMetric.map((r) => r[mi]));
    const color = (v) => viridis((v - mlo) / (mhi - mlo || 1));
    const lines = s("g", { class: "wb-pc-lines" });
    const sorted = [...withMetric].sort((a, b) => a[mi] - b[mi]);
    const thin = sorted.length > 200;
    for (const r of sorted) {
      let d = "", pen = false;
      for (const a of ax) {
        const v = r[a.i];
        if (v === null || v === undefined) continue; // another family's hyperparameter: skip the axis
        d += `${pen ? "L" : "M"}${a.x.toFixed(1)},${a.y(v).toFixed(1)}`;
        pen = true;
      }
      lines.append(s("path", { d, fill: "none", stroke: color(r[mi]), "stroke-width": thin ? 0.8 : 1.6, "stroke-opacity": thin ? 0.35 : 0.85 }, s("title", { text: `${r[0]}: ${cols[mi]}=${fmt(r[mi])}` })));
    }
    svg.append(lines);
    for (const a of ax) {
      const g = s("g", { class: "wb-axis" });
      g.append(s("line", { x1: a.x, x2: a.x, y1: top, y2: height - bottom }));
      g.append(s("text", { x: a.x, y: height - 8, "text-anchor": "middle", class: "wb-axis-label", text: cols[a.i].replace(/^config\./, "") }));
      const shown = a.ticks.length > 12 ? a.ticks.filter((_, k) => k % Math.ceil(a.ticks.length / 12) === 0) : a.ticks;
      for (const t of shown) {
        g.append(s("line", { x1: a.x - 3, x2: a.x, y1: a.y(t), y2: a.y(t) }));
        g.append(s("text", { x: a.x - 5, y: a.y(t) + 3, "text-anchor": "end", class: "wb-pc-tick", text: a.numeric ? a.tf(t) : String(t).length > 20 ? `${String(t).slice(0, 19)}…` : String(t) }));
      }
      svg.append(g);
    }
    const gid = `wbgrad${Math.random().toString(36).slice(2)}`;
    const grad = s("linearGradient", { id: gid, x1: 0, x2: 0, y1: 1, y2: 0 }, [0, 0.25, 0.5, 0.75, 1].map((o) => s("stop", { offset: o, "stop-color": viridis(o) })));
    svg.append(s("defs", {}, grad));
    svg.append(s("rect", { x: width - 22, y: top, width: 10, height: height - top - bottom, fill: `url(#${gid})` }));
    svg.append(s("text", { x: width - 24, y: top - 4, "text-anchor": "middle", class: "wb-pc-tick", text: fmt(mhi, 3) }));
    svg.append(s("text", { x: width - 24, y: height - bottom + 12, "text-anchor": "middle", class: "wb-pc-tick", text: fmt(mlo, 3) }));
    pc.replaceChildren(h("div", { class: "wb-card wb-scroll" }, svg));
  }

  const all = scheduler(() => { drawHead(); drawCharts(); drawTable(); });
  const off = listen(model, ["experiment", "columns", "rows_json", "curves_json", "best", "best_curve", "can_stop", "stop_requested", "waiting"], all);
  drawHead(); drawCharts(); drawTable();
  return () => { off(); offNotice(); box.remove(); };
}

function viridis(t) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  t = Math.max(0, Math.min(1, t || 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// ------------------------------------------------------------------ registry
function barChart({ title, groups, keys, width = 460, height = 230, yLabel }) {
  // groups: [{label, values: {key: number}}]; one bar per key inside each group.
  const vals = groups.flatMap((g) => keys.map((k) => g.values[k])).filter((v) => typeof v === "number");
  const unit = vals.length && vals.every((v) => v >= 0 && v <= 1);
  const yDomain = unit ? [Math.min(...vals) > 0.5 ? Math.floor(Math.min(...vals) * 10) / 10 : 0, 1] : [Math.min(0, ...vals), Math.max(...vals, 1e-9) * 1.1];
  const f = frame({ width, height, title, yLabel, xDomain: [0, groups.length], yDomain, xTickFmt: () => "" });
  const gw = (f.width - f.m.l - f.m.r) / Math.max(1, groups.length);
  const bw = Math.max(3, (gw * 0.8) / Math.max(1, keys.length));
  groups.forEach((g, gi) => {
    const x0 = f.m.l + gi * gw + gw * 0.1;
    keys.forEach((k, ki) => {
      const v = g.values[k];
      if (typeof v !== "number") return;
      const y0 = f.y(Math.max(yDomain[0], 0)), y1 = f.y(v);
      f.plot.append(s("rect", { x: x0 + ki * bw, y: Math.min(y0, y1), width: bw - 1, height: Math.max(1, Math.abs(y0 - y1)), fill: PALETTE[ki % PALETTE.length] }, s("title", { text: `${g.label} ${k} = ${fmt(v)}` })));
    });
    f.plot.append(s("text", { x: x0 + gw * 0.4, y: f.height - f.m.b + 15, "text-anchor": "middle", class: g.strong ? "wb-strong" : "", text: g.label }));
  });
  return h("div", {}, f.svg, legend(keys.map((k, i) => [k, PALETTE[i % PALETTE.length]])));
}

// One metric's CV interval as a small SVG bar: [0, 1] for bounded metrics, else its own span.
function intervalBar(cv, value) {
  const w = 120, hgt = 14;
  if (!cv || typeof cv.ci_low !== "number" || typeof cv.ci_high !== "number") return h("span", { class: "wb-muted", text: "" });
  const pts = [cv.ci_low, cv.ci_high, cv.mean, value].filter((v) => typeof v === "number");
  let lo = Math.min(...pts), hi = Math.max(...pts);
  if (lo >= 0 && hi <= 1) { lo = 0; hi = 1; } else { const pad = (hi - lo) * 0.1 || 0.5; lo -= pad; hi += pad; }
  const x = (v) => 2 + ((v - lo) / (hi - lo)) * (w - 4);
  return s("svg", { class: "wb-ci", width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}` },
    s("line", { x1: 2, y1: 7, x2: w - 2, y2: 7, stroke: "#ddd" }),
    s("line", { class: "wb-ci-bar", x1: x(cv.ci_low), y1: 7, x2: x(cv.ci_high), y2: 7, stroke: "#1f77b4", "stroke-width": 4 }),
    typeof cv.mean === "number" ? s("circle", { cx: x(cv.mean), cy: 7, r: 3, fill: "#1f77b4" }) : null,
    typeof value === "number" ? s("line", { x1: x(value), y1: 1, x2: x(value), y2: 13, stroke: "#d62728", "stroke-width": 2 }, s("title", { text: `holdout ${fmt(value)}` })) : null,
    s("title", { text: `CV mean ${fmt(cv.mean)}, 95% interval [${fmt(cv.ci_low)}, ${fmt(cv.ci_high)}] over ${cv.n_folds} folds; red: holdout` }));
}

// The evaluation summary of one version (registry widget and the same shape in the panel).
function evaluationView(ev, version) {
  const rows = (ev.metrics || []).map((m) => h("tr", { "data-metric": m.name },
    h("td", { text: m.name }), h("td", { class: "wb-num", text: fmt(m.value) }),
    h("td", { class: "wb-num", text: m.cv ? fmt(m.cv.mean) : "–" }),
    h("td", { class: "wb-num", text: m.cv && typeof m.cv.ci_low === "number" ? `[${fmt(m.cv.ci_low)}, ${fmt(m.cv.ci_high)}]` : "–" }),
    h("td", { class: "wb-num", text: m.cv ? fmt(m.cv.n_folds) : "–" }),
    h("td", {}, intervalBar(m.cv, m.value))));
  const parts = [
    h("div", { class: "wb-subtitle", text: `evaluation of v${version}${ev.holdout ? ` on ${ev.holdout}` : ""}${ev.n ? ` (${ev.n} rows)` : ""} · ${shortTime(ev.created_at)}` }),
    h("table", { class: "wb-table wb-eval-metrics" },
      h("thead", {}, h("tr", {}, ["metric", "holdout", "CV mean", "95% interval", "folds", ""].map((c) => h("th", { text: c })))),
      h("tbody", {}, rows)),
  ];
  const g = ev.gate;
  if (g) {
    parts.push(h("div", { class: `wb-gate ${g.passed ? "wb-gate-passed" : "wb-gate-refused"}`, "data-passed": String(!!g.passed) },
      h("b", { text: g.passed ? "gate passed" : "gate refused" }),
      h("span", { text: ` ${g.metric}: champion ${fmt(g.champion)} → challenger ${fmt(g.challenger)}, margin ${fmt(g.margin)}${g.test ? ` · ${g.test}` : ""}${g.n ? `, n=${g.n}` : ""}${g.interval ? `, interval [${fmt(g.interval[0])}, ${fmt(g.interval[1])}]` : ""}${typeof g.p_value === "number" ? `, p=${fmt(g.p_value)}` : ""}${g.evidence ? ` · ${g.evidence}` : ""}` }),
      h("div", { class: "wb-muted", text: g.reason || "" })));
  }
  const f = ev.fairness;
  if (f && f.groups && f.groups.length) {
    parts.push(h("div", { class: "wb-subtitle", text: `per group (${(f.features || []).join(", ")})` }),
      h("table", { class: "wb-table wb-eval-groups" },
        h("thead", {}, h("tr", {}, ["feature", "group", "count", ...f.metrics].map((c) => h("th", { text: c })))),
        h("tbody", {}, f.groups.map((r) => h("tr", { "data-group": r.group },
          h("td", { text: r.feature }), h("td", { text: r.group }), h("td", { class: "wb-num", text: fmt(r.count) }),
          f.metrics.map((m) => h("td", { class: "wb-num", text: fmt(r.values[m]) })))))),
      ...Object.entries(f.gaps || {}).map(([feat, gaps]) => h("div", { class: "wb-muted wb-gaps", text: `gaps by ${feat}: ${Object.entries(gaps).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}` })),
      ...(f.notes || []).map((n) => h("div", { class: "wb-muted wb-fairness-note", text: n })));
  }
  return parts;
}

function renderRegistry(model, root) {
  const { box, head, confirmHost, notice, offNotice } = actionFrame(model, root, "registry");
  const body = h("div", {});
  box.append(head, confirmHost, notice, body);
  const aliasInput = h("input", { class: "wb-alias", value: "champion", size: 10, title: "alias to move" });
  const ui = { selected: null };
  let evals = {}, reportUrl = null;

  // the version whose evaluation is shown: the one clicked, else the highlighted, the champion's,
  // the newest evaluated
  function selected() {
    const keys = Object.keys(evals);
    if (ui.selected && evals[ui.selected]) return ui.selected;
    const hl = model.get("highlight"), champ = (model.get("aliases") || {}).champion;
    for (const v of [hl, champ]) if (v !== null && v !== undefined && evals[String(v)]) return String(v);
    return keys.length ? keys.sort((a, b) => Number(b) - Number(a))[0] : null;
  }

  function evalCard() {
    const v = selected();
    if (!v) return h("div", { class: "wb-card wb-eval wb-empty", text: "no version has a recorded evaluation (register one with a holdout)" });
    const ev = evals[v];
    const html = model.get("report_html"), shown = String(model.get("report_version")) === v && html;
    const open = h("button", { class: "wb-btn", "data-action": "report", "data-version": v, text: shown ? "Reload report" : "Open report",
      onclick: () => send(model, "report", { version: Number(v) }) });
    const extra = [];
    if (shown) {
      if (reportUrl) URL.revokeObjectURL(reportUrl);
      const url = reportUrl = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      extra.push(h("a", { class: "wb-report-link", href: url, download: `${model.get("model_name")}-v${v}-report.html`, text: "download" }),
        h("iframe", { class: "wb-report-frame", sandbox: "", title: `evaluation report of v${v}`, srcdoc: html }));
    }
    const row = (model.get("versions") || []).find((r) => String(r.version) === v) || {};
    const names = row.feature_names || [];
    const generated = names.length
      ? h("div", { class: "wb-muted wb-feature-names", title: names.join(", "),
          text: `${names.length} generated features: ${names.slice(0, 12).join(", ")}${names.length > 12 ? ", …" : ""}` })
      : null;
    return h("div", { class: "wb-card wb-eval", "data-version": v }, ...evaluationView(ev, v), generated,
      h("div", { class: "wb-row" }, open, ...extra.slice(0, 1)), ...extra.slice(1));
  }

  function draw() {
    evals = model.get("evaluations") || {};
    const versions = model.get("versions") || [];
    const aliases = model.get("aliases") || {};
    const rollback = model.get("rollback") || {};
    const metrics = model.get("metric_names") || [];
    const hl = model.get("highlight");
    head.replaceChildren(
      h("span", { class: "wb-title", text: `model ${model.get("model_name")}` }),
      h("span", { class: "wb-muted", text: ` ${versions.length} versions` }),
      ...Object.entries(aliases).map(([a, v]) => h("span", { class: "wb-chip wb-alias-chip" }, `${a} → v${v}`)),
      ...Object.entries(rollback).filter(([, t]) => t !== null && t !== undefined).map(([a, t]) => h("button", {
        class: "wb-btn wb-danger", "data-action": "rollback", text: `Roll back ${a} to v${t}`, ...deny(model, "promote"),
        onclick: () => confirmBar(confirmHost, `Move ${a} of ${model.get("model_name")} from v${aliases[a]} back to v${t}?`, () => send(model, "rollback", { alias: a, confirm: true })),
      })),
    );
    const chart = metrics.length && versions.length
      ? barChart({ title: "metrics per version", keys: metrics, yLabel: "value", groups: versions.map((v) => ({ label: `v${v.version}${v.aliases.length ? "*" : ""}`, values: v.metrics, strong: v.aliases.length > 0 })) , width: Math.min(900, 120 + versions.length * Math.max(40, 16 * metrics.length)) })
      : h("div", { class: "wb-empty", text: "no metrics" });
    const rows = versions.map((v) => h("tr", { class: v.version === hl ? "wb-best-row" : "" },
      h("td", { text: `v${v.version}` }),
      h("td", {}, v.aliases.map((a) => h("span", { class: "wb-chip wb-alias-chip", text: a }))),
      metrics.map((m) => h("td", { class: "wb-num", text: fmt(v.metrics[m]) })),
      h("td", { text: v.dataset || "–" }),
      h("td", { text: v.experiment_id ? `#${v.experiment_id} ${v.trial_id || ""}` : "–" }),
      h("td", { text: shortTime(v.created_at) }),
      h("td", {}, h("button", {
        class: "wb-btn", "data-action": "promote", "data-version": v.version, text: "Promote", ...deny(model, "promote"),
        onclick: () => {
          const alias = aliasInput.value.trim() || "champion";
          confirmBar(confirmHost, `Point ${alias} of ${model.get("model_name")} at v${v.version}${aliases[alias] ? ` (now v${aliases[alias]})` : ""}?`, () => send(model, "promote", { version: v.version, alias, confirm: true }));
        },
      })),
      h("td", {}, evals[String(v.version)] ? h("button", {
        class: `wb-btn${String(v.version) === selected() ? " wb-on" : ""}`, "data-action": "evaluation", "data-version": v.version, text: "Show",
        onclick: () => { ui.selected = String(v.version); draw(); },
      }) : h("span", { class: "wb-muted", text: "–" })),
    ));
    const table = h("table", { class: "wb-table" },
      h("thead", {}, h("tr", {}, ["version", "aliases", ...metrics, "data", "experiment / trial", "registered", "", "evaluation"].map((c) => h("th", { text: c })))),
      h("tbody", {}, rows));
    const hist = (model.get("history") || []).slice().reverse().slice(0, 20);
    const dvs = model.get("data_versions") || [];
    body.replaceChildren(
      h("div", { class: "wb-charts" }, h("div", { class: "wb-card" }, chart)),
      h("div", { class: "wb-row" }, h("span", { class: "wb-muted", text: "promote moves alias " }), aliasInput),
      h("div", { class: "wb-table-wrap" }, table),
      evalCard(),
      h("div", { class: "wb-charts" },
        h("div", { class: "wb-card wb-list" }, h("div", { class: "wb-subtitle", text: "alias history (newest first)" }),
          hist.length ? hist.map((x) => h("div", { class: "wb-hist", text: `${shortTime(x.at)}  ${x.alias}: ${x.previous_version ? `v${x.previous_version} → ` : ""}v${x.version}  by ${x.actor}${x.reason ? ` — ${x.reason}` : ""}` })) : h("div", { class: "wb-empty", text: "no alias moved yet" })),
        h("div", { class: "wb-card wb-list" }, h("div", { class: "wb-subtitle", text: "data versions" }),
          dvs.map((d) => h("div", { class: "wb-hist", text: `${d.label}: ${d.rows} rows × ${d.cols} cols, hash ${d.hash}, ${shortTime(d.created_at)}` }))),
      ),
    );
  }
  const redraw = scheduler(draw);
  const off = listen(model, ["versions", "aliases", "history", "data_versions", "rollback", "metric_names", "highlight", "evaluations", "report_html", "report_version"], redraw);
  draw();
  return () => { off(); offNotice(); if (reportUrl) URL.revokeObjectURL(reportUrl); box.remove(); };
}

// ------------------------------------------------------------------ deployment
function renderDeployment(model, root) {
  const { box, head, confirmHost, notice, offNotice } = actionFrame(model, root, "deployment");
  const traffic = h("div", { class: "wb-card wb-traffic" });
  const canary = h("div", { class: "wb-canary" });
  const charts = h("div", { class: "wb-charts" });
  box.append(head, confirmHost, notice, h("div", { class: "wb-charts" }, traffic, h("div", { class: "wb-card" }, canary)), charts);
  let draft = null; // local slider values until the server confirms
  let extra = new Set();

  function apply() {
    const weights = Object.fromEntries(Object.entries(draft).map(([v, w]) => [v, w / 100]));
    send(model, "set_traffic", { weights });
  }

  function drawTraffic() {
    const weights = model.get("weights") || {};
    const versions = model.get("versions") || [];
    const busy = model.get("busy");
    if (!draft || !busy) draft = Object.fromEntries(Object.entries(weights).map(([v, w]) => [v, Math.round(w * 100)]));
    for (const v of extra) if (!(v in draft)) draft[v] = 0;
    const total = Object.values(draft).reduce((a, b) => a + b, 0) || 1;
    const rows = Object.keys(draft).sort((a, b) => a - b).map((v, i) => {
      const slider = h("input", { type: "range", min: 0, max: 100, step: 1, value: draft[v], class: "wb-slider", "data-version": v, "aria-label": `weight of version ${v}`, disabled: !!busy, ...deny(model, "traffic") });
      const share = h("span", { class: "wb-share", text: pct(draft[v] / total) });
      slider.addEventListener("input", () => { draft[v] = Number(slider.value); const t = Object.values(draft).reduce((a, b) => a + b, 0) || 1; for (const el of traffic.querySelectorAll(".wb-share")) el.textContent = pct(draft[el.dataset.version] / t); });
      slider.addEventListener("change", () => { draft[v] = Number(slider.value); apply(); });
      share.dataset.version = v;
      return h("div", { class: "wb-slider-row" }, h("span", { class: "wb-dot", style: `background:${PALETTE[(Number(v) - 1) % PALETTE.length]}` }), h("label", { text: `v${v}` }), slider, share);
    });
    const addable = versions.filter((v) => !(String(v) in draft));
    const add = addable.length ? h("select", { class: "wb-add", onchange: (e) => { if (e.target.value) { extra.add(e.target.value); drawTraffic(); } } },
      h("option", { value: "", text: "add a version…" }), addable.map((v) => h("option", { value: v, text: `v${v}` }))) : null;
    traffic.replaceChildren(h("div", { class: "wb-subtitle", text: "traffic weights (release a slider to reconfigure the router)" }), ...rows, h("div", { class: "wb-row" }, add,
      h("button", { class: "wb-btn wb-danger", "data-action": "rollback", text: "Roll back", disabled: !!busy, ...deny(model, "rollback"), onclick: () => confirmBar(confirmHost, `Send 100% of ${model.get("deployment").name} back to its last known good version?`, () => send(model, "rollback", { confirm: true })) })));
  }

  function drawHead() {
    const d = model.get("deployment") || {};
    const t = d.totals || {};
    head.replaceChildren(
      h("span", { class: "wb-title", text: `deployment ${d.name || "?"}` }),
      h("span", { class: "wb-status", style: `background:${d.status === "running" ? "#2ca02c" : d.status === "failed" ? "#d62728" : "#8c8c8c"}`, text: d.status || "?" }),
      h("span", { class: "wb-muted", text: ` model ${d.model || "?"} at ${d.route_prefix || ""} · ${t.n ?? 0} requests logged · ${t.errors ?? 0} errors · mean ${fmt(t.mean_latency_ms, 2)} ms` }),
    );
    const c = model.get("canary") || {};
    if (c.steps) {
      const state = c.rolled_back ? "rolled back" : c.active ? "in progress" : c.step >= c.steps ? "complete" : "stopped";
      canary.replaceChildren(h("div", { class: "wb-subtitle", text: `canary v${c.champion} → v${c.challenger}: step ${c.step}/${c.steps} (${state})` }),
        h("div", { class: "wb-track" }, h("div", { class: `wb-fill${c.rolled_back ? " wb-fill-bad" : ""}`, style: `width:${(100 * c.step) / c.steps}%` })),
        h("div", { class: "wb-muted", text: `challenger share ${pct(c.share)} · ${c.reason || ""}` }));
    } else canary.replaceChildren(h("div", { class: "wb-subtitle", text: "canary" }), h("div", { class: "wb-empty", text: "no canary rollout on this deployment" }));
  }

  function drawCharts() {
    const pts = model.get("requests") || [];
    const hist = model.get("history") || [];
    const now = Date.now() / 1000;
    const bs = model.get("bucket_s") || 5;
    const xDomain = pts.length ? [Math.min(pts[0].t, now - 60), Math.max(now, pts[pts.length - 1].t + bs)] : [now - 300, now];
    const cards = [];
    if (pts.length) {
      cards.push(lineChart({ title: "request rate", series: [{ name: "requests/s", color: "#1f77b4", points: pts.map((p) => [p.t, p.rps]), width: 2, dots: pts.length < 40 }], xTime: true, xDomain, yLabel: "req/s", yZero: true, width: 330, height: 200 }));
      cards.push(h("div", {}, lineChart({ title: "latency", series: [{ name: "p50", color: "#2ca02c", points: pts.map((p) => [p.t, p.p50]), width: 2, dots: pts.length < 40 }, { name: "p95", color: "#ff7f0e", points: pts.map((p) => [p.t, p.p95]), width: 2, dots: pts.length < 40 }], xTime: true, xDomain, yLabel: "ms", yZero: true, width: 330, height: 200 }), legend([["p50", "#2ca02c"], ["p95", "#ff7f0e"]])));
      cards.push(lineChart({ title: "error rate", series: [{ name: "errors", color: "#d62728", points: pts.map((p) => [p.t, p.error_rate]), width: 2, dots: true }], xTime: true, xDomain, yLabel: "share of requests", yDomain: [0, Math.max(0.05, ...pts.map((p) => p.error_rate)) * 1.1], yTickFmt: (t) => pct(t), width: 330, height: 200 }));
    } else cards.push(h("div", { class: "wb-empty", text: "no requests in the last minutes" }));
    if (hist.length) {
      const vs = [...new Set(hist.flatMap((c) => Object.keys(c.weights)))].sort((a, b) => a - b);
      const end = Math.max(now, hist[hist.length - 1].t + 1);
      const series = vs.map((v) => {
        const p = [];
        hist.forEach((c, i) => {
          const w = c.weights[v] || 0;
          const tot = Object.values(c.weights).reduce((a, b) => a + b, 0) || 1;
          if (i) p.push([c.t, p[p.length - 1][1]]);
          p.push([c.t, w / tot]);
        });
        p.push([end, p[p.length - 1][1]]);
        return { name: `v${v}`, color: PALETTE[(Number(v) - 1) % PALETTE.length], points: p, width: 2.5 };
      });
      const kinds = hist.filter((c) => c.kind === "rollback").map((c) => ({ x: c.t, color: "#d62728", label: c.reason, short: "rollback" }));
      cards.push(h("div", {}, lineChart({ title: "traffic share per version", series, xTime: true, xDomain: [hist[0].t, end], yDomain: [0, 1.05], yTickFmt: (t) => pct(t), yLabel: "share", vlines: kinds, width: 330, height: 200 }), legend(series.map((x) => [x.name, x.color]))));
    }
    charts.replaceChildren(...cards.map((c) => h("div", { class: "wb-card" }, c)));
  }

  const redraw = scheduler(() => { drawHead(); drawTraffic(); drawCharts(); });
  const off = listen(model, ["deployment", "weights", "versions", "history", "canary", "requests", "busy"], redraw);
  drawHead(); drawTraffic(); drawCharts();
  return () => { off(); offNotice(); box.remove(); };
}

// ------------------------------------------------------------------ monitor
// Under an alert: the triage of the retraining its window started (text from monitor_state) and
// what that job decided.
function alertOutcome(a) {
  const j = a.job;
  const job = j ? `retrain job #${j.id}: ${j.status}${j.decision ? ` — ${j.decision}` : ""}` : "";
  return a.triage ? `triage: ${a.triage.verdict}${job ? ` → ${job}` : ""}` : job;
}

function renderMonitor(model, root) {
  const { box, head, confirmHost, notice, offNotice } = actionFrame(model, root, "monitor");
  const body = h("div", {});
  box.append(head, confirmHost, notice, body);

  function heat(features, windows, threshold) {
    const cw = Math.max(6, Math.min(28, 640 / Math.max(1, windows.length))), ch = 18, left = 150, top = 26;
    const width = Math.max(left + cw * windows.length + 20, 560), height = top + ch * features.length + 36;
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "wb-chart" });
    svg.append(s("text", { x: 4, y: 15, class: "wb-chart-title", text: "p-value per feature and window" }));
    features.forEach((f, r) => svg.append(s("text", { x: left - 6, y: top + r * ch + 13, "text-anchor": "end", class: "wb-pc-tick", text: f.slice(0, 22) })));
    windows.forEach((w, c) => {
      features.forEach((f, r) => {
        const p = w.p_values[f];
        const fill = p === undefined ? "#eeeeee" : p < threshold ? `rgba(214,39,40,${0.45 + 0.55 * Math.min(1, -Math.log10(Math.max(p, 1e-12)) / 8)})` : `rgba(31,119,180,${0.15 + 0.5 * Math.min(1, -Math.log10(Math.max(p, 1e-12)) / -Math.log10(threshold || 0.05))})`;
        svg.append(s("rect", { x: left + c * cw, y: top + r * ch, width: cw - 1, height: ch - 1, fill }, s("title", { text: `window #${w.id} ${shortTime(w.at)}: ${f} p=${p === undefined ? "not reported" : p.toExponential(2)}` })));
      });
      if (w.is_drift) svg.append(s("text", { x: left + c * cw + cw / 2, y: top + features.length * ch + 12, "text-anchor": "middle", class: "wb-drift-mark", text: "▲" }));
    });
    svg.append(s("text", { x: left, y: height - 6, class: "wb-axis-label", text: "windows, oldest → newest · ▲ drift · red: p below the threshold · grey: not among the most shifted" }));
    return svg;
  }

  function draw() {
    const m = model.get("monitor") || {};
    const windows = model.get("windows") || [];
    const features = model.get("features") || [];
    const alerts = model.get("alerts") || [];
    const jobs = model.get("jobs") || [];
    const drifts = windows.filter((w) => w.is_drift).length;
    head.replaceChildren(
      h("span", { class: "wb-title", text: `monitor ${m.name || "?"}` }),
      h("span", { class: "wb-muted", text: ` ${m.kind || ""} on ${m.deployment || "?"} · p_val ${fmt(m.p_val)} (${m.correction || "no"} correction) · ${windows.length} windows · ${drifts} with drift · ${alerts.length} alerts · ${jobs.length} retrain jobs` }),
    );
    const cards = [];
    const withScore = windows.filter((w) => typeof w.score === "number");
    if (withScore.length) {
      const thr = withScore[withScore.length - 1].threshold ?? m.p_val;
      const idx = Object.fromEntries(windows.map((w, i) => [w.id, i + 1]));
      const vlines = jobs.filter((j) => idx[j.drift_result_id]).map((j) => ({ x: idx[j.drift_result_id], color: "#9467bd", label: `retrain job #${j.id}: ${j.status}${j.decision ? ` (${j.decision})` : ""}`, short: `job #${j.id}` }));
      cards.push(h("div", {}, lineChart({
        title: "smallest p-value per window", yLog: true, xLabel: "window", yLabel: "p-value (log)",
        series: [{ name: "p min", color: "#1f77b4", width: 1.5, dots: true, points: windows.map((w, i) => [i + 1, w.score, w.is_drift ? "#d62728" : "#1f77b4"]) }],
        hlines: thr ? [{ y: thr, color: "#d62728", label: `threshold ${fmt(thr)}` }] : [], vlines, width: 460, height: 230,
        xDomain: [0.5, Math.max(1.5, windows.length + 0.5)],
      }), legend([["window without drift", "#1f77b4"], ["drift", "#d62728"], ["retraining", "#9467bd", true]])));
    }
    if (features.length && windows.length) cards.push(heat(features, windows, windows[windows.length - 1].threshold ?? m.p_val ?? 0.05));
    if (!cards.length) cards.push(h("div", { class: "wb-empty", text: "no window checked yet" }));
    const alertList = h("div", { class: "wb-card wb-list" }, h("div", { class: "wb-subtitle", text: "alerts (newest first)" }),
      alerts.length ? alerts.slice(0, 15).map((a) => h("div", { class: "wb-hist wb-alert", "data-alert": a.id },
        h("div", { class: `wb-sev-${a.severity}`, text: `${shortTime(a.last_at)} [${a.severity}] ${a.title}${a.count > 1 ? ` ×${a.count}` : ""}` }),
        a.triage || a.job ? h("div", { class: `wb-triage${a.triage ? (a.triage.harmful ? " wb-triage-harmful" : " wb-triage-harmless") : ""}`, title: (a.triage && a.triage.reason) || null, text: alertOutcome(a) }) : null)) : h("div", { class: "wb-empty", text: "no alerts" }));
    const jobList = h("div", { class: "wb-card wb-list" }, h("div", { class: "wb-subtitle", text: "retraining caused by drift" }),
      jobs.length ? jobs.slice().reverse().map((j) => h("div", { class: "wb-hist", "data-job": j.id }, `${shortTime(j.started_at)} job #${j.id} (drift result #${j.drift_result_id}): ${j.status}${j.decision ? ` — ${j.decision}` : ""} `,
        j.triage ? h("div", { class: `wb-triage ${j.triage.harmful ? "wb-triage-harmful" : "wb-triage-harmless"}`, title: j.triage.reason || null, text: `triage: ${j.triage.verdict}` }) : null,
        model.get("can_approve") && j.status === "PENDING_APPROVAL" ? [
          h("button", { class: "wb-btn", "data-action": "approve", text: "Approve", ...deny(model, "approve"), onclick: () => confirmBar(confirmHost, `Approve retrain job #${j.id}?`, () => send(model, "approve", { job_id: j.id, confirm: true })) }),
          h("button", { class: "wb-btn wb-danger", "data-action": "reject", text: "Reject", ...deny(model, "approve"), onclick: () => confirmBar(confirmHost, `Reject retrain job #${j.id}?`, () => send(model, "reject", { job_id: j.id, confirm: true })) }),
        ] : null)) : h("div", { class: "wb-empty", text: "no retraining yet" }));
    body.replaceChildren(h("div", { class: "wb-charts" }, cards.map((c) => h("div", { class: "wb-card wb-scroll" }, c))), h("div", { class: "wb-charts" }, alertList, jobList));
  }
  const redraw = scheduler(draw);
  const off = listen(model, ["monitor", "features", "windows", "alerts", "jobs", "can_approve"], redraw);
  draw();
  return () => { off(); offNotice(); box.remove(); };
}

// ------------------------------------------------------------------ lineage
// Layered layout: longest path from the sources gives the column, then a few
// barycentre sweeps order each column to cut crossings.
const TYPE_RANK = {
  dataset_version: 0, experiment: 1, model_version: 2, deployment: 3, monitor: 4,
  drift_result: 5, alert: 6, retrain_job: 6, retrain_step: 7,
};

// An edge is drawn left to right when it goes forward in the lifecycle; the closed loop
// (a retrain job producing data and a model that feed the same deployment) makes cycles,
// so edges back in the lifecycle are left out of the layering and drawn as arcs.
function forwardEdge(e, byKey) {
  const a = byKey[e.src], b = byKey[e.dst];
  const ra = TYPE_RANK[a.type] ?? 8, rb = TYPE_RANK[b.type] ?? 8;
  return ra < rb || (ra === rb && (a.type < b.type || (a.type === b.type && a.id < b.id)));
}

function layoutDag(nodes, edges) {
  const byKey = Object.fromEntries(nodes.map((n) => [n.key, n]));
  const keys = nodes.map((n) => n.key);
  const out = new Map(keys.map((k) => [k, []])), inc = new Map(keys.map((k) => [k, []]));
  for (const e of edges) {
    if (!byKey[e.src] || !byKey[e.dst] || e.src === e.dst || !forwardEdge(e, byKey)) continue;
    out.get(e.src).push(e.dst); inc.get(e.dst).push(e.src);
  }
  const layer = new Map();
  const indeg = new Map(keys.map((k) => [k, inc.get(k).length]));
  const queue = keys.filter((k) => indeg.get(k) === 0);
  for (const k of queue) layer.set(k, 0);
  while (queue.length) {
    const k = queue.shift();
    for (const d of out.get(k)) {
      layer.set(d, Math.max(layer.get(d) ?? 0, layer.get(k) + 1));
      indeg.set(d, indeg.get(d) - 1);
      if (indeg.get(d) === 0) queue.push(d);
    }
  }
  for (const k of keys) if (!layer.has(k)) layer.set(k, 0);
  const cols = [];
  for (const k of keys) (cols[layer.get(k)] ||= []).push(k);
  for (let i = 0; i < cols.length; i++) cols[i] ||= [];
  const pos = new Map();
  const place = () => cols.forEach((c) => c.forEach((k, i) => pos.set(k, i)));
  place();
  for (let sweep = 0; sweep < 4; sweep++) {
    for (const c of cols) {
      const bc = (k) => { const nb = [...inc.get(k), ...out.get(k)]; return nb.length ? nb.reduce((a, n) => a + pos.get(n), 0) / nb.length : pos.get(k); };
      const score = new Map(c.map((k) => [k, bc(k)]));
      c.sort((a, b) => score.get(a) - score.get(b));
      place();
    }
  }
  return { layer, pos, cols, byKey };
}

function renderLineage(model, root) {
  const box = h("div", { class: "wb-widget wb-lineage" });
  root.append(box);
  const head = h("div", { class: "wb-head" });
  const graph = h("div", { class: "wb-card wb-scroll wb-graph" });
  const detail = h("div", { class: "wb-card wb-detail" });
  box.append(head, graph, detail);

  function draw() {
    const nodes = model.get("nodes") || [];
    const edges = model.get("edges") || [];
    const rootKey = model.get("root");
    const selected = model.get("selected");
    head.replaceChildren(h("span", { class: "wb-title", text: "lineage" }), h("span", { class: "wb-muted", text: ` ${nodes.length} records, ${edges.length} links · click a node to see its record` }));
    if (!nodes.length) { graph.replaceChildren(h("div", { class: "wb-empty", text: "nothing recorded yet" })); return; }
    const { layer, pos, cols, byKey } = layoutDag(nodes, edges);
    const NW = 168, NH = 44, GX = 46, GY = 14, pad = 12;
    const rows = Math.max(...cols.map((c) => (c || []).length));
    const width = pad * 2 + cols.length * NW + (cols.length - 1) * GX, height = pad * 2 + rows * NH + (rows - 1) * GY + 10;
    const xy = (k) => {
      const c = cols[layer.get(k)];
      const off = ((rows - c.length) * (NH + GY)) / 2;
      return [pad + layer.get(k) * (NW + GX), pad + off + pos.get(k) * (NH + GY)];
    };
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "wb-chart wb-dag" });
    svg.append(s("defs", {}, s("marker", { id: "wbarrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0L10,5L0,10z", fill: "#888" }))));
    for (const e of edges) {
      if (!byKey[e.src] || !byKey[e.dst]) continue;
      const [x1, y1] = xy(e.src), [x2, y2] = xy(e.dst);
      const sx = x1 + NW, sy = y1 + NH / 2, tx = x2, ty = y2 + NH / 2;
      const back = tx <= sx || !forwardEdge(e, byKey);
      const d = back ? `M${x1 + NW / 2},${y1 + NH} C${x1 + NW / 2},${y1 + NH + 30} ${x2 + NW / 2},${y2 + NH + 30} ${x2 + NW / 2},${y2 + NH}` : `M${sx},${sy} C${sx + GX / 2},${sy} ${tx - GX / 2},${ty} ${tx},${ty}`;
      svg.append(s("path", { d, class: back ? "wb-edge wb-edge-back" : "wb-edge", "marker-end": "url(#wbarrow)" }, s("title", { text: `${byKey[e.src].type} #${byKey[e.src].id} ${e.relation} ${byKey[e.dst].type} #${byKey[e.dst].id} (${shortTime(e.at)})` })));
      if (!back && edges.length < 40) svg.append(s("text", { x: (sx + tx) / 2, y: (sy + ty) / 2 - 3, "text-anchor": "middle", class: "wb-edge-label", text: e.relation }));
    }
    for (const n of nodes) {
      const [x, y] = xy(n.key);
      const color = NODE_COLORS[n.type] || "#999";
      const g = s("g", { class: `wb-node${n.key === selected ? " wb-selected" : ""}${n.key === rootKey ? " wb-root" : ""}`, "data-key": n.key, tabindex: 0, role: "button",
        onclick: () => { model.set("selected", n.key); model.save_changes(); } });
      g.append(s("rect", { x, y, width: NW, height: NH, rx: 6, fill: "#fff", stroke: color, "stroke-width": n.key === selected ? 3 : n.key === rootKey ? 2.5 : 1.5 }));
      g.append(s("rect", { x, y, width: 6, height: NH, rx: 2, fill: color }));
      g.append(s("text", { x: x + 12, y: y + 16, class: "wb-node-type", text: `${n.type.replace(/_/g, " ")} #${n.id}` }));
      const short = n.short || n.label;
      const label = short.length > 26 ? `${short.slice(0, 25)}…` : short;
      g.append(s("text", { x: x + 12, y: y + 33, class: "wb-node-label", text: label }));
      g.append(s("title", { text: n.label }));
      svg.append(g);
    }
    const types = [...new Set(nodes.map((n) => n.type))];
    graph.replaceChildren(svg, legend(types.map((t) => [t.replace(/_/g, " "), NODE_COLORS[t] || "#999"])));
  }

  function drawDetail() {
    const r = model.get("record") || {};
    if (!r.type) { detail.replaceChildren(h("div", { class: "wb-subtitle", text: "record" }), h("div", { class: "wb-empty", text: "click a node" })); return; }
    const rows = Object.entries(r.record || {}).map(([k, v]) => h("tr", {}, h("th", { text: k }), h("td", {}, typeof v === "object" && v !== null ? h("pre", { text: JSON.stringify(v, null, 1).slice(0, 2000) }) : String(v ?? "–"))));
    detail.replaceChildren(h("div", { class: "wb-subtitle", text: `${r.type.replace(/_/g, " ")} #${r.id}` }), h("div", { class: "wb-desc", text: r.description || "" }), h("table", { class: "wb-table wb-kv" }, h("tbody", {}, rows)));
  }
  const redraw = scheduler(draw);
  const off = listen(model, ["nodes", "edges", "root", "selected"], redraw);
  const offRec = listen(model, ["record"], drawDetail);
  draw(); drawDetail();
  return () => { off(); offRec(); box.remove(); };
}

// ------------------------------------------------------------------ dataset
function shortValue(v) {
  if (v === null || v === undefined) return "null";
  const t = typeof v === "object" ? JSON.stringify(v) : String(v);
  return t.length > 60 ? `${t.slice(0, 59)}…` : t;
}

function rowsTable(rows, title) {
  if (!rows || !rows.length) return null;
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return h("div", { class: "wb-card wb-scroll" }, h("div", { class: "wb-subtitle", text: title }),
    h("table", { class: "wb-table" }, h("thead", {}, h("tr", {}, cols.map((c) => h("th", { text: c })))),
      h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", { class: typeof r[c] === "number" ? "wb-num" : "", text: shortValue(r[c]) })))))));
}

function reportTable(report) {
  if (!report.length) return h("div", { class: "wb-empty", text: "no checks recorded" });
  return h("table", { class: "wb-table wb-report" },
    h("thead", {}, h("tr", {}, ["", "check", "column", "severity", "failing", "examples", "detail"].map((c) => h("th", { text: c })))),
    h("tbody", {}, report.map((r) => h("tr", { class: r.passed ? "" : r.severity === "warn" ? "wb-warn-row" : "wb-fail-row", "data-check": r.check },
      h("td", { class: r.passed ? "wb-pass" : `wb-sev-${r.severity === "warn" ? "warning" : "error"}`, text: r.passed ? "ok" : "FAIL" }),
      h("td", { text: r.check || "?" }),
      h("td", { text: r.column || "" }),
      h("td", { text: r.severity || "error" }),
      h("td", { class: "wb-num", text: r.failing === null || r.failing === undefined ? "–" : String(r.failing) }),
      h("td", { text: (r.examples || []).slice(0, 3).map(shortValue).join("; ") }),
      h("td", { text: r.detail || "" }),
    ))));
}

function statsTable(stats) {
  const rows = (stats || []).filter((st) => st.kind !== "key");
  if (!rows.length) return null;
  const pair = (st, k) => `${fmt((st.a || {})[k])} → ${fmt((st.b || {})[k])}`;
  const tops = (side) => ((side || {}).top || []).slice(0, 3).map(([v, n]) => `${shortValue(v)}: ${n}`).join(", ") || "–";
  return h("div", { class: "wb-card wb-scroll" }, h("div", { class: "wb-subtitle", text: "column statistics (a → b)" }),
    h("table", { class: "wb-table" },
      h("thead", {}, h("tr", {}, ["column", "kind", "null rate", "mean", "std", "top categories", "shift"].map((c) => h("th", { text: c })))),
      h("tbody", {}, rows.map((st) => {
        const sh = st.shift || {};
        const moved = !st.a || !st.b || Object.values(sh).some((v) => v !== 0 && v !== null);
        return h("tr", { class: moved ? "wb-strong" : "" },
          h("td", { text: st.column }), h("td", { text: st.kind }), h("td", { text: pair(st, "null_rate") }),
          h("td", { text: st.kind === "numeric" ? pair(st, "mean") : "" }), h("td", { text: st.kind === "numeric" ? pair(st, "std") : "" }),
          h("td", { text: st.kind === "categorical" ? `${tops(st.a)} → ${tops(st.b)}` : "" }),
          h("td", { text: !st.a ? "only in b" : !st.b ? "only in a" : Object.entries(sh).map(([k, v]) => `${k} ${v > 0 ? "+" : ""}${fmt(v)}`).join(", ") }));
      }))));
}

function renderDataset(model, root) {
  const box = h("div", { class: "wb-widget wb-dataset" });
  root.append(box);
  const head = h("div", { class: "wb-head" });
  const { line: notice, off: offNotice } = noticeLine(model);
  const versionsCard = h("div", { class: "wb-card wb-table-wrap" });
  const reportCard = h("div", { class: "wb-card wb-scroll" });
  const pickA = h("select", { class: "wb-pick-a", title: "version a (old)" });
  const pickB = h("select", { class: "wb-pick-b", title: "version b (new)" });
  const keyInput = h("input", { class: "wb-key", size: 14, placeholder: "key columns", title: "columns identifying a row, comma-separated (empty: whole rows)" });
  const compareBtn = h("button", { class: "wb-btn", "data-action": "diff", text: "Compare",
    onclick: () => send(model, "diff", { a: Number(pickA.value), b: Number(pickB.value), key: keyInput.value }) });
  const diffBody = h("div", {});
  const diffCard = h("div", { class: "wb-card" }, h("div", { class: "wb-row" }, h("span", { class: "wb-subtitle", text: "diff " }), pickA, h("span", { text: " → " }), pickB, h("span", { text: " by " }), keyInput, compareBtn), diffBody);
  box.append(head, notice, versionsCard, reportCard, diffCard);

  function drawVersions() {
    const versions = model.get("versions") || [];
    const selected = model.get("selected");
    head.replaceChildren(h("span", { class: "wb-title", text: `dataset ${model.get("dataset_name")}` }), h("span", { class: "wb-muted", text: ` ${versions.length} versions · click one to see its validation report` }));
    versionsCard.replaceChildren(h("table", { class: "wb-table" },
      h("thead", {}, h("tr", {}, ["version", "rows", "columns", "hash", "checks", "failed", "source"].map((c) => h("th", { text: c })))),
      h("tbody", {}, versions.map((v) => h("tr", { class: v.version === selected ? "wb-best-row" : "", "data-version": v.version, style: "cursor: pointer",
        onclick: () => { model.set("selected", v.version); model.save_changes(); } },
        h("td", { text: `v${v.version}` }), h("td", { class: "wb-num", text: fmt(v.rows) }), h("td", { class: "wb-num", text: String(v.cols) }),
        h("td", { text: v.hash }), h("td", { class: "wb-num", text: String(v.checks) }),
        h("td", { class: v.errors ? "wb-sev-error" : v.warnings ? "wb-sev-warning" : "", text: v.errors || v.warnings ? `${v.errors} errors, ${v.warnings} warnings` : "none" }),
        h("td", { text: v.source || "" }))))));
    const cmp = model.get("compare") || {};
    for (const [pick, want] of [[pickA, cmp.a], [pickB, cmp.b]]) {
      const current = pick.value;
      pick.replaceChildren(...versions.map((v) => h("option", { value: v.version, text: `v${v.version}` })));
      const chosen = want ?? (current ? Number(current) : undefined);
      if (chosen !== undefined) pick.value = String(chosen);
    }
    if (document.activeElement !== keyInput) keyInput.value = (cmp.key || []).join(", ");
  }

  function drawReport() {
    const report = model.get("report") || [];
    const failed = report.filter((r) => !r.passed);
    reportCard.replaceChildren(
      h("div", { class: "wb-subtitle", text: `validation report of v${model.get("report_version") ?? "?"}: ${report.length - failed.length} of ${report.length} checks passed${failed.length ? ` · ${failed.filter((r) => r.severity !== "warn").length} errors, ${failed.filter((r) => r.severity === "warn").length} warnings failed` : ""}` }),
      reportTable(report));
  }

  function drawDiff() {
    const d = model.get("diff") || {};
    if (d.error) { diffBody.replaceChildren(h("div", { class: "wb-notice wb-error", text: d.error })); return; }
    if (d.added === undefined) { diffBody.replaceChildren(h("div", { class: "wb-empty", text: "pick two versions and Compare" })); return; }
    const parts = [`+${d.added} added`, `−${d.removed} removed`];
    if (d.changed !== null && d.changed !== undefined) parts.push(`~${d.changed} changed`);
    parts.push(`${d.unchanged} unchanged`);
    const schema = [
      ...Object.entries(d.added_columns || {}).map(([c, t]) => h("span", { class: "wb-chip wb-alias-chip", text: `+ ${c} (${t})` })),
      ...Object.entries(d.removed_columns || {}).map(([c, t]) => h("span", { class: "wb-chip wb-sev-error", text: `− ${c} (${t})` })),
      ...Object.entries(d.type_changes || {}).map(([c, [ta, tb]]) => h("span", { class: "wb-chip wb-sev-warning", text: `~ ${c}: ${ta} → ${tb}` })),
    ];
    const changedCols = Object.entries(d.changed_columns || {}).filter(([, n]) => n);
    const changed = (d.changed_examples || []).flatMap((e) => Object.entries(e.changes).map(([c, [o, n]]) => ({ key: Object.entries(e.key).map(([k, v]) => `${k}=${shortValue(v)}`).join(", "), column: c, old: o, new: n })));
    diffBody.replaceChildren(
      h("div", { class: "wb-diff-summary", text: `${d.a} → ${d.b}: rows ${d.rows_a} → ${d.rows_b} (${parts.join(", ")}; ${d.key ? `by key ${d.key.join(", ")}` : "as whole rows"})` }),
      h("div", { class: "wb-row" }, schema.length ? schema : h("span", { class: "wb-muted", text: "columns unchanged" })),
      changedCols.length ? h("div", { class: "wb-muted", text: `changed columns (rows): ${changedCols.map(([c, n]) => `${c} (${n})`).join(", ")}` }) : null,
      h("div", { class: "wb-charts" }, rowsTable(d.added_examples, "added rows"), rowsTable(d.removed_examples, "removed rows"), rowsTable(changed, "changed rows (old → new)")),
      statsTable(d.stats),
    );
  }
  const redrawVersions = scheduler(drawVersions);
  const redrawReport = scheduler(drawReport);
  const redrawDiff = scheduler(drawDiff);
  const offs = [
    listen(model, ["versions", "selected", "compare", "dataset_name"], redrawVersions),
    listen(model, ["report", "report_version", "selected"], redrawReport),
    listen(model, ["diff"], redrawDiff),
  ];
  drawVersions(); drawReport(); drawDiff();
  return () => { offs.forEach((f) => f()); offNotice(); box.remove(); };
}

const RENDERERS = {
  experiment: renderExperiment, registry: renderRegistry, deployment: renderDeployment,
  monitor: renderMonitor, lineage: renderLineage, dataset: renderDataset,
};

function render({ model, el }) {
  const kind = model.get("kind");
  const fn = RENDERERS[kind];
  if (!fn) { el.textContent = `unknown workbench widget kind ${kind}`; return () => {}; }
  return fn(model, el);
}

export default { render };
