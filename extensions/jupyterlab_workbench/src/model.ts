/**
 * The side panel's model: what it shows, when it polls, and the actions it sends.
 *
 * Pure logic, no DOM and no JupyterLab import, so it is unit-tested with node alone. The view
 * (panel.ts) renders `state` and calls the methods; the network goes through an injected
 * `Fetcher`, time through an injected `Clock`.
 */

export type TabId =
  | 'experiments'
  | 'models'
  | 'deployments'
  | 'monitors'
  | 'lineage'
  | 'datasets';
export const TABS: { id: TabId; label: string }[] = [
  { id: 'experiments', label: 'Experiments' },
  { id: 'models', label: 'Models' },
  { id: 'deployments', label: 'Deployments' },
  { id: 'monitors', label: 'Monitors' },
  { id: 'lineage', label: 'Lineage' },
  { id: 'datasets', label: 'Datasets' }
];

/** The REST API version this panel speaks (the server's `GET /workbench/version` `api`). */
export const API_VERSION = 1;

/** An HTTP error from the server extension: `status` 0 means the request never got an answer. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string
  ) {
    super(message);
  }
}

export type Fetcher = (
  path: string,
  init?: { method?: string; body?: string }
) => Promise<any>;

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: handle => clearTimeout(handle as ReturnType<typeof setTimeout>)
};

/** Exponential back-off: `base` after a success, doubling after each failure, capped at `max`. */
export class Backoff {
  private failures = 0;
  constructor(
    public readonly base = 2000,
    public readonly max = 60000,
    public readonly factor = 2
  ) {}
  /** Record the outcome of a poll; returns the delay before the next one, in ms. */
  next(ok: boolean): number {
    this.failures = ok ? 0 : this.failures + 1;
    return Math.min(this.max, this.base * Math.pow(this.factor, this.failures));
  }
  get failureCount(): number {
    return this.failures;
  }
}

export type Status = 'checking' | 'ready' | 'missing' | 'error';

/** An action waiting for the user's confirmation (promote, roll back, answer a retraining). */
export type Confirmation =
  | { kind: 'promote'; model: string; version: number; alias: string; text: string }
  | { kind: 'rollback'; deployment: string; text: string }
  | { kind: 'retrain'; job: number; approve: boolean; text: string };

export interface PanelState {
  status: Status;
  message: string;
  tab: TabId;
  visible: boolean;
  version: any;
  experiments: any[] | null;
  selectedExperiment: number | null;
  /** Until the user picks an experiment, the newest one is shown (a search just started appears). */
  followNewest: boolean;
  trials: any[] | null;
  models: any[] | null;
  deployments: any[] | null;
  monitors: any[] | null;
  /** The newest drift results (windows) of each monitor, newest first. */
  results: Record<string, any[]> | null;
  alerts: any[] | null;
  retrains: any[] | null;
  lineage: { model: string; version: string; text: string } | null;
  /** The evaluation shown in the Models tab (of the champion until a version is picked). */
  evaluation: EvaluationView | null;
  /** Every dataset version (`GET datasets`), oldest first. */
  datasets: any[] | null;
  /** The dataset shown (default: the one ingested last) and the version whose report is shown. */
  dataset: string | null;
  datasetVersion: number | null;
  /** The shown version's columns and validation report. */
  report: { name: string; version: number; schema: Record<string, string>; report: any[] } | null;
  /** The diff asked for last (or of the last two versions), or why it could not be made. */
  diff: DatasetDiffView | null;
  /** Traffic weights being edited, per deployment and version (percent, not yet applied). */
  drafts: Record<string, Record<string, number>>;
  /** The last action's outcome, shown under the tabs. */
  notice: { ok: boolean; text: string } | null;
  /** An action the user clicked and has not confirmed or cancelled yet; nothing is sent before. */
  confirm: Confirmation | null;
  busy: boolean;
  lastPollMs: number | null;
  /** Who the panel acts as (GET whoami): the buttons it may press; null when not known. */
  me: Me | null;
}

/** The panel's user: their roles and the actions the workbench allows them now. */
export interface Me {
  user: string;
  roles: string[];
  enforced: boolean;
  allowed: string[];
}

/** Whether `me` may take `action` (unknown, as with an older server, allows: the server decides). */
export function may(me: Me | null, action: string): boolean {
  return me === null || !me.enforced || me.allowed.includes(action);
}

/** The role each guarded panel button needs, as the workbench's action table says. */
export const BUTTON_ROLE: Record<string, string> = {
  promote: 'approver',
  traffic: 'deployer',
  rollback: 'deployer',
  approve: 'approver'
};

/** The tooltip of a button `me` may not press. */
export function deniedTitle(me: Me | null, action: string): string {
  const who = me ? `${me.user} (${me.roles.join(', ') || 'no role'})` : 'you';
  return `${who} may not ${action}: it needs the ${BUTTON_ROLE[action] || action} role`;
}

export function initialState(): PanelState {
  return {
    status: 'checking',
    message: 'connecting to the workbench server extension…',
    tab: 'experiments',
    visible: true,
    version: null,
    experiments: null,
    selectedExperiment: null,
    followNewest: true,
    trials: null,
    models: null,
    deployments: null,
    monitors: null,
    results: null,
    alerts: null,
    retrains: null,
    lineage: null,
    evaluation: null,
    datasets: null,
    dataset: null,
    datasetVersion: null,
    report: null,
    diff: null,
    drafts: {},
    notice: null,
    confirm: null,
    busy: false,
    lastPollMs: null,
    me: null
  };
}

/** Percent weights (0..100, any sum) → the shares the API takes, keyed by version. */
export function draftToWeights(draft: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const [version, value] of Object.entries(draft)) {
    const v = Number(value);
    if (!Number.isFinite(v) || v < 0) {
      throw new Error(`weight of version ${version} must be a number >= 0`);
    }
    out[version] = v;
    total += v;
  }
  if (total <= 0) {
    throw new Error('at least one version needs a weight above 0');
  }
  for (const k of Object.keys(out)) {
    out[k] = out[k] / total;
  }
  return out;
}

/** The metric value of a trial for its experiment's metric, or null. */
export function trialMetric(trial: any, metric: string): number | null {
  const m = trial && trial.metrics;
  const v = m && typeof m === 'object' ? m[metric] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** One metric of an evaluation: its holdout value and the training trial's CV summary. */
export interface EvaluationMetric {
  name: string;
  value: number | null;
  cv: { mean: number | null; ci_low: number | null; ci_high: number | null; n_folds: number | null } | null;
}

/** What the Models tab shows of a recorded evaluation (the registry widget shows the same). */
export interface EvaluationSummary {
  id: number | null;
  createdAt: string | null;
  n: number | null;
  metrics: EvaluationMetric[];
  gate: any | null;
  fairness: {
    features: string[];
    metrics: string[];
    groups: { feature: string; group: string; count: number | null; values: Record<string, number | null> }[];
    gaps: Record<string, Record<string, number | null>>;
  } | null;
  hasReport: boolean;
}

export interface EvaluationView {
  model: string;
  version: number;
  /** null: the version has no recorded evaluation. */
  summary: EvaluationSummary | null;
}

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** An evaluation row (`GET models/<m>/versions/<v>/evaluation`) → what the panel shows; null for none. */
export function evaluationSummary(ev: any): EvaluationSummary | null {
  if (!ev || typeof ev !== 'object') {
    return null;
  }
  const metrics = ev.metrics && typeof ev.metrics === 'object' ? ev.metrics : {};
  const cv = ev.cv && typeof ev.cv === 'object' ? ev.cv : {};
  const names = [...Object.keys(metrics), ...Object.keys(cv).filter(k => !(k in metrics))];
  const rows: EvaluationMetric[] = names.map(name => {
    const c = cv[name];
    return {
      name,
      value: finite(metrics[name]),
      cv:
        c && typeof c === 'object'
          ? { mean: finite(c.mean), ci_low: finite(c.ci_low), ci_high: finite(c.ci_high), n_folds: finite(c.n_folds) }
          : null
    };
  });
  let fairness: EvaluationSummary['fairness'] = null;
  const byGroup = ev.fairness && ev.fairness.by_group;
  if (byGroup && typeof byGroup === 'object' && Object.keys(byGroup).length) {
    const groups: NonNullable<EvaluationSummary['fairness']>['groups'] = [];
    const gm: string[] = [];
    for (const [feature, by] of Object.entries<any>(byGroup)) {
      for (const [group, vals] of Object.entries<any>(by || {})) {
        if (!vals || typeof vals !== 'object') {
          continue;
        }
        const values: Record<string, number | null> = {};
        for (const [k, v] of Object.entries(vals)) {
          if (k !== 'count') {
            values[k] = finite(v);
            if (!gm.includes(k)) {
              gm.push(k);
            }
          }
        }
        groups.push({ feature, group, count: finite(vals.count), values });
      }
    }
    const gaps: Record<string, Record<string, number | null>> = {};
    for (const [feature, g] of Object.entries<any>(ev.fairness.gaps || {})) {
      gaps[feature] = {};
      for (const [k, v] of Object.entries(g || {})) {
        gaps[feature][k] = finite(v);
      }
    }
    fairness = { features: ev.fairness.sensitive_features || Object.keys(byGroup), metrics: gm, groups, gaps };
  }
  return {
    id: finite(ev.id),
    createdAt: ev.created_at ?? null,
    n: finite(ev.details && ev.details.n),
    metrics: rows,
    gate: ev.gate || null,
    fairness,
    hasReport: Boolean(ev.report_artifact)
  };
}

/** A CV summary as text, "mean [ci_low, ci_high]" to 3 decimals (what the widgets show); null for none. */
export function cvText(cv: any): string | null {
  const mean = finite(cv && cv.mean);
  if (mean === null) {
    return null;
  }
  const lo = finite(cv.ci_low);
  const hi = finite(cv.ci_high);
  if (lo === null || hi === null) {
    return `${mean.toFixed(3)} (${cv.n_folds ?? 1} fold)`;
  }
  return `${mean.toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}]`;
}

/** The trial's CV text for its experiment's metric (`trials` rows carry `cv`), or null. */
export function trialCv(trial: any, metric: string): string | null {
  const cv = trial && trial.cv && typeof trial.cv === 'object' ? trial.cv[metric] : null;
  return cvText(cv);
}

/** The REST path (under `workbench/`) of a version's HTML report. */
export function reportPath(model: string, version: number | string): string {
  return `models/${encodeURIComponent(model)}/versions/${encodeURIComponent(String(version))}/report`;
}

/** A diff between two versions of one dataset: `diff` is `DatasetDiff.to_dict()`, or `error`. */
export interface DatasetDiffView {
  name: string;
  a: number;
  b: number;
  key: string[];
  diff: any | null;
  text: string;
  error: string | null;
}

/** Dataset names, the one ingested last first. */
export function datasetNames(versions: any[]): string[] {
  const out: string[] = [];
  for (const v of versions.slice().reverse()) {
    if (!out.includes(v.name)) {
      out.push(v.name);
    }
  }
  return out;
}

/** The version numbers of one dataset, oldest first. */
export function versionsOf(versions: any[], name: string | null): number[] {
  return versions.filter(v => v.name === name).map(v => Number(v.version));
}

/** "id, region" → ["id", "region"]; blanks dropped. */
export function parseKey(key: string | string[] | null | undefined): string[] {
  const parts = Array.isArray(key) ? key : String(key ?? '').split(',');
  return parts.map(k => String(k).trim()).filter(k => k.length > 0);
}

/** The REST path of a diff: `datasets/<name>/diff?a=1&b=2&key=id,region`. */
export function diffPath(name: string, a: number, b: number, key: string[]): string {
  const q = `a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
  return (
    `datasets/${encodeURIComponent(name)}/diff?${q}` +
    (key.length ? `&key=${encodeURIComponent(key.join(','))}` : '')
  );
}

export type Listener = (state: PanelState) => void;

export class PanelModel {
  state: PanelState = initialState();
  private listeners: Listener[] = [];
  private timer: unknown = null;
  private inFlight = false;
  private seen: Record<string, string> = {};
  readonly backoff: Backoff;

  constructor(
    private fetcher: Fetcher,
    private clock: Clock = realClock,
    options: { baseMs?: number; maxMs?: number } = {}
  ) {
    this.backoff = new Backoff(options.baseMs ?? 2000, options.maxMs ?? 60000);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter(l => l !== listener);
    };
  }

  private set(patch: Partial<PanelState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) {
      l(this.state);
    }
  }

  /** Check the server extension (version endpoint), then poll while visible. */
  async start(): Promise<void> {
    try {
      const version = await this.fetcher('version');
      if (!version || version.api !== API_VERSION) {
        this.set({
          status: 'missing',
          message: `the workbench server extension speaks API ${version && version.api}, this panel API ${API_VERSION}: reinstall jupyterlab_workbench and restart JupyterLab.`
        });
        return;
      }
      this.set({ status: 'ready', message: '', version });
      await this.loadMe();
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      this.set({
        status: status === 404 ? 'missing' : 'error',
        message:
          status === 404
            ? 'server extension missing: `pip install jupyterlab_workbench` (make does it), check `jupyter server extension list`, then restart JupyterLab.'
            : `cannot reach the workbench server extension: ${(err as Error).message}`
      });
      if (status === 404) {
        return;
      }
    }
    if (this.state.visible) {
      await this.poll(); // a hidden panel loads nothing until it is shown
    }
  }

  /** Who the panel acts as; an error (an older server without the route) leaves it unknown. */
  async loadMe(): Promise<void> {
    try {
      this.set({ me: (await this.fetcher('whoami')) as Me });
    } catch {
      this.set({ me: null });
    }
  }

  /** Stop polling (the panel was disposed). */
  stop(): void {
    this.cancel();
    this.listeners = [];
  }

  private cancel(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private schedule(ms: number): void {
    this.cancel();
    if (this.state.visible && this.state.status !== 'missing') {
      this.timer = this.clock.setTimeout(() => {
        this.timer = null;
        void this.poll();
      }, ms);
    }
  }

  /** Hidden panels do not poll; showing one polls at once. */
  setVisible(visible: boolean): void {
    if (visible === this.state.visible) {
      return;
    }
    this.set({ visible });
    if (!visible) {
      this.cancel();
    } else {
      void this.poll();
    }
  }

  get polling(): boolean {
    return this.timer !== null;
  }

  selectTab(tab: TabId): void {
    this.set({ tab, notice: null, confirm: null });
    void this.loadMe(); // roles may have changed since the panel started
    void this.poll();
  }

  /** Show dataset `name`: its latest version's report, and a diff of its last two versions. */
  selectDataset(name: string): void {
    this.set({ dataset: name, datasetVersion: null, report: null, diff: null });
    void this.poll();
  }

  /** Show the validation report of one version of the dataset shown. */
  selectDatasetVersion(version: number): void {
    this.set({ datasetVersion: version });
    void this.poll();
  }

  selectExperiment(id: number): void {
    this.set({ selectedExperiment: id, followNewest: false, trials: null });
    void this.poll();
  }

  /** Fetch what the current tab shows; a change of data (not every poll) re-renders. */
  async poll(): Promise<void> {
    if (this.inFlight || this.state.status === 'missing') {
      return;
    }
    if (this.state.status !== 'ready') {
      // the version check failed (server down?): try it again with back-off
      this.inFlight = true;
      try {
        const version = await this.fetcher('version');
        this.set({ status: 'ready', message: '', version });
      } catch {
        this.inFlight = false;
        this.schedule(this.backoff.next(false));
        return;
      }
      this.inFlight = false;
    }
    this.inFlight = true;
    let ok = true;
    const t0 = Date.now();
    try {
      await this.load(this.state.tab);
      if (this.state.message) {
        this.set({ message: '' });
      }
    } catch (err) {
      ok = false;
      this.set({ message: `refresh failed (retrying): ${(err as Error).message}` });
    } finally {
      this.inFlight = false;
    }
    this.state.lastPollMs = Date.now() - t0;
    this.schedule(this.backoff.next(ok));
  }

  private changed(key: string, value: any): boolean {
    const text = JSON.stringify(value);
    if (this.seen[key] === text) {
      return false;
    }
    this.seen[key] = text;
    return true;
  }

  private async load(tab: TabId): Promise<void> {
    if (tab === 'experiments') {
      const { experiments } = await this.fetcher('experiments');
      let selected = this.state.selectedExperiment;
      if (
        experiments.length &&
        (this.state.followNewest ||
          selected === null ||
          !experiments.some((e: any) => e.id === selected))
      ) {
        selected = experiments[experiments.length - 1].id;
      }
      const patch: Partial<PanelState> = {};
      if (this.changed('experiments', experiments)) {
        patch.experiments = experiments;
      }
      if (selected !== this.state.selectedExperiment) {
        patch.selectedExperiment = selected;
      }
      if (selected !== null) {
        const { trials } = await this.fetcher(`experiments/${selected}/trials`);
        if (this.changed(`trials/${selected}`, trials) || this.state.trials === null) {
          patch.trials = trials;
        }
      }
      if (Object.keys(patch).length) {
        this.set(patch);
      }
    } else if (tab === 'models') {
      const { versions } = await this.fetcher('models');
      if (this.changed('models', versions)) {
        this.set({ models: versions });
      }
      const shown = this.state.evaluation;
      if (
        versions.length &&
        (!shown || !versions.some((v: any) => v.model === shown.model && v.version === shown.version))
      ) {
        // once, until a version is picked: the champion's evaluation (else the newest version's)
        const champion = versions.find((v: any) => (v.aliases || []).includes('champion'));
        const pick = champion || versions[versions.length - 1];
        await this.showEvaluation(pick.model, pick.version);
      }
    } else if (tab === 'deployments') {
      const { deployments } = await this.fetcher('deployments');
      if (this.changed('deployments', deployments)) {
        this.set({ deployments });
      }
    } else if (tab === 'monitors') {
      const m = await this.fetcher('monitors');
      const r = await this.fetcher('retrains');
      if (this.changed('monitors', [m, r])) {
        this.set({
          monitors: m.monitors,
          results: m.results || {},
          alerts: m.alerts,
          retrains: r.jobs
        });
      }
    } else if (tab === 'datasets') {
      await this.loadDatasets();
    } else if (tab === 'lineage') {
      const { versions } = await this.fetcher('models');
      if (this.changed('models', versions)) {
        this.set({ models: versions });
      }
      if (!this.state.lineage && versions.length) {
        const champion = versions.find((v: any) => (v.aliases || []).includes('champion'));
        const pick = champion || versions[versions.length - 1];
        await this.showLineage(pick.model, champion ? 'champion' : String(pick.version));
      }
    }
  }

  private async loadDatasets(): Promise<void> {
    const { versions } = await this.fetcher('datasets');
    const patch: Partial<PanelState> = {};
    if (this.changed('datasets', versions) || this.state.datasets === null) {
      patch.datasets = versions;
    }
    const names = datasetNames(versions);
    let name = this.state.dataset;
    if (name === null || !names.includes(name)) {
      name = names.length ? names[0] : null;
      patch.dataset = name;
      patch.report = null;
      patch.diff = null;
    }
    const numbers = versionsOf(versions, name);
    let version = this.state.datasetVersion;
    if (version === null || !numbers.includes(version)) {
      version = numbers.length ? numbers[numbers.length - 1] : null;
      patch.datasetVersion = version;
    }
    if (Object.keys(patch).length) {
      this.set(patch);
    }
    if (name === null || version === null) {
      return;
    }
    const r = this.state.report;
    if (!r || r.name !== name || r.version !== version) {
      const out = await this.fetcher(
        `datasets/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`
      );
      this.set({ report: { name, version, schema: out.schema || {}, report: out.report || [] } });
    }
    if (this.state.diff === null && numbers.length >= 2) {
      // once per dataset shown: the last two versions, whole rows (Compare asks for others)
      await this.diffDatasets(numbers[numbers.length - 2], numbers[numbers.length - 1], []);
    }
  }

  /**
   * Diff two versions of the dataset shown (by `key`: columns, or "a, b"). A refusal (a key that
   * is not unique, an unknown version) is shown in place of the diff, not as a failed refresh.
   */
  async diffDatasets(a: number, b: number, key: string | string[]): Promise<void> {
    const name = this.state.dataset;
    if (name === null) {
      return;
    }
    const keys = parseKey(key);
    const view: DatasetDiffView = { name, a, b, key: keys, diff: null, text: '', error: null };
    try {
      const out = await this.fetcher(diffPath(name, a, b, keys));
      view.diff = out.diff;
      view.text = out.text || '';
    } catch (err) {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
        view.error = err.message;
      } else {
        throw err;
      }
    }
    if (this.state.dataset === name) {
      this.set({ diff: view });
    }
  }

  /** Show a version's recorded evaluation in the Models tab (none: says so). */
  async showEvaluation(model: string, version: number): Promise<void> {
    const out = await this.fetcher(
      `models/${encodeURIComponent(model)}/versions/${encodeURIComponent(String(version))}/evaluation`
    );
    this.set({
      evaluation: { model, version: Number(out.version ?? version), summary: evaluationSummary(out.evaluation) }
    });
  }

  async showLineage(model: string, version: string): Promise<void> {
    const out = await this.fetcher(
      `lineage/${encodeURIComponent(model)}/${encodeURIComponent(version)}`
    );
    this.set({ lineage: { model, version, text: out.text } });
  }

  /** Edit a traffic weight (percent) without sending it; `applyTraffic` sends the draft. */
  setDraft(deployment: string, version: string, percent: number): void {
    const current = this.state.deployments?.find(d => d.name === deployment);
    const base: Record<string, number> = {};
    for (const [v, w] of Object.entries(current?.weights ?? {})) {
      base[v] = Math.round(Number(w) * 100);
    }
    const drafts = {
      ...this.state.drafts,
      [deployment]: { ...base, ...(this.state.drafts[deployment] || {}), [version]: percent }
    };
    this.set({ drafts });
  }

  private async act(label: string, fn: () => Promise<any>): Promise<any> {
    this.set({ busy: true, notice: null });
    try {
      const out = await fn();
      this.set({ busy: false, notice: { ok: true, text: label } });
      this.seen = {}; // show the new state at once
      await this.poll();
      return out;
    } catch (err) {
      this.set({ busy: false, notice: { ok: false, text: `${label} failed: ${(err as Error).message}` } });
      return null;
    }
  }

  /** Ask before promoting: nothing is sent until `confirmPending()`. */
  askPromote(model: string, version: number, alias = 'champion'): void {
    this.set({
      notice: null,
      confirm: {
        kind: 'promote',
        model,
        version,
        alias,
        text: `Make ${model} v${version} the ${alias}? The alias moves away from the version that holds it now.`
      }
    });
  }

  /** Ask before rolling back: nothing is sent until `confirmPending()`. */
  askRollback(deployment: string): void {
    const d = this.state.deployments?.find(x => x.name === deployment);
    const to = d && d.rollback_to !== null && d.rollback_to !== undefined ? d.rollback_to : null;
    this.set({
      notice: null,
      confirm: {
        kind: 'rollback',
        deployment,
        text:
          to === null
            ? `Roll ${deployment} back? All traffic goes to its last known good version at once.`
            : `Roll ${deployment} back to v${to}? All traffic goes to v${to} at once; the other versions stay loaded at 0%.`
      }
    });
  }

  /** Ask before approving or rejecting a retraining: nothing is sent until `confirmPending()`. */
  askRetrain(jobId: number, approve: boolean): void {
    this.set({
      notice: null,
      confirm: {
        kind: 'retrain',
        job: jobId,
        approve,
        text: approve
          ? `Approve retraining #${jobId}? It runs at the next tick of the loop.`
          : `Reject retraining #${jobId}? It will never run.`
      }
    });
  }

  cancelPending(): void {
    this.set({ confirm: null });
  }

  /** Send the action the user confirmed. */
  confirmPending(): Promise<any> {
    const c = this.state.confirm;
    if (!c) {
      return Promise.resolve(null);
    }
    this.set({ confirm: null });
    if (c.kind === 'promote') {
      return this.promote(c.model, c.version, c.alias);
    }
    if (c.kind === 'rollback') {
      return this.rollback(c.deployment);
    }
    return this.answerRetrain(c.job, c.approve);
  }

  applyTraffic(deployment: string): Promise<any> {
    const draft = this.state.drafts[deployment];
    return this.act(`traffic of ${deployment} changed`, async () => {
      if (!draft) {
        throw new Error('move a weight first');
      }
      const weights = draftToWeights(draft);
      const out = await this.fetcher(`deployments/${encodeURIComponent(deployment)}/traffic`, {
        method: 'POST',
        body: JSON.stringify({ weights })
      });
      const drafts = { ...this.state.drafts };
      delete drafts[deployment];
      this.set({ drafts });
      return out;
    });
  }

  rollback(deployment: string): Promise<any> {
    return this.act(`${deployment} rolled back`, () =>
      this.fetcher(`deployments/${encodeURIComponent(deployment)}/rollback`, {
        method: 'POST',
        body: '{}'
      })
    );
  }

  promote(model: string, version: number, alias = 'champion'): Promise<any> {
    return this.act(`${model} v${version} is now ${alias}`, () =>
      this.fetcher(`models/${encodeURIComponent(model)}/aliases`, {
        method: 'POST',
        body: JSON.stringify({ alias, version })
      })
    );
  }

  answerRetrain(jobId: number, approve: boolean): Promise<any> {
    const answer = approve ? 'approve' : 'reject';
    return this.act(`retraining ${jobId}: ${answer}d`, () =>
      this.fetcher(`retrains/${jobId}/${answer}`, { method: 'POST', body: '{}' })
    );
  }
}
