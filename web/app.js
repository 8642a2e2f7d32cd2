/*
 * quanteval dashboard: the configured models, live jobs, accuracy history and per-class results,
 * all read from the daemon's JSON API on the same origin. Plain JavaScript for current browsers,
 * no dependencies, no build step.
 *
 * The first half holds pure functions (formatting, sorting, chart geometry), exported for the
 * tests under node; the second half touches the DOM and runs only in a browser. Strings from the
 * API reach the page only as text nodes, never as markup.
 */
'use strict';

const FAST_REFRESH_MS = 2000;    // while a job is queued or running, or a model is loading
const SLOW_REFRESH_MS = 10000;
const LIVE_STATUSES = ['queued', 'running'];
const DASH = '\u2014';

/* ---- formatting ---------------------------------------------------------------------------- */

function isNumber(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

/** An accuracy (a fraction in [0, 1]) as a percentage with 2 decimals: "75.52%". */
function formatPercent(fraction) {
  return isNumber(fraction) ? (fraction * 100).toFixed(2) + '%' : DASH;
}

/** The zoo's reference accuracies are published as percentages already. */
function formatReference(percent) {
  return isNumber(percent) ? percent.toFixed(2) + '%' : DASH;
}

function formatRate(imagesPerSecond) {
  return isNumber(imagesPerSecond) && imagesPerSecond > 0 ? imagesPerSecond.toFixed(1) : DASH;
}

/** "42 s", "3 min 05 s", "1 h 02 min". */
function formatDuration(seconds) {
  if (!isNumber(seconds) || seconds < 0) return DASH;
  const s = Math.round(seconds);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + pad2(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + pad2(Math.floor((s % 3600) / 60)) + ' min';
}

/** Unix seconds as local time, "2024-05-01 14:03". */
function formatDate(unixSeconds) {
  if (!isNumber(unixSeconds)) return DASH;
  const d = new Date(unixSeconds * 1000);
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
    pad2(d.getHours()) + ':' + pad2(d.getMinutes());
}

/** A job's progress: "1184 / 50000 (2.4%)"; the total is 0 until the job has opened its dataset. */
function formatProgress(done, total) {
  if (!isNumber(total) || total <= 0) return (isNumber(done) ? done : 0) + ' images';
  return done + ' / ' + total + ' (' + ((done / total) * 100).toFixed(1) + '%)';
}

/** The API's errors are {"error": "..."}; anything else (a proxy page, no body) gets the status. */
function describeError(status, body) {
  const message = body && typeof body.error === 'string' && body.error ? body.error : '';
  if (!status) return 'cannot reach the daemon' + (message ? ': ' + message : '');
  return 'HTTP ' + status + ': ' + (message || 'request failed');
}

/* ---- runs and jobs ------------------------------------------------------------------------- */

function isLive(job) {
  return LIVE_STATUSES.includes(job.status);
}

/** Poll fast only while something is changing, so an idle dashboard costs the daemon little. */
function refreshDelay(jobs, models) {
  const busy = jobs.some(isLive) || models.some((m) => m.status === 'loading');
  return busy ? FAST_REFRESH_MS : SLOW_REFRESH_MS;
}

/** When a run happened: when it finished, else started, else was created (Unix seconds). */
function runTime(run) {
  for (const t of [run.finished_at, run.started_at, run.created_at]) if (isNumber(t)) return t;
  return null;
}

/** The newest finished run with a top-1 among runs listed newest first, or null. */
function latestRecorded(runs) {
  return runs.find((r) => r.status === 'done' && isNumber(r.top1)) || null;
}

/** Changes whenever a run is added or changes status: the cue to reload the history. */
function runsSignature(runs) {
  return runs.map((r) => r.id + ':' + r.status).join(',');
}

/** Keeps the current choice if it still exists, else the first model with runs, else the first. */
function pickHistoryModel(names, runCounts, current) {
  if (current && names.includes(current)) return current;
  return names.find((n) => runCounts[n] > 0) || names[0] || '';
}

/* ---- accuracy chart ------------------------------------------------------------------------ */

/** Finished runs with an accuracy as chart points in percent, oldest first. */
function chartPoints(runs) {
  return runs
    .filter((r) => r.status === 'done' && isNumber(r.top1) && isNumber(runTime(r)))
    .map((r) => ({
      id: r.id,
      time: runTime(r),
      top1: r.top1 * 100,
      top5: isNumber(r.top5) ? r.top5 * 100 : null,
      synthetic: Boolean(r.synthetic),
      dataset: r.dataset,
    }))
    .sort((a, b) => a.time - b.time || a.id - b.id);
}

/** A y axis in percent covering every value on a round step, with at most 6 gridlines. */
function percentAxis(values) {
  const finite = values.filter(isNumber);
  const lo = finite.length ? Math.min(...finite) : 0;
  const hi = finite.length ? Math.max(...finite) : 100;
  const step = [1, 2, 5, 10, 20].find((s) => Math.ceil(hi / s) - Math.floor(lo / s) <= 5) || 20;
  let min = Math.max(0, Math.floor(lo / step) * step);
  let max = Math.min(100, Math.ceil(hi / step) * step);
  if (max - min < step) {    // a single value: give it room above and below
    min = Math.max(0, min - step);
    max = Math.min(100, max + step);
  }
  const ticks = [];
  for (let v = min; v <= max; v += step) ticks.push(v);
  return { min, max, ticks };
}

function round1(v) {
  return Math.round(v * 10) / 10;
}

/** SVG path data through the points that have a value for key. */
function linePath(dots, key) {
  return dots
    .filter((d) => isNumber(d[key]))
    .map((d, i) => (i ? 'L' : 'M') + d.x + ' ' + d[key])
    .join(' ');
}

/**
 * Chart geometry in SVG user units: dots {x, y1, y5, ...point}, line paths, the reference line's
 * y and the axis ticks. size: {width, height, left, right, top, bottom} (margins hold the labels).
 */
function chartLayout(points, reference, size) {
  const values = [];
  for (const p of points) values.push(p.top1, p.top5);
  values.push(reference);
  const axis = percentAxis(values);
  const plotW = size.width - size.left - size.right;
  const plotH = size.height - size.top - size.bottom;
  const t0 = points.length ? points[0].time : 0;
  const t1 = points.length ? points[points.length - 1].time : 0;
  const x = (t) => round1(t1 > t0 ? size.left + ((t - t0) / (t1 - t0)) * plotW : size.left + plotW / 2);
  const y = (v) => round1(size.top + ((axis.max - v) / (axis.max - axis.min)) * plotH);
  const dots = points.map((p) => Object.assign({}, p, {
    x: x(p.time),
    y1: y(p.top1),
    y5: isNumber(p.top5) ? y(p.top5) : null,
  }));
  const xLabels = t1 > t0
    ? [{ x: size.left, text: formatDate(t0), anchor: 'start' },
      { x: size.left + plotW, text: formatDate(t1), anchor: 'end' }]
    : points.length ? [{ x: x(t0), text: formatDate(t0), anchor: 'middle' }] : [];
  return {
    dots,
    top1Path: linePath(dots, 'y1'),
    top5Path: linePath(dots, 'y5'),
    referenceY: isNumber(reference) && reference >= axis.min && reference <= axis.max ? y(reference) : null,
    yTicks: axis.ticks.map((v) => ({ value: v, y: y(v) })),
    xLabels,
  };
}

/* ---- per-class results --------------------------------------------------------------------- */

/** Per-class rows with their accuracies; classes with no images in the run are left out. */
function classRows(perClass) {
  return perClass
    .filter((c) => c.total > 0)
    .map((c) => ({
      label: c.label,
      wnid: c.wnid || '',
      name: c.name || c.wnid || String(c.label),
      total: c.total,
      correct1: c.correct1,
      correct5: c.correct5,
      top1: c.correct1 / c.total,
      top5: c.correct5 / c.total,
    }));
}

/** A number selects that class index; other text, the classes whose name or wnid contains it. */
function filterClassRows(rows, query) {
  const q = query.trim().toLowerCase();
  if (!q) return rows;
  // Every wnid is digits after its "n": a bare number matching inside wnids would select at random.
  if (/^\d+$/.test(q)) return rows.filter((r) => r.label === Number(q));
  return rows.filter((r) => r.name.toLowerCase().includes(q) || r.wnid.toLowerCase().includes(q));
}

const CLASS_ORDERS = {
  index: (a, b) => a.label - b.label,
  name: (a, b) => a.name.localeCompare(b.name, 'en', { sensitivity: 'base' }),
  top1: (a, b) => a.top1 - b.top1 || a.top5 - b.top5,
};

/** A sorted copy; key "top1" ascending (the default) puts the worst classes first. Ties go by index. */
function sortClassRows(rows, key, descending) {
  const order = CLASS_ORDERS[key] || CLASS_ORDERS.top1;
  const sign = descending ? -1 : 1;
  return rows.slice().sort((a, b) => sign * order(a, b) || a.label - b.label);
}

if (typeof module !== 'undefined' && module.exports) {
  module.exports = {
    formatPercent, formatReference, formatRate, formatDuration, formatDate, formatProgress, describeError,
    isLive, refreshDelay, runTime, latestRecorded, runsSignature, pickHistoryModel,
    chartPoints, percentAxis, chartLayout, classRows, filterClassRows, sortClassRows,
    FAST_REFRESH_MS, SLOW_REFRESH_MS,
  };
}

/* ==== the page ================================================================================ */

const TOKEN_KEY = 'quanteval.token';
const CHART_MARGINS = { height: 260, left: 48, right: 16, top: 14, bottom: 30 };
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
  models: [],
  jobs: [],
  runsSignature: null,     // of the newest runs overall; null until first read
  runCounts: {},           // model config -> runs recorded (of the newest few)
  latest: {},              // model config -> newest finished run
  datasets: new Set(['samples']),
  historyModel: '',
  runs: [],                // of historyModel, newest first
  runId: null,             // the run whose per-class results are shown
  run: null,
  classSort: { key: 'top1', descending: false },
  classFilter: '',
};
let refreshTimer = null;
let historySeq = 0;
let runSeq = 0;

/** An element with properties (or attributes), event handlers (onclick...) and children. */
function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  appendAll(node, children);
  return node;
}

/** Children as nodes; strings become text nodes (never parsed as markup). */
function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  appendAll(node, children);
  return node;
}

function $(id) {
  return document.getElementById(id);
}

function replace(id, ...children) {
  const node = $(id);
  node.replaceChildren();
  appendAll(node, children);
}

function empty(sentence) {
  return h('p', { className: 'empty' }, sentence);
}

function badge(text, kind) {
  return h('span', { className: 'badge ' + (kind || text) }, text);
}

function syntheticBadge() {
  return h('span', { className: 'badge synthetic', title: 'built-in synthetic weights: accuracy is meaningless' },
    'synthetic weights');
}

function showMessage(text, isError) {
  const p = $('job-message');
  p.textContent = text;
  p.className = 'message ' + (isError ? 'error' : 'ok');
  p.hidden = false;
}

/* ---- API ------------------------------------------------------------------------------------ */

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
  }
}

/** JSON from the API; throws ApiError with the API's own message on failure. */
async function api(path, options) {
  let response;
  try {
    response = await fetch(path, Object.assign({ headers: { Accept: 'application/json' } }, options));
  } catch (e) {
    throw new ApiError(0, { error: e.message });
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** Headers of a job submit or cancel: the token, when one is set. */
function authHeaders(extra) {
  const token = $('token').value.trim();
  return Object.assign({ Accept: 'application/json' }, token ? { Authorization: 'Bearer ' + token } : {}, extra);
}

function errorText(e) {
  const hint = e.status === 401 ? ' (enter the daemon\'s API token at the top of the page)' : '';
  return e.message + hint;
}

/* ---- refresh loop --------------------------------------------------------------------------- */

async function refresh() {
  if (!document.hidden) {
    // The run summaries are per model, so they wait for the model list.
    await Promise.all([loadModels().then(checkRuns), loadJobs()]);
    if (state.run && isLive(state.run)) loadRun(state.run.id, false);
  }
  // Several refreshes may overlap (a submit triggers one): the last one to finish keeps the timer.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, document.hidden ? SLOW_REFRESH_MS : refreshDelay(state.jobs, state.models));
}

async function loadModels() {
  try {
    const body = await api('/v1/models');
    state.models = body.models || [];
    renderServerStatus(null);
  } catch (e) {
    renderServerStatus(e);
    if (!state.models.length) replace('models', h('p', { className: 'error' }, 'Cannot list the models: ' + e.message));
    return;
  }
  renderModels();
  fillModelSelects();
}

async function loadJobs() {
  try {
    const body = await api('/v1/jobs?limit=20');
    state.jobs = body.jobs || [];
  } catch (e) {
    if (!state.jobs.length) replace('jobs', h('p', { className: 'error' }, 'Cannot list the jobs: ' + e.message));
    return;
  }
  addDatasets(state.jobs);
  renderJobs();
}

/** Reloads the per-model summaries and the history when a run was added or changed status. */
async function checkRuns() {
  let runs;
  try {
    runs = (await api('/v1/runs?limit=20')).runs || [];
  } catch (e) {
    return;
  }
  const signature = runsSignature(runs);
  if (signature === state.runsSignature || !state.models.length) return;
  state.runsSignature = signature;
  if (!(await loadLatest())) state.runsSignature = null;    // retried on the next refresh
  loadHistory();
}

/**
 * Per model: how many runs it has and its newest finished one (for the cards and the default
 * history). False if some model's runs could not be read (what was known of it stays).
 */
async function loadLatest() {
  const names = state.models.map((m) => m.model_config);
  const read = await Promise.all(names.map(async (name) => {
    try {
      const runs = (await api('/v1/runs?model_config=' + encodeURIComponent(name) + '&limit=20')).runs || [];
      state.runCounts[name] = runs.length;
      state.latest[name] = latestRecorded(runs);
      addDatasets(runs);
      return true;
    } catch (e) {
      return false;
    }
  }));
  state.historyModel = pickHistoryModel(names, state.runCounts, state.historyModel);
  renderModels();
  fillModelSelects();
  return read.every(Boolean);
}

/* ---- models --------------------------------------------------------------------------------- */

function renderServerStatus(error) {
  const p = $('server-status');
  if (error) {
    p.textContent = error.message + ' \u2014 retrying.';
    p.className = 'error';
    return;
  }
  const n = state.models.length;
  const count = (s) => state.models.filter((m) => m.status === s).length;
  const loading = count('loading');
  let text = loading
    ? 'Loading models: ' + count('ready') + ' of ' + n + ' ready.'
    : n + ' model' + (n === 1 ? '' : 's') + ': ' + count('ready') + ' ready' +
      (count('unavailable') ? ', ' + count('unavailable') + ' unavailable' : '') + '.';
  if (state.models.some((m) => m.synthetic)) text += ' Serving synthetic weights: accuracies are meaningless.';
  p.textContent = text;
  p.className = 'muted';
}

function renderModels() {
  if (!state.models.length) {
    replace('models', empty('No model is configured on this daemon.'));
    return;
  }
  replace('models', state.models.map(modelCard));
}

function modelCard(m) {
  const latest = state.latest[m.model_config];
  const kind = [m.architecture, m.precision ? m.precision.toUpperCase() : null].filter(Boolean).join(' \u00b7 ');
  const latestText = latest ? formatPercent(latest.top1) : 'no finished run yet';
  return h('article', { className: 'card status-' + m.status },
    h('div', { className: 'card-head' },
      h('h3', null, m.model_config),
      badge(m.status)),
    kind ? h('p', { className: 'muted' }, kind) : null,
    m.status === 'loading'
      ? h('p', { className: 'note' }, m.quantized ? 'Loading: a quantized model calibrates first\u2026' : 'Loading\u2026')
      : null,
    m.status === 'unavailable' ? h('p', { className: 'error' }, 'Unavailable: ' + (m.reason || 'no reason given')) : null,
    m.synthetic ? h('p', { className: 'synthetic-note' }, syntheticBadge(),
      ' random built-in checkpoint: its accuracy is about 0% by design.') : null,
    h('dl', null,
      h('dt', null, 'Zoo top-1'), h('dd', null, formatReference(m.reference_top1)),
      h('dt', null, 'Latest top-1'),
      h('dd', null, latest
        ? h('button', { type: 'button', className: 'link', title: 'Show run ' + latest.id,
          onclick: () => loadRun(latest.id, true) }, latestText)
        : latestText,
      // A synthetic run of a model now on real weights would otherwise pass for its accuracy.
      latest && latest.synthetic && !m.synthetic ? [' ', badge('synthetic', 'synthetic')] : null,
      latest ? h('div', { className: 'muted small' }, 'run ' + latest.id + ' \u00b7 ' + (latest.dataset || DASH) +
        ' \u00b7 ', h('span', { className: 'nowrap' }, formatDate(runTime(latest)))) : null)));
}

function syntheticModel(name) {
  return state.models.some((m) => m.model_config === name && m.synthetic);
}

/** Replaces a select's options only when they change: rebuilding them would close an open list. */
function setOptions(select, options) {
  const signature = JSON.stringify(options);
  if (select.dataset.options === signature) return;
  select.dataset.options = signature;
  select.replaceChildren(...options.map((o) => h('option', { value: o.value, disabled: o.disabled }, o.text)));
}

/** The job form's and the history's model lists, keeping the current choices. */
function fillModelSelects() {
  const jobSelect = $('job-model');
  const chosen = jobSelect.value;
  setOptions(jobSelect, state.models.map((m) => ({
    value: m.model_config,
    disabled: m.status === 'unavailable',
    text: m.model_config + (m.status === 'ready' ? '' : ' (' + m.status + ')'),
  })));
  const usable = state.models.filter((m) => m.status !== 'unavailable').map((m) => m.model_config);
  jobSelect.value = usable.includes(chosen) ? chosen : usable[0] || '';

  const historySelect = $('history-model');
  setOptions(historySelect, state.models.map((m) => ({ value: m.model_config, disabled: false, text: m.model_config })));
  historySelect.value = state.historyModel;
}

/** Offers the datasets seen in jobs and runs in the job form (the API does not list them). */
function addDatasets(items) {
  const before = state.datasets.size;
  for (const item of items) if (item.dataset) state.datasets.add(item.dataset);
  if (state.datasets.size !== before) fillDatasets();
}

function fillDatasets() {
  $('dataset-names').replaceChildren(...[...state.datasets].sort().map((d) => h('option', { value: d })));
}

/* ---- jobs ----------------------------------------------------------------------------------- */

function renderJobs() {
  if (!state.jobs.length) {
    replace('jobs', empty('No jobs yet. A job evaluates one model config on a named dataset; submit one above.'));
    return;
  }
  const rows = state.jobs.map((j) => h('tr', { className: isLive(j) ? 'live' : '' },
    h('td', null, h('button', { type: 'button', className: 'link', title: 'Show its run below',
      onclick: () => loadRun(j.id, true) }, '#' + j.id)),
    h('td', null, badge(j.status), j.attempts > 1 ? h('span', { className: 'muted' }, ' resumed') : null,
      j.error ? h('div', { className: 'error small' }, j.error) : null),
    // Jobs do not say which weights they use; the model's current ones are the likely answer.
    h('td', null, j.model_config, syntheticModel(j.model_config) ? [' ', badge('synthetic', 'synthetic')] : null),
    h('td', null, j.dataset),
    h('td', { className: 'progress-cell' },
      h('progress', { max: j.total > 0 ? j.total : 1, value: j.total > 0 ? j.done : 0 }),
      h('span', { className: 'small' }, formatProgress(j.done, j.total))),
    h('td', { className: 'num' }, formatPercent(j.top1)),
    h('td', { className: 'num' }, formatPercent(j.top5)),
    h('td', { className: 'num' }, formatRate(j.images_per_second)),
    h('td', { className: 'num' }, isLive(j) ? formatDuration(j.eta_seconds) : DASH),
    h('td', null, isLive(j)
      ? h('button', { type: 'button', className: 'danger', onclick: () => cancelJob(j.id) }, 'Cancel')
      : null)));
  replace('jobs', h('div', { className: 'table-wrap' }, h('table', null,
    h('thead', null, h('tr', null,
      ['Job', 'Status', 'Model', 'Dataset', 'Progress', 'Top-1', 'Top-5', 'Images/s', 'ETA', ''].map((t) =>
        h('th', { scope: 'col' }, t)))),
    h('tbody', null, rows))));
}

async function submitJob(event) {
  event.preventDefault();
  const request = { model_config: $('job-model').value, dataset: $('job-dataset').value.trim() };
  const limit = $('job-limit').value.trim();
  if (limit) request.limit = Number(limit);
  const button = event.target.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const job = await api('/v1/jobs', {
      method: 'POST',
      headers: authHeaders({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(request),
    });
    showMessage('Job ' + job.id + ' queued: ' + job.model_config + ' on ' + job.dataset + '.', false);
  } catch (e) {
    showMessage('Cannot submit the job: ' + errorText(e), true);
  } finally {
    button.disabled = false;
  }
  refresh();
}

async function cancelJob(id) {
  if (!window.confirm('Cancel job ' + id + '?')) return;
  try {
    const job = await api('/v1/jobs/' + id, { method: 'DELETE', headers: authHeaders() });
    showMessage(job.cancelled ? 'Job ' + id + ' cancelled.' : 'Job ' + id + ' had already ended (' + job.status + ').',
      false);
  } catch (e) {
    showMessage('Cannot cancel job ' + id + ': ' + errorText(e), true);
  }
  refresh();
}

/* ---- accuracy history ----------------------------------------------------------------------- */

async function loadHistory() {
  const model = state.historyModel;
  const seq = ++historySeq;
  if (!model) {
    replace('chart');
    replace('runs', empty('No model is configured, so there is no history to show.'));
    return;
  }
  let runs;
  try {
    runs = (await api('/v1/runs?model_config=' + encodeURIComponent(model) + '&limit=200')).runs || [];
  } catch (e) {
    if (seq === historySeq) replace('runs', h('p', { className: 'error' }, 'Cannot read the runs: ' + e.message));
    return;
  }
  if (seq !== historySeq) return;    // another model was chosen meanwhile
  state.runs = runs;
  renderHistory();
}

function renderHistory() {
  const model = state.historyModel;
  const runs = state.runs;
  const note = $('history-note');
  note.hidden = !runs.some((r) => r.synthetic);
  note.textContent = 'Runs marked \u201csynthetic\u201d used the built-in synthetic weights (random, no download): ' +
    'their accuracy is about 0% by design, not a failure.';
  if (!runs.length) {
    replace('chart');
    replace('runs', empty('No runs of ' + model + ' yet. Submit a job above, or run `quanteval eval --model-config ' +
      model + '` (it records into the same history).'));
    return;
  }
  renderChart(model, runs);
  renderRunsTable(runs);
}

function renderChart(model, runs) {
  const points = chartPoints(runs);
  const info = state.models.find((m) => m.model_config === model) || {};
  if (!points.length) {
    replace('chart', empty('No finished run of ' + model + ' to plot yet.'));
    return;
  }
  // As wide as its box, so that the labels keep their size on a phone as on a desktop.
  const s = Object.assign({ width: Math.max(320, Math.min(1200, $('chart').clientWidth || 760)) }, CHART_MARGINS);
  const layout = chartLayout(points, info.reference_top1, s);
  const chart = svg('svg', { viewBox: '0 0 ' + s.width + ' ' + s.height, role: 'img',
    'aria-label': 'Top-1 and top-5 accuracy of ' + model + ' over time' },
  layout.yTicks.map((t) => [
    svg('line', { x1: s.left, x2: s.width - s.right, y1: t.y, y2: t.y, class: 'grid' }),
    svg('text', { x: s.left - 6, y: t.y + 4, 'text-anchor': 'end', class: 'axis' }, t.value + '%'),
  ]),
  layout.xLabels.map((l) => svg('text', { x: l.x, y: s.height - 8, 'text-anchor': l.anchor, class: 'axis' }, l.text)),
  layout.referenceY !== null ? [
    svg('line', { x1: s.left, x2: s.width - s.right, y1: layout.referenceY, y2: layout.referenceY, class: 'reference' }),
    svg('text', { x: s.width - s.right, y: layout.referenceY - 5, 'text-anchor': 'end', class: 'reference-label' },
      'zoo top-1 ' + formatReference(info.reference_top1)),
  ] : null,
  layout.top5Path ? svg('path', { d: layout.top5Path, class: 'line top5' }) : null,
  svg('path', { d: layout.top1Path, class: 'line top1' }),
  layout.dots.map((d) => [
    isNumber(d.y5) ? svg('circle', { cx: d.x, cy: d.y5, r: 3, class: 'dot top5' }) : null,
    svg('circle', { cx: d.x, cy: d.y1, r: 4.5, class: 'dot top1' + (d.synthetic ? ' synthetic' : '') +
      (d.id === state.runId ? ' selected' : ''), 'data-run': d.id, tabindex: 0, onclick: () => loadRun(d.id, true),
    onkeydown: (e) => { if (e.key === 'Enter') loadRun(d.id, true); } },
    svg('title', null, 'run ' + d.id + ' (' + (d.dataset || '') + ', ' + formatDate(d.time) + '): top-1 ' +
      d.top1.toFixed(2) + '%' + (isNumber(d.top5) ? ', top-5 ' + d.top5.toFixed(2) + '%' : '') +
      (d.synthetic ? ', synthetic weights' : ''))),
  ]));
  const legend = h('p', { className: 'legend' },
    h('span', { className: 'key top1' }), 'top-1 ', h('span', { className: 'key top5' }), 'top-5 ',
    layout.referenceY !== null ? [h('span', { className: 'key reference' }), 'zoo reference top-1 '] : null,
    points.some((p) => p.synthetic) ? [h('span', { className: 'key synthetic' }), 'synthetic weights'] : null);
  replace('chart', chart, legend);
}

function renderRunsTable(runs) {
  // The FP32 comparison exists only for CLI runs of quantized configs: show its columns when present.
  const hasFp32 = runs.some((r) => isNumber(r.fp32_top1) || isNumber(r.agreement));
  const headers = ['Run', 'Date', 'Dataset', 'Source', 'Images', 'Top-1', 'Top-5']
    .concat(hasFp32 ? ['FP32 top-1', 'Agreement'] : [], ['Images/s', 'Status']);
  const rows = runs.map((r) => {
    const images = r.images_total > r.images && isLive(r) ? formatProgress(r.images, r.images_total) : String(r.images);
    return h('tr', { className: 'clickable' + (r.id === state.runId ? ' selected' : ''), 'data-run': r.id,
      onclick: () => loadRun(r.id, true) },
    h('td', null, h('button', { type: 'button', className: 'link' }, '#' + r.id)),
    h('td', { className: 'nowrap' }, formatDate(runTime(r))),
    h('td', null, r.dataset || DASH),
    h('td', null, r.source || DASH),
    h('td', { className: 'num' }, images),
    h('td', { className: 'num' }, formatPercent(r.top1)),
    h('td', { className: 'num' }, formatPercent(r.top5)),
    hasFp32 ? [h('td', { className: 'num' }, formatPercent(r.fp32_top1)),
      h('td', { className: 'num' }, formatPercent(r.agreement))] : null,
    h('td', { className: 'num' }, formatRate(r.images_per_second)),
    h('td', null, badge(r.status), r.synthetic ? [' ', badge('synthetic', 'synthetic')] : null,
      r.error ? h('div', { className: 'error small' }, r.error) : null));
  });
  replace('runs', h('p', { className: 'muted small' }, runs.length + ' run' + (runs.length === 1 ? '' : 's') + ' of ' +
    state.historyModel + ', newest first. Select one for its per-class results.'),
  h('div', { className: 'table-wrap' }, h('table', { className: 'runs' },
    h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, rows))));
}

/* ---- per-class results ---------------------------------------------------------------------- */

async function loadRun(id, scroll) {
  const seq = ++runSeq;
  const fresh = id !== state.runId;
  state.runId = id;
  markSelectedRun();
  let run;
  try {
    run = await api('/v1/runs/' + id);
  } catch (e) {
    if (seq === runSeq) replace('classes', h('p', { className: 'error' }, 'Cannot read run ' + id + ': ' + e.message));
    return;
  }
  if (seq !== runSeq) return;
  state.run = run;
  // The address names the run, so that it can be bookmarked or shared.
  if (window.location.hash !== '#run=' + run.id) window.history.replaceState(null, '', '#run=' + run.id);
  // A run picked from the jobs, a model card or the address: show its model's history too.
  if (run.model_config !== state.historyModel && state.models.some((m) => m.model_config === run.model_config)) {
    state.historyModel = run.model_config;
    $('history-model').value = run.model_config;
    loadHistory();
  }
  if (fresh) {
    state.classFilter = '';
    state.classSort = { key: 'top1', descending: false };
  }
  renderRun(run);
  if (scroll) $('classes-title').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

/** Highlights the selected run in the table and the chart without redrawing them. */
function markSelectedRun() {
  for (const node of document.querySelectorAll('#runs tr[data-run], #chart circle[data-run]')) {
    node.classList.toggle('selected', Number(node.dataset.run) === state.runId);
  }
}

function renderRun(run) {
  // A live run is redrawn on every refresh: keep the filter box's focus while someone types.
  const typing = document.activeElement && document.activeElement.id === 'class-filter';
  const summary = h('p', { className: 'summary' },
    h('strong', null, 'Run #' + run.id), ' \u00b7 ' + run.model_config + ' on ' + (run.dataset || DASH) + ' \u00b7 ' +
    run.images + ' images \u00b7 top-1 ' + formatPercent(run.top1) + ' \u00b7 top-5 ' + formatPercent(run.top5) + ' ',
    badge(run.status), run.synthetic ? [' ', syntheticBadge()] : null, ' ',
    h('a', { href: '/v1/runs/' + run.id + '/predictions', download: 'run-' + run.id + '-predictions.csv' },
      'Download predictions (CSV)'));
  const rows = classRows(run.per_class || []);
  if (!rows.length) {
    replace('classes', summary, empty('This run has no per-class results yet: no image has been recorded.'));
    return;
  }
  const filter = h('input', { type: 'search', id: 'class-filter', placeholder: 'Filter by class name, wnid or index',
    value: state.classFilter, 'aria-label': 'Filter classes',
    oninput: (e) => { state.classFilter = e.target.value; renderClassRows(rows); } });
  const sortButton = (key, text) => h('button', { type: 'button', className: 'sort', 'data-key': key,
    onclick: () => {
      const s = state.classSort;
      // Accuracy starts worst first, the others in ascending order; a second click reverses.
      state.classSort = { key, descending: s.key === key ? !s.descending : false };
      renderClassRows(rows);
    } }, text);
  const table = h('table', { className: 'classes' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col', 'data-key': 'index' }, sortButton('index', 'Index')),
      h('th', { scope: 'col', 'data-key': 'name' }, sortButton('name', 'Class')),
      h('th', { scope: 'col' }, 'wnid'),
      h('th', { scope: 'col', className: 'num' }, 'Images'),
      h('th', { scope: 'col', 'data-key': 'top1', className: 'num' }, sortButton('top1', 'Top-1')),
      h('th', { scope: 'col', className: 'num' }, 'Top-5'))),
    h('tbody', { id: 'class-rows' }));
  replace('classes', summary,
    h('div', { className: 'toolbar' }, filter, h('span', { id: 'class-count', className: 'muted' })),
    h('div', { className: 'table-wrap' }, table));
  renderClassRows(rows);
  if (typing) {
    filter.focus();
    filter.setSelectionRange(filter.value.length, filter.value.length);
  }
}

function renderClassRows(rows) {
  const { key, descending } = state.classSort;
  const shown = sortClassRows(filterClassRows(rows, state.classFilter), key, descending);
  for (const th of document.querySelectorAll('#classes th[data-key]')) {
    if (th.dataset.key === key) th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
    else th.removeAttribute('aria-sort');
  }
  const body = $('class-rows');
  body.replaceChildren(...shown.map((c) => h('tr', null,
    h('td', { className: 'num' }, String(c.label)),
    h('td', null, c.name),
    h('td', { className: 'mono' }, c.wnid),
    h('td', { className: 'num' }, String(c.total)),
    h('td', { className: 'num' }, accuracyBar(c.top1), ' ' + formatPercent(c.top1) + ' (' + c.correct1 + ')'),
    h('td', { className: 'num' }, formatPercent(c.top5) + ' (' + c.correct5 + ')'))));
  if (!shown.length) body.append(h('tr', null, h('td', { colSpan: 6, className: 'empty' }, 'No class matches the filter.')));
  $('class-count').textContent = 'Showing ' + shown.length + ' of ' + rows.length + ' classes' +
    (key === 'top1' && !descending ? ', worst top-1 first.' : '.');
}

function accuracyBar(fraction) {
  const fill = h('span');
  fill.style.width = (fraction * 100).toFixed(1) + '%';    // CSSOM, which the page's CSP allows
  return h('span', { className: 'bar', 'aria-hidden': 'true' }, fill);
}

/* ---- start ---------------------------------------------------------------------------------- */

/** The run named by the address (#run=ID), or null. */
function linkedRun() {
  const match = /^#run=(\d+)$/.exec(window.location.hash);
  return match ? Number(match[1]) : null;
}

async function start() {
  const token = $('token');
  try {
    token.value = window.localStorage.getItem(TOKEN_KEY) || '';
  } catch (e) {
    // Storage may be disabled; the token then lasts as long as the page.
  }
  token.addEventListener('change', () => {
    try {
      window.localStorage.setItem(TOKEN_KEY, token.value.trim());
    } catch (e) {
      // As above.
    }
  });
  $('job-form').addEventListener('submit', submitJob);
  $('history-model').addEventListener('change', (e) => {
    state.historyModel = e.target.value;
    loadHistory();
  });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (state.runs.length) renderChart(state.historyModel, state.runs); }, 200);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });
  window.addEventListener('hashchange', () => {
    if (linkedRun() !== null && linkedRun() !== state.runId) loadRun(linkedRun(), true);
  });
  fillDatasets();
  // A linked run's model is the history's first choice.
  if (linkedRun() !== null) {
    await loadRun(linkedRun(), false);
    if (state.run) state.historyModel = state.run.model_config;
  }
  refresh();
}

if (typeof document !== 'undefined') start();
