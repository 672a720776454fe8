#ifndef FUNDUS_CIMAGECODECS_H
#define FUNDUS_CIMAGECODECS_H

/// Versions of the linked codec libraries, for `fundus-screen --version` and bug reports.
const char *fundus_codecs_jpeg_version(void);
const char *fundus_codecs_png_version(void);
const char *fundus_codecs_tiff_version(void);

#endif
