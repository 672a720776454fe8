// DICOM photographs through DCMTK, behind a C interface (include/CDicom.h). Every DCMTK condition and every C++
// exception stops here and comes back as a result code and a message: nothing unwinds into Swift.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmdata/dccodec.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmimgle/dcmimage.h"
#include "dcmtk/dcmimage/diregist.h"  // colour models for DicomImage (registers itself)
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>

#include "CDicom.h"

namespace {

void setMessage(char *dst, size_t size, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    vsnprintf(dst, size, format, ap);
    va_end(ap);
}

void copy(char *dst, size_t size, const OFString &value) {
    snprintf(dst, size, "%s", value.c_str());
}

/// Decoders are registered once per process; DCMTK's own log is silenced (its errors come back in our messages).
void registerOnce() {
    static const bool registered = [] {
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
        return true;
    }();
    (void)registered;
}

/// Reads a whole file image (preamble, meta header, data set) from memory.
OFCondition load(DcmFileFormat &file, const unsigned char *data, size_t size) {
    DcmInputBufferStream stream;
    stream.setBuffer(data, OFstatic_cast(offile_off_t, size));
    stream.setEos();
    file.transferInit();
    OFCondition status = file.read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    file.transferEnd();
    return status;
}

OFString text(DcmItem *item, const DcmTagKey &key) {
    OFString value;
    if (item == nullptr || item->findAndGetOFString(key, value).bad()) return OFString();
    return value;
}

bool isJPEG2000(E_TransferSyntax xfer) {
    return xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000 || xfer == EXS_JPEG2000MulticomponentLosslessOnly
        || xfer == EXS_JPEG2000Multicomponent;
}

/// JPEG family transfer syntaxes whose fragments start with a JPEG start-of-image marker.
bool isJPEGFamily(E_TransferSyntax xfer) {
    return xfer == EXS_JPEGProcess1 || xfer == EXS_JPEGProcess2_4 || xfer == EXS_JPEGProcess14
        || xfer == EXS_JPEGProcess14SV1 || xfer == EXS_JPEGLSLossless || xfer == EXS_JPEGLSLossy;
}

/// Fills `info` from what was read, then checks that the data set is one photograph we can decode.
int describe(DcmFileFormat &file, OFCondition loaded, size_t size, fundus_dicom_info *info) {
    DcmMetaInfo *meta = file.getMetaInfo();
    DcmDataset *data = file.getDataset();
    copy(info->patient_id, sizeof info->patient_id, text(data, DCM_PatientID));
    OFString laterality = text(data, DCM_ImageLaterality);
    if (laterality.empty()) laterality = text(data, DCM_Laterality);
    copy(info->laterality, sizeof info->laterality, laterality);
    OFString date = text(data, DCM_StudyDate);
    if (date.empty()) date = text(data, DCM_ContentDate);
    copy(info->study_date, sizeof info->study_date, date);
    copy(info->study_uid, sizeof info->study_uid, text(data, DCM_StudyInstanceUID));
    copy(info->instance_uid, sizeof info->instance_uid, text(data, DCM_SOPInstanceUID));
    OFString sopClass = text(data, DCM_SOPClassUID);
    OFString mediaClass = text(meta, DCM_MediaStorageSOPClassUID);
    copy(info->sop_class_uid, sizeof info->sop_class_uid, sopClass.empty() ? mediaClass : sopClass);
    copy(info->modality, sizeof info->modality, text(data, DCM_Modality));
    copy(info->photometric, sizeof info->photometric, text(data, DCM_PhotometricInterpretation));

    OFString syntaxUID = text(meta, DCM_TransferSyntaxUID);
    E_TransferSyntax xfer = data ? data->getOriginalXfer() : EXS_Unknown;
    if (syntaxUID.empty() && xfer != EXS_Unknown) syntaxUID = DcmXfer(xfer).getXferID();
    copy(info->transfer_syntax_uid, sizeof info->transfer_syntax_uid, syntaxUID);
    DcmXfer named(syntaxUID.empty() ? xfer : DcmXfer(syntaxUID.c_str()).getXfer());
    copy(info->transfer_syntax_name, sizeof info->transfer_syntax_name,
         named.getXfer() == EXS_Unknown ? OFString("unknown") : OFString(named.getXferName()));

    Uint16 u16 = 0;
    info->rows = data && data->findAndGetUint16(DCM_Rows, u16).good() ? u16 : 0;
    info->columns = data && data->findAndGetUint16(DCM_Columns, u16).good() ? u16 : 0;
    info->samples_per_pixel = data && data->findAndGetUint16(DCM_SamplesPerPixel, u16).good() ? u16 : 0;
    info->bits_allocated = data && data->findAndGetUint16(DCM_BitsAllocated, u16).good() ? u16 : 0;
    info->bits_stored = data && data->findAndGetUint16(DCM_BitsStored, u16).good() ? u16 : 0;
    Sint32 frames = 1;
    info->frames = data && data->findAndGetSint32(DCM_NumberOfFrames, frames).good() ? frames : 1;
    Float64 spacing = 0;
    info->pixel_spacing_mm = data && data->findAndGetFloat64(DCM_PixelSpacing, spacing, 0).good() && spacing > 0 ? spacing : 0;
    info->is_directory = mediaClass == UID_MediaStorageDirectoryStorage || sopClass == UID_MediaStorageDirectoryStorage;

    if (loaded.bad()) {
        if (loaded == EC_StreamNotifyClient || loaded == EC_EndOfStream || loaded == EC_PrematureSequDelimitationItem) {
            setMessage(info->message, sizeof info->message,
                       "truncated: the file (%zu bytes) ends before its data set does (%s)", size, loaded.text());
        } else {
            setMessage(info->message, sizeof info->message, "not a readable DICOM file: %s", loaded.text());
        }
        return FUNDUS_DICOM_CORRUPT;
    }
    if (info->is_directory) {
        setMessage(info->message, sizeof info->message,
                   "a DICOMDIR (the index of a DICOM folder), not an image: import the folder it lies in");
        return FUNDUS_DICOM_NO_PIXELS;
    }
    if (xfer == EXS_Unknown || named.getXfer() == EXS_Unknown) {
        setMessage(info->message, sizeof info->message, "unknown transfer syntax %s", syntaxUID.c_str());
        return FUNDUS_DICOM_UNSUPPORTED;
    }
    DcmElement *pixels = nullptr;
    const bool encapsulated = DcmXfer(xfer).isEncapsulated();
    if (data->findAndGetElement(DCM_PixelData, pixels).bad() || pixels == nullptr
        || (!encapsulated && pixels->getLength() == 0)) {
        setMessage(info->message, sizeof info->message, "no pixel data (7FE0,0010) in this DICOM file (SOP class %s%s%s)",
                   info->sop_class_uid, info->modality[0] ? ", modality " : "", info->modality);
        return FUNDUS_DICOM_NO_PIXELS;
    }
    if (info->frames > 1) {
        setMessage(info->message, sizeof info->message,
                   "multi-frame DICOM (%d frames) is not supported: fundus-screen reads one photograph per file; "
                   "export the frames as single-frame instances", info->frames);
        return FUNDUS_DICOM_UNSUPPORTED;
    }
    if (isJPEG2000(xfer)) {
        setMessage(info->message, sizeof info->message,
                   "JPEG 2000 compressed pixel data (transfer syntax %s, %s) is not supported (DCMTK has no JPEG 2000 "
                   "decoder): decompress the file first", syntaxUID.c_str(), info->transfer_syntax_name);
        return FUNDUS_DICOM_UNSUPPORTED;
    }
    if (info->rows <= 0 || info->columns <= 0) {
        setMessage(info->message, sizeof info->message, "rows %d × columns %d: not an image size", info->rows, info->columns);
        return FUNDUS_DICOM_CORRUPT;
    }
    if (info->samples_per_pixel != 1 && info->samples_per_pixel != 3) {
        setMessage(info->message, sizeof info->message, "%d samples per pixel: expected 1 (grey) or 3 (colour)",
                   info->samples_per_pixel);
        return FUNDUS_DICOM_UNSUPPORTED;
    }
    if (encapsulated) {
        if (!DcmCodecList::canChangeCoding(xfer, EXS_LittleEndianExplicit)) {
            setMessage(info->message, sizeof info->message,
                       "pixel data compressed as %s (%s), which fundus-screen cannot decode", info->transfer_syntax_name,
                       syntaxUID.c_str());
            return FUNDUS_DICOM_UNSUPPORTED;
        }
        DcmPixelSequence *sequence = nullptr;
        DcmPixelData *pixelData = OFstatic_cast(DcmPixelData *, pixels);
        if (pixelData->getEncapsulatedRepresentation(xfer, nullptr, sequence).bad() || sequence == nullptr
            || sequence->card() < 2) {
            setMessage(info->message, sizeof info->message,
                       "the transfer syntax says %s but the pixel data holds no compressed fragments: wrong transfer syntax "
                       "or damaged file", info->transfer_syntax_name);
            return FUNDUS_DICOM_CORRUPT;
        }
        if (isJPEGFamily(xfer)) {
            DcmPixelItem *fragment = nullptr;
            Uint8 *bytes = nullptr;
            if (sequence->getItem(fragment, 1).bad() || fragment == nullptr || fragment->getLength() < 2
                || fragment->getUint8Array(bytes).bad() || bytes == nullptr || bytes[0] != 0xFF || bytes[1] != 0xD8) {
                setMessage(info->message, sizeof info->message,
                           "the transfer syntax says %s but the first fragment is not JPEG data (no FF D8 start marker): "
                           "wrong transfer syntax or damaged file", info->transfer_syntax_name);
                return FUNDUS_DICOM_CORRUPT;
            }
        }
    } else {
        unsigned long bytesPerSample = info->bits_allocated > 8 ? 2 : 1;
        if (info->bits_allocated != 8 && info->bits_allocated != 16) {
            setMessage(info->message, sizeof info->message, "%d bits allocated per sample: expected 8 or 16",
                       info->bits_allocated);
            return FUNDUS_DICOM_UNSUPPORTED;
        }
        unsigned long needed = OFstatic_cast(unsigned long, info->rows) * OFstatic_cast(unsigned long, info->columns)
                             * OFstatic_cast(unsigned long, info->samples_per_pixel) * bytesPerSample;
        OFString photometric(info->photometric);
        if (photometric == "YBR_FULL_422" || photometric == "YBR_PARTIAL_422") needed = needed * 2 / 3;
        if (pixels->getLength() < needed) {
            setMessage(info->message, sizeof info->message,
                       "the pixel data holds %lu bytes, but %d × %d pixels of %d samples need %lu: truncated, or a wrong "
                       "transfer syntax", OFstatic_cast(unsigned long, pixels->getLength()), info->columns, info->rows,
                       info->samples_per_pixel, needed);
            return FUNDUS_DICOM_CORRUPT;
        }
    }
    return FUNDUS_DICOM_OK;
}

int decode(const unsigned char *data, size_t size, uint64_t maxPixels, fundus_dicom_image *out) {
    DcmFileFormat file;
    OFCondition loaded = load(file, data, size);
    int status = describe(file, loaded, size, &out->info);
    if (status != FUNDUS_DICOM_OK) return status;
    fundus_dicom_info *info = &out->info;
    uint64_t pixelCount = OFstatic_cast(uint64_t, info->rows) * OFstatic_cast(uint64_t, info->columns);
    if (pixelCount > maxPixels) {
        setMessage(info->message, sizeof info->message, "%d × %d pixels exceed the limit of %llu", info->columns, info->rows,
                   OFstatic_cast(unsigned long long, maxPixels));
        return FUNDUS_DICOM_TOO_LARGE;
    }
    DcmDataset *dataset = file.getDataset();
    E_TransferSyntax xfer = dataset->getOriginalXfer();
    if (DcmXfer(xfer).isEncapsulated()) {
        OFCondition decompressed = dataset->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
        if (decompressed.bad() || !dataset->canWriteXfer(EXS_LittleEndianExplicit)) {
            setMessage(info->message, sizeof info->message, "cannot decompress the %s pixel data: %s",
                       info->transfer_syntax_name, decompressed.bad() ? decompressed.text() : "no decoder took it");
            return FUNDUS_DICOM_CORRUPT;
        }
        xfer = EXS_LittleEndianExplicit;
    }
    // MONOCHROME1 (0 is white): rendered as MONOCHROME2 and inverted here, exactly (DCMTK's own inversion goes
    // through a rescaling that is off by one for about one pixel in eight).
    const bool inverse = OFString(info->photometric) == "MONOCHROME1";
    if (inverse) dataset->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    DicomImage image(&file, xfer, CIF_UsePartialAccessToPixelData, 0, 1);
    if (image.getStatus() != EIS_Normal) {
        setMessage(info->message, sizeof info->message, "cannot decode the pixels (photometric interpretation %s): %s",
                   info->photometric, DicomImage::getString(image.getStatus()));
        return image.getStatus() == EIS_NotSupportedValue ? FUNDUS_DICOM_UNSUPPORTED : FUNDUS_DICOM_CORRUPT;
    }
    const int width = OFstatic_cast(int, image.getWidth()), height = OFstatic_cast(int, image.getHeight());
    const bool grey = image.isMonochrome();
    if (grey && info->bits_stored > 8) image.setMinMaxWindow();
    const size_t count = OFstatic_cast(size_t, width) * OFstatic_cast(size_t, height);
    const Uint8 *pixels = OFstatic_cast(const Uint8 *, image.getOutputData(8, 0, 0));
    if (pixels == nullptr || image.getOutputDataSize(8) < count * (grey ? 1 : 3)) {
        setMessage(info->message, sizeof info->message, "cannot render the pixels to 8-bit (%s)",
                   DicomImage::getString(image.getStatus()));
        return FUNDUS_DICOM_CORRUPT;
    }
    unsigned char *rgb = OFstatic_cast(unsigned char *, malloc(count * 3));
    if (rgb == nullptr) {
        setMessage(info->message, sizeof info->message, "out of memory for %d × %d RGB pixels", width, height);
        return FUNDUS_DICOM_NO_MEMORY;
    }
    if (grey) {
        for (size_t i = 0; i < count; i++) {
            const unsigned char v = inverse ? OFstatic_cast(unsigned char, 255 - pixels[i]) : pixels[i];
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
        }
    } else {
        memcpy(rgb, pixels, count * 3);
    }
    out->pixels = rgb;
    out->width = width;
    out->height = height;
    out->channels = 3;
    return FUNDUS_DICOM_OK;
}

}  // namespace

extern "C" int fundus_dicom_inspect(const unsigned char *data, size_t size, fundus_dicom_info *info) {
    if (info == nullptr) return FUNDUS_DICOM_BAD_ARGUMENT;
    memset(info, 0, sizeof *info);
    if (data == nullptr || size == 0) {
        setMessage(info->message, sizeof info->message, "no data");
        return FUNDUS_DICOM_BAD_ARGUMENT;
    }
    try {
        registerOnce();
        DcmFileFormat file;
        OFCondition loaded = load(file, data, size);
        return describe(file, loaded, size, info);
    } catch (const std::bad_alloc &) {
        setMessage(info->message, sizeof info->message, "out of memory while reading the DICOM file");
        return FUNDUS_DICOM_NO_MEMORY;
    } catch (const std::exception &error) {
        setMessage(info->message, sizeof info->message, "DCMTK failed: %s", error.what());
        return FUNDUS_DICOM_CORRUPT;
    } catch (...) {
        setMessage(info->message, sizeof info->message, "DCMTK failed with an unknown exception");
        return FUNDUS_DICOM_CORRUPT;
    }
}

extern "C" int fundus_dicom_decode(const unsigned char *data, size_t size, uint64_t max_pixels, fundus_dicom_image *out) {
    if (out == nullptr) return FUNDUS_DICOM_BAD_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (data == nullptr || size == 0) {
        setMessage(out->info.message, sizeof out->info.message, "no data");
        return FUNDUS_DICOM_BAD_ARGUMENT;
    }
    int status;
    try {
        registerOnce();
        status = decode(data, size, max_pixels, out);
    } catch (const std::bad_alloc &) {
        setMessage(out->info.message, sizeof out->info.message, "out of memory while decoding the DICOM file");
        status = FUNDUS_DICOM_NO_MEMORY;
    } catch (const std::exception &error) {
        setMessage(out->info.message, sizeof out->info.message, "DCMTK failed: %s", error.what());
        status = FUNDUS_DICOM_CORRUPT;
    } catch (...) {
        setMessage(out->info.message, sizeof out->info.message, "DCMTK failed with an unknown exception");
        status = FUNDUS_DICOM_CORRUPT;
    }
    if (status != FUNDUS_DICOM_OK) {
        free(out->pixels);
        out->pixels = nullptr;
    }
    return status;
}

extern "C" void fundus_dicom_free(void *pointer) { free(pointer); }

extern "C" const char *fundus_dicom_version(void) { return "DCMTK " OFFIS_DCMTK_VERSION_STRING; }
