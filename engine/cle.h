/*
 * cle.h - AIMET 1.24's Cross-Layer Equalization of a torchvision ResNet18/50
 * (spec optimization.md §4, `equalize_model`), bit for bit as shared/reference/cle.py.
 *
 * What goes in: a torchvision state dict (conv weights + BatchNorm2d, no conv biases).
 * What comes out: the zoo's BN-free state dict (every conv with weight and bias, fc unchanged),
 * the same float32 bits the reference produces: BN fold (§4.1, qe_resnet_params_load), then
 * cross-layer scaling of every pair in order (§4.2), then the high-bias fold of every pair in
 * the same order (§4.3), as summarised in §4.4. AdaRound (§5) is not part of this module.
 */
#ifndef QE_CLE_H
#define QE_CLE_H

#include "resnet.h"
#include "statedict.h"

/* ResNet50: 16 Bottlenecks x 2 pairs (§4.2.1 table). */
#define QE_CLE_MAX_PAIRS 32

typedef struct qe_cle_info {
    int npairs;
    int l1[QE_CLE_MAX_PAIRS], l2[QE_CLE_MAX_PAIRS];   /* conv indices into desc->convs */
    int n[QE_CLE_MAX_PAIRS];                          /* channels of the pair (L1's cout) */
    float *scales[QE_CLE_MAX_PAIRS];                  /* [n] the s[c] of §4.2.2 */
    float *absorbed[QE_CLE_MAX_PAIRS];                /* [n] the a[c] of §4.3 (mostly 0) */
    int absorbed_channels;                            /* channels with a[c] != 0, all pairs */
} qe_cle_info;

/* Equalizes the torchvision checkpoint sd of arch: *p receives the CLE'd float32 parameters
 * (p->prefolded is set: they are the zoo's BN-free layout) and *info (may be NULL) the pairs,
 * their scaling factors and absorbed amounts. A checkpoint that is already BN-free is refused
 * (the high-bias fold needs the original BN gamma/beta, §4.1), as is any key or shape mismatch.
 * Returns 0, or -1 with err set and *p, *info empty. Release with qe_resnet_params_free and
 * qe_cle_info_free. */
int qe_cle_equalize(qe_arch arch, const qe_statedict *sd, qe_resnet_params *p, qe_cle_info *info,
                    char *err);
void qe_cle_info_free(qe_cle_info *info);

/* The BN-free state dict of p as reference/cle.py --out writes it: "<conv>.weight",
 * "<conv>.bias" for every conv in forward order, then "fc.weight", "fc.bias", all float32
 * copies (p is not retained). Write it with qe_statedict_save_torch; free with
 * qe_statedict_free. */
void qe_cle_to_statedict(const qe_resnet_params *p, qe_statedict *out);

#endif
