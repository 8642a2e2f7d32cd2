'use strict';
/*
 * bench_ort.js - ONNX Runtime (CPU execution provider, onnxruntime-node) images/s on the
 * workloads build/bench_net times, so that its figures compare directly with ours:
 * torchvision ResNet18/ResNet50 at 224x224, FP32 (BN folded) and int8 static quantization in
 * the QOperator form ONNX Runtime's quantizer emits (uint8 activations, int8 per-channel
 * symmetric weights: QLinearConv, QLinearAdd, ...; see resnet_onnx.js).
 *
 *   node bench_ort.js [--arch resnet18|resnet50|all] [--precision fp32,int8] [--batch 1,16]
 *                     [--threads N] [--seconds S] [--json] [--keep]
 *
 * Sessions: intraOpNumThreads N (default 2, as bench_net), interOpNumThreads 1, sequential
 * execution, graphOptimizationLevel 'all' (ORT then rewrites the int8 graph to its NHWC
 * com.microsoft QLinearConv kernels and the FP32 one to NCHWc convolutions). Models are built
 * with random weights into $TMPDIR/quanteval-ort (or $QE_ORT_DIR/quanteval-ort) and removed
 * once loaded unless --keep. After a warm-up, images/s is that of the best one-second window of
 * --seconds (default 5), as in bench_net; the mean over all windows is printed beside it.
 * GMAC/s counts conv and fc multiply-accumulates as engine/resnet.c does.
 */
const fs = require('fs');
const os = require('os');
const ort = require('onnxruntime-node');
const { writeModel, ARCHS } = require('./resnet_onnx.js');

const USAGE = 'usage: node bench_ort.js [--arch resnet18|resnet50|all] [--precision fp32,int8] [--batch 1,16]\n' +
              '                         [--threads N] [--seconds S] [--json] [--keep]';

function parseArgs(argv) {
    const opt = { arch: 'all', precision: 'fp32,int8', batch: '1,16', threads: 2, seconds: 5, json: false, keep: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (['--arch', '--precision', '--batch'].includes(a) && i + 1 < argv.length)
            opt[a.slice(2)] = argv[++i];
        else if (a === '--threads' && i + 1 < argv.length)
            opt.threads = Math.max(1, parseInt(argv[++i], 10) || 1);
        else if (a === '--seconds' && i + 1 < argv.length)
            opt.seconds = Number(argv[++i]);
        else if (a === '--json')
            opt.json = true;
        else if (a === '--keep')
            opt.keep = true;
        else {
            console.error(USAGE);
            process.exit(2);
        }
    }
    const list = (s, all) => (s === 'all' ? all : s.split(',').filter((t) => t));
    opt.archs = list(opt.arch, Object.keys(ARCHS));
    opt.precisions = list(opt.precision, ['fp32', 'int8']);
    opt.batches = opt.batch.split(',').map(Number).filter((b) => Number.isInteger(b) && b >= 1);
    for (const a of opt.archs) if (!ARCHS[a]) { console.error(`bench_ort: unknown arch ${a}\n${USAGE}`); process.exit(2); }
    for (const p of opt.precisions) if (p !== 'fp32' && p !== 'int8') { console.error(`bench_ort: unknown precision ${p}\n${USAGE}`); process.exit(2); }
    if (!(opt.seconds > 0)) opt.seconds = 5;
    return opt;
}

/* Random inputs in [-2, 2), generated as bench_net's random_images. */
function randomImages(n) {
    const x = new Float32Array(n * 3 * 224 * 224);
    let s = 12345;
    for (let i = 0; i < x.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        x[i] = ((s >>> 8) & 0xffff) / 16384 - 2;
    }
    return x;
}

const now = () => Number(process.hrtime.bigint()) * 1e-9;

/* Best one-second window within `seconds` (at least one window) and the mean over all windows. */
async function run(session, batch, seconds) {
    const feeds = { input: new ort.Tensor('float32', randomImages(batch), [batch, 3, 224, 224]) };
    for (let i = 0; i < 3; i++)   /* warm-up: allocation plan, memory pattern, thread pool */
        await session.run(feeds);
    let best = 0, totalT = 0, totalIters = 0;
    do {
        let iters = 0, t;
        const t0 = now();
        do {
            await session.run(feeds);
            iters++;
            t = now() - t0;
        } while (t < 1.0);
        best = Math.max(best, (iters * batch) / t);
        totalT += t;
        totalIters += iters;
    } while (totalT < seconds);
    return { ips: best, mean: (totalIters * batch) / totalT };
}

async function main() {
    const opt = parseArgs(process.argv.slice(2));
    const sessionOptions = {
        executionProviders: ['cpu'],
        intraOpNumThreads: opt.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
    };
    const version = require('onnxruntime-node/package.json').version;
    const info = { runtime: 'onnxruntime-node', version, execution_provider: 'cpu', cpu: os.cpus()[0].model,
                   threads: opt.threads, inter_op_threads: 1, graph_optimization_level: 'all', execution_mode: 'sequential',
                   seconds: opt.seconds };
    if (!opt.json)
        console.log(`ONNX Runtime ${version} (onnxruntime-node, CPU EP), ${info.cpu}, ${opt.threads} intra-op threads`);
    const results = [];
    for (const arch of opt.archs) {
        for (const precision of opt.precisions) {
            for (const batch of opt.batches) {
                const { file, gmacs } = writeModel(arch, precision, batch);
                let session;
                try {
                    session = await ort.InferenceSession.create(file, sessionOptions);
                } finally {
                    if (!opt.keep) fs.rmSync(file, { force: true });
                }
                const { ips, mean } = await run(session, batch, opt.seconds);
                await session.release();
                const r = { model: arch, precision, batch, threads: opt.threads, images_per_second: ips,
                            mean_images_per_second: mean, gmacs_per_image: gmacs, achieved_gmacs: ips * gmacs };
                results.push(r);
                if (!opt.json)
                    console.log(`${arch.padEnd(9)} ${precision.padEnd(4)} batch ${String(batch).padEnd(3)} threads ${opt.threads}: ` +
                                `${ips.toFixed(2).padStart(7)} images/s  ${(ips * gmacs).toFixed(1).padStart(6)} GMAC/s  ` +
                                `[mean ${mean.toFixed(2)} images/s]`);
            }
        }
    }
    if (opt.json) {
        const round = (v, d) => Number(v.toFixed(d));
        console.log(JSON.stringify({ ...info, results: results.map((r) => ({
            ...r, images_per_second: round(r.images_per_second, 3), mean_images_per_second: round(r.mean_images_per_second, 3),
            gmacs_per_image: round(r.gmacs_per_image, 4), achieved_gmacs: round(r.achieved_gmacs, 2) })) }));
    }
}

main().catch((e) => {
    console.error(`bench_ort: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
});
