import Foundation
import Lesions
import Testing

@Suite("Optic disc findings")
struct OpticDiscTests {
    /// A filled disc of radius `r` centred at (cx, cy), plus a small bright speck elsewhere.
    static func discPlane(width: Int, height: Int, cx: Double, cy: Double, r: Double) throws -> (ScorePlane, Int) {
        var p = [Float](repeating: 0.1, count: width * height)
        var area = 0
        for y in 0..<height {
            for x in 0..<width where (Double(x) - cx) * (Double(x) - cx) + (Double(y) - cy) * (Double(y) - cy) <= r * r {
                p[y * width + x] = 0.9
                area += 1
            }
        }
        for y in 2..<5 { for x in 2..<5 { p[y * width + x] = 0.8 } }   // a 9-pixel reflex, not the disc
        return (try ScorePlane(width: width, height: height, probabilities: p), area)
    }

    @Test("Centre and equivalent-circle diameter of the largest component above 0.5")
    func geometry() throws {
        let (plane, area) = try Self.discPlane(width: 200, height: 150, cx: 120, cy: 70, r: 25)
        let disc = DiscFinding.measure(plane)
        #expect(disc.found)
        #expect(disc.area == area)
        #expect(abs(disc.centreX! - 120) < 1e-9 && abs(disc.centreY! - 70) < 1e-9)
        #expect(abs(disc.diameterPixels! - 50) < 0.5)
        #expect(abs(disc.diameterPixels! - 2 * (Double(area) / Double.pi).squareRoot()) < 1e-9)
        let spacing = try #require(disc.estimatedPixelSpacing)
        #expect(abs(spacing.rowSpacingMillimetres - 1.8 / disc.diameterPixels!) < 1e-12)
        // Only from a disc of plausible size beside the field of view (50 px in a 400 px field: 0.125).
        #expect(disc.estimatedPixelSpacing(fieldOfViewDiameter: 400) == spacing)
        #expect(disc.estimatedPixelSpacing(fieldOfViewDiameter: 100) == nil, "half the field: an untrained channel, not a disc")
        #expect(disc.estimatedPixelSpacing(fieldOfViewDiameter: 2000) == nil)
        // Reported unless far outside a disc's size: then "not found" (no centre, no diameter, no outline).
        #expect(disc.reported(fieldOfViewDiameter: 400) == disc)
        #expect(disc.reported(fieldOfViewDiameter: 140) == disc, "0.36 of the field: too large to estimate areas from, still the disc")
        #expect(disc.reported(fieldOfViewDiameter: 80) == DiscFinding(found: false), "0.63 of the field: most of the retina")
        #expect(disc.reported(fieldOfViewDiameter: 2000) == DiscFinding(found: false), "0.025 of the field: a speck")
        #expect(DiscFinding(found: false).reported(fieldOfViewDiameter: 400) == DiscFinding(found: false))
    }

    @Test("A disc whose channel dips inside (a ring): measured and outlined as the whole disc, holes filled")
    func ringIsOneDisc() throws {
        let (full, area) = try Self.discPlane(width: 200, height: 150, cx: 120, cy: 70, r: 25)
        guard case .probabilities(var p) = full.values else { Issue.record("expected probabilities"); return }
        var hole = 0
        for y in 0..<150 {
            for x in 0..<200 where (Double(x) - 124) * (Double(x) - 124) + (Double(y) - 66) * (Double(y) - 66) <= 64 {
                p[y * 200 + x] = 0.3; hole += 1
            }
        }
        let ring = try ScorePlane(width: 200, height: 150, probabilities: p)
        let (disc, region) = DiscFinding.locate(ring)
        #expect(hole > 150)
        #expect(disc.area == area, "the hole counts as disc")
        #expect(abs(disc.centreX! - 120) < 1e-9 && abs(disc.centreY! - 70) < 1e-9)
        #expect(disc == DiscFinding.measure(full))
        #expect(region.filter { $0 != 0 }.count == area && region[66 * 200 + 124] == 255 && region[3 * 200 + 3] == 0,
                "the region outlined is the filled disc, not the reflex speck")
    }

    @Test("No pixel above the threshold: not found, no spacing estimate")
    func notFound() throws {
        let plane = try ScorePlane(width: 10, height: 10, probabilities: [Float](repeating: 0.5, count: 100))
        let disc = DiscFinding.measure(plane)
        #expect(!disc.found && disc.centreX == nil && disc.diameterPixels == nil && disc.estimatedPixelSpacing == nil)
    }

    @Test("Disc IoU and Dice against a truth mask")
    func overlap() throws {
        var overlap = DiscOverlap()
        let predicted = try ScorePlane(width: 4, height: 1, probabilityBytes: [255, 255, 0, 200])
        try overlap.add(predicted: predicted, truth: [1, 0, 0, 1])
        #expect(overlap.intersection == 2 && overlap.predicted == 3 && overlap.truth == 2)
        #expect(overlap.iou == 2.0 / 3.0)
        #expect(overlap.dice == 0.8)
        #expect(throws: LesionsError.self) { try overlap.add(predicted: predicted, truth: [1]) }
        #expect(OpticDisc.isPresent(in: ["EX", "HE", "SE", "MA", "OD"]) && !OpticDisc.isPresent(in: ["EX", "HE", "SE", "MA"]))
        #expect(!LesionClass.allCases.map(\.code).contains("OD"), "the disc is no lesion class")
    }
}
