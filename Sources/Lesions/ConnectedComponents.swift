/// A maximal horizontal run of lesion pixels in one row: columns `start..<end` of row `row`.
public struct PixelRun: Sendable, Equatable {
    public var row: Int32
    public var start: Int32
    public var end: Int32
    public var length: Int { Int(end - start) }
}

/// 8-connected components of a binary image, found on runs rather than pixels.
///
/// One raster pass collects the runs of each row and joins every run with the runs of the row above that touch it
/// (8-connectivity: columns overlapping after widening by one on each side), in a union–find forest over runs with
/// path halving. Time is linear in the pixels (the scan) plus near-linear in the runs; memory is proportional to
/// the runs, not the image, so a 4288×2848 mask with a few thousand lesions costs kilobytes. Components are numbered
/// 0..<count in raster order of their first pixel.
public struct ConnectedComponents: Sendable {
    public let width: Int
    public let height: Int
    /// All runs, in raster order.
    public let runs: [PixelRun]
    /// Component number of each run (same order as `runs`).
    public let componentOfRun: [Int32]
    public let count: Int

    /// Labels the pixels where `isLesion(index)` is true, index = y·width + x.
    public init(width: Int, height: Int, isLesion: (Int) -> Bool) {
        self.width = width
        self.height = height
        var runs: [PixelRun] = []
        var parent: [Int32] = []
        var previousRow = 0..<0 // indices into runs of the row above

        for y in 0..<height {
            let rowStart = runs.count
            let base = y * width
            var x = 0
            while x < width {
                if !isLesion(base + x) { x += 1; continue }
                let start = x
                x += 1
                while x < width && isLesion(base + x) { x += 1 }
                runs.append(PixelRun(row: Int32(y), start: Int32(start), end: Int32(x)))
                parent.append(Int32(runs.count - 1))
            }
            // Join this row's runs with touching runs of the row above; both lists are sorted by column.
            var j = previousRow.lowerBound
            for r in rowStart..<runs.count {
                let s = runs[r].start, e = runs[r].end
                // Runs above ending before column s-1 cannot touch this run or any later one.
                while j < previousRow.upperBound && runs[j].end < s { j += 1 }
                var k = j
                while k < previousRow.upperBound && runs[k].start <= e {
                    Self.union(&parent, Int32(r), Int32(k))
                    k += 1
                }
            }
            previousRow = rowStart..<runs.count
        }

        // Compact numbering in raster order of each component's first run.
        var number = [Int32](repeating: -1, count: runs.count)
        var componentOfRun = [Int32](repeating: 0, count: runs.count)
        var next: Int32 = 0
        for r in 0..<runs.count {
            let root = Int(Self.find(&parent, Int32(r)))
            if number[root] < 0 { number[root] = next; next += 1 }
            componentOfRun[r] = number[root]
        }
        self.runs = runs
        self.componentOfRun = componentOfRun
        self.count = Int(next)
    }

    /// Components of a score plane's lesion pixels: score > threshold (strict, as the reference thresholds).
    public init(_ plane: ScorePlane, threshold: Float = 0.5) {
        switch plane.values {
        case .probabilities(let p):
            self = p.withUnsafeBufferPointer { b in
                ConnectedComponents(width: plane.width, height: plane.height) { b[$0] > threshold }
            }
        case .probabilityBytes(let v):
            let table = (0..<256).map { ScorePlane.score(byte: UInt8($0)) > threshold }
            self = v.withUnsafeBufferPointer { b in
                table.withUnsafeBufferPointer { t in
                    ConnectedComponents(width: plane.width, height: plane.height) { t[Int(b[$0])] }
                }
            }
        case .mask(let m):
            let on: Bool = Float(1) > threshold
            self = m.withUnsafeBufferPointer { b in
                ConnectedComponents(width: plane.width, height: plane.height) { b[$0] != 0 && on }
            }
        }
    }

    /// The pixels of the largest component (by pixel count; the first in raster order on a tie) as a 0/255 mask,
    /// row-major; all zero when there is no component. The optic disc is this region with its holes filled
    /// (`largestComponentMaskFillingHoles`): other specks of the disc channel are not discs.
    public func largestComponentMask() -> [UInt8] {
        guard count > 0 else { return [UInt8](repeating: 0, count: width * height) }
        return mask(ofComponent: largestComponent())
    }

    /// One component's pixels as a 0/255 mask, row-major.
    private func mask(ofComponent component: Int) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: width * height)
        for (r, run) in runs.enumerated() where Int(componentOfRun[r]) == component {
            let base = Int(run.row) * width
            for x in Int(run.start)..<Int(run.end) { mask[base + x] = 255 }
        }
        return mask
    }

    /// `largestComponentMask()` with the component's holes filled: background pixels from which no 4-connected path
    /// of background reaches the image's edge (4-connected background is the complement's connectivity for
    /// 8-connected foreground) are turned on, other components inside the holes with them. The optic disc is one
    /// region: a patch inside it where the channel dipped below the threshold is disc, not a second border.
    public func largestComponentMaskFillingHoles() -> [UInt8] {
        guard count > 0 else { return [UInt8](repeating: 0, count: width * height) }
        let largest = largestComponent()
        var mask = mask(ofComponent: largest)
        // The component's bounding box: background outside it, and on its border, reaches the edge.
        var x0 = width, x1 = 0, y0 = height, y1 = 0
        for (r, run) in runs.enumerated() where Int(componentOfRun[r]) == largest {
            x0 = min(x0, Int(run.start)); x1 = max(x1, Int(run.end) - 1)
            y0 = min(y0, Int(run.row)); y1 = max(y1, Int(run.row))
        }
        var reached = [Bool](repeating: false, count: (x1 - x0 + 1) * (y1 - y0 + 1))
        let bw = x1 - x0 + 1
        var stack: [(Int, Int)] = []
        func seed(_ x: Int, _ y: Int) {
            let i = (y - y0) * bw + (x - x0)
            if !reached[i] && mask[y * width + x] == 0 { reached[i] = true; stack.append((x, y)) }
        }
        for x in x0...x1 { seed(x, y0); seed(x, y1) }
        for y in y0...y1 { seed(x0, y); seed(x1, y) }
        while let (x, y) = stack.popLast() {
            if x > x0 { seed(x - 1, y) }
            if x < x1 { seed(x + 1, y) }
            if y > y0 { seed(x, y - 1) }
            if y < y1 { seed(x, y + 1) }
        }
        for y in y0...y1 {
            for x in x0...x1 where !reached[(y - y0) * bw + (x - x0)] { mask[y * width + x] = 255 }
        }
        return mask
    }

    /// The number of the largest component (by pixel count; the first in raster order on a tie); 0 when none.
    private func largestComponent() -> Int {
        guard count > 0 else { return 0 }
        var area = [Int](repeating: 0, count: count)
        for (r, run) in runs.enumerated() { area[Int(componentOfRun[r])] += run.length }
        var largest = 0
        for c in 1..<count where area[c] > area[largest] { largest = c }
        return largest
    }

    /// A label image (0 = background, 1… = component number + 1), row-major. For tests and overlays; the
    /// statistics never need it.
    public func labelImage() -> [Int32] {
        var labels = [Int32](repeating: 0, count: width * height)
        for (r, run) in runs.enumerated() {
            let base = Int(run.row) * width
            for x in Int(run.start)..<Int(run.end) { labels[base + x] = componentOfRun[r] + 1 }
        }
        return labels
    }

    @inline(__always)
    private static func find(_ parent: inout [Int32], _ i: Int32) -> Int32 {
        var i = i
        while parent[Int(i)] != i {
            parent[Int(i)] = parent[Int(parent[Int(i)])]
            i = parent[Int(i)]
        }
        return i
    }

    @inline(__always)
    private static func union(_ parent: inout [Int32], _ a: Int32, _ b: Int32) {
        let ra = find(&parent, a), rb = find(&parent, b)
        if ra == rb { return }
        // The earlier run stays the root, so roots are always a component's first run in raster order.
        if ra < rb { parent[Int(rb)] = ra } else { parent[Int(ra)] = rb }
    }
}
