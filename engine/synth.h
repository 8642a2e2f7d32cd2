/*
 * synth.h - the built-in synthetic ResNet18 / ResNet50 checkpoints (spec
 * preprocessing-and-formats.md §8), a C port of shared/models/make_synthetic.py.
 *
 * Every value is bit-identical to the script's, and the written pth file byte-identical
 * (sha256 in shared/models/README.md), so `quanteval synth` gives users without Python the
 * same default models the tests use. The measured BatchNorm statistics and fc rescaling
 * (configs/synthetic/bn-stats-<arch>.bin) are compiled into the binary.
 */
#ifndef QE_SYNTH_H
#define QE_SYNTH_H

#include "statedict.h"

/* Fills *sd with the state dict of arch ("resnet18" or "resnet50") in torchvision's key order:
 * float32 tensors plus the int64 num_batches_tracked buffers (value 100). Those have shape [1]
 * rather than the 0-d of §8's text, because that is what make_synthetic.py's files really
 * hold. Returns -1 for an unknown arch (or a corrupt embedded stats blob) and leaves *sd
 * empty. Release with qe_statedict_free. */
int qe_synth_statedict(const char *arch, qe_statedict *sd, char *err);

/* Generates arch and writes it to path with qe_statedict_save_torch: the same bytes as
 * `make_synthetic.py --arch ARCH --out FILE --format pth`. */
int qe_synth_write(const char *arch, const char *path, char *err);

/* sha256 of the written pth files (shared/models/README.md): a weights file with one of these
 * hashes is the synthetic checkpoint, whatever its name. */
#define QE_SYNTH_SHA256_RESNET18 "ba60de5ee52ae9f11e7adcd3d4d15d037ac21162df4acf4975ea8457bd4cdee9"
#define QE_SYNTH_SHA256_RESNET50 "de28dd49263a965b6a094d66e7072158a71672b18175da665110d4ff0508a0d5"

#endif
