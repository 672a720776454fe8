import Foundation
import GradientCheck
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

/// Checks an op's backward against central differences of L = Σ f(inputs) · r (r from seed 99), for `samples`
/// elements of each input (picked by a generator seeded with the input's size). Returns the worst relative error
/// max|analytic − numeric| / max(max|numeric|, floor) per input.
func gradientCheck(_ inputs: [Tensor], training: Bool = false, samples: Int = 12, eps: Float = 1e-2,
                   _ f: (Ops, [Tensor]) -> Tensor) -> [Double] {
    centralDifferenceErrors(inputs, training: training, samples: samples, eps: eps,
                            direction: { n in var rnd = SeededRandom(99); return rnd.floats(n) },
                            picks: { x, n in
                                var pick = SeededRandom(UInt64(x.count))
                                return (0..<n).map { _ in Int(pick.next() % UInt64(x.count)) }
                            }) { ops in f(ops, inputs) }
}

/// PyTorch's Conv2d output shape [N, O, Ho, Wo] for plain NCHW input `xs` and OIHW weights `ws`.
func referenceConvolutionShape(_ xs: [Int], _ ws: [Int], stride: Int, padding: Int) -> [Int] {
    [xs[0], ws[0], (xs[2] + 2 * padding - ws[2]) / stride + 1, (xs[3] + 2 * padding - ws[3]) / stride + 1]
}

/// PyTorch's Conv2d on plain NCHW in the most obvious loops: calls `visit(y, x, w)` with the flat indices of every
/// output, input and weight element that meet, outputs in order and, within an output, input channel, kernel row
/// and kernel column in order (padding skipped). The Double references of the forward and the backward walk this.
func forEachConvolutionTap(_ xs: [Int], _ ws: [Int], stride: Int, padding: Int,
                           _ visit: (_ y: Int, _ x: Int, _ w: Int) -> Void) {
    let (N, C, H, W) = (xs[0], xs[1], xs[2], xs[3])
    let (O, kh, kw) = (ws[0], ws[2], ws[3])
    let ys = referenceConvolutionShape(xs, ws, stride: stride, padding: padding)
    let Ho = ys[2], Wo = ys[3]
    for n in 0..<N {
        for o in 0..<O {
            for oy in 0..<Ho {
                for ox in 0..<Wo {
                    let yi = ((n * O + o) * Ho + oy) * Wo + ox
                    for c in 0..<C {
                        for i in 0..<kh {
                            let iy = oy * stride - padding + i
                            if iy < 0 || iy >= H { continue }
                            for j in 0..<kw {
                                let ix = ox * stride - padding + j
                                if ix < 0 || ix >= W { continue }
                                visit(yi, ((n * C + c) * H + iy) * W + ix, ((o * C + c) * kh + i) * kw + j)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// PyTorch's Conv2d on plain NCHW, in Double: the reference for oneDNN. Each output is its bias plus its products
/// in `forEachConvolutionTap`'s order.
func referenceConvolution(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, stride: Int,
                          padding: Int) -> ([Float], [Int]) {
    let ys = referenceConvolutionShape(xs, ws, stride: stride, padding: padding)
    let plane = ys[2] * ys[3]
    var acc = (0..<ys.reduce(1, *)).map { yi in Double(bias?[(yi / plane) % ys[1]] ?? 0) }
    forEachConvolutionTap(xs, ws, stride: stride, padding: padding) { yi, xi, wi in
        acc[yi] += Double(x[xi]) * Double(w[wi])
    }
    return (acc.map { Float($0) }, ys)
}

/// dL/dx and dL/dw of PyTorch's Conv2d for a given dL/dy, in Double (`forEachConvolutionTap`'s order).
func referenceConvolutionBackward(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], dy: [Float], stride: Int,
                                  padding: Int) -> (dx: [Float], dw: [Float]) {
    var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
    forEachConvolutionTap(xs, ws, stride: stride, padding: padding) { yi, xi, wi in
        let g = Double(dy[yi])
        dx[xi] += g * Double(w[wi])
        dw[wi] += g * Double(x[xi])
    }
    return (dx.map { Float($0) }, dw.map { Float($0) })
}
