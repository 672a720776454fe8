import Foundation
@testable import Tensor

/// A deterministic generator so every run checks the same numbers.
struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        var z = state
        z = (z ^ (z >> 33)) &* 0xff51afd7ed558ccd
        return z ^ (z >> 29)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in float() * scale } }
}

func randomTensor(_ shape: [Int], blocked: Bool = true, seed: UInt64, scale: Float = 1) -> Tensor {
    var r = SeededRandom(seed)
    let t = Tensor(r.floats(shape.reduce(1, *), scale: scale), shape: shape)
    return blocked ? t.toBlocked() : t
}

/// Checks an op's backward against central differences of L = Σ f(inputs) · r, for `samples` elements of each
/// input. Returns the worst relative error max|analytic − numeric| / max(max|numeric|, floor) per input.
func gradientCheck(_ inputs: [Tensor], training: Bool = false, samples: Int = 12, eps: Float = 1e-2,
                   _ f: (Ops, [Tensor]) -> Tensor) -> [Double] {
    let engine = ComputeEngine()
    let tape = Tape()
    for x in inputs { x.requiresGrad = true }
    let y = f(Ops(engine: engine, tape: tape, training: training), inputs)
    var rnd = SeededRandom(99)
    let r = Tensor(rnd.floats(y.count), shape: y.shape)
    tape.backward(from: y, gradient: r)
    func loss() -> Double {
        engine.forgetConstantWeights()  // inference caches reordered weights; these ones change
        let v = f(Ops(engine: engine, tape: nil, training: training), inputs).values()
        var s = 0.0
        for i in 0..<v.count { s += Double(v[i]) * Double(r.data[i]) }
        return s
    }
    var worst: [Double] = []
    for x in inputs {
        let g = tape.gradient(x)?.values() ?? [Float](repeating: 0, count: x.count)
        var maxErr = 0.0, maxNum = 1e-3
        var pick = SeededRandom(UInt64(x.count))
        for _ in 0..<samples {
            let i = Int(pick.next() % UInt64(x.count))
            let o = x.storageOffset(ofLogical: i)
            let keep = x.data[o]
            x.data[o] = keep + eps
            let up = loss()
            x.data[o] = keep - eps
            let down = loss()
            x.data[o] = keep
            let numeric = (up - down) / Double(2 * eps)
            maxErr = max(maxErr, abs(numeric - Double(g[i])))
            maxNum = max(maxNum, abs(numeric))
        }
        worst.append(maxErr / maxNum)
    }
    return worst
}

/// PyTorch's Conv2d on plain NCHW, in the most obvious loops: the reference for oneDNN.
func referenceConvolution(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, stride: Int,
                          padding: Int) -> ([Float], [Int]) {
    let (N, C, H, W) = (xs[0], xs[1], xs[2], xs[3])
    let (O, kh, kw) = (ws[0], ws[2], ws[3])
    let Ho = (H + 2 * padding - kh) / stride + 1, Wo = (W + 2 * padding - kw) / stride + 1
    var y = [Float](repeating: 0, count: N * O * Ho * Wo)
    for n in 0..<N {
        for o in 0..<O {
            for oy in 0..<Ho {
                for ox in 0..<Wo {
                    var acc = Double(bias?[o] ?? 0)
                    for c in 0..<C {
                        for i in 0..<kh {
                            let iy = oy * stride - padding + i
                            if iy < 0 || iy >= H { continue }
                            for j in 0..<kw {
                                let ix = ox * stride - padding + j
                                if ix < 0 || ix >= W { continue }
                                acc += Double(x[((n * C + c) * H + iy) * W + ix]) * Double(w[((o * C + c) * kh + i) * kw + j])
                            }
                        }
                    }
                    y[((n * O + o) * Ho + oy) * Wo + ox] = Float(acc)
                }
            }
        }
    }
    return (y, [N, O, Ho, Wo])
}
