// TIFF through libtiff, read from memory. Errors arrive through a per-handle handler (libtiff 4.5 open options),
// so concurrent decodes do not share a global error buffer.
#include <stdint.h>
#include <tiffio.h>
#include "common.h"

typedef struct {
    const unsigned char *data;
    size_t size, offset;
    int warnings;
    char message[200];
} tiff_source;

static tmsize_t tiff_read(thandle_t h, void *dst, tmsize_t n) {
    tiff_source *s = (tiff_source *)h;
    if (n <= 0 || s->offset >= s->size) return 0;
    size_t count = (size_t)n < s->size - s->offset ? (size_t)n : s->size - s->offset;
    memcpy(dst, s->data + s->offset, count);
    s->offset += count;
    return (tmsize_t)count;
}
static tmsize_t tiff_write(thandle_t h, void *src, tmsize_t n) { (void)h; (void)src; (void)n; return -1; }
static toff_t tiff_seek(thandle_t h, toff_t offset, int whence) {
    tiff_source *s = (tiff_source *)h;
    uint64_t base = whence == SEEK_CUR ? s->offset : whence == SEEK_END ? s->size : 0;
    if (offset > UINT64_MAX - base) return (toff_t)-1;
    uint64_t target = base + offset;
    if (target > SIZE_MAX) return (toff_t)-1;
    s->offset = (size_t)target;  // beyond the end is allowed; reads there return 0 bytes
    return target;
}
static int tiff_close(thandle_t h) { (void)h; return 0; }
static toff_t tiff_size(thandle_t h) { return ((tiff_source *)h)->size; }
static int tiff_map(thandle_t h, void **base, toff_t *size) { (void)h; (void)base; (void)size; return 0; }
static void tiff_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

static int on_tiff_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    tiff_source *s = user;
    if (s->message[0] == 0) {  // the first error is the cause; later ones are consequences
        char text[160];
        vsnprintf(text, sizeof text, fmt, ap);
        snprintf(s->message, sizeof s->message, "%s%s%s", module ? module : "", module ? ": " : "", text);
    }
    return 1;
}
static int on_tiff_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)module; (void)fmt; (void)ap;
    ((tiff_source *)user)->warnings++;
    return 1;
}

/// One sample of a row of packed samples (1, 2, 4, 8 or 16 bits; libtiff already byte-swapped 16-bit data).
static unsigned sample_at(const unsigned char *row, uint32_t x, int bps) {
    if (bps == 8) return row[x];
    if (bps == 16) {
        uint16_t v;
        memcpy(&v, row + 2 * (size_t)x, 2);
        return v;
    }
    size_t bit = (size_t)x * (size_t)bps;
    return (row[bit / 8] >> (8 - bps - (int)(bit % 8))) & ((1u << bps) - 1);
}

/// Palette index or grey value as one label byte (see FUNDUS_DECODE_LABEL).
static unsigned char label_value(unsigned v, int bps, int photometric) {
    unsigned max = bps == 16 ? 65535u : (1u << bps) - 1;
    if (photometric == PHOTOMETRIC_MINISWHITE) v = max - v;
    if (photometric != PHOTOMETRIC_PALETTE && bps < 8) v = v * 255 / max;
    return (unsigned char)(v > 255 ? 255 : v);
}

static int read_label_samples(TIFF *tif, uint32_t w, uint32_t h, int bps, int photometric, unsigned char *dst) {
    if (TIFFIsTiled(tif)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        tmsize_t tile_size = TIFFTileSize(tif), row_size = TIFFTileRowSize(tif);
        if (tw == 0 || th == 0 || tile_size <= 0 || row_size <= 0) return 0;
        unsigned char *buffer = _TIFFmalloc(tile_size);
        if (!buffer) return 0;
        for (uint32_t ty = 0; ty < h; ty += th) {
            for (uint32_t tx = 0; tx < w; tx += tw) {
                if (TIFFReadTile(tif, buffer, tx, ty, 0, 0) < 0) {
                    _TIFFfree(buffer);
                    return 0;
                }
                for (uint32_t r = 0; r < th && ty + r < h; r++) {
                    const unsigned char *row = buffer + (size_t)r * (size_t)row_size;
                    unsigned char *out = dst + (size_t)(ty + r) * w + tx;
                    for (uint32_t c = 0; c < tw && tx + c < w; c++)
                        out[c] = label_value(sample_at(row, c, bps), bps, photometric);
                }
            }
        }
        _TIFFfree(buffer);
        return 1;
    }
    uint32_t rows_per_strip = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
    if (rows_per_strip == 0 || rows_per_strip > h) rows_per_strip = h;
    tmsize_t row_size = TIFFScanlineSize(tif), strip_size = TIFFStripSize(tif);
    if (row_size <= 0 || strip_size <= 0) return 0;
    unsigned char *buffer = _TIFFmalloc(strip_size);
    if (!buffer) return 0;
    uint32_t strips = (h + rows_per_strip - 1) / rows_per_strip;
    for (uint32_t s = 0; s < strips; s++) {
        uint32_t y0 = s * rows_per_strip;
        uint32_t rows = h - y0 < rows_per_strip ? h - y0 : rows_per_strip;
        tmsize_t n = TIFFReadEncodedStrip(tif, s, buffer, (tmsize_t)rows * row_size);
        if (n < (tmsize_t)rows * row_size) {
            _TIFFfree(buffer);
            return 0;
        }
        for (uint32_t r = 0; r < rows; r++) {
            const unsigned char *row = buffer + (size_t)r * (size_t)row_size;
            unsigned char *out = dst + (size_t)(y0 + r) * w;
            for (uint32_t x = 0; x < w; x++) out[x] = label_value(sample_at(row, x, bps), bps, photometric);
        }
    }
    _TIFFfree(buffer);
    return 1;
}

int fundus_decode_tiff(const unsigned char *data, size_t size, int mode, uint64_t max_pixels, fundus_decoded *out) {
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    out->scale_denominator = 1;
    if (!data || size < 8) {
        fundus_set_message(out->message, sizeof out->message, "TIFF data is empty or shorter than a header");
        return FUNDUS_CODEC_CORRUPT;
    }
    tiff_source source = {.data = data, .size = size};
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return FUNDUS_CODEC_NO_MEMORY;
    TIFFOpenOptionsSetErrorHandlerExtR(options, on_tiff_error, &source);
    TIFFOpenOptionsSetWarningHandlerExtR(options, on_tiff_warning, &source);
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, (tmsize_t)1 << 30);
    TIFF *tif = TIFFClientOpenExt("memory", "rm", (thandle_t)&source, tiff_read, tiff_write, tiff_seek, tiff_close,
                                  tiff_size, tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    if (!tif) {
        fundus_set_message(out->message, sizeof out->message, "TIFF: %s",
                           source.message[0] ? source.message : "cannot open");
        return FUNDUS_CODEC_CORRUPT;
    }
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, bps = 1, photometric = PHOTOMETRIC_MINISBLACK;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric)) photometric = PHOTOMETRIC_MINISBLACK;
    out->source_channels = spp;
    out->source_bit_depth = bps;
    out->source_palette = photometric == PHOTOMETRIC_PALETTE;
    int status = FUNDUS_CODEC_OK;
    unsigned char *pixels = NULL;
    uint32_t *raster = NULL;
    if (w == 0 || h == 0) {
        fundus_set_message(out->message, sizeof out->message, "TIFF: image has no size (%ux%u)", w, h);
        status = FUNDUS_CODEC_CORRUPT;
        goto done;
    }
    if ((uint64_t)w * h > max_pixels) {
        fundus_set_message(out->message, sizeof out->message,
                           "TIFF declares %ux%u = %llu pixels, above the limit of %llu", w, h,
                           (unsigned long long)((uint64_t)w * h), (unsigned long long)max_pixels);
        status = FUNDUS_CODEC_TOO_LARGE;
        goto done;
    }
    int out_c = mode == FUNDUS_DECODE_LABEL ? 1 : 3;
    pixels = malloc((size_t)w * h * (size_t)out_c);
    if (!pixels) {
        status = FUNDUS_CODEC_NO_MEMORY;
        fundus_set_message(out->message, sizeof out->message, "TIFF: out of memory for %ux%u", w, h);
        goto done;
    }
    int plain = spp == 1 && (bps == 1 || bps == 2 || bps == 4 || bps == 8 || bps == 16) &&
                (photometric == PHOTOMETRIC_PALETTE || photometric == PHOTOMETRIC_MINISBLACK ||
                 photometric == PHOTOMETRIC_MINISWHITE);
    if (out_c == 1 && plain) {
        if (!read_label_samples(tif, w, h, bps, photometric, pixels)) {
            fundus_set_message(out->message, sizeof out->message, "TIFF: %s",
                               source.message[0] ? source.message : "cannot read image data");
            status = FUNDUS_CODEC_CORRUPT;
        }
        goto done;
    }
    // Everything else (colour, palette or grey to RGB, YCbCr, alpha…) through libtiff's RGBA interface.
    char why[1024] = {0};
    if (!TIFFRGBAImageOK(tif, why)) {
        fundus_set_message(out->message, sizeof out->message, "TIFF: not decodable: %s", why);
        status = FUNDUS_CODEC_UNSUPPORTED;
        goto done;
    }
    raster = _TIFFmalloc((tmsize_t)((uint64_t)w * h * sizeof(uint32_t)));
    if (!raster) {
        status = FUNDUS_CODEC_NO_MEMORY;
        fundus_set_message(out->message, sizeof out->message, "TIFF: out of memory for %ux%u", w, h);
        goto done;
    }
    if (!TIFFReadRGBAImageOriented(tif, w, h, raster, ORIENTATION_TOPLEFT, 1)) {
        fundus_set_message(out->message, sizeof out->message, "TIFF: %s",
                           source.message[0] ? source.message : "cannot read image data");
        status = FUNDUS_CODEC_CORRUPT;
        goto done;
    }
    for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
        uint32_t p = raster[i];
        unsigned char r = (unsigned char)TIFFGetR(p), g = (unsigned char)TIFFGetG(p), b = (unsigned char)TIFFGetB(p);
        if (out_c == 3) {
            pixels[3 * i] = r;
            pixels[3 * i + 1] = g;
            pixels[3 * i + 2] = b;
        } else {
            unsigned char m = r > g ? r : g;
            pixels[i] = m > b ? m : b;
        }
    }
done:
    if (raster) _TIFFfree(raster);
    TIFFClose(tif);
    if (status != FUNDUS_CODEC_OK) {
        free(pixels);
        return status;
    }
    out->pixels = pixels;
    out->width = (int)w;
    out->height = (int)h;
    out->channels = out_c;
    out->full_width = (int)w;
    out->full_height = (int)h;
    out->warnings = source.warnings;
    return FUNDUS_CODEC_OK;
}
