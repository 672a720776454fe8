import Tensor

/// The one finite-difference check of the tape's gradients, shared by the Tensor op tests and the Network layer
/// tests: central differences of L = Σ f(ops) · r against the tape's dL/dx, at a few elements of each tensor.
/// Returns the worst max|analytic − numeric| / max(max|numeric|, 1e-3) per tensor.
///
/// - `direction`: r for an output of that many elements.
/// - `picks`: the logical indices to probe in a tensor, `samples` of them (each caller keeps its own sequence).
/// Every tensor is left with `requiresGrad` set.
public func centralDifferenceErrors(_ tensors: [Tensor], training: Bool, samples: Int, eps: Float,
                                    direction: (Int) -> [Float], picks: (Tensor, Int) -> [Int],
                                    _ f: (Ops) -> Tensor) -> [Double] {
    let engine = ComputeEngine()
    let tape = Tape()
    for x in tensors { x.requiresGrad = true }
    let y = f(Ops(engine: engine, tape: tape, training: training))
    let r = Tensor(direction(y.count), shape: y.shape)
    tape.backward(from: y, gradient: r)
    func loss() -> Double {
        engine.forgetConstantWeights()  // inference caches reordered weights; these ones change
        let v = f(Ops(engine: engine, tape: nil, training: training)).values()
        var s = 0.0
        for i in 0..<v.count { s += Double(v[i]) * Double(r.data[i]) }
        return s
    }
    return tensors.map { x in
        let g = tape.gradient(x)?.values() ?? [Float](repeating: 0, count: x.count)
        var maxErr = 0.0, maxNum = 1e-3
        for i in picks(x, samples) {
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
        return maxErr / maxNum
    }
}
