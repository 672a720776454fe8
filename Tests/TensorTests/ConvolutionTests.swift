import Testing
@testable import Tensor

/// (input shape, weight shape, stride, padding, bias): odd sizes, channels that are not multiples of 16, strides.
let convolutionCases: [([Int], [Int], Int, Int, Bool)] = [
    ([2, 8, 9, 13], [16, 8, 3, 3], 1, 1, false),
    ([1, 16, 9, 7], [8, 16, 3, 3], 2, 1, false),
    ([2, 20, 5, 6], [12, 20, 1, 1], 1, 0, true),
    ([1, 32, 11, 10], [32, 32, 3, 3], 2, 1, true),
]

@Test("oneDNN convolution in nChw16c matches the reference convolution", arguments: convolutionCases.indices)
func convolutionMatchesReference(_ k: Int) {
    let (xs, ws, stride, padding, hasBias) = convolutionCases[k]
    let x = randomTensor(xs, seed: 1)
    let w = randomTensor(ws, blocked: false, seed: 2)
    let b = hasBias ? randomTensor([ws[0]], blocked: false, seed: 3) : nil
    let engine = ComputeEngine()
    let y = engine.convolution(x, weight: w, bias: b, stride: stride, padding: padding)
    let (ref, shape) = referenceConvolution(x.values(), xs, w.values(), ws, bias: b?.values(), stride: stride,
                                            padding: padding)
    #expect(y.shape == shape)
    // nChw16c, or the kernel's own nChw8c (AVX2) kept as it is.
    #expect(y.layout == .blocked16 || (engine.nativeBlocks8 && y.layout == .blocked8))
    #expect(Tensor.relativeError(y.values(), ref) < 1e-5)
}

@Test("A plain NCHW input (the network's 3-channel image) convolves like a blocked one")
func plainInputConvolution() {
    let x = randomTensor([1, 3, 17, 12], blocked: false, seed: 4)
    let w = randomTensor([16, 3, 3, 3], blocked: false, seed: 5)
    let engine = ComputeEngine()
    let y = engine.convolution(x, weight: w, bias: nil, stride: 2, padding: 1)
    let (ref, shape) = referenceConvolution(x.values(), x.shape, w.values(), w.shape, bias: nil, stride: 2, padding: 1)
    #expect(y.shape == shape)
    #expect(Tensor.relativeError(y.values(), ref) < 1e-5)
}

@Test("ReLU and sum post-ops give relu(conv + bias + earlier)")
func postOps() {
    let x = randomTensor([1, 16, 6, 7], seed: 6)
    let w = randomTensor([16, 16, 3, 3], blocked: false, seed: 7)
    let b = randomTensor([16], blocked: false, seed: 8)
    let earlier = randomTensor([1, 16, 6, 7], seed: 9)
    let expected = earlier.values()
    let engine = ComputeEngine()
    let plain = engine.convolution(x, weight: w, bias: b, padding: 1).values()
    let fused = engine.convolution(x, weight: w, bias: b, padding: 1, constantWeights: true, sumInto: earlier, relu: true)
    let want = zip(plain, expected).map { max($0 + $1, 0) }
    #expect(Tensor.relativeError(fused.values(), want) < 1e-6)
}

@Test("Convolution backward (data, weights, bias) agrees with finite differences", arguments: convolutionCases.indices)
func convolutionGradients(_ k: Int) {
    let (xs, ws, stride, padding, hasBias) = convolutionCases[k]
    var inputs = [randomTensor(xs, seed: 11), randomTensor(ws, blocked: false, seed: 12)]
    if hasBias { inputs.append(randomTensor([ws[0]], blocked: false, seed: 13)) }
    let errors = gradientCheck(inputs) { ops, t in
        ops.conv(t[0], t[1], bias: t.count > 2 ? t[2] : nil, stride: stride, padding: padding)
    }
    #expect(errors.allSatisfy { $0 < 1e-2 }, "relative errors \(errors)")
}

@Test("bf16 inference convolution stays within bf16 rounding of the f32 result")
func bf16Convolution() {
    let x = randomTensor([1, 32, 12, 10], seed: 81)
    let w = randomTensor([48, 32, 3, 3], blocked: false, seed: 82)
    let b = randomTensor([48], blocked: false, seed: 83)
    let engine = ComputeEngine()
    let f32 = engine.convolution(x, weight: w, bias: b, padding: 1).values()
    let bf16 = engine.convolution(x, weight: w, bias: b, padding: 1, constantWeights: true, relu: false, bf16: true).values()
    let e = Tensor.relativeError(bf16, f32)
    #expect(e < 1e-2, "relative error \(e)")
    #expect(e > 0 || !engine.bf16Available, "bf16 ran in f32 although oneDNN offered bf16")
}

/// The convolutions of HRNet at the shipped widths and odd sizes: 3×3 stride 2 from odd maps (the fuse and
/// transition paths), 3×3 stride 1, 1×1. Backward must equal the definition to float rounding, not "about".
let wideBackwardCases: [([Int], [Int], Int, Int)] = [
    ([2, 32, 7, 11], [128, 32, 3, 3], 2, 1),
    ([2, 32, 14, 22], [32, 32, 3, 3], 2, 1),
    ([2, 16, 28, 44], [16, 16, 3, 3], 2, 1),
    ([2, 64, 5, 7], [64, 64, 3, 3], 2, 1),
    ([2, 16, 13, 9], [64, 16, 3, 3], 2, 1),
    ([2, 32, 7, 11], [32, 32, 3, 3], 1, 1),
    ([2, 128, 4, 6], [128, 128, 3, 3], 1, 1),
    ([2, 64, 7, 11], [16, 64, 1, 1], 1, 0),
    ([2, 48, 9, 5], [96, 48, 3, 3], 2, 1),
]

/// Case k's input, weights (seeds `seed` + k and `seed` + 20 + k) and output gradient (`seed` + 40 + k).
func backwardOperands(_ k: Int, seed: UInt64) -> (x: Tensor, w: Tensor, dy: Tensor) {
    let (xs, ws, stride, padding) = wideBackwardCases[k]
    let x = randomTensor(xs, seed: seed + UInt64(k))
    let w = randomTensor(ws, blocked: false, seed: seed + 20 + UInt64(k))
    let os = [xs[0], ws[0], ComputeEngine.convolutionOutput(xs[2], kernel: ws[2], stride: stride, padding: padding),
              ComputeEngine.convolutionOutput(xs[3], kernel: ws[3], stride: stride, padding: padding)]
    return (x, w, randomTensor(os, seed: seed + 40 + UInt64(k)))
}

@Test("Convolution backward equals the Double definition at network widths and odd sizes", arguments: wideBackwardCases.indices)
func convolutionBackwardExact(_ k: Int) {
    let (xs, ws, stride, padding) = wideBackwardCases[k]
    let (x, w, dy) = backwardOperands(k, seed: 21)
    let engine = ComputeEngine()
    _ = engine.convolution(x, weight: w, bias: nil, stride: stride, padding: padding, training: true)
    let dx = engine.convolutionBackwardData(dy, weight: w, inputShape: xs, stride: stride, padding: padding)
    let (dw, _) = engine.convolutionBackwardWeights(x, dy, weightShape: ws, hasBias: false, stride: stride, padding: padding)
    let ref = referenceConvolutionBackward(x.values(), xs, w.values(), ws, dy: dy.values(), stride: stride, padding: padding)
    let eX = Tensor.relativeError(dx.values(), ref.dx), eW = Tensor.relativeError(dw.values(), ref.dw)
    #expect(eX < 1e-5, "\(xs) * \(ws) stride \(stride): dL/dx relative error \(eX) [\(engine.implementations)]")
    #expect(eW < 1e-5, "\(xs) * \(ws) stride \(stride): dL/dw relative error \(eW) [\(engine.implementations)]")
}

/// Inference 3×3 stride-1 convolutions at HRNet's branch widths and odd sizes (partial Winograd tiles), with the
/// residual-sum and ReLU post-ops of a BasicBlock.
let winogradCases: [([Int], Int)] = [([1, 48, 37, 53], 48), ([1, 96, 19, 23], 96), ([2, 192, 9, 13], 192), ([1, 32, 6, 5], 16)]

@Test("Winograd inference convolutions equal the Double definition to float rounding (sum and ReLU post-ops too)",
      arguments: winogradCases.indices)
func winogradConvolution(_ k: Int) {
    let (xs, outC) = winogradCases[k]
    let ws = [outC, xs[1], 3, 3]
    let x = randomTensor(xs, seed: 91 + UInt64(k))
    let w = randomTensor(ws, blocked: false, seed: 92 + UInt64(k))
    let b = randomTensor([outC], blocked: false, seed: 93 + UInt64(k))
    let earlier = randomTensor([xs[0], outC, xs[2], xs[3]], seed: 94 + UInt64(k))
    let engine = ComputeEngine()
    #expect(engine.winogradMaxChannels >= 192, "Winograd is the default up to the 192-channel branch")
    let (ref, _) = referenceConvolution(x.values(), xs, w.values(), ws, bias: b.values(), stride: 1, padding: 1)
    let plain = engine.convolution(x, weight: w, bias: b, padding: 1, constantWeights: true)
    let fused = engine.convolution(x, weight: w, bias: b, padding: 1, constantWeights: true, sumInto: earlier.copy(), relu: true)
    let want = zip(ref, earlier.values()).map { max($0 + $1, 0) }
    let kernels = engine.implementations.keys.joined(separator: "; ")
    // oneDNN's Winograd kernels are AVX-512 ones: elsewhere the request falls back to direct convolution.
    #expect(kernels.contains("wino") || !cpuHasAVX512, "no Winograd kernel chose this shape: \(kernels)")
    #expect(Tensor.relativeError(plain.values(), ref) < 1e-5, "\(xs) → \(outC): \(Tensor.relativeError(plain.values(), ref)) [\(kernels)]")
    #expect(Tensor.relativeError(fused.values(), want) < 1e-5, "\(xs) → \(outC) fused: \(Tensor.relativeError(fused.values(), want))")
    // Off: the direct kernel, same numbers.
    let direct = ComputeEngine()
    direct.winogradMaxChannels = 0
    let d = direct.convolution(x, weight: w, bias: b, padding: 1, constantWeights: true)
    #expect(!direct.implementations.keys.contains { $0.contains("wino") })
    #expect(Tensor.relativeError(d.values(), ref) < 1e-5)
}

@Test("Mixed-precision (bf16) convolution backward stays within bf16 rounding of the Double definition",
      arguments: wideBackwardCases.indices)
func bf16ConvolutionBackward(_ k: Int) {
    let (xs, ws, stride, padding) = wideBackwardCases[k]
    let (x, w, dy) = backwardOperands(k, seed: 121)
    let engine = ComputeEngine()
    let y = engine.convolution(x, weight: w, bias: nil, stride: stride, padding: padding, training: true, bf16: true)
    let dx = engine.convolutionBackwardData(dy, weight: w, inputShape: xs, stride: stride, padding: padding, bf16: true)
    let (dw, _) = engine.convolutionBackwardWeights(x, dy, weightShape: ws, hasBias: false, stride: stride, padding: padding, bf16: true)
    let (refY, _) = referenceConvolution(x.values(), xs, w.values(), ws, bias: nil, stride: stride, padding: padding)
    let ref = referenceConvolutionBackward(x.values(), xs, w.values(), ws, dy: dy.values(), stride: stride, padding: padding)
    // bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per operand); sums of products of two rounded
    // operands stay within about twice that relative to the result's scale.
    let eY = Tensor.relativeError(y.values(), refY), eX = Tensor.relativeError(dx.values(), ref.dx)
    let eW = Tensor.relativeError(dw.values(), ref.dw)
    let kernels = engine.implementations.keys.joined(separator: "; ")
    for (what, e) in [("y", eY), ("dL/dx", eX), ("dL/dw", eW)] {
        #expect(e < 1e-2, "\(xs) * \(ws) stride \(stride): \(what) relative error \(e) [\(kernels)]")
    }
    if engine.bf16Available {
        #expect(kernels.contains("bwd data bf16") && kernels.contains("bwd weights bf16"), "\(kernels)")
        #expect(eX > 0 && eW > 0, "bf16 asked, yet the results are exact: did it run in f32?")
    }
}

@Test("nChw8c activations (AVX2's layout, forced on any CPU): a convolution returns the kernel's nChw8c as it is, takes it as input, and its gradients come back in its layouts — equal to the nChw16c path",
      arguments: convolutionCases.indices)
func nativeBlocks8Convolution(_ k: Int) {
    let (xs, ws, stride, padding, hasBias) = convolutionCases[k]
    let w = randomTensor(ws, blocked: false, seed: 2)
    let b = hasBias ? randomTensor([ws[0]], blocked: false, seed: 3) : nil
    func run(native: Bool) -> (y: Tensor, dx: Tensor?, dw: Tensor?, db: Tensor?, x: Tensor) {
        let engine = ComputeEngine()
        engine.kernelLayouts = true
        engine.forceBlocks8 = true
        engine.nativeBlocks8 = native
        let x = native ? randomTensor(xs, seed: 1).inLayout(.blocked8) : randomTensor(xs, seed: 1)
        let y = engine.convolution(x, weight: w, bias: b, stride: stride, padding: padding, training: true)
        let dy = randomTensor(y.shape, seed: 9).inLayout(y.layout)
        let (dx, dw, db) = engine.convolutionBackward(x, dy, weight: w, hasBias: hasBias, weights: true, data: true,
                                                      stride: stride, padding: padding)
        return (y, dx, dw, db, x)
    }
    let native = run(native: true), reordered = run(native: false)
    #expect(native.y.layout == .blocked8 && reordered.y.layout == .blocked16)
    #expect(native.dx?.layout == .blocked8 && reordered.dx?.layout == .blocked16)
    // The same kernel either way, only without the reorders: the same numbers, bit for bit.
    #expect(native.y.values() == reordered.y.values())
    #expect(native.dx?.values() == reordered.dx?.values())
    #expect(native.dw?.values() == reordered.dw?.values())
    #expect(native.db?.values() == reordered.db?.values())
    let (ref, _) = referenceConvolution(native.x.values(), xs, w.values(), ws, bias: b?.values(), stride: stride, padding: padding)
    #expect(Tensor.relativeError(native.y.values(), ref) < 1e-5)
}

@Test("Layouts convert both ways without changing a value, the channel padding zero (channels not multiples of 8 or 16)",
      arguments: [[2, 20, 5, 3], [1, 8, 4, 4], [1, 3, 2, 5], [2, 33, 3, 2]])
func layoutConversions(_ shape: [Int]) {
    let x = randomTensor(shape, blocked: false, seed: 5)
    for layout in [Layout.blocked8, .blocked16] {
        let b = x.inLayout(layout)
        #expect(b.layout == layout && b.values() == x.values())
        let other = b.inLayout(layout == .blocked8 ? .blocked16 : .blocked8)
        #expect(other.values() == x.values())
        // Padding lanes hold zeros.
        let logical = Set((0..<x.count).map(other.storageOffset(ofLogical:)))
        #expect((0..<other.storageCount).allSatisfy { logical.contains($0) || other.data[$0] == 0 })
        #expect(other.inLayout(.plain).values() == x.values())
    }
}
