#include "pcg64.h"

#ifndef __SIZEOF_INT128__
#error "pcg64.c needs a compiler with unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif

__extension__ typedef unsigned __int128 u128;

/* PCG's default 128-bit LCG multiplier, the one numpy's PCG64 uses. */
#define PCG64_MULT_HI 0x2360ED051FC65DA4ull
#define PCG64_MULT_LO 0x4385DF649FCCF645ull

static u128 join(uint64_t hi, uint64_t lo) { return (u128)hi << 64 | lo; }

void qe_pcg64_set_state(qe_pcg64 *g, uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi,
                        uint64_t inc_lo)
{
    g->state_hi = state_hi;
    g->state_lo = state_lo;
    g->inc_hi = inc_hi;
    g->inc_lo = inc_lo;
}

uint64_t qe_pcg64_next(qe_pcg64 *g)
{
    u128 s = join(g->state_hi, g->state_lo) * join(PCG64_MULT_HI, PCG64_MULT_LO) +
             join(g->inc_hi, g->inc_lo);
    g->state_hi = (uint64_t)(s >> 64);
    g->state_lo = (uint64_t)s;

    /* XSL-RR: xor the halves, rotate right by the top 6 bits of the state. */
    uint64_t x = g->state_hi ^ g->state_lo;
    unsigned rot = (unsigned)(g->state_hi >> 58);
    return (x >> rot) | (x << ((64 - rot) & 63));
}
