import Foundation
import Testing
@testable import Lesions

@Test("Per-lesion box, area, centroid, mean and max probability; largest first")
func lesionStatistics() throws {
    // 6×4 probabilities; two lesions above 0.5:
    //   A: (1,0) 0.6, (2,0) 0.8, (1,1) 1.0   → area 3, box x1 y0 2×2
    //   B: (5,2) 0.9, (5,3) 0.7               → area 2
    var p = [Float](repeating: 0.1, count: 24)
    p[1] = 0.6; p[2] = 0.8; p[7] = 1.0
    p[17] = 0.9; p[23] = 0.7
    let plane = try ScorePlane(width: 6, height: 4, probabilities: p)
    let m = LesionMeasurement(threshold: 0.5, minimumLesionArea: 1, pixelSpacing: PixelSpacing(millimetres: 0.01))
    let f = try m.measure([.haemorrhage: plane], fieldOfViewArea: 20)
    let he = try #require(f.findings(for: .haemorrhage))
    #expect(he.count == 2)
    #expect(he.totalArea == 5)
    #expect(he.fieldOfViewShare == 0.25)
    #expect(abs(he.totalAreaSquareMillimetres! - 5e-4) < 1e-15)
    let a = he.lesions[0]
    #expect(a == he.largestLesion)
    #expect(a.boundingBox == BoundingBox(x: 1, y: 0, width: 2, height: 2))
    #expect(a.area == 3)
    #expect(abs(a.centroidX - 4.0 / 3) < 1e-12 && abs(a.centroidY - 1.0 / 3) < 1e-12)
    #expect(abs(a.meanProbability! - Double(Float(0.6) + Float(0.8) + Float(1.0)) / 3) < 1e-6)
    #expect(a.maxProbability == 1.0)
    let b = he.lesions[1]
    #expect(b.boundingBox == BoundingBox(x: 5, y: 2, width: 1, height: 2))
    #expect(b.centroidX == 5 && b.centroidY == 2.5)
    #expect(b.maxProbability == Double(Float(0.9)))
}

@Test("The minimum lesion area drops specks and says how many")
func specks() throws {
    let mask: [UInt8] = [
        1, 0, 0, 1, 1,
        0, 0, 0, 1, 1,
        0, 1, 0, 0, 0,
    ]
    let plane = try ScorePlane(width: 5, height: 3, mask: mask)
    let f = try LesionMeasurement(minimumLesionArea: 2).measure([.microaneurysm: plane])
    let ma = try #require(f.findings(for: .microaneurysm))
    #expect(ma.count == 1 && ma.totalArea == 4)
    #expect(ma.droppedSpecks == 2 && ma.droppedSpeckArea == 2)
    #expect(ma.lesions[0].meanProbability == nil, "a binary mask carries no probability")
    #expect(ma.fieldOfViewShare == nil && ma.totalAreaSquareMillimetres == nil)
    #expect(try LesionMeasurement(minimumLesionArea: 1).measure([.microaneurysm: plane]).classes[0].count == 3)
}

@Test("Planes of different sizes and a bad field of view are refused")
func badMeasureInput() throws {
    let a = try ScorePlane(width: 2, height: 2, mask: [0, 0, 0, 0])
    let b = try ScorePlane(width: 4, height: 1, mask: [0, 0, 0, 0])
    #expect(throws: LesionsError.self) { try LesionMeasurement().measure([.hardExudate: a, .haemorrhage: b]) }
    #expect(throws: LesionsError.self) { try LesionMeasurement().measure([.hardExudate: a], fieldOfViewArea: 0) }
    #expect(throws: LesionsError.self) { try LesionMeasurement(minimumLesionArea: 0).measure([.hardExudate: a]) }
}

@Test("A large image with one lesion per 64 pixels is measured in one pass")
func largeImage() throws {
    let w = 4288, h = 2848
    var mask = [UInt8](repeating: 0, count: w * h)
    for y in stride(from: 0, to: h, by: 8) { for x in stride(from: 0, to: w, by: 8) { mask[y * w + x] = 255 } }
    let f = LesionMeasurement().measureClass(.microaneurysm, try ScorePlane(width: w, height: h, mask: mask))
    #expect(f.count == (w / 8) * (h / 8))
}

@Test("Findings are plain Codable values")
func findingsCodable() throws {
    let plane = try ScorePlane(width: 3, height: 1, probabilityBytes: [0, 200, 255])
    let f = try LesionMeasurement(pixelSpacing: PixelSpacing(millimetres: 0.0125)).measure(
        Dictionary(uniqueKeysWithValues: LesionClass.allCases.map { ($0, plane) }), fieldOfViewArea: 3)
    let data = try JSONEncoder().encode(f)
    #expect(try JSONDecoder().decode(ImageFindings.self, from: data) == f)
    #expect(f.classes.map(\.lesionClass) == LesionClass.allCases)
}
