import Testing
import CImageCodecs

@Test("The codec libraries are linked and report their versions")
func codecVersions() {
    #expect(String(cString: fundus_codecs_jpeg_version()).contains("jpeg"))
    #expect(String(cString: fundus_codecs_png_version()).hasPrefix("1."))
    #expect(String(cString: fundus_codecs_tiff_version()).contains("LIBTIFF"))
}
