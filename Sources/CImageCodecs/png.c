// PNG through libpng. libpng's error callback must not return; ours records the message and longjmps to the
// setjmp in the calling function here, which frees everything and returns a code.
#include <setjmp.h>
#include <png.h>
#include <zlib.h>
#include "common.h"

typedef struct {
    png_structp png;
    png_infop info;
    const unsigned char *data;
    size_t size, offset;
    unsigned char *pixels, *temp;
    png_bytep *rows;
    int warnings;
    char message[200];
    // encoder output
    unsigned char *out;
    size_t out_size, out_capacity;
} png_state;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_state *s = png_get_error_ptr(png);
    snprintf(s->message, sizeof s->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)msg;
    png_state *s = png_get_error_ptr(png);
    s->warnings++;
}

static void on_png_read(png_structp png, png_bytep dst, size_t n) {
    png_state *s = png_get_io_ptr(png);
    if (n > s->size - s->offset) png_error(png, "file is truncated");
    memcpy(dst, s->data + s->offset, n);
    s->offset += n;
}

static void free_png_state(png_state *s, int writing) {
    if (writing) png_destroy_write_struct(&s->png, &s->info);
    else png_destroy_read_struct(&s->png, &s->info, NULL);
    free(s->pixels);
    free(s->temp);
    free(s->rows);
    free(s->out);
    free(s);
}

int fundus_decode_png(const unsigned char *data, size_t size, int mode, uint64_t max_pixels, fundus_decoded *out) {
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    out->scale_denominator = 1;
    if (!data || size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        fundus_set_message(out->message, sizeof out->message, "PNG: no PNG signature");
        return FUNDUS_CODEC_CORRUPT;
    }
    png_state *s = calloc(1, sizeof *s);
    if (!s) return FUNDUS_CODEC_NO_MEMORY;
    s->data = data;
    s->size = size;
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, on_png_error, on_png_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (!s->png || !s->info) {
        free_png_state(s, 0);
        return FUNDUS_CODEC_NO_MEMORY;
    }
    if (setjmp(png_jmpbuf(s->png))) {
        fundus_set_message(out->message, sizeof out->message, "PNG: %s", s->message);
        free_png_state(s, 0);
        return FUNDUS_CODEC_CORRUPT;
    }
    png_set_read_fn(s->png, s, on_png_read);
    png_read_info(s->png, s->info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    out->source_channels = png_get_channels(s->png, s->info);
    out->source_bit_depth = depth;
    out->source_palette = color == PNG_COLOR_TYPE_PALETTE;
    if ((uint64_t)w * h > max_pixels) {
        fundus_set_message(out->message, sizeof out->message,
                           "PNG declares %ux%u = %llu pixels, above the limit of %llu", (unsigned)w, (unsigned)h,
                           (unsigned long long)((uint64_t)w * h), (unsigned long long)max_pixels);
        free_png_state(s, 0);
        return FUNDUS_CODEC_TOO_LARGE;
    }
    int label = mode == FUNDUS_DECODE_LABEL;
    if (color == PNG_COLOR_TYPE_PALETTE) {
        if (label) png_set_packing(s->png);  // 1/2/4-bit indices to one byte each, values kept
        else png_set_palette_to_rgb(s->png); // may add alpha from tRNS; dropped below
    }
    if ((color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8)
        png_set_expand_gray_1_2_4_to_8(s->png);
    if (depth == 16 && !label) png_set_scale_16(s->png);
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);

    int ch = png_get_channels(s->png, s->info);
    int bytes = png_get_bit_depth(s->png, s->info) == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    int out_c = label ? 1 : 3;
    size_t stride = (size_t)w * (size_t)out_c;
    s->pixels = malloc(stride * h);
    s->rows = malloc(sizeof(png_bytep) * h);
    int direct = (ch == out_c && bytes == 1 && rowbytes == stride);
    if (!direct) s->temp = malloc(rowbytes * h);
    if (!s->pixels || !s->rows || (!direct && !s->temp)) png_error(s->png, "out of memory");
    unsigned char *base = direct ? s->pixels : s->temp;
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = base + (size_t)y * (direct ? stride : rowbytes);
    png_read_image(s->png, s->rows);
    png_read_end(s->png, NULL);

    if (!direct) {
        int colour = (color & PNG_COLOR_MASK_COLOR) && !(label && color == PNG_COLOR_TYPE_PALETTE);
        for (png_uint_32 y = 0; y < h; y++) {
            const unsigned char *src = s->temp + (size_t)y * rowbytes;
            unsigned char *dst = s->pixels + (size_t)y * stride;
            for (png_uint_32 x = 0; x < w; x++) {
                const unsigned char *p = src + (size_t)x * ch * bytes;
                unsigned v[3];
                for (int k = 0; k < 3; k++) {
                    int i = colour ? k : 0;
                    unsigned value = bytes == 2 ? (unsigned)(p[2 * i] << 8 | p[2 * i + 1]) : p[i];
                    v[k] = bytes == 2 && value > 255 ? 255 : value;  // only labels reach here with 16 bits
                }
                if (label) {
                    unsigned m = v[0] > v[1] ? v[0] : v[1];
                    dst[x] = (unsigned char)(m > v[2] ? m : v[2]);
                } else {
                    dst[3 * x] = (unsigned char)v[0];
                    dst[3 * x + 1] = (unsigned char)v[1];
                    dst[3 * x + 2] = (unsigned char)v[2];
                }
            }
        }
    }
    fundus_set_decoded(out, s->pixels, (int)w, (int)h, out_c, (int)w, (int)h);
    out->warnings = s->warnings;
    s->pixels = NULL;
    free_png_state(s, 0);
    return FUNDUS_CODEC_OK;
}

static void on_png_write(png_structp png, png_bytep src, size_t n) {
    png_state *s = png_get_io_ptr(png);
    if (s->out_size + n > s->out_capacity) {
        size_t capacity = s->out_capacity ? s->out_capacity : 65536;
        while (capacity < s->out_size + n) capacity *= 2;
        unsigned char *grown = realloc(s->out, capacity);
        if (!grown) png_error(png, "out of memory");
        s->out = grown;
        s->out_capacity = capacity;
    }
    memcpy(s->out + s->out_size, src, n);
    s->out_size += n;
}

static void on_png_flush(png_structp png) { (void)png; }

int fundus_encode_png(const unsigned char *pixels, int width, int height, int channels, int level, int flat,
                      fundus_encoded *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || width <= 0 || height <= 0 || (channels != 1 && channels != 3) || level < 0 || level > 9) {
        fundus_set_message(out->message, sizeof out->message, "PNG encode: bad arguments (%dx%dx%d, level %d)",
                           width, height, channels, level);
        return FUNDUS_CODEC_BAD_ARGUMENT;
    }
    png_state *s = calloc(1, sizeof *s);
    if (!s) return FUNDUS_CODEC_NO_MEMORY;
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, on_png_error, on_png_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (!s->png || !s->info) {
        free_png_state(s, 1);
        return FUNDUS_CODEC_NO_MEMORY;
    }
    if (setjmp(png_jmpbuf(s->png))) {
        fundus_set_message(out->message, sizeof out->message, "PNG encode: %s", s->message);
        free_png_state(s, 1);
        return FUNDUS_CODEC_CORRUPT;
    }
    png_set_write_fn(s->png, s, on_png_write, on_png_flush);
    png_set_IHDR(s->png, s->info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(s->png, level);
    if (flat) {
        png_set_filter(s->png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
        png_set_compression_strategy(s->png, Z_RLE);
    }
    png_write_info(s->png, s->info);
    size_t stride = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) png_write_row(s->png, (png_const_bytep)(pixels + (size_t)y * stride));
    png_write_end(s->png, s->info);
    out->data = s->out;
    out->size = s->out_size;
    s->out = NULL;
    free_png_state(s, 1);
    return FUNDUS_CODEC_OK;
}
