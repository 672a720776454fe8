#include "common.h"

void fundus_codecs_free(void *pointer) { free(pointer); }

unsigned char *fundus_apply_orientation(const unsigned char *src, int w, int h, int c, int o, int *ow, int *oh) {
    int swap = o >= 5;
    int W = swap ? h : w, H = swap ? w : h;
    unsigned char *dst = malloc((size_t)W * (size_t)H * (size_t)c);
    if (!dst) return NULL;
    for (int y = 0; y < H; y++) {
        unsigned char *row = dst + (size_t)y * W * c;
        for (int x = 0; x < W; x++) {
            int sx, sy;  // source pixel of output (x, y)
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;             // mirror horizontal
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;     // rotate 180
            case 4: sx = x; sy = h - 1 - y; break;             // mirror vertical
            case 5: sx = y; sy = x; break;                     // transpose
            case 6: sx = y; sy = h - 1 - x; break;             // rotate 90 clockwise
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;     // transverse
            case 8: sx = w - 1 - y; sy = x; break;             // rotate 270 clockwise
            default: sx = x; sy = y; break;
            }
            memcpy(row + (size_t)x * c, src + ((size_t)sy * w + sx) * c, (size_t)c);
        }
    }
    *ow = W;
    *oh = H;
    return dst;
}
