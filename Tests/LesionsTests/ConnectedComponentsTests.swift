import Testing
import TestSupport
@testable import Lesions

/// Parses a picture: "#" = lesion, "." = background; rows separated by "/".
private func picture(_ s: String) -> (width: Int, height: Int, mask: [UInt8]) {
    let rows = s.split(separator: "/").map { Array($0) }
    return (rows[0].count, rows.count, rows.flatMap { $0.map { $0 == "#" ? UInt8(255) : 0 } })
}

/// Reference labelling: breadth-first flood fill over the 8 neighbours, numbering in raster order.
private func floodFill(width: Int, height: Int, mask: [UInt8]) -> [Int32] {
    var labels = [Int32](repeating: 0, count: width * height)
    var next: Int32 = 0
    for start in 0..<mask.count where mask[start] != 0 && labels[start] == 0 {
        next += 1
        labels[start] = next
        var queue = [start], head = 0
        while head < queue.count {
            let i = queue[head]; head += 1
            let x = i % width, y = i / width
            for dy in -1...1 { for dx in -1...1 {
                let nx = x + dx, ny = y + dy
                guard nx >= 0, ny >= 0, nx < width, ny < height else { continue }
                let j = ny * width + nx
                if mask[j] != 0 && labels[j] == 0 { labels[j] = next; queue.append(j) }
            } }
        }
    }
    return labels
}

@Test("Diagonal neighbours join; a U joins at its bottom; separate blobs stay apart")
func eightConnectivity() throws {
    let p = picture("#...#.##/.#..#.../..#.##..")
    let cc = ConnectedComponents(try ScorePlane(width: p.width, height: p.height, mask: p.mask))
    // Row 0: "#...#.##", row 1: ".#..#...", row 2: "..#.##.." → diagonal chain 1; the column at x=4 joins "##" below; "##" at x=6,7 alone.
    #expect(cc.count == 3)
    let u = picture("#..#/#..#/####")
    #expect(ConnectedComponents(try ScorePlane(width: u.width, height: u.height, mask: u.mask)).count == 1)
    let ring = picture("..#../.#.#./..#..")
    #expect(ConnectedComponents(try ScorePlane(width: ring.width, height: ring.height, mask: ring.mask)).count == 1)
    let apart = picture("#.#/.../#.#")
    #expect(ConnectedComponents(try ScorePlane(width: apart.width, height: apart.height, mask: apart.mask)).count == 4)
}

/// Random 0/1 masks of many shapes, including single rows and columns, at each density.
private func forEachRandomMask(seed: UInt64, densities: [Double],
                               _ body: (_ width: Int, _ height: Int, _ density: Double, _ mask: [UInt8]) throws -> Void) rethrows {
    var rng = SplitMix(seed: seed)
    for (w, h) in [(1, 1), (1, 37), (41, 1), (13, 11), (64, 48), (97, 3)] {
        for density in densities {
            try body(w, h, density, (0..<(w * h)).map { _ in rng.nextDouble() < density ? UInt8(1) : 0 })
        }
    }
}

@Test("Labels equal a flood fill on random masks of many shapes, including single rows and columns")
func randomMasksMatchFloodFill() throws {
    try forEachRandomMask(seed: 7, densities: [0.1, 0.35, 0.5, 0.7]) { w, h, density, mask in
        let cc = ConnectedComponents(try ScorePlane(width: w, height: h, mask: mask))
        let reference = floodFill(width: w, height: h, mask: mask)
        #expect(cc.labelImage() == reference, "\(w)×\(h) at density \(density)")
        #expect(cc.count == Int(reference.max() ?? 0))
    }
}

@Test("Probabilities are lesion strictly above the threshold; 8-bit maps read v/255")
func thresholds() throws {
    let probs: [Float] = [0.5, 0.51, 0.0, 0.49, 1.0]
    #expect(ConnectedComponents(try ScorePlane(width: 5, height: 1, probabilities: probs)).runs
        == [PixelRun(row: 0, start: 1, end: 2), PixelRun(row: 0, start: 4, end: 5)])
    // 128/255 > 0.5, 127/255 < 0.5; at threshold 0.2, 51/255 == Float(0.2) is not above it.
    let bytes: [UInt8] = [127, 128, 51, 52]
    #expect(ConnectedComponents(try ScorePlane(width: 4, height: 1, probabilityBytes: bytes)).runs.map(\.start) == [1])
    #expect(ConnectedComponents(try ScorePlane(width: 4, height: 1, probabilityBytes: bytes), threshold: 0.2).runs
        == [PixelRun(row: 0, start: 0, end: 2), PixelRun(row: 0, start: 3, end: 4)])
}

@Test("A plane whose buffer does not match its size is refused with the sizes in the message")
func badSizes() {
    #expect(throws: LesionsError("a 3×2 score plane needs 6 values, got 5")) {
        try ScorePlane(width: 3, height: 2, mask: [0, 0, 0, 0, 0])
    }
    #expect(throws: LesionsError.self) { try ScorePlane(width: 0, height: 2, probabilities: []) }
}

@Test("Filling the largest component's holes matches a flood of the background from the image's edge (4-connected, over the whole image); a ring becomes a disc")
func largestComponentHolesFilledMatchesEdgeFlood() throws {
    forEachRandomMask(seed: 12, densities: [0.0, 0.35, 0.5, 0.6, 0.75]) { w, h, density, mask in
        let labels = floodFill(width: w, height: h, mask: mask)
        var area = [Int](repeating: 0, count: Int(labels.max() ?? 0) + 1)
        for l in labels where l > 0 { area[Int(l)] += 1 }
        var best: Int32 = 0
        for l in 1..<area.count where best == 0 || area[l] > area[Int(best)] { best = Int32(l) }
        // Background = everything not in the largest component; what the edge's background cannot reach is a hole.
        var outside = [Bool](repeating: false, count: w * h)
        var queue: [Int] = []
        for i in 0..<(w * h) where (i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1) && labels[i] != best {
            outside[i] = true; queue.append(i)
        }
        var head = 0
        while head < queue.count {
            let i = queue[head]; head += 1
            let x = i % w, y = i / w
            for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && nx < w && ny >= 0 && ny < h {
                let j = ny * w + nx
                if !outside[j] && labels[j] != best { outside[j] = true; queue.append(j) }
            }
        }
        let expected = (0..<(w * h)).map { best > 0 && !outside[$0] ? UInt8(255) : 0 }
        let got = ConnectedComponents(width: w, height: h) { mask[$0] != 0 }.largestComponentMaskFillingHoles()
        #expect(got == expected, "\(w)×\(h) at density \(density)")
        if density == 0.6 && w * h > 1000 {
            #expect(got.filter { $0 != 0 }.count > labels.filter { $0 == best && best > 0 }.count,
                    "a dense random mask has holes to fill (the check would prove nothing without)")
        }
    }
    // A ring with a speck in its hole: ring, hole and speck are one region; a diagonal gap is no way out (8-connected
    // foreground, 4-connected background).
    let ring = picture("#####./#...#./#.#.#./#...#./####.#")
    let filled = ConnectedComponents(width: ring.width, height: ring.height) { ring.mask[$0] != 0 }.largestComponentMaskFillingHoles()
    #expect(filled == picture("#####./#####./#####./#####./####.#").mask)
}

@Test("The largest component's mask (the disc outline's region) is the flood fill's largest region, the first in raster order on a tie; empty masks give none")
func largestComponentMatchesFloodFill() throws {
    forEachRandomMask(seed: 11, densities: [0.0, 0.1, 0.35, 0.5]) { w, h, density, mask in
        let labels = floodFill(width: w, height: h, mask: mask)
        var area = [Int](repeating: 0, count: Int(labels.max() ?? 0) + 1)
        for l in labels where l > 0 { area[Int(l)] += 1 }
        var best: Int32 = 0
        for l in 1..<area.count where best == 0 || area[l] > area[Int(best)] { best = Int32(l) }
        let expected = labels.map { best > 0 && $0 == best ? UInt8(255) : 0 }
        let got = ConnectedComponents(width: w, height: h) { mask[$0] != 0 }.largestComponentMask()
        #expect(got == expected, "\(w)×\(h) at density \(density)")
    }
    // A disc with a speck beside it: the speck is not kept.
    let p = picture(".###....#/.###...../.###....#")
    let kept = ConnectedComponents(width: p.width, height: p.height) { p.mask[$0] != 0 }.largestComponentMask()
    #expect(kept.filter { $0 != 0 }.count == 9 && kept[8] == 0 && kept[1] == 255)
}
