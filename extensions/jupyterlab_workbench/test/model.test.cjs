// Unit tests of the panel's model (src/model.ts, compiled to lib-test/ by tsconfig.test.json):
// node's own test runner, a fake fetcher and a fake clock; no DOM, no JupyterLab.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  Backoff,
  PanelModel,
  ApiError,
  draftToWeights,
  trialMetric,
  datasetNames,
  versionsOf,
  parseKey,
  diffPath,
  evaluationSummary,
  cvText,
  trialCv,
  reportPath,
  may,
  deniedTitle
} = require('../lib-test/model.js');

class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = [];
    this.seq = 0;
  }
  setTimeout(fn, ms) {
    const t = { id: ++this.seq, at: this.now + ms, fn };
    this.timers.push(t);
    return t.id;
  }
  clearTimeout(id) {
    this.timers = this.timers.filter(t => t.id !== id);
  }
  get pending() {
    return this.timers.map(t => t.at - this.now);
  }
  async advance(ms) {
    this.now += ms;
    for (;;) {
      const due = this.timers.filter(t => t.at <= this.now);
      if (!due.length) break;
      this.timers = this.timers.filter(t => t.at > this.now);
      for (const t of due) t.fn();
      await flush();
    }
  }
}

const flush = () => new Promise(resolve => setImmediate(resolve));

function server(routes) {
  const calls = [];
  const fetcher = async (path, init = {}) => {
    calls.push({ path, method: init.method || 'GET', body: init.body });
    const route = routes[path];
    if (route === undefined) throw new ApiError(404, `no route ${path}`);
    const out = typeof route === 'function' ? route(init) : route;
    if (out instanceof Error) throw out;
    return JSON.parse(JSON.stringify(out));
  };
  return { fetcher, calls };
}

const EXPS = { experiments: [{ id: 1, name: 'a', metric: 'f1' }, { id: 2, name: 'b', metric: 'f1' }] };
const TRIALS = { trials: [{ trial_id: 't1', status: 'TERMINATED', metrics: { f1: 0.9 } }] };

test('back-off doubles after each failure, is capped, and resets after a success', () => {
  const b = new Backoff(1000, 8000);
  assert.deepEqual([b.next(false), b.next(false), b.next(false), b.next(false), b.next(false)], [2000, 4000, 8000, 8000, 8000]);
  assert.equal(b.next(true), 1000);
  assert.equal(b.failureCount, 0);
});

test('percent drafts become shares that sum to one; bad drafts are refused', () => {
  assert.deepEqual(draftToWeights({ 1: 75, 2: 25 }), { 1: 0.75, 2: 0.25 });
  assert.deepEqual(draftToWeights({ 1: 30, 2: 30 }), { 1: 0.5, 2: 0.5 });
  assert.throws(() => draftToWeights({ 1: 0, 2: 0 }), /above 0/);
  assert.throws(() => draftToWeights({ 1: -5, 2: 10 }), />= 0/);
  assert.equal(trialMetric({ metrics: { f1: 0.5 } }, 'f1'), 0.5);
  assert.equal(trialMetric({ metrics: {} }, 'f1'), null);
});

test('a missing server extension (404 on version) says so and never polls', async () => {
  const clock = new FakeClock();
  const { fetcher, calls } = server({});
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  assert.equal(m.state.status, 'missing');
  assert.match(m.state.message, /server extension missing/);
  assert.equal(m.polling, false);
  await clock.advance(60000);
  assert.equal(calls.length, 1);
});

test('an extension speaking another API version counts as missing', async () => {
  const { fetcher } = server({ version: { api: 99 } });
  const m = new PanelModel(fetcher, new FakeClock());
  await m.start();
  assert.equal(m.state.status, 'missing');
  assert.match(m.state.message, /API 99/);
});

test('ready: shows the newest experiment and its trials, then polls at the base interval', async () => {
  const clock = new FakeClock();
  const { fetcher, calls } = server({ version: { api: 1 }, experiments: EXPS, 'experiments/2/trials': TRIALS });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  assert.equal(m.state.status, 'ready');
  assert.equal(m.state.selectedExperiment, 2);
  assert.deepEqual(m.state.trials.map(t => t.trial_id), ['t1']);
  assert.deepEqual(clock.pending, [1000]);
  const before = calls.length;
  await clock.advance(1000);
  assert.equal(calls.length, before + 2); // experiments + trials again
});

test('failures back off exponentially and a success resets the interval', async () => {
  const clock = new FakeClock();
  let fail = true;
  const { fetcher } = server({
    version: { api: 1 },
    experiments: () => (fail ? new ApiError(500, 'boom') : EXPS),
    'experiments/2/trials': TRIALS
  });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000, maxMs: 5000 });
  await m.start();
  assert.deepEqual(clock.pending, [2000]);
  assert.match(m.state.message, /refresh failed.*boom/);
  await clock.advance(2000);
  assert.deepEqual(clock.pending, [4000]);
  await clock.advance(4000);
  assert.deepEqual(clock.pending, [5000]); // capped
  fail = false;
  await clock.advance(5000);
  assert.deepEqual(clock.pending, [1000]);
  assert.equal(m.state.message, '');
});

test('hidden: no timer and no requests; shown again: polls at once', async () => {
  const clock = new FakeClock();
  const { fetcher, calls } = server({ version: { api: 1 }, experiments: EXPS, 'experiments/2/trials': TRIALS });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  m.setVisible(false);
  assert.equal(m.polling, false);
  const before = calls.length;
  await clock.advance(600000);
  assert.equal(calls.length, before);
  m.setVisible(true);
  await flush();
  assert.equal(calls.length, before + 2);
  assert.equal(m.polling, true);
});

test('listeners hear about changed data only', async () => {
  const clock = new FakeClock();
  let trials = TRIALS;
  const { fetcher } = server({ version: { api: 1 }, experiments: EXPS, 'experiments/2/trials': () => trials });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  let changes = 0;
  m.subscribe(() => changes++);
  await clock.advance(1000);
  assert.equal(changes, 0);
  trials = { trials: [...TRIALS.trials, { trial_id: 't2', status: 'RUNNING', metrics: {} }] };
  await clock.advance(1000);
  assert.equal(changes, 1);
  assert.equal(m.state.trials.length, 2);
});

test('traffic: a moved slider is sent as normalised weights, and an error is shown, not thrown', async () => {
  const clock = new FakeClock();
  let posted = null;
  const { fetcher } = server({
    version: { api: 1 },
    deployments: { deployments: [{ name: 'cancer', model: 'cancer', weights: { 1: 1.0, 2: 0.0 } }] },
    'deployments/cancer/traffic': init => {
      posted = JSON.parse(init.body);
      return { weights: posted.weights };
    }
  });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  m.selectTab('deployments');
  await flush();
  m.setDraft('cancer', '2', 50);
  assert.deepEqual(m.state.drafts.cancer, { 1: 100, 2: 50 });
  m.setDraft('cancer', '1', 50);
  await m.applyTraffic('cancer');
  assert.deepEqual(posted.weights, { 1: 0.5, 2: 0.5 });
  assert.equal(m.state.notice.ok, true);
  assert.equal(m.state.drafts.cancer, undefined);

  m.setDraft('cancer', '1', 0);
  m.setDraft('cancer', '2', 0);
  await m.applyTraffic('cancer');
  assert.equal(m.state.notice.ok, false);
  assert.match(m.state.notice.text, /above 0/);
});

test('actions post to the API: promote, rollback, approve', async () => {
  const { fetcher, calls } = server({
    version: { api: 1 },
    experiments: { experiments: [] },
    'models/cancer/aliases': { model_version: {} },
    'deployments/cancer/rollback': { weights: { 1: 1 } },
    'retrains/7/approve': { job: {} }
  });
  const m = new PanelModel(fetcher, new FakeClock());
  await m.start();
  await m.promote('cancer', 2);
  await m.rollback('cancer');
  await m.answerRetrain(7, true);
  const posts = calls.filter(c => c.method === 'POST').map(c => [c.path, JSON.parse(c.body)]);
  assert.deepEqual(posts, [
    ['models/cancer/aliases', { alias: 'champion', version: 2 }],
    ['deployments/cancer/rollback', {}],
    ['retrains/7/approve', {}]
  ]);
});

test('promote, rollback and retraining answers wait for a confirmation; cancel sends nothing', async () => {
  const { fetcher, calls } = server({
    version: { api: 1 },
    experiments: { experiments: [] },
    'models/cancer/aliases': { model_version: {} },
    'deployments/cancer/rollback': { weights: { 1: 1 } },
    'retrains/7/reject': { job: {} }
  });
  const m = new PanelModel(fetcher, new FakeClock());
  await m.start();
  const posts = () => calls.filter(c => c.method === 'POST').map(c => [c.path, JSON.parse(c.body)]);

  m.askPromote('cancer', 2);
  assert.equal(m.state.confirm.kind, 'promote');
  assert.match(m.state.confirm.text, /cancer v2 the champion/);
  m.cancelPending();
  assert.equal(m.state.confirm, null);
  assert.equal(await m.confirmPending(), null); // nothing left to confirm
  assert.deepEqual(posts(), []);

  m.askPromote('cancer', 2);
  await m.confirmPending();
  assert.equal(m.state.confirm, null);
  assert.equal(m.state.notice.text, 'cancer v2 is now champion');
  m.askRollback('cancer');
  assert.match(m.state.confirm.text, /Roll cancer back\?/); // target unknown (deployments not loaded)
  m.state.deployments = [{ name: 'cancer', weights: { 1: 0.5, 2: 0.5 }, rollback_to: 1 }];
  m.askRollback('cancer');
  assert.match(m.state.confirm.text, /Roll cancer back to v1\?/);
  await m.confirmPending();
  m.askRetrain(7, false);
  assert.match(m.state.confirm.text, /Reject retraining #7/);
  // switching tabs drops a question the user walked away from
  m.selectTab('models');
  assert.equal(m.state.confirm, null);
  m.askRetrain(7, false);
  await m.confirmPending();
  assert.deepEqual(posts(), [
    ['models/cancer/aliases', { alias: 'champion', version: 2 }],
    ['deployments/cancer/rollback', {}],
    ['retrains/7/reject', {}]
  ]);
});

test('the monitors tab keeps each monitor\'s windows from the server', async () => {
  const results = { drift: [{ id: 2, is_drift: 1, score: 1e-9 }, { id: 1, is_drift: 0, score: 0.4 }] };
  const { fetcher } = server({
    version: { api: 1 },
    experiments: { experiments: [] },
    monitors: { monitors: [{ name: 'drift', kind: 'data_drift' }], results, alerts: [] },
    retrains: { jobs: [], pending: [] }
  });
  const m = new PanelModel(fetcher, new FakeClock());
  await m.start();
  m.selectTab('monitors');
  await flush();
  assert.deepEqual(m.state.results, results);
  assert.equal(m.state.monitors.length, 1);
});

test('the newest experiment is followed until the user picks one', async () => {
  const clock = new FakeClock();
  let exps = { experiments: [{ id: 1, name: 'a' }] };
  const { fetcher } = server({
    version: { api: 1 },
    experiments: () => exps,
    'experiments/1/trials': TRIALS,
    'experiments/2/trials': TRIALS,
    'experiments/3/trials': TRIALS
  });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  assert.equal(m.state.selectedExperiment, 1);
  exps = { experiments: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }] };
  await clock.advance(1000);
  assert.equal(m.state.selectedExperiment, 2);
  m.selectExperiment(1);
  await flush();
  exps = { experiments: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }, { id: 3, name: 'c' }] };
  await clock.advance(1000);
  assert.equal(m.state.selectedExperiment, 1);
});

test('a panel started hidden checks the version only, and loads when first shown', async () => {
  const clock = new FakeClock();
  const { fetcher, calls } = server({ version: { api: 1 }, experiments: EXPS, 'experiments/2/trials': TRIALS });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  m.setVisible(false);
  await m.start();
  assert.equal(m.state.status, 'ready');
  assert.deepEqual(calls.map(c => c.path), ['version', 'whoami']);
  assert.equal(m.polling, false);
  m.setVisible(true);
  await flush();
  assert.deepEqual(calls.map(c => c.path), ['version', 'whoami', 'experiments', 'experiments/2/trials']);
  assert.equal(m.state.trials.length, 1);
});

// ------------------------------------------------------------------ datasets tab
const DS = {
  versions: [
    { name: 'cities', version: 1, rows: 3, errors: 0, warnings: 0 },
    { name: 'sales', version: 1, rows: 9, errors: 0, warnings: 0 },
    { name: 'cities', version: 2, rows: 3, errors: 0, warnings: 1 }
  ]
};
const REPORT = v => ({ schema: { id: 'Int64' }, report: [{ check: 'row_count', passed: v !== 2, severity: 'warn' }] });
const DIFF = { diff: { a: 'cities@1', b: 'cities@2', added: 1, removed: 1, changed: 2, unchanged: 0, key: ['id'] }, text: 'cities@1 -> cities@2' };

test('dataset helpers: names newest first, versions of one, keys, the diff path', () => {
  assert.deepEqual(datasetNames(DS.versions), ['cities', 'sales']);
  assert.deepEqual(versionsOf(DS.versions, 'cities'), [1, 2]);
  assert.deepEqual(parseKey(' id, region ,'), ['id', 'region']);
  assert.deepEqual(parseKey(['id']), ['id']);
  assert.deepEqual(parseKey(''), []);
  assert.equal(diffPath('my data', 1, 2, []), 'datasets/my%20data/diff?a=1&b=2');
  assert.equal(diffPath('cities', 1, 2, ['id', 'region']), 'datasets/cities/diff?a=1&b=2&key=id%2Cregion');
});

test('the datasets tab shows the last ingested dataset, its latest report and a diff of its last two versions', async () => {
  const clock = new FakeClock();
  const { fetcher, calls } = server({
    version: { api: 1 },
    experiments: { experiments: [] },
    datasets: DS,
    'datasets/cities/versions/2': REPORT(2),
    'datasets/cities/versions/1': REPORT(1),
    'datasets/cities/diff?a=1&b=2': { ...DIFF, diff: { ...DIFF.diff, key: null } },
    'datasets/cities/diff?a=1&b=2&key=id': DIFF,
    'datasets/cities/diff?a=1&b=2&key=city': () => new ApiError(400, "key ['city'] is not unique in cities@1")
  });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  m.selectTab('datasets');
  await flush();
  assert.equal(m.state.dataset, 'cities');
  assert.equal(m.state.datasetVersion, 2);
  assert.equal(m.state.report.version, 2);
  assert.equal(m.state.report.report[0].passed, false);
  assert.equal(m.state.diff.a, 1);
  assert.equal(m.state.diff.diff.key, null);
  // polling again fetches the version list only: the report and the diff are kept
  const before = calls.length;
  await clock.advance(1000);
  assert.deepEqual(calls.slice(before).map(c => c.path), ['datasets']);
  // clicking version 1 shows its report
  m.selectDatasetVersion(1);
  await flush();
  assert.equal(m.state.report.version, 1);
  assert.equal(m.state.report.report[0].passed, true);
  // Compare by key; a refusal shows in place of the diff and is not a failed refresh
  await m.diffDatasets(1, 2, 'id');
  assert.deepEqual(m.state.diff.key, ['id']);
  assert.equal(m.state.diff.diff.changed, 2);
  await m.diffDatasets(1, 2, 'city');
  assert.match(m.state.diff.error, /not unique in cities@1/);
  assert.equal(m.state.diff.diff, null);
  assert.equal(m.state.message, '');
});

test('picking another dataset drops the report and diff; one version has nothing to diff', async () => {
  const clock = new FakeClock();
  const { fetcher, calls } = server({
    version: { api: 1 },
    experiments: { experiments: [] },
    datasets: DS,
    'datasets/cities/versions/2': REPORT(2),
    'datasets/cities/diff?a=1&b=2': DIFF,
    'datasets/sales/versions/1': REPORT(1)
  });
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  m.selectTab('datasets');
  await flush();
  m.selectDataset('sales');
  assert.equal(m.state.report, null);
  assert.equal(m.state.diff, null);
  await flush();
  assert.equal(m.state.report.name, 'sales');
  assert.equal(m.state.datasetVersion, 1);
  assert.equal(m.state.diff, null);
  assert.equal(calls.filter(c => c.path.startsWith('datasets/sales/diff')).length, 0);
});

const EVAL = {
  id: 7,
  created_at: '2026-12-07T08:00:00',
  metrics: { f1: 0.91, roc_auc: 0.97 },
  details: { n: 171 },
  cv: { f1: { mean: 0.9, std: 0.02, ci_low: 0.875, ci_high: 0.925, n_folds: 5 }, log_loss: { mean: 0.2, std: null, ci_low: null, ci_high: null, n_folds: 1 } },
  fairness: {
    sensitive_features: ['sex'],
    by_group: { sex: { f: { f1: 0.95, count: 80 }, m: { f1: 0.87, count: 91 } } },
    gaps: { sex: { f1_difference: 0.08 } }
  },
  gate: { passed: false, metric: 'f1', interval: [-0.01, 0.03], evidence: 'not enough evidence' },
  report_artifact: null
};

test('an evaluation row becomes metrics with CV intervals, groups, gaps and the gate', () => {
  const e = evaluationSummary(EVAL);
  assert.deepEqual(e.metrics.map(m => m.name), ['f1', 'roc_auc', 'log_loss']);
  assert.deepEqual(e.metrics[0].cv, { mean: 0.9, ci_low: 0.875, ci_high: 0.925, n_folds: 5 });
  assert.equal(e.metrics[1].cv, null);
  assert.equal(e.metrics[2].value, null);
  assert.equal(e.n, 171);
  assert.deepEqual(e.fairness.metrics, ['f1']);
  assert.deepEqual(e.fairness.groups.map(g => [g.group, g.count, g.values.f1]), [['f', 80, 0.95], ['m', 91, 0.87]]);
  assert.equal(e.fairness.gaps.sex.f1_difference, 0.08);
  assert.equal(e.gate.evidence, 'not enough evidence');
  assert.equal(e.hasReport, false);
  assert.equal(evaluationSummary(null), null);
  assert.equal(cvText(EVAL.cv.f1), '0.900 [0.875, 0.925]');
  assert.equal(cvText(EVAL.cv.log_loss), '0.200 (1 fold)');
  assert.equal(trialCv({ cv: EVAL.cv }, 'f1'), '0.900 [0.875, 0.925]');
  assert.equal(trialCv({ cv: null }, 'f1'), null);
  assert.equal(reportPath('a b/c', 2), 'models/a%20b%2Fc/versions/2/report');
});

test("the models tab shows the champion's evaluation once, then the version picked", async () => {
  const MODELS = { versions: [{ model: 'm', version: 1, aliases: [] }, { model: 'm', version: 2, aliases: ['champion'] }] };
  const { fetcher, calls } = server({
    version: { api: 1 },
    experiments: EXPS,
    'experiments/2/trials': TRIALS,
    models: MODELS,
    'models/m/versions/2/evaluation': { model: 'm', version: 2, evaluation: EVAL },
    'models/m/versions/1/evaluation': { model: 'm', version: 1, evaluation: null }
  });
  const clock = new FakeClock();
  const m = new PanelModel(fetcher, clock, { baseMs: 1000 });
  await m.start();
  m.selectTab('models');
  await flush();
  await flush();
  assert.equal(m.state.evaluation.version, 2);
  assert.equal(m.state.evaluation.summary.metrics[0].value, 0.91);
  const asked = calls.filter(c => c.path.endsWith('/evaluation')).length;
  await clock.advance(1000);
  assert.equal(calls.filter(c => c.path.endsWith('/evaluation')).length, asked, 'not fetched again on each poll');
  await m.showEvaluation('m', 1);
  assert.deepEqual([m.state.evaluation.version, m.state.evaluation.summary], [1, null]);
});

// ------------------------------------------------------------------ roles
test('the panel learns who it acts as; buttons follow the allowed actions', async () => {
  const me = { user: 'vic', roles: ['viewer'], enforced: true, allowed: ['read'] };
  const { fetcher } = server({ version: { api: 1 }, whoami: me, experiments: EXPS, 'experiments/2/trials': TRIALS });
  const m = new PanelModel(fetcher, new FakeClock(), { baseMs: 1000 });
  await m.start();
  assert.deepEqual(m.state.me, me);
  assert.equal(may(m.state.me, 'read'), true);
  assert.equal(may(m.state.me, 'promote'), false);
  assert.equal(deniedTitle(m.state.me, 'promote'), 'vic (viewer) may not promote: it needs the approver role');
  // open homes, and servers without the route (me null), leave every button to the server
  assert.equal(may({ ...me, enforced: false }, 'promote'), true);
  assert.equal(may(null, 'traffic'), true);
});
