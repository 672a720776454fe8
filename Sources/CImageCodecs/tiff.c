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

/// Up to `n` bytes of `data` (`size` bytes) from `*offset` into `dst`, advancing `*offset`: the read of both the
/// decoder's source and the encoder's sink (libtiff reads back what it wrote).
static tmsize_t read_bytes(const unsigned char *data, size_t size, size_t *offset, void *dst, tmsize_t n) {
    if (n <= 0 || *offset >= size) return 0;
    size_t count = (size_t)n < size - *offset ? (size_t)n : size - *offset;
    memcpy(dst, data + *offset, count);
    *offset += count;
    return (tmsize_t)count;
}

static tmsize_t tiff_read(thandle_t h, void *dst, tmsize_t n) {
    tiff_source *s = (tiff_source *)h;
    return read_bytes(s->data, s->size, &s->offset, dst, n);
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
    if (plain && (out_c == 1 || bps <= 8)) {
        // Our own strip/tile reader: exact indices for masks, and less memory than libtiff's RGBA path
        // (which also refuses uncompressed 1-bit tiles).
        unsigned char *labels = out_c == 1 ? pixels : malloc((size_t)w * h);
        if (!labels || !read_label_samples(tif, w, h, bps, photometric, labels)) {
            fundus_set_message(out->message, sizeof out->message, "TIFF: %s",
                               source.message[0] ? source.message : "cannot read image data");
            status = labels ? FUNDUS_CODEC_CORRUPT : FUNDUS_CODEC_NO_MEMORY;
            if (labels != pixels) free(labels);
            goto done;
        }
        if (out_c == 3) {
            uint16_t *red = NULL, *green = NULL, *blue = NULL;
            int mapped = photometric == PHOTOMETRIC_PALETTE &&
                         TIFFGetField(tif, TIFFTAG_COLORMAP, &red, &green, &blue) && red && green && blue;
            if (photometric == PHOTOMETRIC_PALETTE && !mapped) {
                fundus_set_message(out->message, sizeof out->message, "TIFF: palette image without a colour map");
                status = FUNDUS_CODEC_CORRUPT;
                free(labels);
                goto done;
            }
            int entries = 1 << bps, wide = 0;  // old writers store 8-bit colour maps; libtiff's rule
            for (int i = 0; mapped && i < entries; i++)
                if (red[i] > 255 || green[i] > 255 || blue[i] > 255) wide = 1;
            for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
                unsigned v = labels[i];
                if (mapped) {
                    pixels[3 * i] = (unsigned char)(wide ? red[v] >> 8 : red[v]);
                    pixels[3 * i + 1] = (unsigned char)(wide ? green[v] >> 8 : green[v]);
                    pixels[3 * i + 2] = (unsigned char)(wide ? blue[v] >> 8 : blue[v]);
                } else {
                    pixels[3 * i] = pixels[3 * i + 1] = pixels[3 * i + 2] = (unsigned char)v;
                }
            }
            free(labels);
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
    fundus_set_decoded(out, pixels, (int)w, (int)h, out_c, (int)w, (int)h);
    out->warnings = source.warnings;
    return FUNDUS_CODEC_OK;
}

// ---- Encoding (exports and test fixtures) into a growable memory buffer ----

typedef struct {
    unsigned char *data;
    size_t size, capacity, offset;
    int failed;
    char message[200];
} tiff_sink;

static tmsize_t sink_read(thandle_t h, void *dst, tmsize_t n) {
    tiff_sink *s = (tiff_sink *)h;
    return read_bytes(s->data, s->size, &s->offset, dst, n);
}
static tmsize_t sink_write(thandle_t h, void *src, tmsize_t n) {
    tiff_sink *s = (tiff_sink *)h;
    if (n < 0) return -1;
    size_t end = s->offset + (size_t)n;
    if (end > s->capacity) {
        size_t capacity = s->capacity ? s->capacity : 65536;
        while (capacity < end) capacity *= 2;
        unsigned char *grown = realloc(s->data, capacity);
        if (!grown) {
            s->failed = 1;
            return -1;
        }
        s->data = grown;
        s->capacity = capacity;
    }
    if (s->offset > s->size) memset(s->data + s->size, 0, s->offset - s->size);
    memcpy(s->data + s->offset, src, (size_t)n);
    s->offset = end;
    if (end > s->size) s->size = end;
    return n;
}
static toff_t sink_seek(thandle_t h, toff_t offset, int whence) {
    tiff_sink *s = (tiff_sink *)h;
    uint64_t base = whence == SEEK_CUR ? s->offset : whence == SEEK_END ? s->size : 0;
    s->offset = (size_t)(base + offset);
    return s->offset;
}
static toff_t sink_size(thandle_t h) { return ((tiff_sink *)h)->size; }
static int on_sink_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)module;
    tiff_sink *s = user;
    if (s->message[0] == 0) vsnprintf(s->message, sizeof s->message, fmt, ap);
    s->failed = 1;
    return 1;
}

/// Packs samples `src[x]` (one byte each) at `bits` per sample (1 or 8) into `dst`.
static int on_tiff_warning_sink_ignore(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
    return 1;
}

static void pack_row(const unsigned char *src, int count, int channels, int bits, unsigned char *dst) {
    if (bits == 8) {
        memcpy(dst, src, (size_t)count * (size_t)channels);
        return;
    }
    memset(dst, 0, ((size_t)count + 7) / 8);
    for (int x = 0; x < count; x++)
        if (src[x]) dst[x / 8] |= (unsigned char)(0x80 >> (x % 8));
}

int fundus_encode_tiff(const unsigned char *pixels, int width, int height, int channels, int bits,
                       const uint16_t *palette, int compression, int tile_size, int rows_per_strip,
                       fundus_encoded *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || width <= 0 || height <= 0 || (channels != 1 && channels != 3) || (bits != 1 && bits != 8) ||
        (bits == 1 && channels != 1) || (tile_size != 0 && (tile_size % 16 != 0 || tile_size < 16))) {
        fundus_set_message(out->message, sizeof out->message, "TIFF encode: bad arguments");
        return FUNDUS_CODEC_BAD_ARGUMENT;
    }
    tiff_sink sink = {0};
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return FUNDUS_CODEC_NO_MEMORY;
    TIFFOpenOptionsSetErrorHandlerExtR(options, on_sink_error, &sink);
    TIFFOpenOptionsSetWarningHandlerExtR(options, on_tiff_warning_sink_ignore, NULL);
    TIFF *tif = TIFFClientOpenExt("memory", "w", (thandle_t)&sink, sink_read, sink_write, sink_seek, tiff_close,
                                  sink_size, tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    if (!tif) {
        fundus_set_message(out->message, sizeof out->message, "TIFF encode: %s", sink.message);
        free(sink.data);
        return FUNDUS_CODEC_CORRUPT;
    }
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bits);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, (uint16_t)compression);
    if (palette) {
        int n = 1 << bits;
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE);
        TIFFSetField(tif, TIFFTAG_COLORMAP, palette, palette + n, palette + 2 * n);
    } else {
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    }
    size_t row_bytes = bits == 1 ? ((size_t)width + 7) / 8 : (size_t)width * (size_t)channels;
    if (tile_size) {
        TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t)tile_size);
        TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t)tile_size);
        tmsize_t tile_bytes = TIFFTileSize(tif), tile_row = TIFFTileRowSize(tif);
        unsigned char *tile = calloc(1, (size_t)tile_bytes);
        unsigned char *samples = calloc((size_t)tile_size, (size_t)channels);
        for (int ty = 0; tile && samples && ty < height && !sink.failed; ty += tile_size) {
            for (int tx = 0; tx < width && !sink.failed; tx += tile_size) {
                memset(tile, 0, (size_t)tile_bytes);
                for (int r = 0; r < tile_size && ty + r < height; r++) {
                    int count = width - tx < tile_size ? width - tx : tile_size;
                    memset(samples, 0, (size_t)tile_size * (size_t)channels);
                    memcpy(samples, pixels + ((size_t)(ty + r) * width + tx) * channels, (size_t)count * channels);
                    pack_row(samples, tile_size, channels, bits, tile + (size_t)r * (size_t)tile_row);
                }
                uint32_t index = TIFFComputeTile(tif, (uint32_t)tx, (uint32_t)ty, 0, 0);
                if (TIFFWriteEncodedTile(tif, index, tile, tile_bytes) < 0) sink.failed = 1;
            }
        }
        free(tile);
        free(samples);
    } else {
        TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, (uint32_t)(rows_per_strip > 0 ? rows_per_strip : height));
        unsigned char *row = malloc(row_bytes);
        for (int y = 0; row && y < height && !sink.failed; y++) {
            pack_row(pixels + (size_t)y * width * channels, width, channels, bits, row);
            if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0) sink.failed = 1;
        }
        free(row);
    }
    TIFFClose(tif);
    if (sink.failed) {
        fundus_set_message(out->message, sizeof out->message, "TIFF encode: %s",
                           sink.message[0] ? sink.message : "write failed");
        free(sink.data);
        return FUNDUS_CODEC_CORRUPT;
    }
    out->data = sink.data;
    out->size = sink.size;
    return FUNDUS_CODEC_OK;
}
