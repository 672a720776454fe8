import Lesions

/// The pages' one stylesheet, inlined in every page so that a page needs nothing but its images.
/// No web fonts, no scripts; print rules put both eyes of a patient side by side on one A4 page.
enum Stylesheet {
    static func hex(_ c: LesionClass) -> String {
        let (r, g, b) = c.colour
        func h(_ v: UInt8) -> String { let s = String(v, radix: 16); return s.count == 1 ? "0" + s : s }
        return "#" + h(r) + h(g) + h(b)
    }

    /// `.c-EX { background: #e61919 }` …: the legend's and the table's colour swatches, from `LesionClass.colour`.
    static var classColours: String {
        LesionClass.allCases.map { ".c-\($0.code) { background: \(hex($0)); }" }.joined(separator: "\n")
    }

    static var css: Markup {
        Markup(trusted: base + "\n" + classColours + "\n")
    }

    private static let base = """
        :root {
          --ink: #1d2330; --muted: #5b6472; --rule: #d9dde3; --paper: #ffffff; --wash: #f4f6f8;
          --flag: #b3261e; --flag-wash: #fdecea; --warn: #8a5a00; --warn-wash: #fff4d6;
          --clear: #1e6b3a; --clear-wash: #e8f5ec;
          color-scheme: light;
        }
        * { box-sizing: border-box; }
        html { -webkit-text-size-adjust: 100%; }
        body {
          margin: 0; background: var(--wash); color: var(--ink);
          font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
        }
        .page { max-width: 76rem; margin: 0 auto; padding: 1.25rem 1.25rem 2rem; }
        a { color: #1a5fb4; }
        code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, "DejaVu Sans Mono", monospace; font-size: .92em; }
        .crumb { margin: 0 0 .75rem; font-size: .9rem; }
        .kicker { margin: 0; color: var(--muted); font-size: .8rem; letter-spacing: .06em; text-transform: uppercase; }
        h1 { margin: .1rem 0 .6rem; font-size: 1.7rem; line-height: 1.2; overflow-wrap: anywhere; }
        h2 { margin: 0; font-size: 1.2rem; }
        .head { background: var(--paper); border: 1px solid var(--rule); border-radius: 10px; padding: 1rem 1.25rem; }
        .verdict { display: flex; flex-wrap: wrap; gap: .35rem 1rem; align-items: baseline; border-left: 6px solid;
          padding: .55rem .85rem; border-radius: 6px; margin: .25rem 0 .8rem; }
        .verdict strong { font-size: 1.15rem; }
        .flagged .verdict, .verdict.flagged { background: var(--flag-wash); border-color: var(--flag); }
        .flagged .verdict strong, .verdict.flagged strong { color: var(--flag); }
        .incomplete .verdict, .verdict.incomplete { background: var(--warn-wash); border-color: var(--warn); }
        .incomplete .verdict strong, .verdict.incomplete strong { color: var(--warn); }
        .clear .verdict, .verdict.clear { background: var(--clear-wash); border-color: var(--clear); }
        .clear .verdict strong, .verdict.clear strong { color: var(--clear); }
        .facts { display: flex; flex-wrap: wrap; gap: .3rem 2rem; margin: 0; }
        .facts div { min-width: 8rem; }
        .facts dt { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; }
        .facts dd { margin: 0; overflow-wrap: anywhere; }
        .eyes { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 30rem), 1fr)); gap: 1rem;
          margin-top: 1rem; }
        .eye { background: var(--paper); border: 1px solid var(--rule); border-radius: 10px; padding: 1rem 1.1rem;
          border-top: 6px solid var(--rule); min-width: 0; }
        .eye.flagged { border-top-color: var(--flag); }
        .eye.incomplete { border-top-color: var(--warn); }
        .eye.clear { border-top-color: var(--clear); }
        .eye-head { display: flex; flex-wrap: wrap; justify-content: space-between; align-items: baseline; gap: .25rem 1rem; }
        .eye-head .image { color: var(--muted); overflow-wrap: anywhere; }
        .eye .verdict { margin: .6rem 0; }
        .eye .verdict strong { font-size: 1rem; }
        .rule { color: var(--muted); font-size: .88em; }
        .figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 24rem), 1fr)); gap: .6rem;
          margin: .6rem 0; }
        figure { margin: 0; }
        figure img { display: block; width: 100%; height: auto; border-radius: 6px; background: #000; }
        figcaption { font-size: .82rem; color: var(--muted); margin-top: .2rem; }
        .missing { display: flex; align-items: center; justify-content: center; aspect-ratio: 3 / 2; padding: 1rem;
          background: var(--wash); border: 1px dashed var(--rule); border-radius: 6px; color: var(--muted);
          font-size: .85rem; text-align: center; overflow-wrap: anywhere; }
        .legend { list-style: none; display: flex; flex-wrap: wrap; gap: .2rem 1rem; padding: 0; margin: .2rem 0 .7rem;
          font-size: .85rem; }
        .swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px; vertical-align: -.1em;
          margin-right: .35em; border: 1px solid rgba(0,0,0,.25);
          -webkit-print-color-adjust: exact; print-color-adjust: exact; }
        table { border-collapse: collapse; width: 100%; font-size: .9rem; font-variant-numeric: tabular-nums; }
        caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
        th, td { padding: .3rem .4rem; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
        thead th { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
          border-bottom: 2px solid var(--rule); }
        td.num, th.num { text-align: right; white-space: nowrap; }
        thead th.num { white-space: normal; }
        td.rule-cell { white-space: nowrap; }
        tr.absent td { color: var(--muted); }
        tbody th { font-weight: 500; white-space: nowrap; }
        tbody th .name { display: block; color: var(--muted); font-weight: 400; font-size: .82em; margin-left: 1.25rem; }
        .table-wrap { overflow-x: auto; }
        .provenance { margin: .7rem 0 0; font-size: .82rem; color: var(--muted); overflow-wrap: anywhere; }
        .note { font-size: .82rem; color: var(--muted); max-width: 60rem; margin-top: 1.2rem; }
        .summary { display: flex; flex-wrap: wrap; gap: .6rem; margin: .6rem 0 0; padding: 0; list-style: none; }
        .summary li { border-left: 5px solid; padding: .3rem .7rem; border-radius: 5px; background: var(--paper); }
        .summary li.flagged { border-color: var(--flag); background: var(--flag-wash); }
        .summary li.incomplete { border-color: var(--warn); background: var(--warn-wash); }
        .summary li.clear { border-color: var(--clear); background: var(--clear-wash); }
        .summary b { font-size: 1.2rem; margin-right: .3rem; }
        .patients { background: var(--paper); border: 1px solid var(--rule); border-radius: 10px; margin-top: 1rem; }
        .patients td, .patients th { padding: .45rem .6rem; }
        .patients tbody th { overflow-wrap: anywhere; white-space: normal; }
        .badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600;
          white-space: nowrap; border: 1px solid; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
        .badge.flagged { color: var(--flag); background: var(--flag-wash); border-color: var(--flag); }
        .badge.incomplete { color: var(--warn); background: var(--warn-wash); border-color: var(--warn); }
        .badge.clear { color: var(--clear); background: var(--clear-wash); border-color: var(--clear); }
        .exports { font-size: .9rem; }
        @page { size: A4; margin: 12mm; }
        @media print {
          /* rem-sized text follows the root: 9.5 pt type throughout. */
          html { font-size: 9.5pt; }
          body { background: #fff; font-size: 9.5pt; }
          .page { max-width: none; padding: 0 1px; }
          .crumb, .exports { display: none; }
          .head, .eye, .patients { border-radius: 0; }
          .eyes { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 4mm; margin-top: 3mm; }
          .eyes > .eye:only-child { grid-column: 1 / -1; }
          .figures { grid-template-columns: 1fr; gap: 2mm; margin: 2mm 0; }
          /* Both eyes with pictures and tables on one A4 page: pictures 42 mm high, class names in the legend only. */
          figure img { max-height: 42mm; width: auto; max-width: 100%; margin: 0 auto; }
          figcaption { margin-top: .5mm; }
          tbody th .name { display: none; }
          table { font-size: 8pt; }
          th, td { padding: .7mm 1mm; }
          .head { padding: 3mm 4mm; }
          .facts { gap: 1mm 8mm; }
          .facts div { min-width: 0; }
          h1 { font-size: 15pt; margin: 0 0 1.5mm; }
          .verdict { padding: 1.5mm 3mm; margin: 1mm 0 2mm; }
          .eye .verdict { margin: 1.5mm 0; }
          .legend { margin: 0 0 1.5mm; font-size: 8pt; }
          .provenance { margin-top: 1.5mm; font-size: 7.5pt; }
          .note { font-size: 7.5pt; margin-top: 3mm; }
          .eye { break-inside: avoid; padding: 3mm; }
          .table-wrap { overflow: visible; }
          .verdict, .eye, .head { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
          thead { display: table-header-group; }
          tr { break-inside: avoid; }
          a { color: inherit; text-decoration: none; }
        }
        """
}
