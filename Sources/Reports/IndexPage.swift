import Foundation

/// A patient as the index lists it.
public struct IndexEntry: Sendable, Equatable {
    public var patientID: String
    /// Link to the patient's page, relative to the index.
    public var link: String
    public var outcome: PatientOutcome
    /// The flag reasons (flagged eyes), or the ungradable reasons, shortly, with the eye they belong to.
    public var detail: String
    public var rules: [String]
    public var images: Int
    public var lastScreened: Date?

    public init(patient: PatientReport, link: String) {
        patientID = patient.patientID
        self.link = link
        outcome = patient.outcome
        let eyes = patient.eyesInReadingOrder
        switch outcome {
        case .flagged:
            detail = eyes.filter(\.flag.raised).map { "\($0.laterality.words): \($0.flagReason)" }.joined(separator: "; ")
        case .incomplete:
            detail = eyes.isEmpty
                ? "no image screened"
                : eyes.filter { !$0.gradability.isGradable }.map {
                    "\($0.laterality.words) ungradable: \($0.gradability.reasons.joined(separator: ", "))"
                }.joined(separator: "; ")
        case .notFlagged:
            detail = ""
        }
        rules = Array(Set(eyes.filter(\.flag.raised).map(\.flag.ruleLabel)))
            .sorted()
        images = patient.eyes.count
        lastScreened = patient.lastScreened
    }

    /// Flagged first, then incomplete, then the rest; by patient id within each.
    public static func ordered(_ entries: [IndexEntry]) -> [IndexEntry] {
        entries.sorted { a, b in
            if a.outcome != b.outcome { return a.outcome < b.outcome }
            // Case-insensitive first, as people sort; then by bytes so the order is total and stable.
            let (la, lb) = (a.patientID.lowercased(), b.patientID.lowercased())
            if la != lb { return la.utf8.lexicographicallyPrecedes(lb.utf8) }
            if a.patientID != b.patientID { return a.patientID.utf8.lexicographicallyPrecedes(b.patientID.utf8) }
            return a.link < b.link
        }
    }
}

/// The folder's front page: counts per outcome, then every patient with the flag, flagged ones first.
public enum IndexPage {
    public static func render(_ entries: [IndexEntry], exports: [(name: String, link: String)], writtenAt: Date) -> String {
        let ordered = IndexEntry.ordered(entries)
        let counts = PatientOutcome.allCases.map { o -> Markup in
            "<li class=\"\(o.cssClass)\"><b>\(ordered.filter { $0.outcome == o }.count)</b>\(o.words.lowercased())</li>"
        }
        let rows = ordered.map { e -> Markup in
            """
            <tr><th scope="row"><a href="\(e.link)"><code>\(e.patientID)</code></a></th>\
            <td><span class="badge \(e.outcome.cssClass)">\(e.outcome.words)</span></td>\
            <td>\(e.detail)</td><td class="rule-cell">\(e.rules.isEmpty ? "–" : e.rules.joined(separator: ", "))</td>\
            <td class="num">\(e.images)</td><td class="num">\(e.lastScreened.map(Format.day) ?? "–")</td></tr>

            """
        }
        let links = exports.map { x -> Markup in "<a href=\"\(x.link)\">\(x.name)</a>" }
        var exportLine: Markup = ""
        for (i, link) in links.enumerated() { exportLine = i == 0 ? link : "\(exportLine) · \(link)" }
        let body: Markup = ordered.isEmpty
            ? "<p>No patients in this report folder yet.</p>"
            : """
                <table class="patients">
                <thead><tr><th scope="col">Patient</th><th scope="col">Outcome</th><th scope="col">Why</th>\
                <th scope="col">Rule</th><th scope="col" class="num">Images</th><th scope="col" class="num">Screened</th></tr></thead>
                <tbody>
                \(rows)</tbody>
                </table>
                """
        let page: Markup = """
            \(pageHead(title: "Fundus screening – \(ordered.count) patients"))<body>
            <div class="page">
            <header class="head">
            <p class="kicker">Diabetic-retinopathy lesion screening</p>
            <h1>Patients</h1>
            <ul class="summary">\(counts)</ul>
            <p class="exports">Findings of every patient below: \(exportLine). Written \(Format.day(writtenAt)).</p>
            </header>
            \(body)
            \(PatientPage.footer)
            </div>
            </body>
            </html>

            """
        return page.html
    }
}
