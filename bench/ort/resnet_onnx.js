'use strict';
/*
 * resnet_onnx.js - builds ONNX models of torchvision's ResNet18 and ResNet50 (Bottleneck v1.5:
 * the stride on the 3x3) for the ONNX Runtime comparison benchmark (bench_ort.js).
 *
 *   fp32: Conv (BN folded: conv with bias), Relu, Add, MaxPool 3x3 s2 p1, GlobalAveragePool,
 *         Flatten, Gemm.
 *   int8: static quantization in the QOperator form ONNX Runtime's quantizer emits for CPU
 *         (uint8 activations with zero points, int8 per-channel symmetric weights, int32 bias):
 *         QuantizeLinear on the input; QLinearConv, whose uint8 output has zero point 0 where a
 *         Relu follows (the quantizer drops that Relu: saturation at 0 is the ReLU); QLinearAdd
 *         (com.microsoft) for the residual adds, likewise with the block's Relu folded into a
 *         zero-point-0 output; MaxPool on uint8; QLinearGlobalAveragePool (com.microsoft);
 *         Flatten; QLinearMatMul for fc (int8 weights), then DequantizeLinear and the fp32 bias.
 *
 * Weights are random (speed does not depend on the values), scales and zero points plausible.
 * Opset 13, com.microsoft opset 1, IR version 7. The schema below is the subset of onnx.proto
 * (proto2, same field numbers) needed to write and read such models.
 *
 * CLI:  node resnet_onnx.js [--arch resnet18|resnet50|all] [--precision fp32,int8] [--batch 1,16]
 *                           [--out DIR]        writes DIR/<arch>-<precision>-b<batch>.onnx
 *       node resnet_onnx.js --ops FILE.onnx   prints the op types (with domain) of a model
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const protobuf = require('protobufjs');

const ONNX_PROTO = `
syntax = "proto2";
package onnx;
message AttributeProto {
  enum AttributeType { UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
                       FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10;
                       SPARSE_TENSOR = 11; SPARSE_TENSORS = 12; TYPE_PROTO = 13; TYPE_PROTOS = 14; }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
}
message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}
message TensorProto {
  enum DataType { UNDEFINED = 0; FLOAT = 1; UINT8 = 2; INT8 = 3; UINT16 = 4; INT16 = 5; INT32 = 6;
                  INT64 = 7; STRING = 8; BOOL = 9; FLOAT16 = 10; DOUBLE = 11; UINT32 = 12;
                  UINT64 = 13; COMPLEX64 = 14; COMPLEX128 = 15; BFLOAT16 = 16; }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
}
message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  optional string denotation = 6;
}
`;

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 };
const ATTR = { FLOAT: 1, INT: 2, INTS: 7 };
const MS = 'com.microsoft';

/* Deterministic xorshift32 in [0, 1). */
function rng(seed) {
    let s = seed >>> 0 || 1;
    return () => {
        s ^= s << 13; s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5; s >>>= 0;
        return s / 4294967296;
    };
}

class Graph {
    constructor(seed) {
        this.nodes = [];
        this.inits = [];
        this.rand = rng(seed);
        this.n = 0;
        this.consts = new Map();
        this.macs = 0;   /* multiply-accumulates per image: convs and fc, as engine/resnet.c counts */
    }
    fresh(prefix) { return `${prefix}_${this.n++}`; }
    init(name, dataType, dims, typed) {
        this.inits.push({ name, data_type: dataType, dims,
                          raw_data: Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength) });
        return name;
    }
    /* Scalar constants (scales, zero points) shared by value. */
    scalar(dataType, v) {
        const key = `${dataType}:${v}`;
        if (!this.consts.has(key)) {
            const T = { [DT.FLOAT]: Float32Array, [DT.UINT8]: Uint8Array, [DT.INT8]: Int8Array }[dataType];
            this.consts.set(key, this.init(this.fresh('c'), dataType, [], T.of(v)));
        }
        return this.consts.get(key);
    }
    node(op, inputs, attrs = {}, domain = '', nout = 1) {
        const outputs = Array.from({ length: nout }, () => this.fresh(op));
        const attribute = Object.entries(attrs).map(([name, v]) =>
            Array.isArray(v) ? { name, type: ATTR.INTS, ints: v }
            : Number.isInteger(v) ? { name, type: ATTR.INT, i: v }
            : { name, type: ATTR.FLOAT, f: v });
        this.nodes.push({ input: inputs, output: outputs, name: outputs[0], op_type: op, domain, attribute });
        return nout === 1 ? outputs[0] : outputs;
    }
    uniformF32(count, bound) {
        const a = new Float32Array(count);
        for (let i = 0; i < count; i++) a[i] = (2 * this.rand() - 1) * bound;
        return a;
    }
    uniformI8(count) {
        const a = new Int8Array(count);
        for (let i = 0; i < count; i++) a[i] = Math.floor(this.rand() * 255) - 127;
        return a;
    }
}

/* Activation quantization (uint8): after a (folded) ReLU the range is [0, 12.75]; values that
 * are summed in a residual add are signed; the normalized input image spans about [-2.1, 2.6]. */
const Q_RELU = { scale: 0.05, zp: 0 };
const Q_SIGNED = { scale: 0.08, zp: 128 };
const Q_INPUT = { scale: 0.0186, zp: 114 };

/* One conv of the net: fp32 Conv (+ Relu), or QLinearConv whose output quantization folds the
 * Relu. x is {name, c, hw, q}: channels, spatial size, quantization (int8 mode). gain scales the
 * fp32 weights so that activations stay of order one through the random net. */
function conv(g, int8, x, cout, k, stride, relu, gain = 1) {
    const cin = x.c, pad = (k - 1) >> 1;
    const hw = Math.floor((x.hw + 2 * pad - k) / stride) + 1;
    g.macs += hw * hw * cout * cin * k * k;
    const attrs = { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad],
                    dilations: [1, 1], group: 1 };
    const wdims = [cout, cin, k, k], nw = cout * cin * k * k;
    if (!int8) {
        const w = g.init(g.fresh('w'), DT.FLOAT, wdims, g.uniformF32(nw, gain * Math.sqrt(6 / (cin * k * k))));
        const b = g.init(g.fresh('b'), DT.FLOAT, [cout], g.uniformF32(cout, 0.1));
        let y = g.node('Conv', [x.name, w, b], attrs);
        if (relu) y = g.node('Relu', [y]);
        return { name: y, c: cout, hw };
    }
    const wscale = new Float32Array(cout);
    for (let i = 0; i < cout; i++) wscale[i] = 0.01 * (0.75 + 0.5 * g.rand());
    const bias = new Int32Array(cout);
    for (let i = 0; i < cout; i++) bias[i] = Math.round((2 * g.rand() - 1) * 0.1 / (x.q.scale * wscale[i]));
    const w = g.init(g.fresh('w'), DT.INT8, wdims, g.uniformI8(nw));
    const ws = g.init(g.fresh('w_scale'), DT.FLOAT, [cout], wscale);
    const wz = g.init(g.fresh('w_zp'), DT.INT8, [cout], new Int8Array(cout));   /* symmetric */
    const b = g.init(g.fresh('b'), DT.INT32, [cout], bias);
    const q = relu ? Q_RELU : Q_SIGNED;
    const y = g.node('QLinearConv', [x.name, g.scalar(DT.FLOAT, x.q.scale), g.scalar(DT.UINT8, x.q.zp), w, ws, wz,
                                     g.scalar(DT.FLOAT, q.scale), g.scalar(DT.UINT8, q.zp), b], attrs);
    return { name: y, c: cout, hw, q };
}

/* Residual add followed by the block's ReLU. */
function addRelu(g, int8, a, b) {
    if (!int8)
        return { name: g.node('Relu', [g.node('Add', [a.name, b.name])]), c: a.c, hw: a.hw };
    const q = Q_RELU;
    const y = g.node('QLinearAdd', [a.name, g.scalar(DT.FLOAT, a.q.scale), g.scalar(DT.UINT8, a.q.zp),
                                    b.name, g.scalar(DT.FLOAT, b.q.scale), g.scalar(DT.UINT8, b.q.zp),
                                    g.scalar(DT.FLOAT, q.scale), g.scalar(DT.UINT8, q.zp)], {}, MS);
    return { name: y, c: a.c, hw: a.hw, q };
}

const ARCHS = {
    resnet18: { block: 'basic', layers: [2, 2, 2, 2], expansion: 1 },
    resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3], expansion: 4 },
};

/* The model of arch ('resnet18'|'resnet50') in precision ('fp32'|'int8') for a fixed batch:
 * { bytes: serialized ModelProto (Buffer), gmacs: multiply-accumulates per image in 1e9 }. */
function buildModel(arch, precision, batch) {
    const spec = ARCHS[arch];
    if (!spec) throw new Error(`unknown arch ${arch}`);
    if (precision !== 'fp32' && precision !== 'int8') throw new Error(`unknown precision ${precision}`);
    const int8 = precision === 'int8';
    const g = new Graph(arch === 'resnet18' ? 18 : 50);
    const RES = 0.3;  /* fp32 gain of a block's last conv: keeps the residual stream bounded */

    let x = { name: 'input', c: 3, hw: 224 };
    if (int8) {
        x = { name: g.node('QuantizeLinear', ['input', g.scalar(DT.FLOAT, Q_INPUT.scale), g.scalar(DT.UINT8, Q_INPUT.zp)]),
              c: 3, hw: 224, q: Q_INPUT };
    }
    x = conv(g, int8, x, 64, 7, 2, true);
    x = { ...x, hw: Math.floor((x.hw - 1) / 2) + 1,
          name: g.node('MaxPool', [x.name], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }) };

    let inplanes = 64;
    spec.layers.forEach((nblocks, li) => {
        const planes = 64 << li;
        for (let bi = 0; bi < nblocks; bi++) {
            const stride = li > 0 && bi === 0 ? 2 : 1;
            const outc = planes * spec.expansion;
            let y;
            if (spec.block === 'basic') {
                y = conv(g, int8, x, planes, 3, stride, true);
                y = conv(g, int8, y, planes, 3, 1, false, RES);
            } else {
                y = conv(g, int8, x, planes, 1, 1, true);
                y = conv(g, int8, y, planes, 3, stride, true);       /* v1.5: stride on the 3x3 */
                y = conv(g, int8, y, outc, 1, 1, false, RES);
            }
            const identity = stride !== 1 || inplanes !== outc ? conv(g, int8, x, outc, 1, stride, false) : x;
            x = addRelu(g, int8, y, identity);
            inplanes = outc;
        }
    });

    const C = inplanes;
    g.macs += C * 1000;
    let logits;
    if (!int8) {
        const pooled = g.node('Flatten', [g.node('GlobalAveragePool', [x.name])], { axis: 1 });
        const w = g.init(g.fresh('fc_w'), DT.FLOAT, [1000, C], g.uniformF32(1000 * C, Math.sqrt(6 / C)));
        const b = g.init(g.fresh('fc_b'), DT.FLOAT, [1000], g.uniformF32(1000, 0.1));
        logits = g.node('Gemm', [pooled, w, b], { transB: 1 });
    } else {
        const qp = Q_RELU;  /* the mean of ReLU outputs keeps their range */
        const pooled = g.node('QLinearGlobalAveragePool', [x.name, g.scalar(DT.FLOAT, x.q.scale), g.scalar(DT.UINT8, x.q.zp),
                                                           g.scalar(DT.FLOAT, qp.scale), g.scalar(DT.UINT8, qp.zp)],
                              { channels_last: 0 }, MS);
        const flat = g.node('Flatten', [pooled], { axis: 1 });
        const ws = 0.004, qo = { scale: 0.1, zp: 128 };
        const w = g.init(g.fresh('fc_w'), DT.INT8, [C, 1000], g.uniformI8(C * 1000));
        const mm = g.node('QLinearMatMul', [flat, g.scalar(DT.FLOAT, qp.scale), g.scalar(DT.UINT8, qp.zp),
                                            w, g.scalar(DT.FLOAT, ws), g.scalar(DT.INT8, 0),
                                            g.scalar(DT.FLOAT, qo.scale), g.scalar(DT.UINT8, qo.zp)]);
        const deq = g.node('DequantizeLinear', [mm, g.scalar(DT.FLOAT, qo.scale), g.scalar(DT.UINT8, qo.zp)]);
        const b = g.init(g.fresh('fc_b'), DT.FLOAT, [1000], g.uniformF32(1000, 0.1));
        logits = g.node('Add', [deq, b]);
    }
    /* Name the graph output "logits". */
    g.nodes[g.nodes.length - 1].output = ['logits'];
    logits = 'logits';

    const tensorType = (dims) => ({ tensor_type: { elem_type: DT.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
    const model = {
        ir_version: 7,
        opset_import: [{ domain: '', version: 13 }, ...(int8 ? [{ domain: MS, version: 1 }] : [])],
        producer_name: 'quanteval-bench-ort',
        graph: {
            name: `${arch}_${precision}`,
            node: g.nodes,
            initializer: g.inits,
            input: [{ name: 'input', type: tensorType([batch, 3, 224, 224]) }],
            output: [{ name: logits, type: tensorType([batch, 1000]) }],
        },
    };
    const err = ModelProto.verify(model);
    if (err) throw new Error(`ModelProto: ${err}`);
    return { bytes: Buffer.from(ModelProto.encode(ModelProto.fromObject(model)).finish()), gmacs: g.macs * 1e-9 };
}

/* Op types of a serialized model, "domain:Op" for non-default domains, with counts. */
function opCounts(buf) {
    const m = ModelProto.decode(buf);
    const counts = {};
    for (const n of m.graph.node) {
        const k = n.domain ? `${n.domain}:${n.op_type}` : n.op_type;
        counts[k] = (counts[k] || 0) + 1;
    }
    return counts;
}

function defaultDir() {
    return path.join(process.env.QE_ORT_DIR || os.tmpdir(), 'quanteval-ort');
}

/* Writes the model to dir (default $TMPDIR/quanteval-ort, or $QE_ORT_DIR/quanteval-ort);
 * returns { file, gmacs }. */
function writeModel(arch, precision, batch, dir = defaultDir()) {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${arch}-${precision}-b${batch}.onnx`);
    const { bytes, gmacs } = buildModel(arch, precision, batch);
    fs.writeFileSync(file, bytes);
    return { file, gmacs };
}

module.exports = { buildModel, writeModel, opCounts, defaultDir, ARCHS };

if (require.main === module) {
    const args = process.argv.slice(2);
    const opt = { arch: 'all', precision: 'fp32,int8', batch: '1,16', out: defaultDir() };
    for (let i = 0; i < args.length; i++) {
        const a = args[i];
        if (a === '--ops' && i + 1 < args.length) {
            const c = opCounts(fs.readFileSync(args[++i]));
            for (const [k, v] of Object.entries(c)) console.log(`${String(v).padStart(4)}  ${k}`);
            process.exit(0);
        } else if (['--arch', '--precision', '--batch', '--out'].includes(a) && i + 1 < args.length) {
            opt[a.slice(2)] = args[++i];
        } else {
            console.error('usage: node resnet_onnx.js [--arch resnet18|resnet50|all] [--precision fp32,int8] [--batch 1,16] [--out DIR]\n' +
                          '       node resnet_onnx.js --ops FILE.onnx');
            process.exit(2);
        }
    }
    const archs = opt.arch === 'all' ? Object.keys(ARCHS) : opt.arch.split(',');
    for (const arch of archs)
        for (const p of opt.precision.split(','))
            for (const b of opt.batch.split(',').map(Number)) {
                const { file, gmacs } = writeModel(arch, p, b, opt.out);
                console.log(`${file}  (${gmacs.toFixed(3)} GMAC/image)`);
            }
}
