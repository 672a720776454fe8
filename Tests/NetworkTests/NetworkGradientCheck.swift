import Foundation
@testable import Tensor

/// Central differences of L = Σ f() · r against the tape's gradients, for a few elements of each tensor.
/// Returns max|analytic − numeric| / max|numeric| per tensor.
func networkGradientCheck(_ tensors: [Tensor], training: Bool = false, samples: Int = 8, eps: Float = 1e-2,
                          _ f: (Ops) -> Tensor) -> [Double] {
    let engine = ComputeEngine()
    let tape = Tape()
    let keep = tensors.map(\.requiresGrad)
    for t in tensors { t.requiresGrad = true }
    defer { for (t, k) in zip(tensors, keep) { t.requiresGrad = k } }
    let y = f(Ops(engine: engine, tape: tape, training: training))
    var seed: UInt64 = 7
    func rnd() -> Float {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return Float(seed >> 40) / Float(1 << 23) - 1
    }
    let r = Tensor((0..<y.count).map { _ in rnd() }, shape: y.shape)
    tape.backward(from: y, gradient: r)
    func loss() -> Double {
        engine.forgetConstantWeights()
        let v = f(Ops(engine: engine, tape: nil, training: training)).values()
        var s = 0.0
        for i in 0..<v.count { s += Double(v[i]) * Double(r.data[i]) }
        return s
    }
    return tensors.map { x in
        let g = tape.gradient(x)?.values() ?? [Float](repeating: 0, count: x.count)
        var maxErr = 0.0, maxNum = 1e-3
        for _ in 0..<samples {
            let i = Int(UInt64(bitPattern: Int64(rnd() * 1e6)) % UInt64(x.count))
            let o = x.storageOffset(ofLogical: i)
            let v = x.data[o]
            x.data[o] = v + eps
            let up = loss()
            x.data[o] = v - eps
            let down = loss()
            x.data[o] = v
            let numeric = (up - down) / Double(2 * eps)
            maxErr = max(maxErr, abs(numeric - Double(g[i])))
            maxNum = max(maxNum, abs(numeric))
        }
        return maxErr / maxNum
    }
}
