import CDNNL
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
    /// oneDNN's nChw8c: the same with blocks of 8 channels, what its AVX2 kernels read and write. Convolutions whose
    /// kernel wants it return it (`ComputeEngine.nativeBlocks8`) and the elementwise ops and BatchNorm work in it, so
    /// AVX2 activations go from convolution to convolution without a reorder; other ops take it through nChw16c.
    case blocked8

    /// Channels per block: 16 or 8 for the blocked layouts, 1 for plain.
    public var blockWidth: Int {
        switch self {
        case .plain: 1
        case .blocked16: 16
        case .blocked8: 8
        }
    }

    public var isBlocked: Bool { self != .plain }
}

/// A dense float32 tensor: a shape, a layout and one 64-byte-aligned buffer that it owns.
///
/// A class, so that gradients can be keyed by identity on a `Tape`. The buffer is written only by the op that
/// produces the tensor (or by an explicit in-place op on the one thread that runs the network); readers come after.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let layout: Layout
    /// Floats in the buffer (includes channel padding for the blocked layouts).
    public let storageCount: Int
    public let data: UnsafeMutablePointer<Float>
    /// Whether gradients flow to this tensor when a `Tape` records the ops that use it.
    public var requiresGrad = false

    public init(shape: [Int], layout: Layout = .plain, zeroed: Bool = true) {
        precondition(layout == .plain || shape.count == 4, "\(layout) needs a 4-D shape, got \(shape)")
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.layout = layout
        let n: Int
        switch layout {
        case .plain: n = shape.reduce(1, *)
        case .blocked16, .blocked8:
            let b = layout.blockWidth
            n = shape[0] * ((shape[1] + b - 1) / b) * b * shape[2] * shape[3]
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
    /// Channel blocks (blocked layouts): of 16 channels, or of 8 for `blocked8`.
    public var channelBlocks: Int { (shape[1] + layout.blockWidth - 1) / layout.blockWidth }

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
        guard layout.isBlocked else { return i }
        let HW = h * w, B = layout.blockWidth
        let b = i / (c * HW), ch = (i / HW) % c, s = i % HW
        return ((b * channelBlocks + ch / B) * HW + s) * B + ch % B
    }

    /// A zero tensor of the same shape and layout.
    public func zerosLike() -> Tensor { Tensor(shape: shape, layout: layout) }

    public func copy() -> Tensor {
        let t = Tensor(shape: shape, layout: layout, zeroed: false)
        t.data.update(from: data, count: storageCount)
        return t
    }

    /// The same values in nChw16c (4-D only); self if already so.
    public func toBlocked() -> Tensor { inLayout(.blocked16) }

    /// The same values in `layout`; self if already in it. Between the blocked layouts the channel blocks are
    /// regrouped pixel by pixel; a 16-block's padding lanes stay zero.
    public func inLayout(_ target: Layout) -> Tensor {
        if layout == target { return self }
        precondition(target == .plain || shape.count == 4, "only 4-D tensors have a blocked layout, got \(shape)")
        let out = Tensor(shape: shape, layout: target, zeroed: target.isBlocked)
        let (N, C, HW) = (n, c, h * w)
        if layout.isBlocked && target.isBlocked {
            // Whole 8-channel groups move together: each is 8 adjacent floats in both layouts.
            let groups = (C + 7) / 8
            for b in 0..<N {
                for g in 0..<groups {
                    let lanes = min(8, C - g * 8)
                    let src = data + ((b * channelBlocks + g * 8 / layout.blockWidth) * HW) * layout.blockWidth + (g * 8) % layout.blockWidth
                    let dst = out.data + ((b * out.channelBlocks + g * 8 / target.blockWidth) * HW) * target.blockWidth + (g * 8) % target.blockWidth
                    let (sb, db) = (layout.blockWidth, target.blockWidth)
                    if lanes == 8 {
                        for i in 0..<HW {
                            UnsafeMutableRawPointer(dst + i * db).storeBytes(of: UnsafeRawPointer(src + i * sb).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                        }
                    } else {
                        for i in 0..<HW { (dst + i * db).update(from: src + i * sb, count: lanes) }
                    }
                }
            }
            return out
        }
        let blocked = layout.isBlocked ? self : out, B = blocked.layout.blockWidth, cb = blocked.channelBlocks
        for b in 0..<N {
            for ch in 0..<C {
                let plain = (layout.isBlocked ? out : self).data + (b * C + ch) * HW
                let lane = blocked.data + ((b * cb + ch / B) * HW) * B + ch % B
                if layout.isBlocked { for i in 0..<HW { plain[i] = lane[i * B] } } else { for i in 0..<HW { lane[i * B] = plain[i] } }
            }
        }
        return out
    }

    /// The same values in the plain layout (NCHW for 4-D); self if already plain.
    public func toPlain() -> Tensor { inLayout(.plain) }

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
        let B = layout.blockWidth
        guard layout.isBlocked, c % B != 0 else { return }
        let cb = channelBlocks, HW = h * w, first = c % B
        for b in 0..<n {
            let plane = data + ((b * cb + cb - 1) * HW) * B
            for i in 0..<HW { (plane + i * B + first).update(repeating: 0, count: B - first) }
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

    /// Makes glibc's malloc keep freed tensor buffers for the next ones instead of handing them back to the kernel.
    /// By default a buffer freed on a thread other than the main one (Swift concurrency's and Dispatch's threads,
    /// where the commands run) returns to that thread's arena, and an arena heap left empty is unmapped: the next
    /// step's equal buffers were fresh pages again, each zeroed by the kernel on first touch (a W16 training step at
    /// 2 × 384² re-faulted ~80 MB; a third of its time was in the kernel). One arena, no trimming below 1 GiB free
    /// and a fixed mmap threshold (glibc's largest, 32 MiB) keep them. Call first thing in `main`, before threads
    /// exist (the arena limit binds threads that have not allocated yet). No effect off glibc.
    public static func keepFreedMemory() {
        #if os(Linux)
        _ = mallopt(M_ARENA_MAX, 1)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 1 << 30)
        #endif
    }
}
