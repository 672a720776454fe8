// JPEG through libjpeg-turbo. libjpeg reports fatal errors by calling error_exit, which must not return: ours
// longjmps back into the function that called the library, frees everything, and returns a code and message.
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include "common.h"

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_error_state;

static void on_error_exit(j_common_ptr cinfo) {
    jpeg_error_state *e = (jpeg_error_state *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

// Warnings that mean the pixels are wrong (truncated or corrupt entropy data) are errors for us: a screening
// result on grey-filled or garbled pixels is worse than none. Other warnings (extraneous bytes, unknown JFIF
// revision) are counted and tolerated.
static void on_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    jpeg_error_state *e = (jpeg_error_state *)cinfo->err;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
        code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION || code == JWRN_ARITH_BAD_CODE) {
        (*cinfo->err->format_message)(cinfo, e->message);
        longjmp(e->jump, 1);
    }
    cinfo->err->num_warnings++;
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

// A crafted progressive JPEG can hold thousands of tiny scans and take minutes; refuse more than this.
enum { MAX_SCANS = 500 };

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        jpeg_error_state *e = (jpeg_error_state *)cinfo->err;
        snprintf(e->message, sizeof e->message, "more than %d progressive scans", MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static unsigned read16(const unsigned char *p, int little) {
    return little ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}
static uint32_t read32(const unsigned char *p, int little) {
    return little ? ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24)
                  : ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3]);
}

/// EXIF orientation (tag 0x0112 of IFD0 in the APP1 "Exif" segment), 1 when absent or malformed.
static int exif_orientation(j_decompress_ptr cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 + 8) continue;
        if (memcmp(m->data, "Exif\0\0", 6) != 0) continue;
        const unsigned char *t = m->data + 6;
        size_t length = m->data_length - 6;
        int little;
        if (t[0] == 'I' && t[1] == 'I') little = 1;
        else if (t[0] == 'M' && t[1] == 'M') little = 0;
        else continue;
        uint32_t ifd = read32(t + 4, little);
        if ((size_t)ifd + 2 > length) continue;
        unsigned count = read16(t + ifd, little);
        for (unsigned i = 0; i < count; i++) {
            size_t entry = (size_t)ifd + 2 + 12 * (size_t)i;
            if (entry + 12 > length) break;
            if (read16(t + entry, little) != 0x0112) continue;
            unsigned type = read16(t + entry + 2, little);
            unsigned value = type == 3 ? read16(t + entry + 8, little) : (unsigned)read32(t + entry + 8, little);
            return (value >= 1 && value <= 8) ? (int)value : 1;
        }
    }
    return 1;
}

// A memory source that, at the end of the data, supplies an EOI marker silently (libjpeg's own warns at once,
// even when the decoder only reads ahead). Missing entropy data then shows as JWRN_HIT_MARKER, an error above;
// a file that lacks only its final marker decodes, with one warning counted.
typedef struct {
    struct jpeg_source_mgr pub;
    const unsigned char *data;
    size_t size;
    int end_inserted;
} memory_source;

static void source_init(j_decompress_ptr cinfo) { (void)cinfo; }
static boolean source_fill(j_decompress_ptr cinfo) {
    static const JOCTET end_marker[2] = {0xFF, JPEG_EOI};
    memory_source *s = (memory_source *)cinfo->src;
    s->end_inserted = 1;
    s->pub.next_input_byte = end_marker;
    s->pub.bytes_in_buffer = 2;
    return TRUE;
}
static void source_skip(j_decompress_ptr cinfo, long count) {
    if (count <= 0) return;
    while (count > (long)cinfo->src->bytes_in_buffer) {
        count -= (long)cinfo->src->bytes_in_buffer;
        source_fill(cinfo);
    }
    cinfo->src->next_input_byte += count;
    cinfo->src->bytes_in_buffer -= (size_t)count;
}
static void source_term(j_decompress_ptr cinfo) { (void)cinfo; }

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_error_state error;
    struct jpeg_progress_mgr progress;
    memory_source source;
    unsigned char *pixels;
} jpeg_decode_state;

int fundus_decode_jpeg(const unsigned char *data, size_t size, int mode, int scale, uint64_t max_pixels,
                       fundus_decoded *out) {
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    out->scale_denominator = 1;
    if (scale != 1 && scale != 2 && scale != 4 && scale != 8) {
        fundus_set_message(out->message, sizeof out->message, "JPEG scale must be 1, 2, 4 or 8, not %d", scale);
        return FUNDUS_CODEC_BAD_ARGUMENT;
    }
    if (!data || size < 4) {
        fundus_set_message(out->message, sizeof out->message, "JPEG data is empty or shorter than a header");
        return FUNDUS_CODEC_CORRUPT;
    }
    // Kept on the heap and reached through a pointer set before setjmp, so nothing is lost to the longjmp.
    jpeg_decode_state *s = calloc(1, sizeof *s);
    if (!s) return FUNDUS_CODEC_NO_MEMORY;
    s->cinfo.err = jpeg_std_error(&s->error.pub);
    s->error.pub.error_exit = on_error_exit;
    s->error.pub.emit_message = on_emit_message;
    s->error.pub.output_message = on_output_message;
    if (setjmp(s->error.jump)) {
        fundus_set_message(out->message, sizeof out->message, "JPEG: %s", s->error.message);
        jpeg_destroy_decompress(&s->cinfo);
        free(s->pixels);
        free(s);
        return FUNDUS_CODEC_CORRUPT;
    }
    jpeg_create_decompress(&s->cinfo);
    s->progress.progress_monitor = on_progress;
    s->cinfo.progress = &s->progress;
    s->source.pub.init_source = source_init;
    s->source.pub.fill_input_buffer = source_fill;
    s->source.pub.skip_input_data = source_skip;
    s->source.pub.resync_to_restart = jpeg_resync_to_restart;
    s->source.pub.term_source = source_term;
    s->source.pub.next_input_byte = data;
    s->source.pub.bytes_in_buffer = size;
    s->cinfo.src = &s->source.pub;
    jpeg_save_markers(&s->cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&s->cinfo, TRUE);

    int orientation = exif_orientation(&s->cinfo);
    uint64_t pixels = (uint64_t)s->cinfo.image_width * s->cinfo.image_height;
    out->source_channels = s->cinfo.num_components;
    out->source_bit_depth = s->cinfo.data_precision;
    if (pixels > max_pixels) {
        fundus_set_message(out->message, sizeof out->message,
                           "JPEG declares %ux%u = %llu pixels, above the limit of %llu", s->cinfo.image_width,
                           s->cinfo.image_height, (unsigned long long)pixels, (unsigned long long)max_pixels);
        jpeg_destroy_decompress(&s->cinfo);
        free(s);
        return FUNDUS_CODEC_TOO_LARGE;
    }
    if (s->cinfo.jpeg_color_space == JCS_CMYK || s->cinfo.jpeg_color_space == JCS_YCCK) {
        fundus_set_message(out->message, sizeof out->message, "JPEG is CMYK/YCCK, which is not supported");
        jpeg_destroy_decompress(&s->cinfo);
        free(s);
        return FUNDUS_CODEC_UNSUPPORTED;
    }
    s->cinfo.out_color_space = mode == FUNDUS_DECODE_LABEL ? JCS_GRAYSCALE : JCS_RGB;
    s->cinfo.scale_num = 1;
    s->cinfo.scale_denom = (unsigned)scale;
    s->cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&s->cinfo);

    int w = (int)s->cinfo.output_width, h = (int)s->cinfo.output_height, c = s->cinfo.output_components;
    size_t stride = (size_t)w * (size_t)c;
    s->pixels = malloc(stride * (size_t)h);
    if (!s->pixels) {
        snprintf(s->error.message, sizeof s->error.message, "out of memory for %dx%d pixels", w, h);
        longjmp(s->error.jump, 1);
    }
    while (s->cinfo.output_scanline < (JDIMENSION)h) {
        JSAMPROW rows[16];
        int n = 0;
        for (; n < 16 && s->cinfo.output_scanline + (JDIMENSION)n < (JDIMENSION)h; n++)
            rows[n] = s->pixels + (size_t)(s->cinfo.output_scanline + (JDIMENSION)n) * stride;
        jpeg_read_scanlines(&s->cinfo, rows, (JDIMENSION)n);
    }
    jpeg_finish_decompress(&s->cinfo);
    out->warnings = (int)s->error.pub.num_warnings + s->source.end_inserted;
    int full_w = (int)s->cinfo.image_width, full_h = (int)s->cinfo.image_height;
    jpeg_destroy_decompress(&s->cinfo);

    unsigned char *result = s->pixels;
    free(s);
    if (orientation != 1) {
        int ow, oh;
        unsigned char *turned = fundus_apply_orientation(result, w, h, c, orientation, &ow, &oh);
        free(result);
        if (!turned) {
            fundus_set_message(out->message, sizeof out->message, "out of memory applying EXIF orientation");
            return FUNDUS_CODEC_NO_MEMORY;
        }
        result = turned;
        w = ow;
        h = oh;
        if (orientation >= 5) {
            int t = full_w;
            full_w = full_h;
            full_h = t;
        }
    }
    fundus_set_decoded(out, result, w, h, c, full_w, full_h);
    out->scale_denominator = scale;
    out->orientation = orientation;
    return FUNDUS_CODEC_OK;
}

int fundus_probe_jpeg(const unsigned char *data, size_t size, int *width, int *height) {
    *width = 0;
    *height = 0;
    if (!data || size < 4) return FUNDUS_CODEC_CORRUPT;
    jpeg_decode_state *s = calloc(1, sizeof *s);
    if (!s) return FUNDUS_CODEC_NO_MEMORY;
    s->cinfo.err = jpeg_std_error(&s->error.pub);
    s->error.pub.error_exit = on_error_exit;
    s->error.pub.emit_message = on_emit_message;
    s->error.pub.output_message = on_output_message;
    if (setjmp(s->error.jump)) {
        jpeg_destroy_decompress(&s->cinfo);
        free(s);
        return FUNDUS_CODEC_CORRUPT;
    }
    jpeg_create_decompress(&s->cinfo);
    s->source.pub.init_source = source_init;
    s->source.pub.fill_input_buffer = source_fill;
    s->source.pub.skip_input_data = source_skip;
    s->source.pub.resync_to_restart = jpeg_resync_to_restart;
    s->source.pub.term_source = source_term;
    s->source.pub.next_input_byte = data;
    s->source.pub.bytes_in_buffer = size;
    s->cinfo.src = &s->source.pub;
    jpeg_read_header(&s->cinfo, TRUE);
    *width = (int)s->cinfo.image_width;
    *height = (int)s->cinfo.image_height;
    jpeg_destroy_decompress(&s->cinfo);
    free(s);
    return FUNDUS_CODEC_OK;
}

typedef struct {
    struct jpeg_compress_struct cinfo;
    jpeg_error_state error;
    unsigned char *buffer;
    unsigned long size;
} jpeg_encode_state;

int fundus_encode_jpeg(const unsigned char *pixels, int width, int height, int channels, int quality,
                       fundus_encoded *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || width <= 0 || height <= 0 || (channels != 1 && channels != 3) || quality < 1 || quality > 100) {
        fundus_set_message(out->message, sizeof out->message, "JPEG encode: bad arguments (%dx%dx%d, quality %d)",
                           width, height, channels, quality);
        return FUNDUS_CODEC_BAD_ARGUMENT;
    }
    jpeg_encode_state *s = calloc(1, sizeof *s);
    if (!s) return FUNDUS_CODEC_NO_MEMORY;
    s->cinfo.err = jpeg_std_error(&s->error.pub);
    s->error.pub.error_exit = on_error_exit;
    s->error.pub.output_message = on_output_message;
    if (setjmp(s->error.jump)) {
        fundus_set_message(out->message, sizeof out->message, "JPEG encode: %s", s->error.message);
        jpeg_destroy_compress(&s->cinfo);
        free(s->buffer);
        free(s);
        return FUNDUS_CODEC_CORRUPT;
    }
    jpeg_create_compress(&s->cinfo);
    jpeg_mem_dest(&s->cinfo, &s->buffer, &s->size);
    s->cinfo.image_width = (JDIMENSION)width;
    s->cinfo.image_height = (JDIMENSION)height;
    s->cinfo.input_components = channels;
    s->cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&s->cinfo);
    jpeg_set_quality(&s->cinfo, quality, TRUE);
    jpeg_start_compress(&s->cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (s->cinfo.next_scanline < (JDIMENSION)height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)s->cinfo.next_scanline * stride);
        jpeg_write_scanlines(&s->cinfo, &row, 1);
    }
    jpeg_finish_compress(&s->cinfo);
    jpeg_destroy_compress(&s->cinfo);
    out->data = s->buffer;
    out->size = s->size;
    free(s);
    return FUNDUS_CODEC_OK;
}
