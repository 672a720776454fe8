import Foundation
import Testing
@testable import Reports

@Suite("Escaping: identifiers and paths never become markup or leave the report folder")
struct EscapingTests {
    @Test("The escape function turns every HTML-special character into an entity")
    func escapesSpecials() {
        #expect(htmlEscape(#"<script>alert("x") & 'y'</script>"#)
            == "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;")
        #expect(htmlEscape("plain IDRiD_01 é") == "plain IDRiD_01 é")
        #expect(htmlEscape("a\u{0}b\u{1F}c\td") == "abc\td")
    }

    @Test("Interpolated text in markup is escaped; nested markup is not escaped twice")
    func markupInterpolation() {
        let id = "<b>&</b>"
        let inner: Markup = "<i>\(id)</i>"
        let outer: Markup = "<p title=\"\(id)\">\(inner)</p>"
        #expect(outer.html == "<p title=\"&lt;b&gt;&amp;&lt;/b&gt;\"><i>&lt;b&gt;&amp;&lt;/b&gt;</i></p>")
    }

    static let hostile = #"<script>alert("pwned")</script>" onerror="alert(1)' & <img src=x>"#

    static func page(patientID: String, imageID: String, path: String) -> String {
        let eye = Fixture.eye(.right, image: imageID, photograph: path, he: 2)
        let patient = PatientReport(patientID: patientID, eyes: [eye, Fixture.eye(.left, image: imageID + "L", photograph: path, gradable: false)])
        let images = EyeImages(photograph: "p/" + SafeName.make(imageID) + ".jpg", overlay: nil)
        return PatientPage.render(
            patient: patient, eyes: patient.eyesInReadingOrder.map { ($0, images) }, indexLink: "../index.html",
            writtenAt: Fixture.date)
    }

    /// Tags and attributes of a page, as a parser would see their names: text in between is dropped.
    static func tagSkeleton(_ html: String) -> [String] {
        var tags: [String] = []
        var current: String? = nil
        for ch in html {
            if ch == "<" { current = "" } else if ch == ">" {
                if let c = current { tags.append(c.split(separator: " ").first.map(String.init) ?? "") }
                current = nil
            } else if current != nil { current!.append(ch) }
        }
        return tags
    }

    @Test("A patient id, image id and path with HTML in them do not inject markup")
    func hostileIdentifiersStayText() {
        let benign = Self.page(patientID: "P001", imageID: "IMG1", path: "/data/a.jpg")
        let hostile = Self.page(patientID: Self.hostile, imageID: Self.hostile, path: "/data/\(Self.hostile).jpg")
        #expect(!hostile.lowercased().contains("<script"))
        #expect(!hostile.contains("<img src=x"))
        #expect(!hostile.contains("onerror=\"alert"))
        #expect(hostile.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"))
        // Same tags in the same order as the benign page: the identifiers added no element and no attribute break-out.
        #expect(Self.tagSkeleton(hostile) == Self.tagSkeleton(benign))
        #expect(hostile.filter { $0 == "<" }.count == benign.filter { $0 == "<" }.count)
        #expect(hostile.filter { $0 == "\"" }.count == benign.filter { $0 == "\"" }.count)
    }

    @Test("Quotes and ampersands in ids are escaped inside attributes too")
    func attributesEscaped() {
        let html = Self.page(patientID: "O'Brien & \"Sons\"", imageID: "a\"b", path: "/x/a\"b&c.jpg")
        #expect(html.contains("O&#39;Brien &amp; &quot;Sons&quot;"))
        #expect(html.contains("alt=\"Right eye photograph, image a&quot;b\""))
        #expect(!html.contains("a\"b"))
    }

    @Test("The index page escapes patient ids and reasons")
    func indexEscapes() {
        let patient = PatientReport(patientID: Self.hostile, eyes: [Fixture.eye(.right, image: "i", he: 1)])
        let html = IndexPage.render([IndexEntry(patient: patient, link: "patients/x.html")], exports: [], writtenAt: Fixture.date)
        #expect(!html.lowercased().contains("<script"))
        #expect(html.contains("&lt;script&gt;"))
    }

    @Test("Pages need no network and run no scripts")
    func noScriptsNoNetwork() {
        let html = Self.page(patientID: "P1", imageID: "I1", path: "/a.jpg")
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(html.contains("Content-Security-Policy"))
        // Attribute values are escaped like everything else; the parser decodes &#39; back to '.
        #expect(html.contains("default-src &#39;none&#39;"))
    }

    @Test("File names from ids keep only safe characters and cannot climb out of the folder")
    func safeNames() {
        #expect(SafeName.make("IDRiD_01") == "IDRiD_01")
        #expect(SafeName.make("P-001.a") == "P-001.a")
        for id in ["../../etc/passwd", "..", ".", "/abs/path", "a/b", "a\\b", "", "<script>", "con\u{0}", ".hidden", "é"] {
            let name = SafeName.make(id)
            #expect(!name.contains("/") && !name.contains("\\") && !name.hasPrefix(".") && !name.contains("..") && !name.isEmpty, "\(id) → \(name)")
            #expect(name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) })
        }
        // Different ids that sanitise alike still get different names.
        #expect(SafeName.make("a/b") != SafeName.make("a_b"))
        #expect(SafeName.make("a/b") != SafeName.make("a\\b"))
        #expect(SafeName.make("a/b") == SafeName.make("a/b"))
        #expect(SafeName.make(String(repeating: "x", count: 500)).count <= 97)
    }
}
