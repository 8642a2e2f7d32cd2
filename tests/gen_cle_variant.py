#!/usr/bin/env python3
"""Writes the BN-perturbed synthetic checkpoint of golden/cle/<arch>-hbf-variant (npz, torchvision
keys): the recipe of golden/cle/README.md ("How they were produced"). For every BatchNorm, in
state-dict order, one shared Generator(PCG64(SEED)) draws u1, u2, u3 = uniform(-1, 1, C) and
  gamma' = f32(gamma * 2**u1), beta' = f32(beta + 2*(u2+1)*|gamma'|), mean' = f32(mean + 0.2*u3)
(float64, rounded once).  Usage: gen_cle_variant.py IN.npz SEED OUT.npz"""
import sys

import numpy as np


def perturbed(sd, seed):
    rng = np.random.Generator(np.random.PCG64(seed))
    out = dict(sd)
    for k in list(sd):
        if not k.endswith(".running_var"):
            continue
        bn = k[: -len(".running_var")]
        g = sd[bn + ".weight"].astype(np.float64)
        b = sd[bn + ".bias"].astype(np.float64)
        m = sd[bn + ".running_mean"].astype(np.float64)
        c = g.shape[0]
        u1 = rng.uniform(-1, 1, c)
        u2 = rng.uniform(-1, 1, c)
        u3 = rng.uniform(-1, 1, c)
        g2 = (g * 2.0 ** u1).astype(np.float32)
        out[bn + ".weight"] = g2
        out[bn + ".bias"] = (b + 2.0 * (u2 + 1.0) * np.abs(g2.astype(np.float64))).astype(np.float32)
        out[bn + ".running_mean"] = (m + 0.2 * u3).astype(np.float32)
    return out


def main():
    inp, seed, outp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    z = np.load(inp)
    sd = {k: z[k] for k in z.files}
    res = perturbed(sd, seed)
    tmp = outp + ".tmp.npz"
    np.savez(tmp, **res)
    import os
    os.replace(tmp, outp)


if __name__ == "__main__":
    main()
