// Internal helpers shared by the codec files (not part of the public header).
#ifndef FUNDUS_CODECS_COMMON_H
#define FUNDUS_CODECS_COMMON_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"

static inline void fundus_set_message(char *dst, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

/// Hands `pixels` (w×h×c, malloc'd) to `out`, with the full size of the stored image (after orientation, before any
/// scaling; PNG and TIFF: w×h).
static inline void fundus_set_decoded(fundus_decoded *out, unsigned char *pixels, int w, int h, int c, int full_w,
                                      int full_h) {
    out->pixels = pixels;
    out->width = w;
    out->height = h;
    out->channels = c;
    out->full_width = full_w;
    out->full_height = full_h;
}

/// Rotates/flips `pixels` (w×h×c) by EXIF orientation 2…8 into a new malloc'd buffer; NULL when out of memory.
unsigned char *fundus_apply_orientation(const unsigned char *pixels, int w, int h, int c, int orientation,
                                        int *out_w, int *out_h);
#endif
