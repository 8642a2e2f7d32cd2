/*
 * encoding.c - encodings from a range (§1.2), weight encodings (§2.3) and weight codes (§1.6).
 */
#include "encoding.h"

#include <math.h>
#include <string.h>

#include "analyzer.h"
#include "qe_util.h"

void qe_encoding_from_minmax(int bw, double min, double max, int symmetric, qe_encoding *out)
{
    double num_steps = (double)((1 << bw) - 1);

    out->bw = bw;
    out->symmetric = symmetric;
    if (symmetric && min < 0.0) {
        /* Signed symmetric: the grid is centred on 0 with one extra negative step. */
        double abs_max = fabs(min) > fabs(max) ? fabs(min) : fabs(max);
        double n_pos = floor(num_steps / 2);
        out->delta = abs_max / n_pos;
        out->offset = -ceil(num_steps / 2);
        out->min = out->offset * out->delta;
        out->max = out->delta * n_pos;
        return;
    }
    out->delta = (max - min) / num_steps;
    if (min < 0.0 && max > 0.0) {
        /* The zero point is clamped into the grid so that 0 stays representable. */
        double zero_point = round(-min / out->delta);
        if (zero_point < 0.0)
            zero_point = 0.0;
        if (zero_point > num_steps)
            zero_point = num_steps;
        out->offset = -zero_point;
    } else {
        out->offset = round(min / out->delta);
    }
    out->min = out->delta * out->offset;
    out->max = (max - min) + out->min;
}

int qe_encoding_params_per_channel(const float *w, int channels, size_t per_channel, int bw,
                                   qe_encoding *out)
{
    if (channels < 1 || per_channel == 0 || bw < 1 || bw > 16)
        return -1;

    /* Channels are independent and each analyzer's result does not depend on threading. */
#pragma omp parallel for schedule(dynamic, 4) if (channels > 1)
    for (int c = 0; c < channels; c++) {
        qe_analyzer a;
        qe_analyzer_init(&a, QE_SCHEME_TF_ENHANCED);
        qe_analyzer_update(&a, w + (size_t)c * per_channel, per_channel);
        qe_analyzer_compute(&a, bw, 1, &out[c]);
        qe_analyzer_free(&a);
    }
    return 0;
}

int qe_encoding_weight_codes(const float *w, int channels, size_t per_channel,
                             const qe_encoding *enc, int16_t *k, float *delta_w, float *wq,
                             char *err)
{
    int bad_channel = -1;

    for (int c = 0; c < channels; c++) {
        qe_qparams p = qe_qparams_from_encoding(&enc[c]);
        const float *wc = w + (size_t)c * per_channel;
        int16_t *kc = k ? k + (size_t)c * per_channel : NULL;

        if (delta_w)
            delta_w[c] = p.delta_f;
        if (kc && enc[c].bw > QE_WCODE_MAX_BW) {
            if (bad_channel < 0)
                bad_channel = c;
            memset(kc, 0, per_channel * sizeof *kc);
            kc = NULL;
        }
        for (size_t i = 0; i < per_channel; i++) {
            int code = qe_quantize(wc[i], &p);
            if (wq)
                wq[(size_t)c * per_channel + i] = qe_dequantize(code, &p);
            /* §1.6: an entirely non-negative channel has offset 0, so k = code reaches
             * 2^bw - 1 (255), beyond int8; with bw <= QE_WCODE_MAX_BW every k fits int16. */
            if (kc)
                kc[i] = (int16_t)(code - p.z);
        }
    }
    if (bad_channel >= 0)
        return qe_err(err, "weight channel %d: its encoding has %d bits; integer weight codes "
                      "are supported up to %d bits", bad_channel, enc[bad_channel].bw,
                      QE_WCODE_MAX_BW);
    return 0;
}
