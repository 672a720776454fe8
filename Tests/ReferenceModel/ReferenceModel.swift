// An independent Double-precision re-implementation of the official M2MRF-HRNetV2 training forward (mmseg 0.8
// `HRNet` and `HRNet_M2MRF_{A,B,C,D}`, FCN head, bdice loss), written from ../shared/design/m2mrf-reference.md in
// the most obvious loops. It shares no code with the engine: parameters come in as a dictionary of mmseg names, the
// structure is discovered from those names, and every op is a plain loop over NCHW arrays of Doubles.
//
// What it is for: finite differences of this function are the exact gradients (to ~1e-9) against which the engine's
// float32 backward is checked, on whole networks of the sizes we ship.

/// A dense NCHW array of Doubles.
public struct RefTensor: Sendable {
    public var n, c, h, w: Int
    public var data: [Double]

    public init(n: Int, c: Int, h: Int, w: Int, data: [Double]? = nil) {
        self.n = n; self.c = c; self.h = h; self.w = w
        self.data = data ?? [Double](repeating: 0, count: n * c * h * w)
        precondition(self.data.count == n * c * h * w)
    }

    @inline(__always) func index(_ b: Int, _ ch: Int, _ y: Int, _ x: Int) -> Int { ((b * c + ch) * h + y) * w + x }
}

/// The official network's HRNet flavour: plain (bilinear fuse) or one of the four M2MRF variants.
public enum RefVariant: String, Sendable {
    case plain, A, B, C, D
    var usesM2MRF: Bool { self != .plain }
    var cascadeDown: Bool { self == .C || self == .D }
    var cascadeUp: Bool { self == .B || self == .D }
}

/// The training-mode forward and bdice loss of the official model, in Double.
public struct ReferenceModel {
    public var parameters: [String: [Double]]
    public var shapes: [String: [Int]]
    public let variant: RefVariant
    /// When given: the decisions of every ReLU (output > 0, NCHW order, in the order the ReLUs run) of another
    /// pass, used instead of this pass's own signs. The function is then the same piecewise-linear piece as that
    /// pass's, and its finite differences are that pass's exact gradient, even where an activation sits within
    /// rounding of zero.
    public var reluDecisions: [[Bool]]?
    private let cursor = Cursor()

    final class Cursor {
        var next = 0
        var recording = false
        var recorded: [[Double]] = []
    }

    /// The inputs of every ReLU of one pass (NCHW, in the order the ReLUs run): where a float32 pass decided
    /// differently, these say how near zero the exact value was.
    public func preActivations(_ input: RefTensor, labels: [Int32]) -> [[Double]] {
        cursor.recording = true
        cursor.recorded = []
        defer { cursor.recording = false; cursor.recorded = [] }
        _ = loss(input, labels: labels)
        return cursor.recorded
    }

    /// y = relu(v) with this pass's sign or the replayed decision.
    func applyReLU(_ y: inout RefTensor) {
        if cursor.recording { cursor.recorded.append(y.data) }
        guard let decisions = reluDecisions else {
            for i in 0..<y.data.count { y.data[i] = max(y.data[i], 0) }
            return
        }
        precondition(cursor.next < decisions.count, "reference: more ReLUs than replayed decisions")
        let mask = decisions[cursor.next]
        precondition(mask.count == y.data.count, "reference: ReLU \(cursor.next) has \(y.data.count) values, replay \(mask.count)")
        cursor.next += 1
        for i in 0..<y.data.count where !mask[i] { y.data[i] = 0 }
    }

    public init(parameters: [String: [Double]], shapes: [String: [Int]], variant: RefVariant) {
        self.parameters = parameters
        self.shapes = shapes
        self.variant = variant
    }

    func has(_ name: String) -> Bool { parameters[name] != nil }
    func p(_ name: String) -> [Double] {
        guard let v = parameters[name] else { preconditionFailure("reference model: no parameter \(name)") }
        return v
    }

    // MARK: Ops

    /// PyTorch's Conv2d (zero padding, square kernel).
    func conv(_ x: RefTensor, _ name: String, stride: Int = 1, bias: String? = nil) -> RefTensor {
        let ws = shapes[name]!, w = p(name)
        let (O, C, k) = (ws[0], ws[1], ws[2])
        precondition(C == x.c, "\(name): \(C) input channels for a map of \(x.c)")
        let pad = k / 2
        let Ho = (x.h + 2 * pad - k) / stride + 1, Wo = (x.w + 2 * pad - k) / stride + 1
        var y = RefTensor(n: x.n, c: O, h: Ho, w: Wo)
        let b = bias.map { p($0) }
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                for n in 0..<x.n {
                    for o in 0..<O {
                        let out = ((n * O + o) * Ho) * Wo
                        if let b { for i in 0..<(Ho * Wo) { yp[out + i] = b[o] } }
                        for ch in 0..<C {
                            let inPlane = (n * C + ch) * x.h * x.w
                            for i in 0..<k {
                                for j in 0..<k {
                                    let wv = w[((o * C + ch) * k + i) * k + j]
                                    for oy in 0..<Ho {
                                        let iy = oy * stride - pad + i
                                        if iy < 0 || iy >= x.h { continue }
                                        let row = inPlane + iy * x.w, orow = out + oy * Wo
                                        for ox in 0..<Wo {
                                            let ix = ox * stride - pad + j
                                            if ix < 0 || ix >= x.w { continue }
                                            yp[orow + ox] += wv * xp[row + ix]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Training-mode BatchNorm2d (batch mean, biased variance, eps 1e-5), then optionally + residual and ReLU.
    func batchNorm(_ x: RefTensor, _ prefix: String, relu: Bool, residual: RefTensor? = nil) -> RefTensor {
        let gamma = p(prefix + ".weight"), beta = p(prefix + ".bias")
        var y = x
        let HW = x.h * x.w, M = Double(x.n * HW)
        for ch in 0..<x.c {
            var mean = 0.0
            for n in 0..<x.n { for i in 0..<HW { mean += x.data[(n * x.c + ch) * HW + i] } }
            mean /= M
            var variance = 0.0
            for n in 0..<x.n { for i in 0..<HW { let d = x.data[(n * x.c + ch) * HW + i] - mean; variance += d * d } }
            variance /= M
            let inv = 1 / (variance + 1e-5).squareRoot()
            for n in 0..<x.n {
                for i in 0..<HW {
                    let k = (n * x.c + ch) * HW + i
                    var v = (x.data[k] - mean) * inv * gamma[ch] + beta[ch]
                    if let residual { v += residual.data[k] }
                    y.data[k] = v
                }
            }
        }
        if relu { applyReLU(&y) }
        return y
    }

    func convBN(_ x: RefTensor, conv c: String, bn: String, stride: Int = 1, relu: Bool = true,
                residual: RefTensor? = nil) -> RefTensor {
        batchNorm(conv(x, c + ".weight", stride: stride), bn, relu: relu, residual: residual)
    }

    func add(_ a: RefTensor, _ b: RefTensor) -> RefTensor {
        precondition(a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w, "sum of \(a.c)×\(a.h)×\(a.w) and \(b.c)×\(b.h)×\(b.w)")
        var y = a
        for i in 0..<y.data.count { y.data[i] += b.data[i] }
        return y
    }

    func relu(_ a: RefTensor) -> RefTensor {
        var y = a
        applyReLU(&y)
        return y
    }

    /// Source taps of F.interpolate(mode='bilinear', align_corners=False) along one axis.
    static func taps(_ input: Int, _ output: Int) -> [(Int, Int, Double, Double)] {
        let scale = Double(input) / Double(output)
        return (0..<output).map { d in
            let src = max(scale * (Double(d) + 0.5) - 0.5, 0)
            let i0 = min(Int(src), input - 1)
            let i1 = i0 < input - 1 ? i0 + 1 : i0
            let l1 = src - Double(i0)
            return (i0, i1, 1 - l1, l1)
        }
    }

    func resize(_ x: RefTensor, _ H: Int, _ W: Int) -> RefTensor {
        if x.h == H && x.w == W { return x }
        let rows = Self.taps(x.h, H), cols = Self.taps(x.w, W)
        var y = RefTensor(n: x.n, c: x.c, h: H, w: W)
        for n in 0..<x.n {
            for ch in 0..<x.c {
                for oy in 0..<H {
                    let r = rows[oy]
                    for ox in 0..<W {
                        let q = cols[ox]
                        y.data[y.index(n, ch, oy, ox)] =
                            r.2 * (q.2 * x.data[x.index(n, ch, r.0, q.0)] + q.3 * x.data[x.index(n, ch, r.0, q.1)])
                            + r.3 * (q.2 * x.data[x.index(n, ch, r.1, q.0)] + q.3 * x.data[x.index(n, ch, r.1, q.1)])
                    }
                }
            }
        }
        return y
    }

    /// rows [M, K] · Wᵀ + b for W [O, K, 1] (the official Conv1d-as-Linear of M2MRF).
    func linear(_ rows: [Double], _ M: Int, _ K: Int, weight: String, bias: String) -> ([Double], Int) {
        let w = p(weight), b = p(bias)
        let O = w.count / K
        var y = [Double](repeating: 0, count: M * O)
        for m in 0..<M {
            for o in 0..<O {
                var acc = b[o]
                for k in 0..<K { acc += rows[m * K + k] * w[o * K + k] }
                y[m * O + o] = acc
            }
        }
        return (y, O)
    }

    /// The official M2MRF module with scale up/down (§1 of the reference notes): pad to whole patches, 1×1 encode,
    /// one row per k×k patch, two Linear layers, each row folded into one k_out×k_out block, crop (floor), 1×1 decode.
    func m2mrf(_ x: RefTensor, _ prefix: String, up: Int, down: Int) -> RefTensor {
        let enc = shapes[prefix + ".sample_encode_conv.weight"]!
        let Cc = enc[0]
        let k2 = shapes[prefix + ".sample.sample_fc.weight"]![1] / Cc
        let k = Int(Double(k2).squareRoot().rounded())
        let ko = k * up / down
        let gh = (x.h + k - 1) / k, gw = (x.w + k - 1) / k
        var padded = RefTensor(n: x.n, c: x.c, h: gh * k, w: gw * k)
        for n in 0..<x.n { for ch in 0..<x.c { for i in 0..<x.h { for j in 0..<x.w {
            padded.data[padded.index(n, ch, i, j)] = x.data[x.index(n, ch, i, j)]
        } } } }
        let z = conv(padded, prefix + ".sample_encode_conv.weight", bias: prefix + ".sample_encode_conv.bias")
        let L = x.n * gh * gw, K = Cc * k * k
        var rows = [Double](repeating: 0, count: L * K)
        for n in 0..<x.n { for ph in 0..<gh { for pw in 0..<gw {
            let r = (n * gh + ph) * gw + pw
            for ch in 0..<Cc { for i in 0..<k { for j in 0..<k {
                rows[r * K + ch * k * k + i * k + j] = z.data[z.index(n, ch, ph * k + i, pw * k + j)]
            } } }
        } } }
        let (hidden, D) = linear(rows, L, K, weight: prefix + ".sample.sample_fc.weight", bias: prefix + ".sample.sample_fc.bias")
        let (mapped, Ko) = linear(hidden, L, D, weight: prefix + ".sample.sample_fc1.weight", bias: prefix + ".sample.sample_fc1.bias")
        precondition(Ko == Cc * ko * ko)
        let oh = max(x.h * up / down, 1), ow = max(x.w * up / down, 1)
        var folded = RefTensor(n: x.n, c: Cc, h: oh, w: ow)
        for n in 0..<x.n { for ph in 0..<gh { for pw in 0..<gw {
            let r = (n * gh + ph) * gw + pw
            for ch in 0..<Cc { for i in 0..<ko { for j in 0..<ko {
                let y = ph * ko + i, xx = pw * ko + j
                if y < oh && xx < ow { folded.data[folded.index(n, ch, y, xx)] = mapped[r * Ko + ch * ko * ko + i * ko + j] }
            } } }
        } } }
        return conv(folded, prefix + ".sample_decode_conv.weight", bias: prefix + ".sample_decode_conv.bias")
    }

    // MARK: The network

    /// Branch maps of the backbone for a normalised input.
    func backbone(_ input: RefTensor) -> [RefTensor] {
        var x = convBN(input, conv: "backbone.conv1", bn: "backbone.bn1", stride: 2)
        x = convBN(x, conv: "backbone.conv2", bn: "backbone.bn2", stride: 2)
        var k = 0
        while has("backbone.layer1.\(k).conv1.weight") {
            let q = "backbone.layer1.\(k)"
            let identity = has(q + ".downsample.0.weight")
                ? convBN(x, conv: q + ".downsample.0", bn: q + ".downsample.1", relu: false) : x
            let h = convBN(convBN(x, conv: q + ".conv1", bn: q + ".bn1"), conv: q + ".conv2", bn: q + ".bn2")
            x = convBN(h, conv: q + ".conv3", bn: q + ".bn3", residual: identity)
            k += 1
        }
        var ys = [x]
        for s in 2...4 {
            let t = "backbone.transition\(s - 1)"
            var xs: [RefTensor] = []
            for i in 0..<s {
                if i < ys.count {
                    xs.append(has("\(t).\(i).0.weight") ? convBN(ys[i], conv: "\(t).\(i).0", bn: "\(t).\(i).1") : ys[i])
                } else {
                    var h = ys[ys.count - 1]
                    var j = 0
                    while has("\(t).\(i).\(j).0.weight") || has("\(t).\(i).\(j).0.sample_encode_conv.weight") {
                        if variant.usesM2MRF {
                            h = batchNorm(m2mrf(h, "\(t).\(i).\(j).0", up: 1, down: 2), "\(t).\(i).\(j).1", relu: true)
                        } else {
                            h = convBN(h, conv: "\(t).\(i).\(j).0", bn: "\(t).\(i).\(j).1", stride: 2)
                        }
                        j += 1
                    }
                    xs.append(h)
                }
            }
            var m = 0
            while has("backbone.stage\(s).\(m).branches.0.0.conv1.weight") {
                xs = module("backbone.stage\(s).\(m)", xs)
                m += 1
            }
            ys = xs
        }
        return ys
    }

    /// One HRModule: BASIC blocks per branch, then the fuse sums and ReLU.
    func module(_ prefix: String, _ inputs: [RefTensor]) -> [RefTensor] {
        let branches: [RefTensor] = inputs.enumerated().map { b, x in
            var h = x
            var k = 0
            while has("\(prefix).branches.\(b).\(k).conv1.weight") {
                let q = "\(prefix).branches.\(b).\(k)"
                h = convBN(convBN(h, conv: q + ".conv1", bn: q + ".bn1"), conv: q + ".conv2", bn: q + ".bn2", residual: h)
                k += 1
            }
            return h
        }
        let nb = branches.count
        return (0..<nb).map { i in
            var sum: RefTensor? = nil
            for j in 0..<nb {
                let f = "\(prefix).fuse_layers.\(i).\(j)"
                let term: RefTensor
                if i == j {
                    term = branches[j]
                } else if j > i {
                    var r = convBN(branches[j], conv: f + ".0", bn: f + ".1", relu: false)
                    let factor = 1 << (j - i)
                    if !variant.usesM2MRF {
                        r = resize(r, r.h * factor, r.w * factor)
                    } else if variant.cascadeUp {
                        for t in 0..<(j - i) { r = m2mrf(r, "\(f).sample_\(t)", up: 2, down: 1) }
                    } else {
                        r = m2mrf(r, f + ".2", up: factor, down: 1)
                    }
                    term = resize(r, branches[i].h, branches[i].w)
                } else {
                    var h = branches[j]
                    if variant.usesM2MRF && !variant.cascadeDown {
                        h = batchNorm(m2mrf(h, f + ".0.0", up: 1, down: 1 << (i - j)), f + ".0.1", relu: false)
                    } else {
                        for step in 0..<(i - j) {
                            let last = step == i - j - 1
                            if variant.usesM2MRF {
                                h = batchNorm(m2mrf(h, "\(f).\(step).0", up: 1, down: 2), "\(f).\(step).1", relu: !last)
                            } else {
                                h = convBN(h, conv: "\(f).\(step).0", bn: "\(f).\(step).1", stride: 2, relu: !last)
                            }
                        }
                    }
                    term = h
                }
                sum = sum.map { add($0, term) } ?? term
            }
            return relu(sum!)
        }
    }

    /// Logits at 1/4 of the input: resize-concat of the branches, 1×1 conv + BN + ReLU, 1×1 classifier.
    public func logits(_ input: RefTensor) -> RefTensor {
        let ys = backbone(input)
        let H = ys[0].h, W = ys[0].w
        let resized = ys.map { resize($0, H, W) }
        let C = resized.reduce(0) { $0 + $1.c }
        var joined = RefTensor(n: input.n, c: C, h: H, w: W)
        var base = 0
        for r in resized {
            for n in 0..<r.n { for ch in 0..<r.c {
                let src = r.index(n, ch, 0, 0), dst = joined.index(n, base + ch, 0, 0)
                for i in 0..<(H * W) { joined.data[dst + i] = r.data[src + i] }
            } }
            base += r.c
        }
        let h = convBN(joined, conv: "decode_head.convs.0.conv", bn: "decode_head.convs.0.bn")
        return conv(h, "decode_head.conv_seg.weight", bias: "decode_head.conv_seg.bias")
    }

    /// The official bdice loss: logits resized to the label size, p = σ, per image and class
    /// 1 − (2Σp·g + 1e-5)/(Σp + Σg + 1e-5), mean over classes then images. labels: N·H·W values 0…classes.
    public func loss(_ input: RefTensor, labels: [Int32]) -> Double {
        cursor.next = 0
        let z = resize(logits(input), input.h, input.w)
        if let decisions = reluDecisions {
            precondition(cursor.next == decisions.count, "reference: \(cursor.next) ReLUs, \(decisions.count) replayed")
        }
        let HW = z.h * z.w
        var total = 0.0
        for n in 0..<z.n {
            for c in 0..<z.c {
                var inter = 0.0, sp = 0.0, sg = 0.0
                for i in 0..<HW {
                    let pr = 1 / (1 + (-z.data[(n * z.c + c) * HW + i]).exp())
                    let g: Double = labels[n * HW + i] == Int32(c + 1) ? 1 : 0
                    inter += pr * g; sp += pr; sg += g
                }
                total += 1 - (2 * inter + 1e-5) / (sp + sg + 1e-5)
            }
        }
        return total / Double(z.n * z.c)
    }
}

extension Double {
    fileprivate func exp() -> Double { _exp(self) }
}

#if canImport(Glibc)
import Glibc
private func _exp(_ x: Double) -> Double { Glibc.exp(x) }
#else
import Foundation
private func _exp(_ x: Double) -> Double { Foundation.exp(x) }
#endif
