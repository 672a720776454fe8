import Foundation
import Lesions

/// Where a page finds an eye's pictures: links relative to the page, or nil when there is none.
public struct EyeImages: Sendable, Equatable {
    public var photograph: String?
    public var overlay: String?

    public init(photograph: String?, overlay: String?) {
        self.photograph = photograph
        self.overlay = overlay
    }
}

/// Content-Security-Policy for every page: no scripts, no fetches, no frames; images only from beside the page.
/// Escaping already keeps markup out; this makes an escaping slip harmless and the "no network" promise checkable.
let contentSecurityPolicy = "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

func pageHead(title: String) -> Markup {
    """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta http-equiv="Content-Security-Policy" content="\(contentSecurityPolicy)">
    <meta name="generator" content="fundus-screen">
    <title>\(title)</title>
    <style>
    \(Stylesheet.css)</style>
    </head>

    """
}

/// One patient's page: verdict at the top, then one card per eye (right first) with the photograph, the lesion
/// overlay and its legend, the gradability outcome, the findings table, the flag with its rule, model and date.
public enum PatientPage {
    /// - Parameters:
    ///   - eyes: the patient's eyes in reading order, each with where its pictures are relative to the page.
    ///   - indexLink: link from this page back to the index page.
    public static func render(
        patient: PatientReport, eyes: [(eye: EyeReport, images: EyeImages)], indexLink: String?, writtenAt: Date
    ) -> String {
        let outcome = patient.outcome
        let flagged = eyes.filter { $0.eye.flag.raised }.map(\.eye)
        let verdictDetail: Markup
        switch outcome {
        case .flagged:
            verdictDetail = flagged.map { eye -> Markup in
                "<span>\(eye.laterality.words): \(eye.flagReason) \(ruleMarkup(eye.flag))</span>"
            }.joined()
        case .incomplete:
            verdictDetail = patient.eyes.isEmpty
                ? "<span>No photograph of this patient was screened.</span>"
                : "<span>No flag on the gradable images, but not every image could be graded: re-image or grade by hand.</span>"
        case .notFlagged:
            verdictDetail = "<span>No lesions beyond the screening rule’s threshold on any image.</span>"
        }
        let models = Array(Set(patient.eyes.map(\.modelVersion))).sorted()
        let dates = patient.eyes.map(\.screenedAt)
        let screened: String
        if let first = dates.min(), let last = dates.max() {
            screened = Format.day(first) == Format.day(last) ? Format.day(last) : Format.day(first) + " – " + Format.day(last)
        } else {
            screened = "–"
        }
        let crumb: Markup? = indexLink.map { "<p class=\"crumb\"><a href=\"\($0)\">← All patients</a></p>\n" }
        let cards = eyes.map { eyeCard($0.eye, images: $0.images) }

        let page: Markup = """
            \(pageHead(title: "Patient \(patient.patientID) – fundus screening report"))<body>
            <div class="page">
            \(crumb)<header class="head \(outcome.cssClass)">
            <p class="kicker">Diabetic-retinopathy lesion screening</p>
            <h1>Patient <span class="mono">\(patient.patientID)</span></h1>
            <div class="verdict"><strong>\(outcome.words)</strong>\(verdictDetail)</div>
            <dl class="facts">
            <div><dt>Screened</dt><dd>\(screened)</dd></div>
            <div><dt>Model version</dt><dd><code>\(models.isEmpty ? "–" : models.joined(separator: ", "))</code></dd></div>
            <div><dt>Images</dt><dd>\(patient.eyes.count)</dd></div>
            <div><dt>Report written</dt><dd>\(Format.day(writtenAt))</dd></div>
            </dl>
            </header>
            <main class="eyes">
            \(cards)</main>
            \(footer)
            </div>
            </body>
            </html>

            """
        return page.html
    }

    static let footer: Markup = """
        <p class="note">Lesion segmentation by a machine-learning model, for a grader to review. The flag marks
        suspected more-than-mild diabetic retinopathy (lesions beyond microaneurysms alone); it is not a diagnosis and not
        a severity grade, which needs signs (venous beading, IRMA, new vessels) that lesion masks cannot show.</p>
        """

    static func ruleMarkup(_ flag: EyeReport.Flag) -> Markup {
        guard !flag.rule.isEmpty else { return "" }
        return "<span class=\"rule\">(rule <code>\(flag.ruleLabel)</code>)</span>"
    }

    static func eyeOutcome(_ eye: EyeReport) -> PatientOutcome {
        if eye.flag.raised { return .flagged }
        return eye.gradability.isGradable ? .notFlagged : .incomplete
    }

    static func eyeCard(_ eye: EyeReport, images: EyeImages) -> Markup {
        let outcome = eyeOutcome(eye)
        let verdict: Markup
        if eye.flag.raised {
            verdict = "<div class=\"verdict\"><strong>Flag raised</strong><span>\(eye.flagReason) \(ruleMarkup(eye.flag))</span></div>"
        } else if !eye.gradability.isGradable {
            let reasons = eye.gradability.reasons.isEmpty ? "no reason recorded" : eye.gradability.reasons.joined(separator: "; ")
            verdict = "<div class=\"verdict\"><strong>Ungradable</strong><span>\(reasons)</span></div>"
        } else {
            let reason = eye.flagReason
            verdict = "<div class=\"verdict\"><strong>No flag</strong><span>\(reason) \(ruleMarkup(eye.flag))</span></div>"
        }
        let side = eye.laterality.words
        let photo: Markup
        if let url = images.photograph {
            photo = """
                <figure><a href="\(url)"><img src="\(url)" alt="\(side) photograph, image \(eye.imageID)" loading="lazy"></a>\
                <figcaption>Photograph</figcaption></figure>
                """
        } else {
            photo = """
                <figure><div class="missing"><span>Photograph not available: <code>\(eye.photograph)</code></span></div>\
                <figcaption>Photograph</figcaption></figure>
                """
        }
        let overlay: Markup
        if let url = images.overlay {
            overlay = """
                <figure><a href="\(url)"><img src="\(url)" alt="\(side) lesion overlay, image \(eye.imageID)" loading="lazy"></a>\
                <figcaption>Lesion overlay</figcaption></figure>
                """
        } else {
            let why = eye.gradability.isGradable ? "No overlay was written for this image." : "No overlay: the image is ungradable."
            overlay = "<figure><div class=\"missing\"><span>\(why)</span></div><figcaption>Lesion overlay</figcaption></figure>"
        }
        // The legend explains the overlay's colours; without an overlay there is nothing to explain.
        let legend: Markup = images.overlay == nil ? "" : """
            <ul class="legend" aria-label="Overlay colours">\(LesionClass.allCases.map { c -> Markup in
                "<li><span class=\"swatch c-\(c.code)\"></span>\(c.code) \(c.name)</li>"
            })</ul>
            """
        let table: Markup = eye.gradability.isGradable ? findingsTable(eye) : ""
        // The optic disc (models with the disc channel): where it is, and whether the mm² are estimates from it.
        let disc: Markup = eye.opticDisc.map { d in
            let text = d.summary.prefix(1).uppercased() + d.summary.dropFirst()
            return "\n<p class=\"disc\">\(text)</p>"
        } ?? ""
        let run: Markup = eye.screeningRun.map { " · run <code>\($0)</code>" } ?? ""
        let inference: Markup = eye.inference.map { "<br>\nRead with \($0)" } ?? ""
        return """
            <section class="eye \(outcome.cssClass)">
            <div class="eye-head"><h2>\(side)\(eye.laterality == .unknown ? "" : " (" + eye.laterality.rawValue + ")")</h2>\
            <span class="image">Image <code>\(eye.imageID)</code></span></div>
            \(verdict)
            <div class="figures">
            \(photo)
            \(overlay)
            </div>
            \(legend)
            \(table)\(disc)
            <p class="provenance">Model <code>\(eye.modelVersion)</code> · screened \(Format.day(eye.screenedAt))\(run)<br>\
            Source <code>\(eye.photograph)</code>\(inference)</p>
            </section>

            """
    }

    static func findingsTable(_ eye: EyeReport) -> Markup {
        let byClass = Dictionary(eye.findings.map { ($0.lesionClass, $0) }, uniquingKeysWith: { a, _ in a })
        let rows = LesionClass.allCases.map { c -> Markup in
            let head: Markup = "<th scope=\"row\"><span class=\"swatch c-\(c.code)\"></span>\(c.code)<span class=\"name\">\(c.name)</span></th>"
            guard let f = byClass[c] else {
                return "<tr class=\"absent\">\(head)<td class=\"num\" colspan=\"5\">not measured</td></tr>\n"
            }
            let cls: Markup = f.count == 0 ? " class=\"absent\"" : ""
            return """
                <tr\(cls)>\(head)<td class="num">\(Format.grouped(f.count))</td>\
                <td class="num">\(Format.grouped(f.areaPixels))</td><td class="num">\(Format.percent(f.fieldOfViewShare))</td>\
                <td class="num">\(Format.squareMillimetres(f.areaMM2))</td><td class="num">\(Format.grouped(f.largestPixels))</td></tr>

                """
        }
        return """
            <div class="table-wrap"><table class="findings">
            <caption>Findings by lesion class</caption>
            <thead><tr><th scope="col">Class</th><th scope="col" class="num">Lesions</th><th scope="col" class="num">Area px</th>\
            <th scope="col" class="num">Share of FOV</th><th scope="col" class="num">Area mm²</th>\
            <th scope="col" class="num">Largest px</th></tr></thead>
            <tbody>
            \(rows)</tbody>
            </table></div>
            """
    }
}
