// Network: layers and models — HRNetV2, the M2MRF operator (variants A–D), the FCN head — built from a
// `ModelArchitecture`, parameters addressed by their mmsegmentation names; inference and training steps.
import Checkpoints
import Foundation
import Tensor

/// The segmentation network of the official M2MRF code (HRNetV2 backbone, plain or M2MRF fuse layers, FCN head),
/// with its parameters and a oneDNN engine.
///
/// Not thread-safe: one caller at a time. All oneDNN work runs on the model's own long-lived thread (libgomp keeps
/// one OpenMP team per OS thread), whichever thread calls.
public final class SegmentationModel: @unchecked Sendable {
    public let architecture: ModelArchitecture
    let store = ParameterStore()
    let backbone: HRNetBackbone
    let head: FCNHead
    let thread = EngineThread(name: "fundus-screen.network")
    let engine: ComputeEngine
    /// Inference convolutions in bf16 (f32 accumulation), relative errors near 1e-3 instead of 1e-7: about twice as
    /// fast on Zen 4, slower than f32 on Intel CPUs without AMX (measured). Off by default; the parity fixtures need f32.
    public var bf16Inference = false { didSet { for m in ensemble { m.bf16Inference = bf16Inference } } }
    /// Mixed-precision training steps: convolutions forward and backward in bf16 (f32 accumulation), master
    /// weights, BatchNorm statistics, loss and weight gradients in f32, as PyTorch's CPU autocast. Off by default.
    public var bf16Training = false
    /// Training steps keep no activations inside the blocks of the first this-many branches of each HRNet module
    /// and compute them again in backward (gradient checkpointing): the same gradients, less memory, one more
    /// forward pass of those blocks. 0: keep everything. The default, 2, takes a W48 step at batch 2 × 512² from
    /// 3.7 to 2.8 GiB at no measurable cost in time (the blocks' forward is ~10 % of a step; less memory traffic
    /// pays for it).
    public var checkpointBranches = 2

    /// Gradient checkpointing only where the memory it saves matters: 2 branches when a step keeping everything
    /// would hold more than about `budget` bytes of activations, else 0 (for the small W16 at 384² it costs ~9 % of
    /// the step and saves nothing visible: 1.08–1.14 s against 1.18–1.25 s, 0.9 GiB either way, AVX2 machine, paired).
    /// The estimate: ~137 bytes per pixel of the input per channel of the first branch, from `bench --training`'s
    /// "tensors after the forward pass" (W48 at 2 × 512²: 3.23 GiB).
    public static func automaticCheckpointBranches(_ architecture: ModelArchitecture, batch: Int, height: Int, width: Int,
                                                   budget: Double = 1.5 * 1_073_741_824) -> Int {
        let firstBranch = architecture.stages.dropFirst().first?.channels.first ?? 48
        let bytes = 137 * Double(batch * height * width * firstBranch)
        return bytes > budget ? 2 : 0
    }

    /// A model with fresh weights (the reference's initialisation schemes), or the given ones.
    /// `weightsFile` names the source in error messages.
    public init(architecture: ModelArchitecture, weights: TensorFile? = nil, weightsFile: String = "")
        throws(NetworkError) {
        guard architecture.stages.count == 4 else {
            throw .badInput("an HRNetV2 architecture has 4 stages, this one has \(architecture.stages.count)")
        }
        self.architecture = architecture
        backbone = HRNetBackbone(architecture, store)
        head = FCNHead(architecture, store)
        engine = thread.run { ComputeEngine() }
        if let weights { try load(weights, file: weightsFile) }
    }

    /// Replaces every parameter and buffer with the file's (names and shapes must match).
    public func load(_ weights: TensorFile, file: String = "") throws(NetworkError) {
        // On the engine thread, so that no pass runs while the parameters change.
        let result: Result<Void, NetworkError> = thread.run {
            do throws(NetworkError) { try store.load(weights, fileName: file) } catch { return .failure(error) }
            return .success(())
        }
        try result.get()
        invalidateInferenceWeights()
    }

    /// Parameter and buffer names (mmseg state_dict keys, without num_batches_tracked), in construction order.
    public var parameterNames: [String] { store.names }
    /// Names of the trainable parameters (those `trainingStep` returns gradients for).
    public var trainableNames: [String] { store.trainable }

    /// A parameter or buffer by mmseg name (shared storage: writing into it changes the model; call
    /// `invalidateInferenceWeights()` afterwards).
    public func parameter(_ name: String) -> Tensor? { store.tensors[name] }

    /// Forget folded and reordered inference weights after the parameters changed in place.
    public func invalidateInferenceWeights() {
        thread.run {
            forEachConvBN { $0.invalidate() }
            engine.forgetConstantWeights()
        }
    }

    /// The weights as a state dict (mmseg names, BN buffers included).
    public func exportWeights() -> TensorFile {
        var file = store.export()
        if let json = try? JSONEncoder().encode(architecture) {
            file.metadata[ModelWeights.architectureKey] = String(decoding: json, as: UTF8.self)
        }
        return file
    }

    /// Eval-mode logits [N, classes, ⌈H/4⌉, ⌈W/4⌉] (plain NCHW) for a normalised input [N, 3, H, W] (plain NCHW).
    public func predict(_ input: Tensor) throws(NetworkError) -> Tensor {
        try validate(input)
        return thread.run { forward(input, Ops(engine: engine, bf16: bf16Inference)).toPlain() }
    }

    /// Eval-mode probabilities [N, classes, H, W]: sigmoid of the logits resized bilinearly to the input size
    /// (with `ensemble`, the mean of the members' probabilities).
    public func probabilities(_ input: Tensor) throws(NetworkError) -> Tensor {
        let logits = try upsampledLogits(input)
        return thread.run { Ops(engine: engine, bf16: bf16Inference).sigmoid(logits) }
    }

    /// Eval-mode logits resized bilinearly (align_corners = false) to the input size [N, classes, H, W], before the
    /// sigmoid: what the official `inference` resizes once more to the original photograph before its sigmoid.
    /// With `ensemble`: the logit of the mean of this model's and the members' sigmoid probabilities, per channel.
    public func upsampledLogits(_ input: Tensor) throws(NetworkError) -> Tensor {
        try validate(input)
        let logits = thread.run { scaledLogits(input, Ops(engine: engine, bf16: bf16Inference)) }
        guard !ensemble.isEmpty else { return logits }
        var members: [Tensor] = []
        for member in ensemble { members.append(try member.upsampledLogits(input)) }
        Self.meanProbabilityLogits(into: logits, members)
        return logits
    }

    /// Other models whose sigmoid probabilities `probabilities` and `upsampledLogits` average with this model's, with
    /// equal weight (an ensemble, e.g. two recipes or two seeds trained on the same images). Each member runs with its
    /// own weights, `channelScales` and engine thread; a channel is averaged over the models that have it (a member
    /// without the vessel channel leaves it to the others). Members must take the same input (normalisation, scale):
    /// the model card's `ensemble` is how a bundle names them. Empty by default.
    public var ensemble: [SegmentationModel] = []

    /// Writes into `logits` [N, C, H, W] the logit of the mean sigmoid probability of `logits` and each of `others`
    /// ([N, C', H, W], same N, H, W), channel by channel over the tensors that have the channel.
    static func meanProbabilityLogits(into logits: Tensor, _ others: [Tensor]) {
        let plane = logits.h * logits.w
        for n in 0..<logits.n {
            for k in 0..<logits.c {
                var sources = [UnsafePointer<Float>(logits.data + (n * logits.c + k) * plane)]
                for other in others where k < other.c {
                    precondition(other.n == logits.n && other.h == logits.h && other.w == logits.w,
                                 "ensemble member logits \(other.shape) for \(logits.shape)")
                    sources.append(UnsafePointer(other.data + (n * other.c + k) * plane))
                }
                guard sources.count > 1 else { continue }
                writeMeanProbabilityLogit(logits.data + (n * logits.c + k) * plane, sources, count: plane)
            }
        }
    }

    /// `destination[i]` = logit(mean over `sources` of sigmoid(source[i])), in Double, the mean clamped to
    /// [1e-12, 1 − 1e-12] so that the logit stays finite. `destination` may be one of the sources.
    static func writeMeanProbabilityLogit(_ destination: UnsafeMutablePointer<Float>, _ sources: [UnsafePointer<Float>],
                                          count: Int) {
        var mean = [Double](repeating: 0, count: count)
        for source in sources {
            for i in 0..<count { mean[i] += 1 / (1 + exp(-Double(source[i]))) }
        }
        let n = Double(sources.count), floor = 1e-12
        for i in 0..<count {
            let p = min(max(mean[i] / n, floor), 1 - floor)
            destination[i] = Float(log(p / (1 - p)))
        }
    }

    /// Logits at the input size, with the channels of `channelScales` from their own passes.
    private func scaledLogits(_ input: Tensor, _ ops: Ops) -> Tensor {
        let logits = inputSizeLogits(input, ops)
        let readings = channelScales.filter { $0.key < logits.c && !$0.value.isEmpty && $0.value != [1] }
        guard !readings.isEmpty else { return logits }
        // Each other scale once: the input resized (bilinear), the network run on it, the logits brought back to the
        // input size (bilinear).
        var passes: [Double: Tensor] = [:]
        for factor in Set(readings.values.joined()).sorted() where factor != 1 {
            let resized = ops.resizeBilinearPlain(input, height: max(1, Int((Double(input.h) * factor).rounded())),
                                                  width: max(1, Int((Double(input.w) * factor).rounded())))
            passes[factor] = ops.resizeBilinearPlain(inputSizeLogits(resized, ops), height: input.h, width: input.w)
        }
        let plane = input.h * input.w
        for (k, factors) in readings.sorted(by: { $0.key < $1.key }) {
            for n in 0..<input.n {
                let at = (n * logits.c + k) * plane
                if factors.count == 1 {
                    // One other scale: that pass's logits in place of the first pass's.
                    (logits.data + at).update(from: passes[factors[0]]!.data + at, count: plane)
                    continue
                }
                // Several: the mean of the sigmoid probabilities at those scales (mmsegmentation's multi-scale
                // test, per class), written back as its logit so the sigmoid downstream gives that mean.
                let sources = factors.map { UnsafePointer<Float>(($0 == 1 ? logits.data : passes[$0]!.data) + at) }
                Self.writeMeanProbabilityLogit(logits.data + at, sources, count: plane)
            }
        }
        return logits
    }

    /// Output channels read at other input scales (channel → factors): `upsampledLogits` and `probabilities` run the
    /// network once more on the input resized by each factor other than 1. One factor: the channel is that pass's
    /// (e.g. microaneurysms, a few pixels across, at 1.5×). Several: the mean of the channel's probabilities at those
    /// scales, 1 meaning the model's own pass (e.g. [1, 0.75]). Empty by default; a model card's `channel_scales` sets it.
    public var channelScales: [Int: [Double]] = [:] {
        didSet { for m in ensemble { m.channelScales = channelScales.filter { $0.key < m.architecture.numClasses } } }
    }

    /// The forward pass's logits resized bilinearly to the input's height and width.
    private func inputSizeLogits(_ input: Tensor, _ ops: Ops) -> Tensor {
        ops.resizeBilinearPlain(forward(input, ops).toPlain(), height: input.h, width: input.w)
    }

    /// Logits and probabilities of one eval pass.
    public func logitsAndProbabilities(_ input: Tensor) throws(NetworkError) -> (logits: Tensor, probabilities: Tensor) {
        try validate(input)
        return thread.run {
            let ops = Ops(engine: engine, bf16: bf16Inference)
            let logits = forward(input, ops).toPlain()
            return (logits, ops.sigmoid(ops.resizeBilinearPlain(logits, height: input.h, width: input.w)))
        }
    }

    /// One training-mode pass (BatchNorm on batch statistics, running statistics updated) with the bdice loss on
    /// labels [N·H·W] (0 background, c+1 for class c), and dL/dparameter for every trainable parameter.
    public func trainingStep(input: Tensor, labels: [Int32]) throws(NetworkError)
        -> (loss: Float, gradients: [String: Tensor]) {
        try validate(input)
        guard labels.count == input.n * input.h * input.w else {
            throw .badInput("\(labels.count) labels for an input of \(input.shape): want one per pixel")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) > architecture.numClasses }) {
            throw .badInput("label value \(bad) outside 0…\(architecture.numClasses)")
        }
        let n = input.n, h = input.h, w = input.w, channels = architecture.numClasses
        let bytes = labels.map { UInt8($0) }
        do {
            return try trainingStep(input: input) { logits in
                let (loss, gradient) = try BinaryDiceLoss.evaluate(
                    logits: logits.values(), labels: bytes, annotated: [Bool](repeating: true, count: n * channels),
                    batch: n, height: h, width: w)
                return (loss, Tensor(gradient, shape: logits.shape))
            }
        } catch let error as NetworkError {
            throw error
        } catch {
            throw .badInput("\(error)")
        }
    }

    /// One training-mode pass with a loss of the caller's: `loss` receives the logits resized (bilinear,
    /// align_corners False) to the input size, plain [N, classes, H, W], and returns the loss and dL/dlogits of the
    /// same shape. Returns the loss and dL/dparameter for every trainable parameter.
    public func trainingStep(input: Tensor, loss: (Tensor) throws -> (Float, Tensor)) throws
        -> (loss: Float, gradients: [String: Tensor]) {
        try validate(input)
        var failure: Error?
        let result = step(input) { ops, resized in
            do {
                let (value, gradient) = try loss(resized.toPlain())
                guard gradient.shape == resized.shape else {
                    throw NetworkError.badInput("loss gradient \(gradient.shape) for logits \(resized.shape)")
                }
                // A one-element stand-in for the loss whose backward hands the caller's gradient to the logits.
                let out = Tensor([value], shape: [1])
                out.requiresGrad = true
                ops.tape?.record { ops.tape?.accumulate(resized, gradient) }
                return out
            } catch {
                failure = error
                return Tensor([Float.nan], shape: [1])
            }
        }
        if let failure { throw failure }
        return result
    }

    /// Forward in training mode, resize of the logits to the input size, `lossOf` (which records its own backward),
    /// backward, gradients by parameter name.
    private func step(_ input: Tensor, _ lossOf: (Ops, Tensor) -> Tensor) -> (loss: Float, gradients: [String: Tensor]) {
        let result: (Float, [String: Tensor]) = thread.run {
            let tape = Tape()
            let ops = Ops(engine: engine, tape: tape, training: true, bf16: bf16Training,
                          checkpointBranches: checkpointBranches)
            let logits = forward(input, ops)
            let resized = ops.resizeBilinear(logits, height: input.h, width: input.w)
            let loss = lossOf(ops, resized)
            if engine.profiling {
                tape.profile = [:]
                engine.tensorBytesAfterForward = TensorMemory.liveBytes
            }
            tape.backward(from: loss)
            for (kind, seconds) in tape.profile ?? [:] { engine.profile["backward " + kind, default: 0] += seconds }
            var grads: [String: Tensor] = [:]
            for name in store.trainable {
                let p = store.tensors[name]!
                grads[name] = tape.gradient(p) ?? p.zerosLike()
            }
            return (loss.data[0], grads)
        }
        invalidateInferenceWeights()  // running statistics moved
        return result
    }

    /// Runs `body` on the model's engine thread with its engine (the bench's timing and profiling).
    public func withEngine<T>(_ body: (ComputeEngine) -> T) -> T { thread.run { body(engine) } }

    /// Stem, stages, head.
    func forward(_ input: Tensor, _ ops: Ops) -> Tensor {
        head(backbone(input, ops), ops)
    }

    private func validate(_ input: Tensor) throws(NetworkError) {
        guard input.shape.count == 4, input.c == 3, input.n >= 1, input.h >= 4, input.w >= 4 else {
            throw .badInput("the network takes [N, 3, H, W] with H, W ≥ 4, got \(input.shape)")
        }
    }

    private func forEachConvBN(_ visit: (ConvBN) -> Void) {
        visit(backbone.stem1)
        visit(backbone.stem2)
        for b in backbone.layer1 { visit(b.reduce); visit(b.spatial); visit(b.expand); b.downsample.map(visit) }
        for row in backbone.transitions {
            for t in row {
                if case let .conv(u) = t { visit(u) }
                if case let .newBranch(steps) = t { for case let .conv(u) in steps { visit(u) } }
            }
        }
        for modules in backbone.stages {
            for m in modules {
                for blocks in m.branches { for b in blocks { visit(b.first); visit(b.second); b.downsample.map(visit) } }
                for row in m.fuse {
                    for path in row {
                        switch path {
                        case let .bilinearUp(u, _)?: visit(u)
                        case let .m2mrfUp(u, _)?: visit(u)
                        case let .down(steps)?: for case let .conv(u) in steps { visit(u) }
                        case nil: break
                        }
                    }
                }
            }
        }
        visit(head.conv)
    }
}
