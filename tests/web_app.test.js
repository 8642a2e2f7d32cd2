// The dashboard's pure functions (web/app.js) under node, without a DOM. Run by cli_web.sh with
// TZ=UTC, so that dates format the same everywhere.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const app = require(path.join(process.env.QE_SRC || path.join(__dirname, '..'), 'web', 'app.js'));

test('percentages: fractions with 2 decimals, reference already in percent, dash when missing', () => {
  assert.equal(app.formatPercent(0.7552), '75.52%');
  assert.equal(app.formatPercent(1), '100.00%');
  assert.equal(app.formatPercent(0), '0.00%');
  assert.equal(app.formatPercent(2 / 3), '66.67%');
  assert.equal(app.formatPercent(null), '\u2014');
  assert.equal(app.formatPercent(undefined), '\u2014');
  assert.equal(app.formatPercent(NaN), '\u2014');
  assert.equal(app.formatReference(69.758), '69.76%');
  assert.equal(app.formatReference(null), '\u2014');
});

test('rates, durations, dates and progress', () => {
  assert.equal(app.formatRate(41.66), '41.7');
  assert.equal(app.formatRate(0), '\u2014');
  assert.equal(app.formatRate(null), '\u2014');
  assert.equal(app.formatDuration(42.4), '42 s');
  assert.equal(app.formatDuration(185), '3 min 05 s');
  assert.equal(app.formatDuration(3720), '1 h 02 min');
  assert.equal(app.formatDuration(null), '\u2014');
  assert.equal(app.formatDuration(-1), '\u2014');
  assert.equal(app.formatDate(1714572180), '2024-05-01 14:03');
  assert.equal(app.formatDate(null), '\u2014');
  assert.equal(app.formatProgress(1184, 50000), '1184 / 50000 (2.4%)');
  assert.equal(app.formatProgress(0, 0), '0 images');
});

test('errors show the API message with the status', () => {
  assert.equal(app.describeError(401, { error: 'wrong API token' }), 'HTTP 401: wrong API token');
  assert.equal(app.describeError(502, null), 'HTTP 502: request failed');
  assert.equal(app.describeError(0, { error: 'Failed to fetch' }), 'cannot reach the daemon: Failed to fetch');
});

test('refresh fast only while a job is live or a model loads', () => {
  const ready = [{ status: 'ready' }];
  assert.equal(app.refreshDelay([{ status: 'running' }], ready), app.FAST_REFRESH_MS);
  assert.equal(app.refreshDelay([{ status: 'queued' }, { status: 'done' }], ready), app.FAST_REFRESH_MS);
  assert.equal(app.refreshDelay([{ status: 'done' }, { status: 'cancelled' }], ready), app.SLOW_REFRESH_MS);
  assert.equal(app.refreshDelay([], [{ status: 'loading' }]), app.FAST_REFRESH_MS);
  assert.equal(app.refreshDelay([], []), app.SLOW_REFRESH_MS);
  assert.ok(app.FAST_REFRESH_MS === 2000 && app.SLOW_REFRESH_MS === 10000);
});

// Newest first, as /v1/runs lists them.
const runs = [
  { id: 9, status: 'running', top1: 0.5, top5: 0.9, created_at: 1000900, started_at: 1000950, finished_at: null },
  { id: 8, status: 'done', top1: 0.001, top5: 0.005, synthetic: true, created_at: 1000500, finished_at: 1000600, dataset: 'samples' },
  { id: 7, status: 'failed', top1: null, top5: null, created_at: 1000300 },
  { id: 6, status: 'done', top1: 0.7, top5: 0.9, created_at: 1000000, finished_at: 1000100, dataset: 'dev' },
  { id: 5, status: 'done', top1: 0.69, top5: null, created_at: 999000, started_at: 999050, finished_at: null },
];

test('runs: time, newest finished run, signature', () => {
  assert.equal(app.runTime(runs[0]), 1000950);
  assert.equal(app.runTime(runs[2]), 1000300);
  assert.equal(app.latestRecorded(runs).id, 8);
  assert.equal(app.latestRecorded(runs.filter((r) => r.id !== 8)).id, 6);
  assert.equal(app.latestRecorded([runs[0], runs[2]]), null);
  assert.equal(app.runsSignature(runs.slice(0, 3)), '9:running,8:done,7:failed');
  assert.notEqual(app.runsSignature([{ id: 9, status: 'done' }]), app.runsSignature([{ id: 9, status: 'running' }]));
});

test('history model: keep the choice, else the first with runs, else the first', () => {
  const names = ['resnet18_fp32', 'resnet18_w8a8', 'resnet50_fp32'];
  assert.equal(app.pickHistoryModel(names, { resnet18_w8a8: 3 }, ''), 'resnet18_w8a8');
  assert.equal(app.pickHistoryModel(names, { resnet18_w8a8: 3 }, 'resnet50_fp32'), 'resnet50_fp32');
  assert.equal(app.pickHistoryModel(names, { resnet18_w8a8: 3 }, 'gone'), 'resnet18_w8a8');
  assert.equal(app.pickHistoryModel(names, {}, ''), 'resnet18_fp32');
  assert.equal(app.pickHistoryModel([], {}, ''), '');
});

test('chart points: finished runs with a top-1, oldest first, in percent', () => {
  const points = app.chartPoints(runs);
  assert.deepEqual(points.map((p) => p.id), [5, 6, 8]);
  assert.deepEqual(points.map((p) => p.time), [999050, 1000100, 1000600]);
  assert.equal(points[1].top1, 70);
  assert.equal(points[1].top5, 90);
  assert.equal(points[0].top5, null);
  assert.deepEqual(points.map((p) => p.synthetic), [false, false, true]);
  assert.deepEqual(app.chartPoints([]), []);
});

test('chart axis: round steps covering every value', () => {
  assert.deepEqual(app.percentAxis([0.1, 0.5, 69.76]), { min: 0, max: 80, ticks: [0, 20, 40, 60, 80] });
  assert.deepEqual(app.percentAxis([69.5, 89, 69.76]), { min: 65, max: 90, ticks: [65, 70, 75, 80, 85, 90] });
  assert.deepEqual(app.percentAxis([70]), { min: 69, max: 71, ticks: [69, 70, 71] });
  assert.deepEqual(app.percentAxis([100]), { min: 99, max: 100, ticks: [99, 100] });
  assert.deepEqual(app.percentAxis([null, undefined]), { min: 0, max: 100, ticks: [0, 20, 40, 60, 80, 100] });
});

test('chart layout: coordinates of the dots, the lines and the reference', () => {
  const size = { width: 500, height: 250, left: 50, right: 50, top: 10, bottom: 40 };   // plot 400 x 200
  const points = [
    { id: 1, time: 100, top1: 60, top5: 80 },
    { id: 2, time: 200, top1: 70, top5: null },
    { id: 3, time: 300, top1: 65, top5: 90 },
  ];
  const l = app.chartLayout(points, 75, size);    // axis 60..90 by 10
  assert.deepEqual(l.yTicks.map((t) => [t.value, t.y]), [[60, 210], [70, 143.3], [80, 76.7], [90, 10]]);
  assert.deepEqual(l.dots.map((d) => [d.x, d.y1, d.y5]), [[50, 210, 76.7], [250, 143.3, null], [450, 176.7, 10]]);
  assert.equal(l.top1Path, 'M50 210 L250 143.3 L450 176.7');
  assert.equal(l.top5Path, 'M50 76.7 L450 10');
  assert.equal(l.referenceY, 110);
  assert.deepEqual(l.xLabels.map((x) => [x.x, x.anchor]), [[50, 'start'], [450, 'end']]);
  // One run: centred, one date label; no reference line without a reference.
  const one = app.chartLayout([{ id: 4, time: 100, top1: 0, top5: 0.5 }], null, size);
  assert.equal(one.dots[0].x, 250);
  assert.equal(one.referenceY, null);
  assert.equal(one.xLabels.length, 1);
});

const perClass = [
  { label: 0, wnid: 'n01440764', name: 'tench', total: 3, correct1: 3, correct5: 3 },
  { label: 1, wnid: 'n01443537', name: 'goldfish', total: 3, correct1: 1, correct5: 3 },
  { label: 2, wnid: 'n01484850', name: 'great white shark', total: 0, correct1: 0, correct5: 0 },
  { label: 3, wnid: 'n01491361', name: 'tiger shark', total: 3, correct1: 1, correct5: 2 },
  { label: 4, wnid: 'n01494475', name: 'Hammerhead', total: 2, correct1: 0, correct5: 1 },
  { label: 5, wnid: 'n01496331', name: 'electric ray', total: 3, correct1: 1, correct5: 3 },
];

test('per-class rows: accuracies, classes without images left out', () => {
  const rows = app.classRows(perClass);
  assert.deepEqual(rows.map((r) => r.label), [0, 1, 3, 4, 5]);
  assert.equal(rows[1].top1, 1 / 3);
  assert.equal(rows[3].top5, 0.5);
  assert.equal(app.classRows([{ label: 7, wnid: 'n1', total: 1, correct1: 0, correct5: 1 }])[0].name, 'n1');
});

test('per-class order: worst first by default, by index, by name, reversible', () => {
  const rows = app.classRows(perClass);
  const order = (key, desc) => app.sortClassRows(rows, key, desc).map((r) => r.label);
  // top-1 ascending, ties by top-5 then index.
  assert.deepEqual(order('top1', false), [4, 3, 1, 5, 0]);
  assert.deepEqual(order('top1', true), [0, 1, 5, 3, 4]);
  assert.deepEqual(order('index', false), [0, 1, 3, 4, 5]);
  assert.deepEqual(order('index', true), [5, 4, 3, 1, 0]);
  assert.deepEqual(order('name', false), [5, 1, 4, 0, 3]);   // case-insensitive
  assert.deepEqual(order('unknown', false), order('top1', false));
  assert.deepEqual(rows.map((r) => r.label), [0, 1, 3, 4, 5], 'sorting must not reorder its input');
});

test('per-class filter: name or wnid substring, exact index', () => {
  const rows = app.classRows(perClass);
  const labels = (q) => app.filterClassRows(rows, q).map((r) => r.label);
  assert.deepEqual(labels('shark'), [3]);
  assert.deepEqual(labels('  HAMMER '), [4]);
  assert.deepEqual(labels('n0144'), [0, 1]);
  assert.deepEqual(labels('3'), [3]);
  assert.deepEqual(labels(''), [0, 1, 3, 4, 5]);
  assert.deepEqual(labels('zebra'), []);
});
