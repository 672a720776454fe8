import Testing
import Foundation
@testable import Tensor

@Test("BatchNorm backward in training mode agrees with finite differences")
func batchNormGradients() {
    let x = randomTensor([2, 20, 5, 6], seed: 21, scale: 2)
    let errors = gradientCheck([x, randomTensor([20], blocked: false, seed: 22), randomTensor([20], blocked: false, seed: 23)],
                               training: true, eps: 1e-2) { ops, t in
        ops.batchNorm(t[0], weight: t[1], bias: t[2], runningMean: Tensor(shape: [20]), runningVar: Tensor(shape: [20]))
    }
    #expect(errors.allSatisfy { $0 < 2e-2 }, "relative errors \(errors)")
}

@Test("BatchNorm training updates the running statistics as PyTorch (momentum 0.1, unbiased variance)")
func batchNormRunningStatistics() {
    let values: [Float] = [1, 2, 3, 6]  // one channel, N=1, 2×2: mean 3, biased var 3.5, unbiased 14/3
    let x = Tensor.blocked(nchw: values, shape: [1, 1, 2, 2])
    let mean = Tensor([0], shape: [1]), variance = Tensor([1], shape: [1])
    let y = Ops(engine: ComputeEngine(), training: true)
        .batchNorm(x, weight: Tensor([1], shape: [1]), bias: Tensor([0], shape: [1]), runningMean: mean, runningVar: variance)
    #expect(abs(mean.data[0] - 0.3) < 1e-6)
    #expect(abs(variance.data[0] - (0.9 + 0.1 * 14 / 3)) < 1e-6)
    #expect(abs(y.values()[0] - (1 - 3) / (3.5 + 1e-5).squareRoot()) < 1e-5)
}

@Test("Inference BatchNorm uses the running statistics")
func batchNormInference() {
    let x = Tensor.blocked(nchw: [1, 2, 3, 4], shape: [1, 1, 2, 2])
    let y = Ops(engine: ComputeEngine()).batchNorm(x, weight: Tensor([2], shape: [1]), bias: Tensor([1], shape: [1]),
                                                   runningMean: Tensor([2], shape: [1]), runningVar: Tensor([4], shape: [1]))
    let want = [Float](arrayLiteral: 1, 2, 3, 4).map { 2 * ($0 - 2) / (4 + 1e-5).squareRoot() + 1 }
    #expect(Tensor.relativeError(y.values(), want) < 1e-6)
}

@Test("Bilinear resize (align_corners=False) matches PyTorch's numbers and rule")
func bilinearValues() {
    // 4 → 6: src = (d + 0.5)·4/6 − 0.5, clamped at 0 (d = 0) and at the last column (d = 5).
    let x = Tensor.blocked(nchw: [0, 1, 2, 3], shape: [1, 1, 1, 4])
    let y = Ops(engine: ComputeEngine()).resizeBilinear(x, height: 1, width: 6).values()
    let want: [Float] = [0, 0.5, 1.1666666, 1.8333333, 2.5, 3]
    #expect(Tensor.relativeError(y, want) < 1e-6, "\(y)")
    // Downsizing 5 → 2: src = (d+0.5)·2.5 − 0.5 = 0.75, 3.25.
    let z = Ops(engine: ComputeEngine()).resizeBilinear(Tensor.blocked(nchw: [0, 1, 2, 3, 4], shape: [1, 1, 5, 1]),
                                                        height: 2, width: 1).values()
    #expect(Tensor.relativeError(z, [0.75, 3.25]) < 1e-6, "\(z)")
}

@Test("Resize, nearest upsampling, pad, crop and concat backward agree with finite differences")
func spatialGradients() {
    let x = randomTensor([2, 20, 5, 7], seed: 31)
    #expect(gradientCheck([x]) { ops, t in ops.resizeBilinear(t[0], height: 11, width: 6) }[0] < 1e-2)
    #expect(gradientCheck([x]) { ops, t in ops.resizeBilinear(t[0], height: 3, width: 16) }[0] < 1e-2)
    #expect(gradientCheck([x]) { ops, t in ops.upsampleNearest(t[0], factor: 2) }[0] < 1e-2)
    #expect(gradientCheck([x]) { ops, t in ops.padBottomRight(t[0], height: 8, width: 8) }[0] < 1e-2)
    #expect(gradientCheck([x]) { ops, t in ops.crop(t[0], height: 3, width: 4) }[0] < 1e-2)
    let parts = [randomTensor([2, 8, 3, 4], seed: 32), randomTensor([2, 16, 3, 4], seed: 33), randomTensor([2, 5, 3, 4], seed: 34)]
    let errors = gradientCheck(parts) { ops, t in ops.concat(t) }
    #expect(errors.allSatisfy { $0 < 1e-2 }, "\(errors)")
}

@Test("Concatenation puts channels in order, whatever the block alignment")
func concatOrder() {
    let a = Tensor.blocked(nchw: (0..<(8 * 2)).map(Float.init), shape: [1, 8, 1, 2])
    let b = Tensor.blocked(nchw: (0..<(20 * 2)).map { Float($0 + 100) }, shape: [1, 20, 1, 2])
    let y = Ops(engine: ComputeEngine()).concat([a, b, a])
    #expect(y.shape == [1, 36, 1, 2])
    #expect(y.values() == a.values() + b.values() + a.values())
}

@Test("ReLU, sums and the linear layer backward agree with finite differences")
func elementwiseGradients() {
    let x = randomTensor([1, 18, 4, 3], seed: 41)
    #expect(gradientCheck([x], eps: 1e-3) { ops, t in ops.relu(t[0]) }[0] < 1e-2)  // small step: no kink crossed
    let errors = gradientCheck([x, randomTensor([1, 18, 4, 3], seed: 42)]) { ops, t in ops.sum([t[0], t[1], t[0]]) }
    #expect(errors.allSatisfy { $0 < 1e-2 }, "\(errors)")
    let lin = gradientCheck([randomTensor([7, 12], blocked: false, seed: 43), randomTensor([5, 12], blocked: false, seed: 44),
                             randomTensor([5], blocked: false, seed: 45)]) { ops, t in ops.linear(t[0], t[1], bias: t[2]) }
    #expect(lin.allSatisfy { $0 < 1e-2 }, "\(lin)")
}

@Test("Unfold orders a patch's features channel, row, column and fold inverts it")
func unfoldOrder() {
    let x = Tensor.blocked(nchw: (0..<(2 * 4 * 4)).map(Float.init), shape: [1, 2, 4, 4])
    let ops = Ops(engine: ComputeEngine())
    let rows = ops.unfold(x, patch: 2)
    #expect(rows.shape == [4, 8])
    // Patch (0, 1): channel 0 rows 0–1 columns 2–3, then channel 1.
    #expect(Array(rows.values()[8..<16]) == [2, 3, 6, 7, 18, 19, 22, 23])
    let back = ops.fold(rows, batch: 1, channels: 2, gridHeight: 2, gridWidth: 2, patch: 2)
    #expect(back.values() == x.values())
    let errors = gradientCheck([randomTensor([2, 3, 4, 6], seed: 46)]) { ops, t in ops.unfold(t[0], patch: 2) }
    #expect(errors[0] < 1e-2)
    let f = gradientCheck([randomTensor([12, 27], blocked: false, seed: 47)]) { ops, t in
        ops.fold(t[0], batch: 2, channels: 3, gridHeight: 2, gridWidth: 3, patch: 3)
    }
    #expect(f[0] < 1e-2)
}

@Test("Inference resize-concat (straight into channel blocks) equals resize then concat")
func resizeConcatFastPath() {
    let xs = [randomTensor([2, 16, 6, 9], seed: 61), randomTensor([2, 32, 3, 5], seed: 62), randomTensor([2, 20, 2, 3], seed: 63)]
    let ops = Ops(engine: ComputeEngine())
    let fast = ops.resizeConcat(xs, height: 6, width: 9)
    let slow = ops.concat(xs.map { ops.resizeBilinear($0, height: 6, width: 9) })
    #expect(fast.shape == slow.shape)
    #expect(fast.values() == slow.values())
}

@Test("BatchNorm fused with residual add and ReLU agrees with finite differences and with the unfused ops")
func batchNormResidualRelu() {
    let inputs = [randomTensor([2, 20, 4, 5], seed: 71, scale: 2), randomTensor([20], blocked: false, seed: 72),
                  randomTensor([20], blocked: false, seed: 73), randomTensor([2, 20, 4, 5], seed: 74)]
    let errors = gradientCheck(inputs, training: true, eps: 1e-3) { ops, t in
        ops.batchNorm(t[0], weight: t[1], bias: t[2], runningMean: Tensor(shape: [20]), runningVar: Tensor(shape: [20]),
                      residual: t[3], relu: true)
    }
    #expect(errors.allSatisfy { $0 < 2e-2 }, "relative errors \(errors)")
    let ops = Ops(engine: ComputeEngine(), training: true)
    let fused = ops.batchNorm(inputs[0], weight: inputs[1], bias: inputs[2], runningMean: Tensor(shape: [20]),
                              runningVar: Tensor(shape: [20]), residual: inputs[3], relu: true)
    let plain = ops.relu(ops.add(ops.batchNorm(inputs[0], weight: inputs[1], bias: inputs[2], runningMean: Tensor(shape: [20]),
                                               runningVar: Tensor(shape: [20])), inputs[3]))
    #expect(fused.values() == plain.values())
}

@Test("Plain-layout resize (the output edge) equals the blocked resize")
func plainResize() {
    let x = randomTensor([2, 4, 5, 7], seed: 91)
    let ops = Ops(engine: ComputeEngine())
    let blocked = ops.resizeBilinear(x, height: 19, width: 30).values()
    let plain = ops.resizeBilinearPlain(x.toPlain(), height: 19, width: 30).values()
    #expect(plain == blocked)
}

@Test("BatchNorm on tensors large enough to run on several threads: forward and backward equal a Double reference, and repeat bit for bit")
func batchNormThreadedMatchesReference() {
    let shape = [2, 40, 40, 40]   // 3 channel blocks × 2 images, 153,600 floats: the threaded path
    let (n, c, hw) = (2, 40, 1600)
    let x = randomTensor(shape, seed: 31, scale: 2), residual = randomTensor(shape, seed: 32)
    let weight = randomTensor([c], blocked: false, seed: 33), bias = randomTensor([c], blocked: false, seed: 34)
    var rnd = SeededRandom(35)
    let upstream = rnd.floats(n * c * hw)
    func run() -> (y: [Float], dx: [Float], dw: [Float], db: [Float], dr: [Float]) {
        let tape = Tape()
        for t in [x, residual, weight, bias] { t.requiresGrad = true }
        let y = Ops(engine: ComputeEngine(), tape: tape, training: true)
            .batchNorm(x, weight: weight, bias: bias, runningMean: Tensor(shape: [c]), runningVar: Tensor(shape: [c]),
                       residual: residual, relu: true)
        tape.backward(from: y, gradient: Tensor(upstream, shape: shape))
        return (y.values(), tape.gradient(x)!.values(), tape.gradient(weight)!.values(), tape.gradient(bias)!.values(),
                tape.gradient(residual)!.values())
    }
    let got = run(), again = run()
    #expect(got.y == again.y && got.dx == again.dx && got.dw == again.dw)
    // Reference in Double, NCHW: y = relu(w·x̂ + b + r); g = dy·[y > 0]; dx = w·invstd·(g − mean g − x̂·mean(g·x̂)).
    let xv = x.values(), rv = residual.values(), wv = weight.values(), bv = bias.values()
    var worst = (y: 0.0, dx: 0.0, dw: 0.0, db: 0.0, dr: 0.0)
    for ch in 0..<c {
        let idx = (0..<n).flatMap { b in (0..<hw).map { (b * c + ch) * hw + $0 } }
        let m = Double(idx.count)
        let mean = idx.reduce(0.0) { $0 + Double(xv[$1]) } / m
        let variance = idx.reduce(0.0) { $0 + (Double(xv[$1]) - mean) * (Double(xv[$1]) - mean) } / m
        let invstd = 1 / (variance + 1e-5).squareRoot()
        var g = [Double](), xhat = [Double]()
        for i in idx {
            let xh = (Double(xv[i]) - mean) * invstd
            let y = max(Double(wv[ch]) * xh + Double(bv[ch]) + Double(rv[i]), 0)
            worst.y = max(worst.y, abs(y - Double(got.y[i])))
            xhat.append(xh)
            g.append(y > 0 ? Double(upstream[i]) : 0)
        }
        let sg = g.reduce(0, +), sgx = zip(g, xhat).reduce(0.0) { $0 + $1.0 * $1.1 }
        worst.dw = max(worst.dw, abs(sgx - Double(got.dw[ch])) / max(1, abs(sgx)))
        worst.db = max(worst.db, abs(sg - Double(got.db[ch])) / max(1, abs(sg)))
        for (k, i) in idx.enumerated() {
            let dx = Double(wv[ch]) * invstd * (g[k] - sg / m - xhat[k] * sgx / m)
            worst.dx = max(worst.dx, abs(dx - Double(got.dx[i])))
            worst.dr = max(worst.dr, abs(g[k] - Double(got.dr[i])))
        }
    }
    #expect(worst.y < 1e-4 && worst.dx < 1e-4 && worst.dw < 1e-4 && worst.db < 1e-4 && worst.dr == 0, "worst errors \(worst)")
}

/// The lane masks are requirements met by each concrete SIMD type (fast there); both must keep the scalar meaning on
/// the values where a shortcut would differ: ±0, NaN, infinities, subnormals.
@Test("LaneVector masks equal their scalar definitions on edge values, 8 and 16 lanes")
func laneMasksMatchScalars() {
    let edges: [Float] = [0, -0.0, .nan, -.nan, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                          .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1, -1, 3.5, -2.25, 1e-30, -1e-30]
    func check<V: LaneVector>(_: V.Type) {
        let n = V.scalarCount
        for shift in 0..<edges.count {
            var x = V(), gate = V()
            for l in 0..<n {
                x[l] = edges[(l + shift) % edges.count]
                gate[l] = edges[(l * 7 + shift + 3) % edges.count]
            }
            let relu = x.positivePart, gated = x.gated(by: gate)
            for l in 0..<n {
                let wantRelu: Float = x[l] > 0 ? x[l] : 0
                let wantGated: Float = gate[l] > 0 ? x[l] : 0
                #expect(relu[l].bitPattern == wantRelu.bitPattern, "positivePart(\(x[l])) = \(relu[l]), \(n) lanes")
                #expect(gated[l].bitPattern == wantGated.bitPattern, "\(x[l]) gated by \(gate[l]) = \(gated[l]), \(n) lanes")
            }
        }
    }
    check(SIMD8<Float>.self)
    check(SIMD16<Float>.self)
}
