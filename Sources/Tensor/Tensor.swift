import Foundation
import Synchronization

/// How a tensor's floats lie in memory.
public enum Layout: Sendable, Equatable {
    /// Row-major over `shape` (NCHW for 4-D, [rows, cols] for matrices, vectors).
    case plain
    /// oneDNN's nChw16c for 4-D activations [N, C, H, W]: channels in blocks of 16, the 16 channels of one pixel
    /// adjacent. Channels are padded up to a multiple of 16; the padding is always zero (oneDNN assumes so).
    /// AVX-512's width: on AVX2 CPUs oneDNN's kernels want nChw8c, and convolutions reorder around the call
    /// (`ComputeEngine.kernelLayouts`).
    case blocked16
}

/// A dense float32 tensor: a shape, a layout and one 64-byte-aligned buffer that it owns.
///
/// A class, so that gradients can be keyed by identity on a `Tape`. The buffer is written only by the op that
/// produces the tensor (or by an explicit in-place op on the one thread that runs the network); readers come after.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let layout: Layout
    /// Floats in the buffer (includes channel padding for `blocked16`).
    public let storageCount: Int
    public let data: UnsafeMutablePointer<Float>
    /// Whether gradients flow to this tensor when a `Tape` records the ops that use it.
    public var requiresGrad = false

    public init(shape: [Int], layout: Layout = .plain, zeroed: Bool = true) {
        precondition(layout == .plain || shape.count == 4, "blocked16 needs a 4-D shape, got \(shape)")
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.layout = layout
        let n: Int
        switch layout {
        case .plain: n = shape.reduce(1, *)
        case .blocked16: n = shape[0] * ((shape[1] + 15) / 16) * 16 * shape[2] * shape[3]
        }
        storageCount = n
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1) * 4, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: max(n, 1))
        if zeroed { data.initialize(repeating: 0, count: max(n, 1)) }
        TensorMemory.allocated(max(n, 1) * 4)
    }

    deinit {
        TensorMemory.freed(storageCount > 0 ? storageCount * 4 : 4)
        UnsafeMutableRawPointer(data).deallocate()
    }

    /// Logical element count (without channel padding).
    public var count: Int { shape.reduce(1, *) }

    // 4-D accessors.
    public var n: Int { shape[0] }
    public var c: Int { shape[1] }
    public var h: Int { shape[2] }
    public var w: Int { shape[3] }
    /// Channel blocks of 16 (blocked layout).
    public var channelBlocks: Int { (shape[1] + 15) / 16 }

    /// A plain tensor holding these values.
    public convenience init(_ values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "shape \(shape) does not hold \(values.count) values")
        self.init(shape: shape, layout: .plain, zeroed: false)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A blocked activation from NCHW values.
    public static func blocked(nchw values: [Float], shape: [Int]) -> Tensor {
        Tensor(values, shape: shape).toBlocked()
    }

    /// Where the element with this row-major logical index lies in the buffer.
    public func storageOffset(ofLogical i: Int) -> Int {
        guard layout == .blocked16 else { return i }
        let HW = h * w
        let b = i / (c * HW), ch = (i / HW) % c, s = i % HW
        return ((b * channelBlocks + ch >> 4) * HW + s) * 16 + (ch & 15)
    }

    /// A zero tensor of the same shape and layout.
    public func zerosLike() -> Tensor { Tensor(shape: shape, layout: layout) }

    public func copy() -> Tensor {
        let t = Tensor(shape: shape, layout: layout, zeroed: false)
        t.data.update(from: data, count: storageCount)
        return t
    }

    /// The same values in the blocked layout (4-D only); self if already blocked.
    public func toBlocked() -> Tensor {
        if layout == .blocked16 { return self }
        precondition(shape.count == 4, "only 4-D tensors have a blocked layout, got \(shape)")
        let out = Tensor(shape: shape, layout: .blocked16)
        let (N, C, HW) = (n, c, h * w)
        let cb = channelBlocks
        for b in 0..<N {
            for ch in 0..<C {
                let src = data + (b * C + ch) * HW
                let dst = out.data + ((b * cb + ch >> 4) * HW) * 16 + (ch & 15)
                for i in 0..<HW { dst[i * 16] = src[i] }
            }
        }
        return out
    }

    /// The same values in the plain layout (NCHW for 4-D); self if already plain.
    public func toPlain() -> Tensor {
        if layout == .plain { return self }
        let out = Tensor(shape: shape, layout: .plain, zeroed: false)
        let (N, C, HW) = (n, c, h * w)
        let cb = channelBlocks
        for b in 0..<N {
            for ch in 0..<C {
                let src = data + ((b * cb + ch >> 4) * HW) * 16 + (ch & 15)
                let dst = out.data + (b * C + ch) * HW
                for i in 0..<HW { dst[i] = src[i * 16] }
            }
        }
        return out
    }

    /// The values in plain row-major order (NCHW for activations).
    public func values() -> [Float] {
        let p = toPlain()
        return Array(UnsafeBufferPointer(start: p.data, count: p.count))
    }

    /// The same storage seen under another plain shape of equal size.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(layout == .plain && newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        let t = Tensor(shape: newShape, layout: .plain, zeroed: false)
        t.data.update(from: data, count: count)
        return t
    }

    public func fill(_ v: Float) {
        data.update(repeating: v, count: storageCount)
        if v != 0 { zeroChannelPadding() }
    }

    /// Restores the zero channel padding of a blocked tensor after an op that maps 0 to something else.
    public func zeroChannelPadding() {
        guard layout == .blocked16, c % 16 != 0 else { return }
        let cb = channelBlocks, HW = h * w, first = c & 15
        for b in 0..<n {
            let plane = data + ((b * cb + cb - 1) * HW) * 16
            for i in 0..<HW { (plane + i * 16 + first).update(repeating: 0, count: 16 - first) }
        }
    }

    /// self += other (same shape and layout).
    public func add(_ other: Tensor) {
        precondition(shape == other.shape && layout == other.layout, "cannot add \(other.shape) to \(shape)")
        for i in 0..<storageCount { data[i] += other.data[i] }
    }

    /// self *= s.
    public func scale(by s: Float) {
        for i in 0..<storageCount { data[i] *= s }
    }

    /// ‖a − b‖ / ‖b‖ over the logical values: the agreement measure of the parity fixtures.
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        return den == 0 ? num.squareRoot() : (num / den).squareRoot()
    }
}

/// Bytes held by tensor buffers now, and the most held at once since the last `resetPeak()`: where a training
/// step's memory goes (`bench --training`), apart from oneDNN's scratchpads and reordered weights.
public enum TensorMemory {
    private static let live = Atomic<Int>(0)
    private static let high = Atomic<Int>(0)

    static func allocated(_ bytes: Int) {
        let now = live.add(bytes, ordering: .relaxed).newValue
        var seen = high.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = high.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    static func freed(_ bytes: Int) { live.subtract(bytes, ordering: .relaxed) }

    public static var liveBytes: Int { live.load(ordering: .relaxed) }
    public static var peakBytes: Int { high.load(ordering: .relaxed) }
    /// Starts a new peak from what is live now.
    public static func resetPeak() { high.store(live.load(ordering: .relaxed), ordering: .relaxed) }
}
