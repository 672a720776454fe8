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
