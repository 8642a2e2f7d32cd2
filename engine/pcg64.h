/*
 * pcg64.h - numpy's PCG64 bit generator (PCG XSL-RR 128/64), bit-exact with
 * numpy.random.PCG64.random_raw, for the synthetic checkpoints (spec
 * preprocessing-and-formats.md §8).
 *
 * Only the raw 64-bit stream is reproduced: numpy's seeding (SeedSequence) and distribution
 * methods are not, because make_synthetic.py sets the 128-bit state directly and converts the
 * raw outputs itself.
 */
#ifndef QE_PCG64_H
#define QE_PCG64_H

#include <stdint.h>

typedef struct qe_pcg64 {
    uint64_t state_hi, state_lo;   /* 128-bit LCG state */
    uint64_t inc_hi, inc_lo;       /* 128-bit increment (odd) */
} qe_pcg64;

/* Installs state and increment verbatim, as assigning numpy's `bit_generator.state` dict does
 * (no seeding step, no forced odd increment: pass an odd inc). */
void qe_pcg64_set_state(qe_pcg64 *g, uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi,
                        uint64_t inc_lo);

/* The next raw output (one element of random_raw): numpy advances the LCG first and then
 * outputs XSL-RR of the new state. */
uint64_t qe_pcg64_next(qe_pcg64 *g);

#endif
