import Foundation
import Testing
@testable import Tensor

/// Whether this CPU has AVX-512 (oneDNN's nChw16c and Winograd kernels need it; AVX2 kernels block channels by 8).
let cpuHasAVX512: Bool = {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return true }
    return info.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").contains("avx512f") ?? true
}()

@Test("No convolution of the network's shapes falls to oneDNN's reference kernel, forward or backward, on this CPU")
func noReferenceKernels() {
    let engine = ComputeEngine()
    let first = randomTensor([1, 3, 21, 17], blocked: false, seed: 301)
    _ = engine.convolution(first, weight: randomTensor([16, 3, 3, 3], blocked: false, seed: 302), bias: nil, stride: 2, padding: 1)
    for k in wideBackwardCases.indices {
        let (xs, ws, stride, padding) = wideBackwardCases[k]
        let (x, w, dy) = backwardOperands(k, seed: 311)
        _ = engine.convolution(x, weight: w, bias: nil, stride: stride, padding: padding, constantWeights: true)
        _ = engine.convolution(x, weight: w, bias: nil, stride: stride, padding: padding, training: true)
        _ = engine.convolutionBackwardData(dy, weight: w, inputShape: xs, stride: stride, padding: padding)
        _ = engine.convolutionBackwardWeights(x, dy, weightShape: ws, hasBias: false, stride: stride, padding: padding)
    }
    let kernels = engine.implementations.keys.sorted()
    #expect(!kernels.isEmpty)
    #expect(!kernels.contains { $0.hasSuffix(" ref:any") }, "reference kernels chosen (100× slower): \(kernels.filter { $0.hasSuffix(" ref:any") })")
    if !cpuHasAVX512 {
        #expect(kernels.allSatisfy { $0.contains("(kernel layouts)") }, "AVX2: nChw16c kernels listed \(kernels)")
    }
}

@Test("Convolutions in the kernel's own layouts (the path of CPUs without AVX-512) equal the Double definition, forward with sum and ReLU, backward",
      arguments: wideBackwardCases.indices)
func kernelLayoutConvolutions(_ k: Int) {
    let (xs, ws, stride, padding) = wideBackwardCases[k]
    let (x, w, dy) = backwardOperands(k, seed: 331)
    let b = randomTensor([ws[0]], blocked: false, seed: 399)
    let engine = ComputeEngine()
    engine.kernelLayouts = true
    let earlier = randomTensor(dy.shape, seed: 398)
    let fused = engine.convolution(x, weight: w, bias: b, stride: stride, padding: padding, constantWeights: true,
                                   sumInto: earlier.copy(), relu: true)
    _ = engine.convolution(x, weight: w, bias: nil, stride: stride, padding: padding, training: true)
    let dx = engine.convolutionBackwardData(dy, weight: w, inputShape: xs, stride: stride, padding: padding)
    let (dw, _) = engine.convolutionBackwardWeights(x, dy, weightShape: ws, hasBias: false, stride: stride, padding: padding)
    let (refY, _) = referenceConvolution(x.values(), xs, w.values(), ws, bias: b.values(), stride: stride, padding: padding)
    let want = zip(refY, earlier.values()).map { max($0 + $1, 0) }
    let ref = referenceConvolutionBackward(x.values(), xs, w.values(), ws, dy: dy.values(), stride: stride, padding: padding)
    let kernels = engine.implementations.keys.sorted()
    #expect(kernels.allSatisfy { $0.contains("(kernel layouts)") }, "\(kernels)")
    let eY = Tensor.relativeError(fused.values(), want)
    let eX = Tensor.relativeError(dx.values(), ref.dx), eW = Tensor.relativeError(dw.values(), ref.dw)
    for (what, e) in [("relu(conv + bias + earlier)", eY), ("dL/dx", eX), ("dL/dw", eW)] {
        #expect(e < 1e-5, "\(xs) * \(ws) stride \(stride): \(what) relative error \(e) [\(kernels)]")
    }
}

@Test("Both gradients in one call (dL/dy reordered once) equal the two separate calls bit for bit, in the kernels' layouts and in nChw16c; weights only and data only too",
      arguments: wideBackwardCases.indices, [true, false])
func combinedBackward(_ k: Int, kernelLayouts: Bool) {
    let (xs, ws, stride, padding) = wideBackwardCases[k]
    let (x, w, dy) = backwardOperands(k, seed: 351)
    let engine = ComputeEngine()
    engine.kernelLayouts = kernelLayouts
    _ = engine.convolution(x, weight: w, bias: nil, stride: stride, padding: padding, training: true)
    let dx = engine.convolutionBackwardData(dy, weight: w, inputShape: xs, stride: stride, padding: padding)
    let (dw, db) = engine.convolutionBackwardWeights(x, dy, weightShape: ws, hasBias: true, stride: stride, padding: padding)
    let both = engine.convolutionBackward(x, dy, weight: w, hasBias: true, weights: true, data: true, stride: stride, padding: padding)
    #expect(both.dx?.values() == dx.values() && both.dw?.values() == dw.values() && both.db?.values() == db?.values(),
            "\(xs) * \(ws) stride \(stride)")
    let weightsOnly = engine.convolutionBackward(x, dy, weight: w, hasBias: false, weights: true, data: false, stride: stride, padding: padding)
    #expect(weightsOnly.dx == nil && weightsOnly.db == nil && weightsOnly.dw?.values() == dw.values())
    let dataOnly = engine.convolutionBackward(x, dy, weight: w, hasBias: false, weights: false, data: true, stride: stride, padding: padding)
    #expect(dataOnly.dw == nil && dataOnly.dx?.values() == dx.values())
    #expect(dy.values() == backwardOperands(k, seed: 351).dy.values(), "dL/dy left as it was")
}

/// Inference convolution chains (`convolutionChain`): a residual block's layers and the head's 1×1 and classifier.
/// Each case: input shape, the steps (weight shape, stride, padding, ReLU), and the residual: none, x itself, or
/// another tensor summed into in place.
private enum ChainResidual { case none, input, other }

/// How a chain test runs the engine: nChw16c kernels; the kernels' own layouts (nChw8c on AVX2, nChw16c on
/// AVX-512); or nChw8c forced on any CPU with the input and residual handed over in nChw8c too (the engine then
/// returns nChw8c: `nativeBlocks8`).
enum ChainMode: CaseIterable, Sendable { case blocked16, kernelLayouts, blocks8 }

private func chainEngine(_ mode: ChainMode) -> ComputeEngine {
    let engine = ComputeEngine()
    engine.kernelLayouts = mode != .blocked16
    engine.forceBlocks8 = mode == .blocks8
    return engine
}

/// The sum of |padding lanes| of a blocked tensor (oneDNN assumes them zero).
private func paddingLanes(_ y: Tensor) -> Double {
    let blocks = y.channelBlocks, plane = y.h * y.w, B = y.layout.blockWidth
    var padding = 0.0
    for b in 0..<y.n { for ch in y.c..<(blocks * B) { for i in 0..<plane {
        padding += Double(abs(y.data[((b * blocks + ch / B) * plane + i) * B + ch % B]))
    } } }
    return padding
}
private let chainCases: [(x: [Int], steps: [([Int], Int, Int, Bool)], residual: ChainResidual)] = [
    ([1, 16, 13, 11], [([16, 16, 3, 3], 1, 1, true), ([16, 16, 3, 3], 1, 1, true)], .input),            // BasicBlock
    ([2, 32, 9, 7], [([32, 32, 3, 3], 1, 1, true), ([32, 32, 3, 3], 1, 1, true)], .input),              // wider, batch 2
    ([1, 64, 9, 10], [([16, 64, 1, 1], 1, 0, true), ([16, 16, 3, 3], 1, 1, true), ([64, 16, 1, 1], 1, 0, true)], .input),  // Bottleneck
    ([1, 16, 9, 10], [([8, 16, 1, 1], 1, 0, true), ([8, 8, 3, 3], 1, 1, true), ([64, 8, 1, 1], 1, 0, true)], .other),     // with downsample
    ([1, 48, 7, 9], [([32, 48, 1, 1], 1, 0, true), ([5, 32, 1, 1], 1, 0, false)], .none),               // head and conv_seg
    ([1, 16, 12, 12], [([32, 16, 3, 3], 2, 1, true), ([32, 32, 3, 3], 1, 1, false)], .none),            // stride 2
    ([1, 3, 17, 15], [([16, 3, 3, 3], 2, 1, true), ([16, 16, 3, 3], 2, 1, true)], .none),               // the stem (plain input)
]

@Test("Inference convolution chains (residual blocks, the head) equal the Double definition step by step, in the kernels' layouts, in nChw16c and from and to nChw8c; the input is left as it was",
      arguments: chainCases.indices, ChainMode.allCases)
func convolutionChains(_ k: Int, mode: ChainMode) {
    let c = chainCases[k]
    let blocked = c.x[1] != 3
    let x16 = randomTensor(c.x, blocked: blocked, seed: 501 + UInt64(k))
    let x = mode == .blocks8 && blocked ? x16.inLayout(.blocked8) : x16
    let xBefore = x.values()
    var steps: [ConvolutionStep] = []
    var reference = x.values(), shape = c.x
    for (i, (ws, stride, padding, relu)) in c.steps.enumerated() {
        let w = randomTensor(ws, blocked: false, seed: 520 + UInt64(10 * k + i), scale: 0.3)
        let b = randomTensor([ws[0]], blocked: false, seed: 560 + UInt64(10 * k + i))
        steps.append(ConvolutionStep(weight: w, bias: b, stride: stride, padding: padding, relu: relu))
        var (y, ys) = referenceConvolution(reference, shape, w.values(), ws, bias: b.values(), stride: stride, padding: padding)
        if i == c.steps.count - 1 {
            switch c.residual {
            case .none: break
            case .input: y = zip(y, xBefore).map { $0 + $1 }
            case .other: y = zip(y, randomTensor(ys, seed: 599).values()).map { $0 + $1 }
            }
        }
        reference = relu ? y.map { max($0, 0) } : y
        shape = ys
    }
    let engine = chainEngine(mode)
    let residual: Tensor? = switch c.residual {
    case .none: nil
    case .input: x
    case .other: mode == .blocks8 ? randomTensor(shape, seed: 599).inLayout(.blocked8) : randomTensor(shape, seed: 599)
    }
    let y = engine.convolutionChain(x, steps, residual: residual, intoResidual: c.residual == .other)
    if c.residual == .other { #expect(y === residual, "the result goes into the residual") }
    #expect(y.shape == shape && y.layout.isBlocked)
    switch mode {
    case .blocked16: if cpuHasAVX512 { #expect(y.layout == .blocked16) }   // AVX2 falls back to its nChw8c kernels
    case .blocks8: #expect(y.layout == .blocked8, "case \(k): nChw8c kernels' result returned as nChw8c")
    case .kernelLayouts: break
    }
    let e = Tensor.relativeError(y.values(), reference)
    #expect(e < 1e-5, "case \(k) \(mode): relative error \(e) [\(engine.implementations.keys.sorted())]")
    #expect(x.values() == xBefore, "case \(k): the chain changed its input")
    #expect(paddingLanes(y) == 0, "case \(k): padding channels hold \(paddingLanes(y))")
    if mode != .blocked16 { #expect(engine.implementations.keys.allSatisfy { $0.contains("(kernel layouts)") }) }
    // The same chain with the engine returning nChw16c (`nativeBlocks8` off) gives the same numbers bit for bit.
    if mode == .blocks8 {
        let other = chainEngine(.blocks8)
        other.nativeBlocks8 = false
        let again: Tensor? = switch c.residual {
        case .none: nil
        case .input: x16
        case .other: randomTensor(shape, seed: 599)
        }
        let z = other.convolutionChain(x16, steps, residual: again, intoResidual: c.residual == .other)
        #expect(z.layout == .blocked16 && z.values() == y.values(), "case \(k): nChw8c and nChw16c chains differ")
    }
}

@Test("Branches of residual blocks as one chain equal the Double definition block by block, in the kernels' layouts, in nChw16c and from and to nChw8c",
      arguments: [([1, 16, 11, 13], 2), ([2, 32, 7, 6], 3), ([1, 64, 5, 4], 1), ([1, 24, 6, 5], 2)], ChainMode.allCases)
func residualBlockChains(_ c: ([Int], Int), mode: ChainMode) {
    let (xs, count) = c
    let channels = xs[1]
    let x16 = randomTensor(xs, seed: 701)
    let x = mode == .blocks8 ? x16.inLayout(.blocked8) : x16
    let xBefore = x.values()
    var blocks: [[ConvolutionStep]] = [], reference = xBefore
    for b in 0..<count {
        var steps: [ConvolutionStep] = [], h = reference
        for i in 0..<2 {
            let seed = UInt64(710 + 10 * b + i)
            let w = randomTensor([channels, channels, 3, 3], blocked: false, seed: seed, scale: 0.2)
            let bias = randomTensor([channels], blocked: false, seed: seed + 100)
            steps.append(ConvolutionStep(weight: w, bias: bias, stride: 1, padding: 1, relu: true))
            var (y, _) = referenceConvolution(h, xs, w.values(), w.shape, bias: bias.values(), stride: 1, padding: 1)
            if i == 1 { y = zip(y, reference).map { $0 + $1 } }
            h = y.map { max($0, 0) }
        }
        blocks.append(steps)
        reference = h
    }
    let engine = chainEngine(mode)
    let y = engine.residualBlocksChain(x, blocks)
    let e = Tensor.relativeError(y.values(), reference)
    #expect(e < 1e-5, "\(xs), \(count) blocks, \(mode): relative error \(e)")
    #expect(x.values() == xBefore, "the chain changed its input")
    #expect(paddingLanes(y) == 0, "padding channels hold \(paddingLanes(y))")
    if mode == .blocks8 {
        #expect(y.layout == .blocked8, "nChw8c kernels' result returned as nChw8c")
        let other = chainEngine(.blocks8)
        other.nativeBlocks8 = false
        let z = other.residualBlocksChain(x16, blocks)
        #expect(z.layout == .blocked16 && z.values() == y.values(), "nChw8c and nChw16c chains differ")
    }
}
