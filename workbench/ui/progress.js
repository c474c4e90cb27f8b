// Progress of a Ray Tune search: bar, counts, best-so-far. State comes only from synced traits.
const TRAITS = [
  "experiment", "total", "done", "running", "errored", "pending",
  "best_metric", "best_value", "best_trial", "elapsed_s", "status", "note",
];

function formatValue(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  const a = Math.abs(v);
  return v === 0 || (a >= 1e-3 && a < 1e4) ? v.toFixed(4) : v.toPrecision(4);
}

function formatElapsed(s) {
  s = Math.max(0, Number(s) || 0);
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function el(tag, className, parent) {
  const node = document.createElement(tag);
  node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function render({ model, el: root }) {
  const box = el("div", "wb-progress", root);
  const head = el("div", "wb-progress-head", box);
  const title = el("span", "wb-progress-title", head);
  const status = el("span", "wb-progress-status", head);
  const track = el("div", "wb-progress-track", box);
  track.setAttribute("role", "progressbar");
  const fill = el("div", "wb-progress-fill", track);
  const counts = el("div", "wb-progress-counts", box);
  const best = el("div", "wb-progress-best", box);
  const note = el("div", "wb-progress-note", box);

  function update() {
    const total = model.get("total");
    const done = model.get("done") || 0;
    const st = model.get("status") || "RUNNING";
    title.textContent = `experiment ${model.get("experiment") || "?"}`;
    status.textContent = st;
    note.textContent = model.get("note") || "";
    note.hidden = !note.textContent;
    box.dataset.status = st;
    if (total === null || total === undefined || total <= 0) {
      // Unknown size: an indeterminate bar, full once the search ends.
      track.removeAttribute("aria-valuenow");
      fill.style.width = st === "RUNNING" ? "0%" : "100%";
      box.classList.toggle("wb-indeterminate", st === "RUNNING");
    } else {
      const pct = Math.min(100, (100 * done) / total);
      track.setAttribute("aria-valuemin", "0");
      track.setAttribute("aria-valuemax", String(total));
      track.setAttribute("aria-valuenow", String(done));
      fill.style.width = `${pct}%`;
      box.classList.remove("wb-indeterminate");
    }
    const of = total === null || total === undefined ? "" : `/${total}`;
    counts.textContent =
      `${done}${of} trials done · running ${model.get("running") || 0}` +
      ` · pending ${model.get("pending") || 0} · errors ${model.get("errored") || 0}` +
      ` · ${formatElapsed(model.get("elapsed_s"))}`;
    const metric = model.get("best_metric");
    best.textContent = metric
      ? `best ${metric} = ${formatValue(model.get("best_value"))} (trial ${model.get("best_trial") || "?"})`
      : "best: no result yet";
  }

  const events = TRAITS.map((name) => `change:${name}`);
  for (const ev of events) model.on(ev, update);
  update();
  return () => {
    for (const ev of events) model.off(ev, update);
    box.remove();
  };
}

export default { render };
