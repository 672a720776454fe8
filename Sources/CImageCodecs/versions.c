#include <stdio.h>
#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>
#include "CImageCodecs.h"

const char *fundus_codecs_jpeg_version(void) {
#ifdef LIBJPEG_TURBO_VERSION
#define FUNDUS_STR2(x) #x
#define FUNDUS_STR(x) FUNDUS_STR2(x)
    return "libjpeg-turbo " FUNDUS_STR(LIBJPEG_TURBO_VERSION);
#else
    return "libjpeg";
#endif
}

const char *fundus_codecs_png_version(void) { return png_get_libpng_ver(NULL); }

const char *fundus_codecs_tiff_version(void) { return TIFFGetVersion(); }
