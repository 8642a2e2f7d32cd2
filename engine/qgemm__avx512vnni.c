/*
 * qgemm__avx512vnni.c - the AVX-512 VNNI micro-kernel of qgemm.h (built with -mavx512f
 * -mavx512bw -mavx512dq -mavx512vl -mavx512vnni; the build's -ffp-contract=off keeps the exact
 * epilogue's f64 multiply and add apart, §9.8; the one FMA, the fast path's estimate, is an
 * explicit intrinsic checked by its margin, qgemm_fast.c).
 *
 * vpdpbusd multiplies four uint8 activation codes by four int8 weight codes and adds the four
 * products to an int32 lane in one step, without the int16 intermediate (and its saturation)
 * of vpmaddubsw: exact for every int8 weight, so 8-bit and 4-bit layers share this kernel.
 */
#include "qgemm.h"

#include <immintrin.h>
#include <string.h>

#include "qgemm_epilogue__avx512.h"

#define MR 12
#define NR 32

/* One quad of A (four uint8 codes), broadcast to every 32-bit lane (a vpbroadcastd from memory,
 * which costs a load port only). */
static inline __m512i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Segment pointers of a tile of mr <= 12 rows (p: its 12 indirection slots): missing rows alias
 * the last real one, so they are computed for nothing but never read out of bounds. */
#define TILE_ROWS12(p, mr)                                                    \
    const uint8_t *a0 = (const uint8_t *)(p)[0];                            \
    const uint8_t *a1 = (mr) > 1 ? (const uint8_t *)(p)[1] : a0;            \
    const uint8_t *a2 = (mr) > 2 ? (const uint8_t *)(p)[2] : a1;            \
    const uint8_t *a3 = (mr) > 3 ? (const uint8_t *)(p)[3] : a2;            \
    const uint8_t *a4 = (mr) > 4 ? (const uint8_t *)(p)[4] : a3;            \
    const uint8_t *a5 = (mr) > 5 ? (const uint8_t *)(p)[5] : a4;            \
    const uint8_t *a6 = (mr) > 6 ? (const uint8_t *)(p)[6] : a5;            \
    const uint8_t *a7 = (mr) > 7 ? (const uint8_t *)(p)[7] : a6;            \
    const uint8_t *a8 = (mr) > 8 ? (const uint8_t *)(p)[8] : a7;            \
    const uint8_t *a9 = (mr) > 9 ? (const uint8_t *)(p)[9] : a8;            \
    const uint8_t *a10 = (mr) > 10 ? (const uint8_t *)(p)[10] : a9;         \
    const uint8_t *a11 = (mr) > 11 ? (const uint8_t *)(p)[11] : a10

#define DPBUSD_ROW(i)                                                        \
    do {                                                                     \
        __m512i x_ = bcast32(a##i + k);                                      \
        s##i##0 = _mm512_dpbusd_epi32(s##i##0, x_, b0);                      \
        s##i##1 = _mm512_dpbusd_epi32(s##i##1, x_, b1);                      \
    } while (0)

/*
 * 12 rows x 32 channels, K four at a time: 24 accumulators, the two weight vectors of a quad and
 * the broadcast A quad in 27 of the 32 ZMM registers. Per quad, 24 vpdpbusd against 2 vector
 * loads and 12 broadcasts; 12 rows measured 7% faster than 8 over ResNet50's layers, as each
 * weight panel streamed from L2 serves more rows.
 */
void qe_qu8s8_gemm_ukernel_12x32c4__avx512vnni(size_t m, size_t nc, size_t ks, size_t kc,
                                              const void *const *ind, const void *w, uint8_t *c,
                                              size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    for (size_t mr; m > 0; m -= mr, ind += MR * ks, c += MR * c_stride) {
        mr = m < MR ? m : MR;
        __m512i s00 = _mm512_loadu_si512(o->acc0 + n0);
        __m512i s01 = _mm512_loadu_si512(o->acc0 + n0 + 16);
        __m512i s10 = s00, s11 = s01, s20 = s00, s21 = s01, s30 = s00, s31 = s01;
        __m512i s40 = s00, s41 = s01, s50 = s00, s51 = s01, s60 = s00, s61 = s01;
        __m512i s70 = s00, s71 = s01, s80 = s00, s81 = s01, s90 = s00, s91 = s01;
        __m512i s100 = s00, s101 = s01, s110 = s00, s111 = s01;
        const __m512i *wp = w;
        for (size_t e = 0; e < ks; e++) {
            TILE_ROWS12(ind + MR * e, mr);
            for (size_t k = 0; k < kc; k += 4, wp += 2) {
                __m512i b0 = _mm512_load_si512(wp);
                __m512i b1 = _mm512_load_si512(wp + 1);
                DPBUSD_ROW(0);
                DPBUSD_ROW(1);
                DPBUSD_ROW(2);
                DPBUSD_ROW(3);
                DPBUSD_ROW(4);
                DPBUSD_ROW(5);
                DPBUSD_ROW(6);
                DPBUSD_ROW(7);
                DPBUSD_ROW(8);
                DPBUSD_ROW(9);
                DPBUSD_ROW(10);
                DPBUSD_ROW(11);
            }
        }

        _Alignas(64) int32_t acc[MR][NR];
        _mm512_store_si512(acc[0], s00);
        _mm512_store_si512(acc[0] + 16, s01);
        _mm512_store_si512(acc[1], s10);
        _mm512_store_si512(acc[1] + 16, s11);
        _mm512_store_si512(acc[2], s20);
        _mm512_store_si512(acc[2] + 16, s21);
        _mm512_store_si512(acc[3], s30);
        _mm512_store_si512(acc[3] + 16, s31);
        _mm512_store_si512(acc[4], s40);
        _mm512_store_si512(acc[4] + 16, s41);
        _mm512_store_si512(acc[5], s50);
        _mm512_store_si512(acc[5] + 16, s51);
        _mm512_store_si512(acc[6], s60);
        _mm512_store_si512(acc[6] + 16, s61);
        _mm512_store_si512(acc[7], s70);
        _mm512_store_si512(acc[7] + 16, s71);
        _mm512_store_si512(acc[8], s80);
        _mm512_store_si512(acc[8] + 16, s81);
        _mm512_store_si512(acc[9], s90);
        _mm512_store_si512(acc[9] + 16, s91);
        _mm512_store_si512(acc[10], s100);
        _mm512_store_si512(acc[10] + 16, s101);
        _mm512_store_si512(acc[11], s110);
        _mm512_store_si512(acc[11] + 16, s111);
        requant_tile(acc, mr, o, n0, c, c_stride, nc);
    }
}
