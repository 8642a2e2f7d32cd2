/*
 * qpeak__amx.c - the tdpbusd loop behind qpeak.h, built with the AMX flags: four independent
 * 16 x 16 int32 accumulator tiles fed by two A and two B tiles, the shape of the engine's AMX
 * kernel (qgemm__amx.c), 16384 MACs per instruction.
 */
#include "qpeak.h"

#include <immintrin.h>
#include <stdint.h>

#include "amx_tiles.h"

int qe_peak_tdpbusd_loop__amx(long iters)
{
    qe_amx_tiles_configure();
    _Alignas(64) uint8_t a[16 * 64];
    _Alignas(64) int32_t c[16 * 16];
    for (int i = 0; i < 16 * 64; i++)
        a[i] = (uint8_t)(i * 7);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, a, 64);
    _tile_loadd(7, a, 64);
    for (long i = 0; i < iters; i++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, c, 64);
    _tile_release();
    return c[0] & 0x7fffffff;
}
