#!/usr/bin/python3
"""Test vectors for tests/test_encoding.c, computed by the reference implementation
shared/reference/quantsim.py (spec quantsim.md §1-§3.1).

    gen_encodings.py analyzers SHARED OUTDIR
        OUTDIR/analyzers.txt   one case per block (format below)
        OUTDIR/analyzers.f32   the tensors of all cases, little-endian float32, in manifest order

        case NAME SCHEME BW SYM NBATCH N1 .. Nk     SCHEME: tf | tfe; the k batch tensors follow in
                                                    the blob, each one updateStats() call
        expect MIN MAX DELTA OFFSET                 float.hex() of the reference's doubles
                                                    ("none" if the reference gives no encoding)
        perchannel NAME BW C P                      blob: w [C,P], then the expected codes
                                                    k [C,P] and QDQ'd weights [C,P] (float32)
        expect ...                                  C lines, one per channel

    gen_encodings.py fold SHARED ARCH CHECKPOINT OUTDIR
        OUTDIR/fold-ARCH.txt: "CONV SHA256(W') SHA256(bias')" per conv/BN pair of the checkpoint
        (read with the reference's safe loader), the digests of the little-endian float32
        bytes of the reference's folded tensors (§3.1).

    gen_encodings.py repr OUTDIR
        OUTDIR/repr.txt: "enc MIN MAX SCALE OFFSET" (hex doubles, integer offset) for doubles
        of every magnitude; OUTDIR/repr.json: the same encodings as one parameter "p.weight"
        written by json.dump exactly as the reference's export (§6.1).
"""
import os
import sys

import numpy as np

F32 = np.float32


def load_reference(shared):
    sys.path.insert(0, os.path.join(shared, "reference"))
    import quantsim
    return quantsim


def hexd(v):
    return float(v).hex()


def enc_line(e):
    if e is None or e.bw == 0:
        return "expect none\n"
    return "expect %s %s %s %s\n" % (hexd(e.min), hexd(e.max), hexd(e.delta), hexd(e.offset))


def tie_values(qs, first, rng, n):
    """Values whose bucket index v / b - off (float32, §2.2.2) is exactly k + 1/2 for the
    histogram range that `first` fixes: rounding halves away from zero must be exact."""
    xl = qs._init_xleft(first.min(), first.max())
    b = F32(xl[1] - xl[0])
    off = F32(F32(xl[0]) / b)
    out = []
    while len(out) < n:
        k = F32(rng.integers(-3, 515)) + F32(0.5)
        for v in (F32((k + off) * b), np.nextafter(F32((k + off) * b), F32(0))):
            if F32(F32(v / b) - off) == k:
                out.append(v)
                break
    return np.array(out, dtype=F32)


def batches_for(rng, kind, n, qs):
    """A list of float32 tensors exercising one situation of §2."""
    r = lambda *s: rng.standard_normal(s).astype(F32)
    if kind == "normal":
        return [(r(n) * F32(rng.uniform(0.01, 5)) + F32(rng.uniform(-1, 1))).astype(F32)]
    if kind == "uniform":
        a, b = sorted(rng.uniform(-3, 3, 2))
        return [rng.uniform(a, b, n).astype(F32)]
    if kind == "relu":
        return [np.maximum(r(n) * F32(rng.uniform(0.1, 10)), F32(0))]
    if kind == "relu_multi":        # later batches beyond the first range: dropped values
        s = F32(rng.uniform(0.5, 3))
        return [np.maximum(r(n) * s * F32(k + 1), F32(0)) for k in range(3)]
    if kind == "multi":             # several batches, later ones wider and shifted
        return [(r(rng.integers(1, n + 1)) * F32(1 + k) + F32(k * 0.7)).astype(F32) for k in range(4)]
    if kind == "negative":
        return [-np.abs(r(n)) * F32(rng.uniform(0.1, 4))]
    if kind == "positive_offset":   # strictly positive: min > 0 before gating
        return [(np.abs(r(n)) + F32(rng.uniform(0.5, 2))).astype(F32)]
    if kind == "constant":
        return [np.full(n, F32(rng.choice([2.5, -1.25, 0.003, 7.0])), dtype=F32)]
    if kind == "zero":
        return [np.zeros(n, F32)]
    if kind == "zero_then_data":    # the range is fixed by the first non-zero batch
        return [np.zeros(n, F32), r(n) * F32(2)]
    if kind == "data_then_zero":
        return [r(n), np.zeros(n, F32), (r(n) * F32(0.5)).astype(F32)]
    if kind == "tiny":
        return [(r(n) * F32(1e-4)).astype(F32)]
    if kind == "huge":
        return [(r(n) * F32(1e3)).astype(F32)]
    if kind == "heavy_tail":
        return [(rng.standard_cauchy(n) * 0.3).astype(F32)]
    if kind == "grid":              # few distinct values: many exact ties in bucket indices
        return [(rng.integers(-20, 40, n) * F32(0.125)).astype(F32)]
    if kind == "ties":
        first = (r(n) * F32(rng.uniform(0.1, 3)) + F32(rng.uniform(-1, 1))).astype(F32)
        return [first, tie_values(qs, first, rng, n)]
    if kind == "single":
        return [np.array([rng.uniform(-2, 2)], dtype=F32)]
    if kind == "large":             # large enough for the parallel paths
        return [(r(300000) * F32(1.5) + F32(0.2)).astype(F32), (r(200001) * F32(2.5)).astype(F32)]
    raise ValueError(kind)


KINDS = ["normal", "uniform", "relu", "relu_multi", "multi", "negative", "positive_offset",
         "constant", "zero", "zero_then_data", "data_then_zero", "tiny", "huge", "heavy_tail",
         "grid", "ties", "single"]


def gen_analyzers(qs, out):
    rng = np.random.default_rng(20240613)
    man = open(os.path.join(out, "analyzers.txt.tmp"), "w")
    blob = open(os.path.join(out, "analyzers.f32.tmp"), "wb")
    count = 0
    for scheme in ("tf", "tfe"):
        for bw in (8, 4):
            for sym in (0, 1):
                for kind in KINDS:
                    for rep in range(3 if kind not in ("zero", "single", "constant") else 1):
                        n = int(rng.integers(1, 5000))
                        bs = batches_for(rng, kind, n, qs)
                        an = qs.make_analyzer("tf_enhanced" if scheme == "tfe" else "tf")
                        for b in bs:
                            an.update(b)
                            blob.write(np.ascontiguousarray(b, dtype="<f4").tobytes())
                        e = qs.compute_many([an], "tf_enhanced" if scheme == "tfe" else "tf",
                                            bw, bool(sym))[0]
                        man.write("case %s_%s_%d_%d_%d %s %d %d %d %s\n" % (
                            kind, scheme, bw, sym, rep, scheme, bw, sym, len(bs),
                            " ".join(str(b.size) for b in bs)))
                        man.write(enc_line(e))
                        count += 1
    # Other bit widths of §2, and the parallel paths on large tensors.
    for scheme, bw, sym, kind in [("tfe", 16, 0, "normal"), ("tfe", 16, 1, "normal"),
                                  ("tf", 16, 1, "normal"), ("tfe", 2, 0, "relu"),
                                  ("tfe", 8, 0, "large"), ("tfe", 8, 1, "large"),
                                  ("tf", 8, 0, "large")]:
        bs = batches_for(rng, kind, int(rng.integers(100, 3000)), qs)
        an = qs.make_analyzer("tf_enhanced" if scheme == "tfe" else "tf")
        for b in bs:
            an.update(b)
            blob.write(np.ascontiguousarray(b, dtype="<f4").tobytes())
        e = qs.compute_many([an], "tf_enhanced" if scheme == "tfe" else "tf", bw, bool(sym))[0]
        man.write("case %s_%s_%d_%d_x %s %d %d %d %s\n" % (
            kind, scheme, bw, sym, scheme, bw, sym, len(bs), " ".join(str(b.size) for b in bs)))
        man.write(enc_line(e))
        count += 1
    # §2.3 per-channel weights, including the special channels.
    for bw in (8, 4):
        for rep in range(4):
            C = int(rng.integers(1, 40))
            P = int(rng.integers(1, 700))
            w = (rng.standard_normal((C, P)) * rng.uniform(0.001, 0.5, (C, 1))).astype(F32)
            if rep == 0 and C >= 4:
                w[0] = 0                                     # all-zero channel (§2.2.3)
                w[1] = F32(0.25)                             # constant channel
                w[2] = np.abs(w[2])                          # unsigned channel (§1.6, §2.2.7)
                w[3] = -np.abs(w[3])
            encs = qs.param_encodings(w, "tf_enhanced", bw, per_channel=True, symmetric=True)
            k, _, dq = qs.weight_codes(w, encs)
            blob.write(np.ascontiguousarray(w, dtype="<f4").tobytes())
            blob.write(np.ascontiguousarray(k, dtype="<f4").tobytes())
            blob.write(np.ascontiguousarray(dq, dtype="<f4").tobytes())
            man.write("perchannel w%d_%d %d %d %d\n" % (bw, rep, bw, C, P))
            for e in encs:
                man.write(enc_line(e))
            count += 1
    man.close()
    blob.close()
    os.replace(os.path.join(out, "analyzers.f32.tmp"), os.path.join(out, "analyzers.f32"))
    os.replace(os.path.join(out, "analyzers.txt.tmp"), os.path.join(out, "analyzers.txt"))
    print("gen_encodings: %d analyzer cases" % count, file=sys.stderr)


def gen_fold(qs, arch, ckpt, out):
    import hashlib
    sd = qs.load_state_dict(ckpt)
    folded = qs.fold_bn(sd, arch)
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()
    path = os.path.join(out, "fold-%s.txt" % arch)
    with open(path + ".tmp", "w") as f:
        for conv, _ in qs.conv_bn_pairs(arch):
            f.write("%s %s %s\n" % (conv, digest(folded[conv][0]), digest(folded[conv][1])))
    os.replace(path + ".tmp", path)


def gen_repr(out):
    """Doubles whose Python repr takes every form: positional, exponent, integral, subnormal."""
    import json
    rng = np.random.default_rng(7)
    vals = [0.0, -0.0, 1.0, -2.0, 0.1, 1e-4, 9.999e-5, 1e-5, 1e15, 1e16, 9999999999999998.0,
            123456789012345.6, 1.5e16, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
            0.30000000000000004, 100.0, 1e22, 1e-7, 12345.678]
    vals += list(10.0 ** rng.uniform(-30, 30, 300) * rng.choice([-1, 1], 300))
    vals += [float(F32(v)) for v in rng.standard_normal(200)]
    vals += [float(v) for v in rng.standard_normal(200) * 1e-3]
    encs, lines = [], []
    for i in range(0, len(vals) - 2, 3):
        mn, mx, sc = vals[i], vals[i + 1], vals[i + 2]
        if mn > mx:
            mn, mx = mx, mn
        off = int(rng.integers(-300, 300))
        encs.append({"bitwidth": 8, "dtype": "int", "is_symmetric": "False", "max": mx,
                     "min": mn, "offset": off, "scale": sc})
        lines.append("enc %s %s %s %d\n" % (mn.hex(), mx.hex(), sc.hex(), off))
    doc = {"version": "0.6.1", "activation_encodings": {}, "param_encodings": {"p.weight": encs},
           "excluded_layers": [],
           "quantizer_args": {"quant_scheme": "post_training_tf_enhanced", "param_bitwidth": 8,
                              "activation_bitwidth": 8, "dtype": "int", "is_symmetric": True,
                              "per_channel_quantization": True}}
    with open(os.path.join(out, "repr.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    with open(os.path.join(out, "repr.txt"), "w") as f:
        f.writelines(lines)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "analyzers":
        gen_analyzers(load_reference(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "fold":
        gen_fold(load_reference(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    elif len(sys.argv) == 3 and sys.argv[1] == "repr":
        gen_repr(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
