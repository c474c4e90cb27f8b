import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import { reportUrl } from './api';
import {
  EvaluationView,
  PanelModel,
  PanelState,
  TABS,
  TabId,
  datasetNames,
  deniedTitle,
  may,
  trialCv,
  trialMetric,
  versionsOf
} from './model';

/** Escape text for innerHTML. */
function esc(value: unknown): string {
  return String(value ?? '').replace(
    /[&<>"']/g,
    c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string
  );
}

/** ` disabled title="…"` on a button whose action the panel's user may not take, else ''. */
function guard(s: PanelState, action: string): string {
  return may(s.me, action) ? '' : ` disabled data-denied="${esc(action)}" title="${esc(deniedTitle(s.me, action))}"`;
}

function num(value: unknown, digits = 4): string {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function configText(config: any): string {
  if (!config || typeof config !== 'object') {
    return '';
  }
  return Object.entries(config)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`)
    .join(' ');
}

/** A p-value: 2 significant digits, under 0.001 in exponent form. */
function pValue(value: unknown): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return '–';
  }
  if (value === 0) {
    return '0'; // under float precision: the test could not tell it from 0
  }
  return Math.abs(value) < 0.001 ? value.toExponential(1) : value.toPrecision(2);
}

/** "2026-11-27T13:44:11.123+00:00" → "11-27 13:44:11". */
function shortTime(value: unknown): string {
  const m = /^\d{4}-(\d\d-\d\d)[T ](\d\d:\d\d:\d\d)/.exec(String(value ?? ''));
  return m ? `${m[1]} ${m[2]}` : String(value ?? '');
}

/** A drift result's verdict (recorded in its detail), else drift/ok from its flag. */
function resultVerdict(r: any): string {
  const v = r && r.detail && r.detail.verdict;
  return typeof v === 'string' && v ? v : r && r.is_drift ? 'drift' : 'ok';
}

/**
 * Under an alert: the triage of the retraining its drift window started (`triage.verdict`, the
 * text the monitor widget shows too) and what that job decided; nothing when it started none.
 */
function alertOutcome(a: any): string {
  const t = a && a.triage;
  const j = a && a.job;
  const job = j ? `retrain job #${j.id}: ${j.status}${j.decision ? ` — ${j.decision}` : ''}` : '';
  if (!t && !job) {
    return '';
  }
  const mod = t ? (t.harmful ? ' jp-mod-harmful' : ' jp-mod-harmless') : '';
  const text = t ? `triage: ${t.verdict}${job ? ` → ${job}` : ''}` : job;
  const reason = t && t.reason ? ` title="${esc(t.reason)}"` : '';
  return `<div class="jp-WorkbenchPanel-triage${mod}" data-job="${esc(j ? j.id : '')}"${reason}>${esc(text)}</div>`;
}

/**
 * `bench.lineage_text` as blocks that read in a narrow sidebar: each edge is its source with its
 * time, then "↳ relation → target" indented under it (the text's 21-space alignment would wrap
 * into noise); the traffic history lines follow as a list.
 */
function lineageHtml(text: string): string {
  if (!text) {
    return '<p class="jp-WorkbenchPanel-empty">no lineage recorded for this version</p>';
  }
  const out: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const head = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\s\s(.*)$/.exec(line);
    const edge = i + 1 < lines.length ? /^\s+--(\S+?)-->\s(.*)$/.exec(lines[i + 1]) : null;
    if (head && edge) {
      out.push(
        `<div class="jp-WorkbenchPanel-edge" data-relation="${esc(edge[1])}">` +
          `<div class="jp-WorkbenchPanel-node">${esc(head[2])} <small>${esc(shortTime(head[1]))}</small></div>` +
          `<div class="jp-WorkbenchPanel-relation">↳ <b>${esc(edge[1])}</b> → ${esc(edge[2])}</div></div>`
      );
      i++;
    } else if (/^traffic history of /.test(line)) {
      out.push(`<h4 class="jp-WorkbenchPanel-trafficHead">${esc(line.replace(/:$/, ''))}</h4>`);
    } else if (line.trim()) {
      out.push(`<div class="jp-WorkbenchPanel-trafficLine">${esc(line.trim())}</div>`);
    }
  }
  return out.join('');
}

/** A cell value in a narrow table: JSON for objects, "null" for a null, cut at 40 characters. */
function cell(value: unknown): string {
  const text =
    value === null || value === undefined
      ? 'null'
      : typeof value === 'object'
        ? JSON.stringify(value)
        : typeof value === 'number' && !Number.isInteger(value)
          ? String(Number(value.toPrecision(4)))
          : String(value);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** A validation report: one row per check, failures first (errors, then warnings). */
function reportHtml(report: any[]): string {
  if (!report.length) {
    return '<p class="jp-WorkbenchPanel-empty">no checks recorded</p>';
  }
  const rank = (r: any) => (r.passed ? 2 : r.severity === 'warn' ? 1 : 0);
  const rows = report
    .slice()
    .sort((x, y) => rank(x) - rank(y))
    .map(r => {
      const state = r.passed ? 'ok' : r.severity === 'warn' ? 'warn' : 'fail';
      const examples = (r.examples || []).slice(0, 3).map(cell).join('; ');
      return (
        `<tr class="jp-WorkbenchPanel-check jp-mod-${state}" data-check="${esc(r.check)}" data-passed="${r.passed ? 'true' : 'false'}">` +
        `<td>${r.passed ? 'ok' : 'FAIL'}</td><td>${esc(r.check || '?')}${r.column ? ` <small>[${esc(r.column)}]</small>` : ''}` +
        `<div class="jp-WorkbenchPanel-sub">${esc(r.detail || '')}${examples ? ` · e.g. ${esc(examples)}` : ''}</div></td>` +
        `<td>${esc(r.severity || 'error')}</td><td>${r.failing === null || r.failing === undefined ? '–' : esc(r.failing)}</td></tr>`
      );
    })
    .join('');
  return `<table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-report"><thead><tr><th></th><th>check · detail</th><th>severity</th><th>failing</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** What `DatasetDiff.to_dict()` says, for a sidebar: summary, schema, changed rows, statistics. */
function diffHtml(d: any): string {
  const parts = [`+${d.added} added`, `−${d.removed} removed`];
  if (d.changed !== null && d.changed !== undefined) {
    parts.push(`~${d.changed} changed`);
  }
  parts.push(`${d.unchanged} unchanged`);
  const summary =
    `<p class="jp-WorkbenchPanel-diffSummary">${esc(d.a)} → ${esc(d.b)}: rows ${esc(d.rows_a)} → ${esc(d.rows_b)} ` +
    `(${esc(parts.join(', '))}; ${d.key ? `by key ${esc(d.key.join(', '))}` : 'as whole rows'})</p>`;
  const schema = [
    ...Object.entries(d.added_columns || {}).map(([c, t]) => `+ ${c} (${t})`),
    ...Object.entries(d.removed_columns || {}).map(([c, t]) => `− ${c} (${t})`),
    ...Object.entries(d.type_changes || {}).map(
      ([c, t]) => `~ ${c}: ${(t as string[])[0]} → ${(t as string[])[1]}`
    )
  ];
  const changedCols = Object.entries(d.changed_columns || {}).filter(([, n]) => Number(n) > 0);
  const changed = (d.changed_examples || [])
    .flatMap((e: any) =>
      Object.entries(e.changes || {}).map(([c, v]) => {
        const [o, n] = v as unknown[];
        const key = Object.entries(e.key || {})
          .map(([k, x]) => `${k}=${cell(x)}`)
          .join(', ');
        return `<li>${esc(key)}: <b>${esc(c)}</b> ${esc(cell(o))} → ${esc(cell(n))}</li>`;
      })
    )
    .join('');
  const rowList = (rows: any[], title: string) =>
    rows && rows.length
      ? `<h4>${esc(title)}</h4><ul class="jp-WorkbenchPanel-rows">${rows
          .map(
            r =>
              `<li>${esc(
                Object.entries(r)
                  .map(([k, v]) => `${k}=${cell(v)}`)
                  .join(', ')
              )}</li>`
          )
          .join('')}</ul>`
      : '';
  const pair = (st: any, k: string) =>
    `${cell((st.a || {})[k] ?? null)} → ${cell((st.b || {})[k] ?? null)}`;
  const stats = (d.stats || [])
    .filter((st: any) => st.kind !== 'key')
    .map((st: any) => {
      const shift = st.shift || {};
      const moved = !st.a || !st.b || Object.values(shift).some(v => v !== 0 && v !== null);
      const what =
        st.kind === 'numeric'
          ? `mean ${pair(st, 'mean')}, std ${pair(st, 'std')}`
          : st.kind === 'categorical'
            ? `tvd ${cell(shift.tvd ?? null)}`
            : '';
      return (
        `<tr class="jp-WorkbenchPanel-stat${moved ? ' jp-mod-moved' : ''}" data-column="${esc(st.column)}">` +
        `<td>${esc(st.column)}</td><td>${esc(pair(st, 'null_rate'))}</td><td>${esc(what)}</td></tr>`
      );
    })
    .join('');
  return (
    summary +
    `<p>${schema.length ? schema.map(x => `<span class="jp-WorkbenchPanel-alias">${esc(x)}</span>`).join(' ') : 'columns unchanged'}</p>` +
    (changedCols.length
      ? `<p class="jp-WorkbenchPanel-sub">changed columns (rows): ${esc(changedCols.map(([c, n]) => `${c} (${n})`).join(', '))}</p>`
      : '') +
    (changed ? `<h4>changed rows (old → new)</h4><ul class="jp-WorkbenchPanel-rows">${changed}</ul>` : '') +
    rowList(d.added_examples, 'added rows') +
    rowList(d.removed_examples, 'removed rows') +
    (stats
      ? `<h4>column statistics (a → b)</h4><table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-stats"><thead><tr><th>column</th><th>null rate</th><th>shift</th></tr></thead><tbody>${stats}</tbody></table>`
      : '')
  );
}

function confirmLabel(s: PanelState): string {
  const c = s.confirm;
  if (!c) {
    return '';
  }
  if (c.kind === 'promote') {
    return `Promote v${c.version}`;
  }
  if (c.kind === 'rollback') {
    return 'Roll back';
  }
  return c.approve ? 'Approve' : 'Reject';
}

/**
 * The workbench side panel: tabs over the model's state. Rendering is a function of the state;
 * clicks call the model. Hidden (collapsed sidebar or hidden browser tab) means no polling.
 */
export class WorkbenchPanel extends Widget {
  readonly model: PanelModel;
  private body: HTMLElement;
  private rendered = '';

  constructor(model: PanelModel) {
    super();
    this.model = model;
    this.id = 'jp-workbench-panel';
    this.addClass('jp-WorkbenchPanel');
    this.title.caption = 'workbench';
    this.node.innerHTML =
      '<div class="jp-WorkbenchPanel-tabs" role="tablist">' +
      TABS.map(
        t =>
          `<button class="jp-WorkbenchPanel-tab" role="tab" data-tab="${t.id}">${t.label}</button>`
      ).join('') +
      '</div><div class="jp-WorkbenchPanel-body"></div>';
    this.body = this.node.querySelector('.jp-WorkbenchPanel-body') as HTMLElement;
    this.node.addEventListener('click', this.onClick);
    this.node.addEventListener('input', this.onInput);
    model.subscribe(state => this.render(state));
    document.addEventListener('visibilitychange', this.onVisibility);
    this.render(model.state);
  }

  dispose(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.model.stop();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    this.model.setVisible(!document.hidden);
  }

  protected onAfterHide(msg: Message): void {
    this.model.setVisible(false);
  }

  private onVisibility = (): void => {
    this.model.setVisible(this.isVisible && !document.hidden);
  };

  private onClick = (event: Event): void => {
    const target = (event.target as HTMLElement).closest('[data-tab],[data-action]') as
      | HTMLElement
      | null;
    if (!target) {
      return;
    }
    const d = target.dataset;
    if (d.tab) {
      this.model.selectTab(d.tab as TabId);
      return;
    }
    switch (d.action) {
      case 'experiment':
        this.model.selectExperiment(Number(d.id));
        break;
      case 'evaluation':
        void this.model.showEvaluation(d.model as string, Number(d.version));
        break;
      case 'promote':
        this.model.askPromote(d.model as string, Number(d.version), d.alias || 'champion');
        break;
      case 'apply-traffic':
        void this.model.applyTraffic(d.deployment as string);
        break;
      case 'rollback':
        this.model.askRollback(d.deployment as string);
        break;
      case 'approve':
      case 'reject':
        this.model.askRetrain(Number(d.job), d.action === 'approve');
        break;
      case 'confirm':
        void this.model.confirmPending();
        break;
      case 'cancel':
        this.model.cancelPending();
        break;
      case 'dataset':
        this.model.selectDataset(d.name as string);
        break;
      case 'dataset-version':
        this.model.selectDatasetVersion(Number(d.version));
        break;
      case 'dataset-diff': {
        const form = target.closest('.jp-WorkbenchPanel-diffForm') as HTMLElement;
        const pick = (n: string) => Number((form.querySelector(`[name=${n}]`) as HTMLSelectElement).value);
        const key = (form.querySelector('[name=key]') as HTMLInputElement).value;
        void this.model.diffDatasets(pick('a'), pick('b'), key);
        break;
      }
      case 'lineage': {
        const form = target.closest('.jp-WorkbenchPanel-lineageForm') as HTMLElement;
        const model = (form.querySelector('[name=model]') as HTMLSelectElement).value;
        const version = (form.querySelector('[name=version]') as HTMLInputElement).value;
        void this.model.showLineage(model, version || 'champion');
        break;
      }
    }
  };

  private onInput = (event: Event): void => {
    const input = event.target as HTMLInputElement;
    if (input.dataset.action === 'weight') {
      this.model.setDraft(
        input.dataset.deployment as string,
        input.dataset.version as string,
        Number(input.value)
      );
    }
  };

  /** Rebuild the body from the state (skipped when the HTML would be the same). */
  render(state: PanelState): void {
    for (const button of Array.from(this.node.querySelectorAll('.jp-WorkbenchPanel-tab'))) {
      button.classList.toggle('jp-mod-active', (button as HTMLElement).dataset.tab === state.tab);
      button.setAttribute('aria-selected', String((button as HTMLElement).dataset.tab === state.tab));
    }
    const html = this.bodyHtml(state);
    if (html === this.rendered) {
      return;
    }
    this.rendered = html;
    this.body.innerHTML = html;
    this.node.dataset.status = state.status;
  }

  private bodyHtml(s: PanelState): string {
    const head =
      (s.message
        ? `<div class="jp-WorkbenchPanel-message jp-WorkbenchPanel-${esc(s.status)}">${esc(s.message)}</div>`
        : '') +
      (s.notice
        ? `<div class="jp-WorkbenchPanel-notice ${s.notice.ok ? 'jp-mod-ok' : 'jp-mod-error'}">${esc(s.notice.text)}</div>`
        : '') +
      (s.me && s.me.enforced
        ? `<div class="jp-WorkbenchPanel-identity" title="what you may do: ${esc(s.me.allowed.join(', ') || 'nothing')}">as <b>${esc(s.me.user)}</b> · ${esc(s.me.roles.join(', ') || 'no role')}</div>`
        : '') +
      (s.confirm
        ? `<div class="jp-WorkbenchPanel-confirm" role="alertdialog" data-kind="${esc(s.confirm.kind)}"><p>${esc(s.confirm.text)}</p>` +
          `<button class="jp-WorkbenchPanel-button jp-mod-accept" data-action="confirm">${esc(confirmLabel(s))}</button>` +
          '<button class="jp-WorkbenchPanel-button" data-action="cancel">Cancel</button></div>'
        : '');
    if (s.status === 'missing' || s.status === 'checking') {
      return head;
    }
    switch (s.tab) {
      case 'experiments':
        return head + this.experimentsHtml(s);
      case 'models':
        return head + this.modelsHtml(s);
      case 'deployments':
        return head + this.deploymentsHtml(s);
      case 'monitors':
        return head + this.monitorsHtml(s);
      case 'lineage':
        return head + this.lineageHtml(s);
      case 'datasets':
        return head + this.datasetsHtml(s);
    }
  }

  private datasetsHtml(s: PanelState): string {
    if (s.datasets === null) {
      return '<p class="jp-WorkbenchPanel-empty">loading…</p>';
    }
    if (!s.datasets.length) {
      return '<p class="jp-WorkbenchPanel-empty">No datasets yet: <code>bench.datasets.ingest(path, name=...)</code>.</p>';
    }
    const names = datasetNames(s.datasets)
      .map(
        n =>
          `<button class="jp-WorkbenchPanel-button${n === s.dataset ? ' jp-mod-selected' : ''}" data-action="dataset" data-name="${esc(n)}">${esc(n)}</button>`
      )
      .join(' ');
    const versions = s.datasets
      .filter(v => v.name === s.dataset)
      .slice()
      .reverse()
      .map(
        v =>
          `<tr class="jp-WorkbenchPanel-datasetVersion${v.version === s.datasetVersion ? ' jp-mod-selected' : ''}" data-action="dataset-version" data-version="${esc(v.version)}">` +
          `<td><b>v${esc(v.version)}</b></td><td>${esc(v.rows)} × ${esc(v.columns)}</td>` +
          `<td class="${v.errors ? 'jp-mod-fail' : v.warnings ? 'jp-mod-warn' : ''}">${v.errors || v.warnings ? `${esc(v.errors)} errors, ${esc(v.warnings)} warnings` : `${esc(v.checks)} checks passed`}</td></tr>`
      )
      .join('');
    const r = s.report;
    const report =
      r && r.name === s.dataset
        ? `<h3>Validation report of ${esc(r.name)} v${esc(r.version)}</h3>${reportHtml(r.report)}`
        : '';
    const numbers = versionsOf(s.datasets, s.dataset);
    const d = s.diff;
    const options = (chosen: number | undefined) =>
      numbers
        .map(n => `<option value="${n}"${n === chosen ? ' selected' : ''}>v${n}</option>`)
        .join('');
    const form =
      numbers.length >= 2
        ? `<div class="jp-WorkbenchPanel-diffForm"><select name="a" aria-label="version a">${options(d ? d.a : numbers[numbers.length - 2])}</select> → ` +
          `<select name="b" aria-label="version b">${options(d ? d.b : numbers[numbers.length - 1])}</select> ` +
          `<input name="key" size="8" placeholder="key" value="${esc(d ? d.key.join(', ') : '')}" aria-label="key columns, comma-separated"> ` +
          '<button class="jp-WorkbenchPanel-button" data-action="dataset-diff">Compare</button></div>'
        : '<p class="jp-WorkbenchPanel-empty">one version: nothing to compare yet</p>';
    const diff = d
      ? d.error
        ? `<div class="jp-WorkbenchPanel-notice jp-mod-error">${esc(d.error)}</div>`
        : `<div class="jp-WorkbenchPanel-diff">${diffHtml(d.diff)}</div>`
      : '';
    return (
      `<div class="jp-WorkbenchPanel-datasets">${names}</div>` +
      `<table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-datasetVersions"><thead><tr><th>version</th><th>rows × cols</th><th>checks</th></tr></thead><tbody>${versions}</tbody></table>` +
      report +
      `<h3>Diff</h3>${form}${diff}`
    );
  }

  private experimentsHtml(s: PanelState): string {
    if (s.experiments === null) {
      return '<p class="jp-WorkbenchPanel-empty">loading…</p>';
    }
    if (!s.experiments.length) {
      return '<p class="jp-WorkbenchPanel-empty">No experiments yet: run <code>bench.experiments.search(...)</code> in a notebook.</p>';
    }
    const exps = s.experiments
      .slice()
      .reverse()
      .map(
        e =>
          `<tr class="jp-WorkbenchPanel-experiment${e.id === s.selectedExperiment ? ' jp-mod-selected' : ''}" data-action="experiment" data-id="${esc(e.id)}">` +
          `<td>${esc(e.id)}</td><td>${esc(e.name)}</td><td>${esc(e.status)}</td><td>${esc(e.n_trials)}</td></tr>`
      )
      .join('');
    const exp = s.experiments.find(e => e.id === s.selectedExperiment);
    let trials = '';
    if (exp) {
      const metric = exp.metric || 'f1';
      // the CV column appears once any trial recorded folds (the built-in trainable does)
      const withCv = (s.trials || []).some(t => trialCv(t, metric) !== null);
      const rows = (s.trials || [])
        .map(
          t =>
            `<tr class="jp-WorkbenchPanel-trial" data-trial="${esc(t.trial_id)}"><td>${esc(t.trial_id)}</td>` +
            `<td>${esc(t.status)}</td><td>${num(trialMetric(t, metric))}</td>` +
            (withCv
              ? `<td class="jp-WorkbenchPanel-cv" title="mean over folds [95% interval]">${esc(trialCv(t, metric) ?? '–')}</td>`
              : '') +
            `<td class="jp-WorkbenchPanel-config" title="${esc(configText(t.config))}">${esc(configText(t.config))}</td></tr>`
        )
        .join('');
      const cols = withCv ? 5 : 4;
      trials =
        `<h3>Trials of ${esc(exp.name)} (#${esc(exp.id)}, ${esc(metric)} ${esc(exp.mode || '')})</h3>` +
        `<table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-trials"><thead><tr><th>trial</th><th>status</th><th>${esc(metric)}</th>` +
        (withCv ? `<th>CV ${esc(metric)} [95%]</th>` : '') +
        `<th>config</th></tr></thead>` +
        `<tbody>${rows || `<tr><td colspan="${cols}">no trials yet</td></tr>`}</tbody></table>`;
    }
    return (
      '<table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-experiments"><thead><tr><th>#</th><th>name</th><th>status</th><th>trials</th></tr></thead>' +
      `<tbody>${exps}</tbody></table>${trials}`
    );
  }

  private modelsHtml(s: PanelState): string {
    if (s.models === null) {
      return '<p class="jp-WorkbenchPanel-empty">loading…</p>';
    }
    if (!s.models.length) {
      return '<p class="jp-WorkbenchPanel-empty">No registered models yet: <code>bench.register_best(...)</code>.</p>';
    }
    const rows = s.models
      .map(v => {
        const aliases = (v.aliases || []) as string[];
        const metrics = Object.entries(v.metrics || {})
          .filter(([, x]) => typeof x === 'number')
          .slice(0, 3)
          .map(([k, x]) => `${esc(k)} ${num(x, 3)}`)
          .join(', ');
        const promote = aliases.includes('champion')
          ? ''
          : `<button class="jp-WorkbenchPanel-button" data-action="promote" data-model="${esc(v.model)}" data-version="${esc(v.version)}"${guard(s, 'promote')}>Promote</button>`;
        const ev = s.evaluation;
        const shown = ev !== null && ev.model === v.model && ev.version === v.version;
        return (
          `<tr class="jp-WorkbenchPanel-version${shown ? ' jp-mod-selected' : ''}" data-model="${esc(v.model)}" data-version="${esc(v.version)}">` +
          `<td>${esc(v.model)} <b>v${esc(v.version)}</b><div class="jp-WorkbenchPanel-sub">${metrics}</div></td>` +
          `<td>${aliases.map(a => `<span class="jp-WorkbenchPanel-alias">${esc(a)}</span>`).join(' ')}</td>` +
          `<td>${promote}<button class="jp-WorkbenchPanel-button" data-action="evaluation" data-model="${esc(v.model)}" data-version="${esc(v.version)}" title="show this version's evaluation">Eval</button></td></tr>`
        );
      })
      .join('');
    return (
      `<table class="jp-WorkbenchPanel-table"><thead><tr><th>version · metrics</th><th>aliases</th><th></th></tr></thead><tbody>${rows}</tbody></table>` +
      this.evaluationHtml(s.evaluation)
    );
  }

  /** The evaluation of the version picked (or the champion): metrics with CV intervals, the gate, groups, the report. */
  private evaluationHtml(ev: EvaluationView | null): string {
    if (ev === null) {
      return '';
    }
    const title = `<h3>Evaluation of ${esc(ev.model)} v${esc(ev.version)}</h3>`;
    const e = ev.summary;
    if (e === null) {
      return (
        `<div class="jp-WorkbenchPanel-evaluation" data-model="${esc(ev.model)}" data-version="${esc(ev.version)}">${title}` +
        '<p class="jp-WorkbenchPanel-empty">No recorded evaluation: register a version with a holdout (<code>bench.register_best(..., holdout=...)</code>).</p></div>'
      );
    }
    const metrics = e.metrics
      .map(
        m =>
          `<tr data-metric="${esc(m.name)}"><td>${esc(m.name)}</td><td>${num(m.value)}</td>` +
          `<td>${m.cv && m.cv.ci_low !== null ? `${num(m.cv.mean, 3)} [${num(m.cv.ci_low, 3)}, ${num(m.cv.ci_high, 3)}]` : m.cv ? num(m.cv.mean, 3) : '–'}</td></tr>`
      )
      .join('');
    let gate = '';
    if (e.gate) {
      const g = e.gate;
      const interval = Array.isArray(g.interval) ? `, interval [${num(g.interval[0])}, ${num(g.interval[1])}]` : '';
      gate =
        `<div class="jp-WorkbenchPanel-gate ${g.passed ? 'jp-mod-passed' : 'jp-mod-refused'}" data-passed="${g.passed ? 'true' : 'false'}">` +
        `<b>gate ${g.passed ? 'passed' : 'refused'}</b> ${esc(g.metric)}: ${num(g.champion)} → ${num(g.challenger)}` +
        `${g.test ? ` · ${esc(g.test)}` : ''}${g.n ? `, n=${esc(g.n)}` : ''}${interval}` +
        `${typeof g.p_value === 'number' ? `, p=${num(g.p_value)}` : ''}${g.evidence ? ` · ${esc(g.evidence)}` : ''}` +
        `<div class="jp-WorkbenchPanel-sub">${esc(g.reason || '')}</div></div>`;
    }
    let groups = '';
    const f = e.fairness;
    if (f && f.groups.length) {
      groups =
        `<h4>Per group (${esc(f.features.join(', '))})</h4><table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-groups"><thead><tr><th>group</th><th>n</th>` +
        f.metrics.map(m => `<th>${esc(m)}</th>`).join('') +
        '</tr></thead><tbody>' +
        f.groups
          .map(
            g =>
              `<tr data-group="${esc(g.group)}"><td>${esc(g.feature)}=${esc(g.group)}</td><td>${esc(g.count ?? '–')}</td>` +
              f.metrics.map(m => `<td>${num(g.values[m], 3)}</td>`).join('') +
              '</tr>'
          )
          .join('') +
        '</tbody></table>' +
        Object.entries(f.gaps)
          .map(
            ([feat, gaps]) =>
              `<div class="jp-WorkbenchPanel-sub">gaps by ${esc(feat)}: ${Object.entries(gaps)
                .map(([k, v]) => `${esc(k)} ${num(v, 3)}`)
                .join(', ')}</div>`
          )
          .join('');
    }
    return (
      `<div class="jp-WorkbenchPanel-evaluation" data-model="${esc(ev.model)}" data-version="${esc(ev.version)}">${title}` +
      `<div class="jp-WorkbenchPanel-sub">${e.n !== null ? `${esc(e.n)} holdout rows · ` : ''}${esc(shortTime(e.createdAt))}</div>` +
      `<table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-evalMetrics"><thead><tr><th>metric</th><th>holdout</th><th>CV mean [95%]</th></tr></thead><tbody>${metrics}</tbody></table>` +
      gate +
      groups +
      `<p><a class="jp-WorkbenchPanel-button jp-WorkbenchPanel-report" href="${esc(reportUrl(ev.model, ev.version))}" target="_blank" rel="noopener">Open report</a></p></div>`
    );
  }

  private deploymentsHtml(s: PanelState): string {
    if (s.deployments === null) {
      return '<p class="jp-WorkbenchPanel-empty">loading…</p>';
    }
    if (!s.deployments.length) {
      return '<p class="jp-WorkbenchPanel-empty">No deployments yet: <code>bench.serving.deploy(model)</code>.</p>';
    }
    return s.deployments
      .map(d => {
        const draft = s.drafts[d.name] || {};
        const sliders = Object.entries(d.weights || {})
          .map(([version, w]) => {
            const value = draft[version] ?? Math.round(Number(w) * 100);
            return (
              `<label class="jp-WorkbenchPanel-weight">v${esc(version)} ` +
              `<input type="range" min="0" max="100" step="1" value="${esc(value)}" data-action="weight" data-deployment="${esc(d.name)}" data-version="${esc(version)}" aria-label="weight of version ${esc(version)}"${guard(s, 'traffic')}> ` +
              `<span>${esc(value)}%</span> <small>(serving ${Math.round(Number(w) * 100)}%)</small></label>`
            );
          })
          .join('');
        return (
          `<section class="jp-WorkbenchPanel-deployment" data-deployment="${esc(d.name)}">` +
          `<h3>${esc(d.name)} <small>${esc(d.model)} · ${esc(d.status)}</small></h3>${sliders}` +
          `<div class="jp-WorkbenchPanel-actions"><button class="jp-WorkbenchPanel-button" data-action="apply-traffic" data-deployment="${esc(d.name)}"${!may(s.me, 'traffic') ? guard(s, 'traffic') : s.drafts[d.name] && !s.busy ? '' : ' disabled'}>Apply traffic</button>` +
          `<button class="jp-WorkbenchPanel-button" data-action="rollback" data-deployment="${esc(d.name)}"` +
          (!may(s.me, 'rollback')
            ? guard(s, 'rollback')
            : d.rollback_to === null
            ? ' disabled title="no earlier version held all traffic, and no champion to go back to"'
            : `${s.busy ? ' disabled' : ''}${d.rollback_to !== undefined ? ` title="all traffic to v${esc(d.rollback_to)}"` : ''}`) +
          '>Roll back</button></div></section>'
        );
      })
      .join('');
  }

  private monitorsHtml(s: PanelState): string {
    if (s.monitors === null) {
      return '<p class="jp-WorkbenchPanel-empty">loading…</p>';
    }
    const monitors = s.monitors.length
      ? s.monitors
          .map(m => {
            const windows = ((s.results || {})[m.name] || []).slice(0, 10);
            const rows = windows
              .map(r => {
                const verdict = resultVerdict(r);
                const detail = r.detail || {};
                const shifted = (detail.most_shifted || [])
                  .slice(0, 2)
                  .map((f: any) => (Array.isArray(f) ? f[0] : f && (f.feature ?? f.name ?? f)))
                  .join(', ');
                return (
                  `<tr class="jp-WorkbenchPanel-window jp-mod-${esc(verdict.replace(/ /g, '-'))}" data-monitor="${esc(m.name)}" data-result="${esc(r.id)}" data-verdict="${esc(verdict)}" title="tested ${esc(shortTime(r.at || r.created_at))} UTC, ${esc(r.n)} records">` +
                  `<td>#${esc(r.id)}</td><td class="jp-WorkbenchPanel-verdict">${esc(verdict)}</td>` +
                  `<td>${pValue(r.score)}</td><td>${pValue(r.threshold)}</td><td>${esc(r.n)}</td></tr>` +
                  (verdict !== 'ok' && shifted
                    ? `<tr class="jp-WorkbenchPanel-shifted"><td></td><td colspan="4">most shifted: ${esc(shifted)}</td></tr>`
                    : '')
                );
              })
              .join('');
            const table = rows
              ? `<table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-windows"><thead><tr><th>window</th><th>verdict</th><th title="smallest p-value">p</th><th title="drift below this">α</th><th>n</th></tr></thead><tbody>${rows}</tbody></table>`
              : '<p class="jp-WorkbenchPanel-empty">no window tested yet</p>';
            return (
              `<section class="jp-WorkbenchPanel-monitor" data-monitor="${esc(m.name)}"><h3>${esc(m.name)} ` +
              `<small>${esc(m.kind)} · ${esc(m.deployment)}</small></h3>${table}</section>`
            );
          })
          .join('')
      : '<p class="jp-WorkbenchPanel-empty">No monitors: <code>bench.monitoring.drift_monitor(deployment)</code>.</p>';
    const alerts = (s.alerts || [])
      .slice(0, 20)
      .map(
        a =>
          `<li class="jp-WorkbenchPanel-alert jp-mod-${esc(a.severity)}" data-alert="${esc(a.id)}"><span class="jp-WorkbenchPanel-severity">${esc(a.severity)}</span> ` +
          `${esc(shortTime(a.last_at || a.at || a.created_at))} <b>${esc(a.monitor || '')}</b>: ${esc(a.title || a.message || '')}` +
          `${Number(a.count) > 1 ? ` <small>(×${esc(a.count)})</small>` : ''}${alertOutcome(a)}</li>`
      )
      .join('');
    const jobs = (s.retrains || [])
      .slice(-20)
      .reverse()
      .map(j => {
        const pending = j.status === 'PENDING_APPROVAL';
        const buttons = pending
          ? `<button class="jp-WorkbenchPanel-button" data-action="approve" data-job="${esc(j.id)}"${guard(s, 'approve')}>Approve</button>` +
            `<button class="jp-WorkbenchPanel-button" data-action="reject" data-job="${esc(j.id)}"${guard(s, 'approve')}>Reject</button>`
          : '';
        const cause = j.drift_result_id ? `drift result #${j.drift_result_id}` : j.event_key || '';
        return (
          `<tr class="jp-WorkbenchPanel-job" data-job="${esc(j.id)}" data-status="${esc(j.status)}">` +
          `<td>#${esc(j.id)} ${esc(j.policy || '')}<div class="jp-WorkbenchPanel-sub">${esc(cause)}</div></td>` +
          `<td>${esc(j.status)}<div class="jp-WorkbenchPanel-sub">${esc(j.decision || '')}</div>${buttons ? `<div>${buttons}</div>` : ''}</td></tr>`
        );
      })
      .join('');
    return (
      monitors +
      `<h3>Alerts</h3><ul class="jp-WorkbenchPanel-alerts">${alerts || '<li>none</li>'}</ul>` +
      `<h3>Retraining</h3><table class="jp-WorkbenchPanel-table jp-WorkbenchPanel-jobs"><thead><tr><th>job · cause</th><th>status · decision</th></tr></thead><tbody>${jobs || '<tr><td colspan="2">no jobs</td></tr>'}</tbody></table>`
    );
  }

  private lineageHtml(s: PanelState): string {
    const models = Array.from(new Set((s.models || []).map(v => v.model as string)));
    if (!models.length) {
      return '<p class="jp-WorkbenchPanel-empty">No registered models yet.</p>';
    }
    const current = s.lineage;
    const options = models
      .map(
        m => `<option value="${esc(m)}"${current && current.model === m ? ' selected' : ''}>${esc(m)}</option>`
      )
      .join('');
    return (
      `<div class="jp-WorkbenchPanel-lineageForm"><select name="model">${options}</select> ` +
      `<input name="version" size="9" value="${esc(current ? current.version : 'champion')}" aria-label="version or alias"> ` +
      '<button class="jp-WorkbenchPanel-button" data-action="lineage">Show</button></div>' +
      `<div class="jp-WorkbenchPanel-lineage">${current ? lineageHtml(current.text) : ''}</div>`
    );
  }
}
