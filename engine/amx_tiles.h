/*
 * amx_tiles.h - the one AMX tile configuration of the engine: eight tiles of 16 rows x 64 bytes
 * (palette 1). Include only from files built with -mamx-tile (*__amx.c).
 *
 * The configuration is per-thread state, which other code in the thread may change or
 * release: a user loads it before each run of tile instructions (a few dozen cycles, lost in the
 * thousands of cycles of tile work that follow).
 */
#ifndef QE_AMX_TILES_H
#define QE_AMX_TILES_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct qe_amx_tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} qe_amx_tilecfg;

static inline void qe_amx_tiles_configure(void)
{
    qe_amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

#endif
