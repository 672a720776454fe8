import Tensor

/// BatchNorm2d (mmseg `SyncBN` behaves the same on one process): weight, bias, running_mean, running_var.
final class BatchNorm {
    let prefix: String
    let weight, bias, runningMean, runningVar: Tensor
    let store: ParameterStore

    init(_ prefix: String, _ channels: Int, _ store: ParameterStore) {
        self.prefix = prefix
        self.store = store
        weight = store.make(prefix + ".weight", [channels], .ones)
        bias = store.make(prefix + ".bias", [channels], .zeros)
        runningMean = store.make(prefix + ".running_mean", [channels], .zeros, trainable: false)
        runningVar = store.make(prefix + ".running_var", [channels], .ones, trainable: false)
        store.batchesTracked[prefix] = 0
    }

    /// y = [relu](bn(x) [+ residual]).
    func callAsFunction(_ x: Tensor, _ ops: Ops, residual: Tensor? = nil, relu: Bool = false) -> Tensor {
        if ops.training && !ops.replaying { store.batchesTracked[prefix, default: 0] += 1 }
        return ops.batchNorm(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                             residual: residual, relu: relu)
    }

    /// Per-channel (scale, shift) of the inference transform y = scale·x + shift.
    func inferenceAffine() -> ([Float], [Float]) {
        let c = weight.count
        var scale = [Float](repeating: 0, count: c), shift = [Float](repeating: 0, count: c)
        for i in 0..<c {
            scale[i] = weight.data[i] / (runningVar.data[i] + 1e-5).squareRoot()
            shift[i] = bias.data[i] - runningMean.data[i] * scale[i]
        }
        return (scale, shift)
    }
}

/// A convolution followed by BatchNorm and optionally ReLU: the unit HRNet is made of.
/// For inference the BatchNorm is folded into the convolution's weights and bias, and ReLU (and a residual sum)
/// run as oneDNN post-ops.
final class ConvBN {
    let weight: Tensor
    let bn: BatchNorm
    let stride, padding: Int
    let relu: Bool
    /// The folded BatchNorm's bias (inference); the folded weights are made only when the engine reorders them
    /// into its cache, so that the model does not hold a third copy of its weights.
    private var foldedBias: Tensor?

    /// conv: `<convName>.weight` [out, in, k, k] without bias; bn: `<bnName>.*`.
    init(conv convName: String, bn bnName: String, in inC: Int, out outC: Int, kernel: Int, stride: Int = 1,
         relu: Bool, _ store: ParameterStore) {
        weight = store.make(convName + ".weight", [outC, inC, kernel, kernel], .kaimingFanOut)
        bn = BatchNorm(bnName, outC, store)
        self.stride = stride
        padding = kernel / 2
        self.relu = relu
    }

    /// Drops the folded bias (after loading new weights; the engine forgets its reordered weights at the same time).
    func invalidate() { foldedBias = nil }

    /// y = [relu](bn(conv(x)) [+ residual]). `consumingResidual`: the residual is a fresh tensor no one else reads
    /// (a downsample's output), so inference sums into it in place instead of into a copy.
    func callAsFunction(_ x: Tensor, _ ops: Ops, residual: Tensor? = nil, consumingResidual: Bool = false) -> Tensor {
        if ops.inference {
            return ops.convChain(x, [inferenceStep(ops)], residual: residual, intoResidual: consumingResidual)
        }
        return bn(ops.conv(x, weight, stride: stride, padding: padding), ops, residual: residual, relu: relu)
    }

    /// The layer as one inference convolution: BatchNorm folded in, ReLU as a post-op.
    func inferenceStep(_ ops: Ops) -> ConvolutionStep {
        let bias = foldedBias ?? Tensor(bn.inferenceAffine().1, shape: [weight.shape[0]])
        foldedBias = bias
        // The parameter is the key of the engine's reordered copy; the folded values are made only for it.
        return ConvolutionStep(weight: weight, bias: bias, stride: stride, padding: padding, relu: relu, weightValues: { [self] in
            ops.engine.timed("setup: fold BatchNorm") { foldedWeights() }
        })
    }

    /// The convolution's weights with the BatchNorm's inference scale folded in: w[o] · γ[o] / √(σ²[o] + ε).
    private func foldedWeights() -> Tensor {
        let (scale, _) = bn.inferenceAffine()
        let w = weight.copy()
        let per = weight.count / weight.shape[0]
        for o in 0..<weight.shape[0] { for i in 0..<per { w.data[o * per + i] *= scale[o] } }
        return w
    }
}

/// A residual block: its layers up to the last, then the last ConvBN with the shortcut (the input, or its
/// downsample's projection) summed in before the ReLU.
protocol ResidualBlock {
    /// 1×1 conv-BN of the input where the channels change (`makeDownsample`).
    var downsample: ConvBN? { get }
    /// The ConvBN the shortcut is added to.
    var last: ConvBN { get }
    /// The layers before `last`.
    func body(_ x: Tensor, _ ops: Ops) -> Tensor
    /// Every layer but the downsample, in order (`last` at the end).
    var layers: [ConvBN] { get }
}

extension ResidualBlock {
    /// mmseg's `<prefix>.downsample.0/1` (1×1, no ReLU) from `inC` to `outC` channels; nil where they are equal.
    static func makeDownsample(_ prefix: String, in inC: Int, out outC: Int, _ store: ParameterStore) -> ConvBN? {
        inC == outC ? nil
            : ConvBN(conv: prefix + ".downsample.0", bn: prefix + ".downsample.1", in: inC, out: outC, kernel: 1,
                     relu: false, store)
    }

    /// The shortcut first (a downsample's fresh output is summed into in place), then the body and the last layer.
    /// Inference runs the layers as one convolution chain (their intermediate results in the kernels' layout).
    func callAsFunction(_ x: Tensor, _ ops: Ops) -> Tensor {
        let identity = downsample.map { $0(x, ops) } ?? x
        if ops.inference {
            return ops.convChain(x, layers.map { $0.inferenceStep(ops) }, residual: identity, intoResidual: downsample != nil)
        }
        return last(body(x, ops), ops, residual: identity, consumingResidual: downsample != nil)
    }
}

extension Array where Element: ResidualBlock {
    /// Inference: the blocks in order, those after the last one with a downsample as one convolution chain
    /// (`Ops.residualBlocks`: their input and result reordered for the kernels once, not twice a block).
    func inferenceChain(_ x: Tensor, _ ops: Ops) -> Tensor {
        let split = (lastIndex { $0.downsample != nil }).map { $0 + 1 } ?? 0
        let h = self[..<split].reduce(x) { h, block in block(h, ops) }
        let rest = self[split...].map { $0.layers.map { $0.inferenceStep(ops) } }
        return rest.isEmpty ? h : ops.residualBlocks(h, rest)
    }
}

/// mmseg's BasicBlock: conv3×3-BN-ReLU, conv3×3-BN, + input, ReLU (no downsample in HRNet's BASIC stages).
final class BasicBlock: ResidualBlock {
    let first, second: ConvBN
    let downsample: ConvBN?

    init(_ prefix: String, in inC: Int, planes: Int, _ store: ParameterStore) {
        first = ConvBN(conv: prefix + ".conv1", bn: prefix + ".bn1", in: inC, out: planes, kernel: 3, relu: true, store)
        second = ConvBN(conv: prefix + ".conv2", bn: prefix + ".bn2", in: planes, out: planes, kernel: 3, relu: true, store)
        downsample = Self.makeDownsample(prefix, in: inC, out: planes, store)
    }

    var last: ConvBN { second }
    var layers: [ConvBN] { [first, second] }
    func body(_ x: Tensor, _ ops: Ops) -> Tensor { first(x, ops) }
}

/// mmseg's Bottleneck (expansion 4): 1×1 reduce, 3×3, 1×1 expand, + (downsampled) input, ReLU.
final class Bottleneck: ResidualBlock {
    static let expansion = 4
    let reduce, spatial, expand: ConvBN
    let downsample: ConvBN?

    init(_ prefix: String, in inC: Int, planes: Int, _ store: ParameterStore) {
        let out = planes * Self.expansion
        reduce = ConvBN(conv: prefix + ".conv1", bn: prefix + ".bn1", in: inC, out: planes, kernel: 1, relu: true, store)
        spatial = ConvBN(conv: prefix + ".conv2", bn: prefix + ".bn2", in: planes, out: planes, kernel: 3, relu: true, store)
        expand = ConvBN(conv: prefix + ".conv3", bn: prefix + ".bn3", in: planes, out: out, kernel: 1, relu: true, store)
        downsample = Self.makeDownsample(prefix, in: inC, out: out, store)
    }

    var last: ConvBN { expand }
    var layers: [ConvBN] { [reduce, spatial, expand] }
    func body(_ x: Tensor, _ ops: Ops) -> Tensor { spatial(reduce(x, ops), ops) }
}
