/*
 * qgemm__amx.c - the AMX micro-kernel of qgemm.h (built with the AVX-512 flags and -mamx-tile
 * -mamx-int8; used only when cpu.c has found AMX and Linux granted this process the tile state).
 *
 * tdpbusd multiplies a 16 x 64 tile of uint8 activation codes by a 16 x 64 tile of int8 weight
 * quads and adds each row-column dot product of 64 products into an int32 of a 16 x 16 tile,
 * with no saturation anywhere: exact modulo 2^32 for every int8 weight, like vpdpbusd (qgemm.h),
 * at 16384 multiply-adds per instruction.
 *
 * Tiles: C 0-3 hold the 32 x 32 sums (rows 0-15 / 16-31 x channels 0-15 / 16-31), A 4-5 the
 * two 16-row halves of 64 K bytes, B 6-7 16 quads of the panel's two 16-channel halves, which
 * the c4 VNNI packing already lays out as rows of 64 bytes, 128 bytes apart.
 */
#include "qgemm.h"

#include <immintrin.h>

#include "amx_tiles.h"
#include "qgemm_epilogue__avx512.h"

#define MR 32
#define NR 32
#define KB 64              /* K bytes per step: one A tile row */

/* The K step of one 16-row half of A: the rows' segments advanced by k, as a base and a stride
 * for tileloadd. When the 16 segments are evenly spaced (consecutive pixels of one image row
 * read in place, or consecutive im2col rows) the tile loads from them directly; otherwise
 * their 64-byte runs are copied into buf first. */
typedef struct a_half {
    const uint8_t *row[16];
    size_t stride;         /* 0: not evenly spaced */
} a_half;

static void a_half_init(a_half *h, const void *const *slots, size_t first, size_t mr)
{
    for (size_t i = 0; i < 16; i++) {
        size_t r = first + i < mr ? first + i : mr - 1;   /* missing rows alias the last one */
        h->row[i] = (const uint8_t *)slots[r];
    }
    size_t d = (size_t)(h->row[1] - h->row[0]);
    h->stride = first + 16 <= mr ? d : 0;
    for (size_t i = 2; i < 16 && h->stride; i++)
        if ((size_t)(h->row[i] - h->row[0]) != i * d)
            h->stride = 0;
}

static inline const uint8_t *a_half_step(const a_half *h, size_t k, uint8_t *buf, size_t *stride)
{
    if (h->stride) {
        *stride = h->stride;
        return h->row[0] + k;
    }
    for (size_t i = 0; i < 16; i++)
        _mm512_store_si512(buf + i * KB, _mm512_loadu_si512(h->row[i] + k));
    *stride = KB;
    return buf;
}

void qe_qu8s8_gemm_ukernel_32x32c4__amx(size_t m, size_t nc, size_t ks, size_t kc,
                                        const void *const *ind, const void *w, uint8_t *c,
                                        size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    qe_amx_tiles_configure();
    _Alignas(64) uint8_t abuf[2][16 * KB];
    _Alignas(64) int32_t acc[MR][NR];
    const __m512i acc0_lo = _mm512_loadu_si512(o->acc0 + n0);
    const __m512i acc0_hi = _mm512_loadu_si512(o->acc0 + n0 + 16);
    for (size_t mr; m > 0; m -= mr, ind += MR * ks, c += MR * c_stride) {
        mr = m < MR ? m : MR;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const uint8_t *wp = w;
        for (size_t e = 0; e < ks; e++) {
            a_half h0, h1;
            a_half_init(&h0, ind + MR * e, 0, mr);
            a_half_init(&h1, ind + MR * e, 16, mr);
            for (size_t k = 0; k < kc; k += KB, wp += KB / 4 * NR * 4) {
                size_t s0, s1;
                const uint8_t *p0 = a_half_step(&h0, k, abuf[0], &s0);
                const uint8_t *p1 = a_half_step(&h1, k, abuf[1], &s1);
                _tile_loadd(4, p0, (long)s0);
                _tile_loadd(5, p1, (long)s1);
                _tile_loadd(6, wp, NR * 4);
                _tile_loadd(7, wp + 64, NR * 4);
                _tile_dpbusd(0, 4, 6);
                _tile_dpbusd(1, 4, 7);
                _tile_dpbusd(2, 5, 6);
                _tile_dpbusd(3, 5, 7);
            }
        }
        _tile_stored(0, acc[0], NR * 4);
        _tile_stored(1, acc[0] + 16, NR * 4);
        _tile_stored(2, acc[16], NR * 4);
        _tile_stored(3, acc[16] + 16, NR * 4);
        for (size_t r = 0; r < mr; r++) {
            __m512i *row = (__m512i *)acc[r];
            row[0] = _mm512_add_epi32(row[0], acc0_lo);
            row[1] = _mm512_add_epi32(row[1], acc0_hi);
        }
        requant_tile(acc, mr, o, n0, c, c_stride, nc);
    }
}
