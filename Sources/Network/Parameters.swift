import Checkpoints
import Foundation
import Tensor

/// What went wrong building or feeding a network, naming the weight file, tensor or input at fault.
public enum NetworkError: Error, CustomStringConvertible, Equatable {
    case missingParameter(name: String, file: String)
    case shapeMismatch(name: String, expected: [Int], found: [Int], file: String)
    case badInput(String)

    public var description: String {
        switch self {
        case let .missingParameter(name, file):
            "\(file.isEmpty ? "the weights" : file) lack the parameter '\(name)' that this architecture needs"
        case let .shapeMismatch(name, expected, found, file):
            "\(file.isEmpty ? "the weights" : file): '\(name)' has shape \(found), the architecture needs \(expected)"
        case let .badInput(reason): reason
        }
    }
}

/// Every parameter and BatchNorm buffer of a network, by mmsegmentation name, in construction order.
/// Parameters are plain float32 tensors in PyTorch's shapes (conv OIHW, Conv1d [out, in, 1]).
final class ParameterStore {
    enum Initial {
        case zeros, ones
        /// Kaiming normal, fan_out, ReLU gain (mmcv's kaiming_init for HRNet convs).
        case kaimingFanOut
        /// Xavier uniform (the M2MRF constructor).
        case xavierUniform
        case normal(std: Float)
    }

    private(set) var names: [String] = []
    private(set) var tensors: [String: Tensor] = [:]
    /// Trainable parameters (weights and biases), in construction order; the rest are BatchNorm buffers.
    private(set) var trainable: [String] = []
    /// num_batches_tracked of each BatchNorm, by its prefix.
    var batchesTracked: [String: Int] = [:]
    private var random = SplitMix(seed: 0x5EED)
    /// False: parameters stay zero (shape-only stores, e.g. counting parameters, or before loading).
    let initialize: Bool

    init(initialize: Bool = true) { self.initialize = initialize }

    func make(_ name: String, _ shape: [Int], _ initial: Initial, trainable isTrainable: Bool = true) -> Tensor {
        precondition(tensors[name] == nil, "parameter \(name) made twice")
        // Without initialisation the buffer is left untouched (cheap for large shape-only stores; loading fills it).
        let t = Tensor(shape: shape, zeroed: initialize)
        switch initialize ? initial : .zeros {
        case .zeros: break
        case .ones: t.fill(1)
        case .kaimingFanOut:
            let fanOut = shape[0] * shape.dropFirst(2).reduce(1, *)
            let std = (2 / Float(max(fanOut, 1))).squareRoot()
            for i in 0..<t.count { t.data[i] = random.normal() * std }
        case .xavierUniform:
            let receptive = shape.dropFirst(2).reduce(1, *)
            let bound = (6 / Float(shape[0] * receptive + shape[1] * receptive)).squareRoot()
            for i in 0..<t.count { t.data[i] = (random.uniform() * 2 - 1) * bound }
        case let .normal(std):
            for i in 0..<t.count { t.data[i] = random.normal() * std }
        }
        t.requiresGrad = isTrainable
        names.append(name)
        tensors[name] = t
        if isTrainable { trainable.append(name) }
        return t
    }

    /// Copies every parameter and buffer from a weight file, checking names and shapes.
    func load(_ file: TensorFile, fileName: String) throws(NetworkError) {
        for name in names {
            guard let stored = file[name] else { throw .missingParameter(name: name, file: fileName) }
            let t = tensors[name]!
            guard stored.shape == t.shape else {
                throw .shapeMismatch(name: name, expected: t.shape, found: stored.shape, file: fileName)
            }
            let values = stored.floats()
            values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: values.count) }
        }
        for prefix in batchesTracked.keys {
            if let n = file[prefix + ".num_batches_tracked"]?.ints().first { batchesTracked[prefix] = n }
        }
    }

    /// Every parameter and buffer as a weight file (mmseg names; num_batches_tracked as int64 like PyTorch).
    func export() -> TensorFile {
        var out = TensorFile()
        for name in names {
            let t = tensors[name]!
            out.set(name, StoredTensor(floats: t.values(), shape: t.shape))
            if name.hasSuffix(".running_var") {
                let prefix = String(name.dropLast(".running_var".count))
                var n = Int64(batchesTracked[prefix] ?? 0)
                out.set(prefix + ".num_batches_tracked",
                        StoredTensor(dtype: .i64, shape: [], bytes: withUnsafeBytes(of: &n) { Data($0) }))
            }
        }
        return out
    }
}

/// A small deterministic generator for initial weights.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u = max(uniform(), 1e-7), v = uniform()
        return (-2 * logf(u)).squareRoot() * cosf(2 * .pi * v)
    }
}
