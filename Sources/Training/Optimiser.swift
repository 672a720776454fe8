import Foundation

/// mmcv's `PolyLrUpdaterHook` by iteration: `lr = (lr0 − min)·(1 − it/max)^power + min`, with `it` the 0-based
/// index of the step about to be taken (the first step uses lr0). Official: lr0 0.01, min 1e-4, power 0.9.
public struct PolySchedule: Codable, Sendable, Equatable {
    public var baseLearningRate: Double
    public var minimumLearningRate: Double
    public var power: Double
    public var maxIterations: Int

    public init(baseLearningRate: Double = 0.01, minimumLearningRate: Double = 1e-4, power: Double = 0.9, maxIterations: Int) {
        self.baseLearningRate = baseLearningRate
        self.minimumLearningRate = minimumLearningRate
        self.power = power
        self.maxIterations = maxIterations
    }

    public func learningRate(at iteration: Int) -> Double {
        let progress = min(max(Double(iteration) / Double(max(maxIterations, 1)), 0), 1)
        return (baseLearningRate - minimumLearningRate) * pow(1 - progress, power) + minimumLearningRate
    }
}

/// SGD with momentum and L2 weight decay, with PyTorch's semantics (dampening 0, no Nesterov), on named float32
/// tensors:
///
///     d = g + wd·p;   buf = m·buf + d   (buf = d at a tensor's first step);   p −= lr·buf
///
/// The official config applies it to every parameter, BN weights and biases included (no paramwise settings).
/// `momentumBuffers` is part of the training state: a resumed run must carry it on, not restart it at zero.
public struct SGD: Sendable, Equatable {
    public var momentum: Float
    public var weightDecay: Float
    public var momentumBuffers: [String: [Float]]

    public init(momentum: Float = 0.9, weightDecay: Float = 5e-4, momentumBuffers: [String: [Float]] = [:]) {
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.momentumBuffers = momentumBuffers
    }

    /// One step on every tensor of `parameters` named in `gradients`. A gradient whose size differs from its tensor,
    /// or names no tensor, is refused before anything changes.
    public mutating func step(_ parameters: inout ModelState, gradients: [String: [Float]], learningRate: Double) throws(TrainingError) {
        for (name, g) in gradients {
            guard let p = parameters[name] else {
                throw TrainingError(.optimiser, "gradient for '\(name)', which the model does not have")
            }
            guard p.values.count == g.count else {
                throw TrainingError(.optimiser, "gradient for '\(name)' has \(g.count) values, the tensor \(p.values.count)")
            }
        }
        let lr = Float(learningRate), m = momentum, wd = weightDecay
        for name in parameters.names {
            guard let g = gradients[name] else { continue }
            var buf = momentumBuffers.removeValue(forKey: name)
            parameters.modify(name) { p in
                let first = buf == nil
                if first { buf = [Float](repeating: 0, count: p.count) }
                buf!.withUnsafeMutableBufferPointer { b in
                    p.withUnsafeMutableBufferPointer { p in
                        g.withUnsafeBufferPointer { g in
                            for i in 0..<p.count {
                                let d = g[i] + wd * p[i]
                                b[i] = first ? d : m * b[i] + d
                                p[i] -= lr * b[i]
                            }
                        }
                    }
                }
            }
            momentumBuffers[name] = buf
        }
    }
}

/// Sums the gradients of several micro-batches and hands back their mean, so that k micro-batches of B images make
/// one optimiser step on a batch of k·B (the official effective batch is 4: 1 image on each of 4 GPUs).
/// With the per-image mean of the bdice loss this is the gradient of the big batch, up to float summation order;
/// BN statistics are still those of each micro-batch, as with unsynchronised BN.
public struct GradientAccumulator: Sendable {
    public private(set) var sums: [String: [Float]] = [:]
    public private(set) var count = 0
    public private(set) var lossSum: Double = 0

    public init() {}

    public mutating func add(_ gradients: [String: [Float]], loss: Float) throws(TrainingError) {
        for (name, g) in gradients {
            if let s = sums[name], s.count != g.count {
                throw TrainingError(.optimiser, "gradient for '\(name)' changed size from \(s.count) to \(g.count) between micro-batches")
            }
        }
        for (name, g) in gradients {
            if var s = sums.removeValue(forKey: name) {
                for i in 0..<s.count { s[i] += g[i] }
                sums[name] = s
            } else {
                sums[name] = g
            }
        }
        count += 1
        lossSum += Double(loss)
    }

    /// The mean gradient and the mean loss of the micro-batches added so far.
    public func mean() -> (gradients: [String: [Float]], loss: Float) {
        guard count > 1 else { return (sums, Float(lossSum)) }
        let k = Float(count)
        return (sums.mapValues { $0.map { $0 / k } }, Float(lossSum / Double(count)))
    }
}
