#ifndef FUNDUS_CIMAGECODECS_H
#define FUNDUS_CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

/// Versions of the linked codec libraries, for `fundus-screen --version` and bug reports.
const char *fundus_codecs_jpeg_version(void);
const char *fundus_codecs_png_version(void);
const char *fundus_codecs_tiff_version(void);

/// Result codes of every decode/encode call. libjpeg and libpng report errors by longjmp; the setjmp lives in
/// these C functions, so a Swift caller only ever sees a code and a message.
enum {
    FUNDUS_CODEC_OK = 0,
    FUNDUS_CODEC_CORRUPT = 1,      // malformed, truncated or corrupt data
    FUNDUS_CODEC_TOO_LARGE = 2,    // declared size above the caller's pixel limit (refused before allocating)
    FUNDUS_CODEC_UNSUPPORTED = 3,  // a valid file using a feature we do not decode (e.g. CMYK JPEG)
    FUNDUS_CODEC_NO_MEMORY = 4,
    FUNDUS_CODEC_BAD_ARGUMENT = 5,
};

/// What the caller wants out of a decode.
enum {
    /// 3 channels, 8-bit RGB: palette expanded, grey replicated, alpha dropped, 16-bit scaled to 8-bit.
    FUNDUS_DECODE_RGB = 0,
    /// 1 channel, 8-bit "label": palette images give their palette indices, grey images their grey value
    /// (1/2/4-bit grey scaled to 0…255, 16-bit clamped to 255 so that small label values survive),
    /// colour images the maximum of R, G, B (JPEG: luminance). For masks: foreground is value > 0.
    FUNDUS_DECODE_LABEL = 1,
};

/// A decoded image. `pixels` is malloc'd (free it with `fundus_codecs_free`), rows top to bottom,
/// `width * channels` bytes a row, no padding.
typedef struct {
    unsigned char *pixels;
    int width, height, channels;
    /// Full size of the stored image after EXIF orientation, before any JPEG DCT scaling.
    int full_width, full_height;
    /// JPEG DCT scaling applied (1, 2, 4 or 8): output pixel i covers full-size pixels [i*s, (i+1)*s).
    int scale_denominator;
    /// EXIF orientation that was applied (1 = none; 2…8 as in EXIF/TIFF tag 0x0112).
    int orientation;
    /// What the file held: channels (incl. alpha), bits per sample, 1 when it had a palette.
    int source_channels, source_bit_depth, source_palette;
    /// Non-fatal codec warnings seen (e.g. extraneous bytes in a JPEG).
    int warnings;
    char message[256];
} fundus_decoded;

/// An encoded file in memory; `data` is malloc'd (free with `fundus_codecs_free`).
typedef struct {
    unsigned char *data;
    size_t size;
    char message[256];
} fundus_encoded;

/// JPEG decode. `scale_denominator` 1, 2, 4 or 8 (libjpeg-turbo DCT scaling). `max_pixels` refers to the full size.
int fundus_decode_jpeg(const unsigned char *data, size_t size, int mode, int scale_denominator,
                       uint64_t max_pixels, fundus_decoded *out);
/// The stored size of a JPEG (before EXIF orientation) from its header alone; 0 on success.
int fundus_probe_jpeg(const unsigned char *data, size_t size, int *width, int *height);
int fundus_decode_png(const unsigned char *data, size_t size, int mode, uint64_t max_pixels, fundus_decoded *out);
/// TIFF decode (first directory): palette, bilevel, grey, RGB; none/LZW/deflate/PackBits/…; strips or tiles.
int fundus_decode_tiff(const unsigned char *data, size_t size, int mode, uint64_t max_pixels, fundus_decoded *out);

/// PNG encode of 1 (grey) or 3 (RGB) channel 8-bit pixels; `compression_level` 0…9. `flat` non-zero: for images
/// of few large flat regions (binary masks): no row filters and zlib's run-length strategy, several times faster.
int fundus_encode_png(const unsigned char *pixels, int width, int height, int channels, int compression_level,
                      int flat, fundus_encoded *out);
/// JPEG encode of 1 or 3 channel 8-bit pixels; `quality` 1…100.
int fundus_encode_jpeg(const unsigned char *pixels, int width, int height, int channels, int quality,
                       fundus_encoded *out);

/// TIFF encode, for exports and test fixtures: 8-bit grey (1 channel) or RGB (3), or 1-bit (values > 0 set the
/// bit). With `palette` (3 × 2^bits 16-bit entries: all reds, all greens, all blues) a palette image of indices.
/// `compression`: libtiff's code (1 none, 5 LZW, 8 deflate, 32773 PackBits). `tile_size` 0 writes strips of
/// `rows_per_strip` rows (0: one strip), else square tiles of that side (a multiple of 16).
int fundus_encode_tiff(const unsigned char *pixels, int width, int height, int channels, int bits,
                       const uint16_t *palette, int compression, int tile_size, int rows_per_strip,
                       fundus_encoded *out);

void fundus_codecs_free(void *pointer);

#endif
