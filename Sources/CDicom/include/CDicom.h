#ifndef FUNDUS_CDICOM_H
#define FUNDUS_CDICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Result codes. DCMTK reports errors as OFCondition values and, deep inside, C++ exceptions and out-of-memory;
/// all of them stop in this shim: a Swift caller only ever sees a code and a message.
enum {
    FUNDUS_DICOM_OK = 0,
    FUNDUS_DICOM_CORRUPT = 1,      // not DICOM, malformed or truncated
    FUNDUS_DICOM_TOO_LARGE = 2,    // rows x columns above the caller's pixel limit (refused before decoding)
    FUNDUS_DICOM_UNSUPPORTED = 3,  // valid DICOM we do not decode: JPEG 2000, multi-frame, unknown colour model
    FUNDUS_DICOM_NO_MEMORY = 4,
    FUNDUS_DICOM_BAD_ARGUMENT = 5,
    FUNDUS_DICOM_NO_PIXELS = 6,    // no pixel data: a DICOMDIR, a report, or an image whose pixels were removed
};

/// What a DICOM file says about itself. Strings are NUL-terminated and empty when the element is absent.
typedef struct {
    char patient_id[72];          // (0010,0020)
    char laterality[8];           // (0020,0062) Image Laterality, else (0020,0060) Laterality: R, L, B, U
    char study_date[16];          // (0008,0020) Study Date, else (0008,0023) Content Date: YYYYMMDD
    char study_uid[72];           // (0020,000D)
    char instance_uid[72];        // (0008,0018) SOP Instance UID
    char sop_class_uid[72];       // (0008,0016), else the meta header's media storage SOP class
    char modality[20];            // (0008,0060)
    char transfer_syntax_uid[72]; // of the data set as stored
    char transfer_syntax_name[72];
    char photometric[24];         // (0028,0004)
    int rows, columns, frames, samples_per_pixel, bits_allocated, bits_stored;
    /// Row spacing in mm from (0028,0030) Pixel Spacing; 0 when absent.
    double pixel_spacing_mm;
    /// 1 for a DICOMDIR (media storage directory).
    int is_directory;
    char message[320];
} fundus_dicom_info;

/// A decoded DICOM photograph: 8-bit RGB, rows top to bottom, no padding; `pixels` is malloc'd (fundus_dicom_free).
typedef struct {
    unsigned char *pixels;
    int width, height, channels;
    fundus_dicom_info info;
} fundus_dicom_image;

/// Reads the data set in `data` and checks that it is a photograph this shim can decode (pixel data present and
/// complete as far as the header says, one frame, a supported transfer syntax and colour model) without decoding
/// the pixels. `info` is filled as far as the file could be read, also on failure.
int fundus_dicom_inspect(const unsigned char *data, size_t size, fundus_dicom_info *info);

/// Decodes the (single) frame to 8-bit RGB: uncompressed RGB, YBR_FULL, YBR_FULL_422, MONOCHROME1/2 (grey is
/// replicated; MONOCHROME1 is inverted for display; more than 8 bits stored are windowed to their min-max), and
/// JPEG baseline, extended, lossless, JPEG-LS and RLE compressed pixel data. JPEG 2000 is refused.
int fundus_dicom_decode(const unsigned char *data, size_t size, uint64_t max_pixels, fundus_dicom_image *out);

void fundus_dicom_free(void *pointer);

/// DCMTK's version, for bug reports.
const char *fundus_dicom_version(void);

#ifdef __cplusplus
}
#endif

#endif
