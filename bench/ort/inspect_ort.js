'use strict';
/*
 * inspect_ort.js - which kernels ONNX Runtime runs for a bench_ort.js model: builds the model,
 * has inspect_ort.c (compiled on first use with cc into the model directory) load it with
 * bench_ort.js's session settings through the C API of the npm package's libonnxruntime.so,
 * save the optimized graph and profile a few runs, then prints the optimized graph's op types
 * and the profiled kernel time per op type. Linux only.
 *
 *   node inspect_ort.js [--arch resnet18|resnet50] [--precision fp32|int8] [--batch N] [--runs N]
 *
 * For int8 the optimized graph should hold com.microsoft:QLinearConv (ORT's NHWC u8s8 kernel)
 * in place of every QLinearConv; for fp32, com.microsoft.nchwc:Conv (with the Relu and the residual
 * Add fused into it).
 */
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { writeModel, opCounts, defaultDir } = require('./resnet_onnx.js');

const opt = { arch: 'resnet50', precision: 'int8', batch: '1', runs: '5' };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (['--arch', '--precision', '--batch', '--runs'].includes(a) && i + 1 < args.length) {
        opt[a.slice(2)] = args[++i];
    } else {
        console.error('usage: node inspect_ort.js [--arch resnet18|resnet50] [--precision fp32|int8] [--batch N] [--runs N]');
        process.exit(2);
    }
}

const dir = defaultDir();
const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
const lib = path.join(pkg, 'bin', 'napi-v3', process.platform, process.arch, 'libonnxruntime.so.1');
if (!fs.existsSync(lib)) {
    console.error(`inspect_ort: no ${lib} (Linux only)`);
    process.exit(1);
}
const src = path.join(__dirname, 'inspect_ort.c'), exe = path.join(dir, 'inspect_ort');
fs.mkdirSync(dir, { recursive: true });
if (!fs.existsSync(exe) || fs.statSync(exe).mtimeMs < fs.statSync(src).mtimeMs)
    execFileSync(process.env.CC || 'cc', ['-O1', '-o', exe, src, '-ldl'], { stdio: 'inherit' });

const { file } = writeModel(opt.arch, opt.precision, Number(opt.batch), dir);
const optimized = file.replace(/\.onnx$/, '.optimized.onnx');
const prefix = file.replace(/\.onnx$/, '.profile');
const profile = execFileSync(exe, [lib, file, opt.batch, optimized, prefix, opt.runs],
                             { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

console.log(`${opt.arch} ${opt.precision} batch ${opt.batch}: ops of the model as built`);
for (const [k, v] of Object.entries(opCounts(fs.readFileSync(file)))) console.log(`  ${String(v).padStart(4)}  ${k}`);
console.log(`ops of the graph ONNX Runtime optimized (${optimized})`);
for (const [k, v] of Object.entries(opCounts(fs.readFileSync(optimized)))) console.log(`  ${String(v).padStart(4)}  ${k}`);

/* Kernel time per op type over the profiled runs, the first (warm-up) run excluded. */
const events = JSON.parse(fs.readFileSync(profile, 'utf8'));
const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
const t0 = runs.length > 1 ? runs[1].ts : 0;
const agg = new Map();
let total = 0;
for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < t0) continue;
    const k = `${e.args.op_name} (${e.args.provider})`;
    const a = agg.get(k) || { n: 0, us: 0 };
    a.n++;
    a.us += e.dur;
    agg.set(k, a);
    total += e.dur;
}
const nruns = Math.max(1, runs.length - 1);
console.log(`kernel time per run by op, mean of ${nruns} runs after the first (${profile})`);
for (const [k, a] of [...agg.entries()].sort((x, y) => y[1].us - x[1].us))
    console.log(`  ${(a.us / nruns / 1000).toFixed(2).padStart(8)} ms  ${(100 * a.us / total).toFixed(1).padStart(5)}%  ` +
                `${String(a.n / nruns).padStart(3)} x ${k}`);
