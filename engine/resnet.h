/*
 * resnet.h - the two torchvision ResNets as data: their convolutions, blocks and state-dict
 * names, and their parameters with BatchNorm folded (spec quantsim.md §3.1).
 *
 * Every engine (FP32, calibration, exact integer) walks the same description, so the graph is
 * written down once: stem conv1 (7x7/2) + relu + maxpool (3x3/2), blocks, avgpool, fc.
 */
#ifndef QE_RESNET_H
#define QE_RESNET_H

#include "statedict.h"

typedef enum { QE_ARCH_RESNET18 = 18, QE_ARCH_RESNET50 = 50 } qe_arch;

#define QE_MAX_CONVS 53
#define QE_MAX_BLOCKS 16

typedef struct qe_conv_desc {
    char name[32];         /* module name, e.g. "layer2.0.downsample.0" */
    char bn[32];           /* the BatchNorm folded into it, e.g. "layer2.0.downsample.1" */
    int cin, cout, k, stride, pad;
} qe_conv_desc;

typedef struct qe_block_desc {
    char name[16];         /* "layer2.0" */
    int nconv;             /* 2 (BasicBlock) or 3 (Bottleneck v1.5, stride on the 3x3) */
    int conv[3];           /* indices into qe_resnet_desc.convs */
    int downsample;        /* index into convs, or -1 */
} qe_block_desc;

typedef struct qe_resnet_desc {
    qe_arch arch;
    const char *name;      /* "resnet18" */
    int nconvs, nblocks;
    qe_conv_desc convs[QE_MAX_CONVS];    /* forward order, convs[0] is the stem */
    qe_block_desc blocks[QE_MAX_BLOCKS];
    int fc_in;             /* 512 or 2048 */
    double gmacs;          /* multiply-accumulates per 224x224 image, in 1e9 */
    int stage1_blocks;     /* blocks before the first with a stride-2 conv: those at 56x56 */
} qe_resnet_desc;

/* The static description of an architecture. */
const qe_resnet_desc *qe_resnet_desc_get(qe_arch arch);
/* "resnet18"/"resnet50" -> arch; -1 if unknown. */
int qe_resnet_arch_parse(const char *name, qe_arch *arch);

/* Float parameters with BN folded. Tensors are owned. */
typedef struct qe_resnet_params {
    const qe_resnet_desc *desc;
    float *w[QE_MAX_CONVS];    /* [cout][cin][k][k] */
    float *b[QE_MAX_CONVS];    /* [cout] */
    float *fc_w, *fc_b;        /* [1000][fc_in], [1000] */
    int prefolded;             /* the checkpoint had conv biases and no BatchNorm (zoo optimized state dicts) */
} qe_resnet_params;

/* Maps a state dict onto the architecture as load_state_dict(strict=True) would: every missing
 * or unexpected key and every shape mismatch is reported by name. Accepts torchvision's layout
 * (conv + BN, folded here with §3.1) and the zoo's BN-free optimized layout (conv weight + bias).
 * Any float dtype is converted to float32. */
int qe_resnet_params_load(qe_arch arch, const qe_statedict *sd, qe_resnet_params *p, char *err);
void qe_resnet_params_free(qe_resnet_params *p);

/* Guesses the architecture of a state dict from its keys; -1 if it is neither. */
int qe_resnet_arch_detect(const qe_statedict *sd, qe_arch *arch);

#endif
