import Checkpoints
import Foundation

/// One float32 tensor of a model: shape (row-major) and values.
public struct NamedTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
    }

    public init(zeros shape: [Int]) { self.init(shape: shape, values: [Float](repeating: 0, count: shape.reduce(1, *))) }
}

/// Every tensor that defines a model — parameters and buffers such as BN running statistics — by mmsegmentation name,
/// in a stable order. This is what a checkpoint saves and what the optimiser updates (its trainable subset).
public struct ModelState: Sendable, Equatable {
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: NamedTensor] = [:]

    public init() {}

    public subscript(name: String) -> NamedTensor? {
        get { tensors[name] }
        set {
            if let newValue {
                if tensors[name] == nil { names.append(name) }
                tensors[name] = newValue
            } else if tensors.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    /// Changes the values of an existing tensor in place (no copy of the other tensors).
    public mutating func modify(_ name: String, _ body: (inout [Float]) throws -> Void) rethrows {
        guard tensors[name] != nil else { return }
        try body(&tensors[name]!.values)
    }

    /// Adds the state to a weight file, float32 tensors under `prefix + name`.
    public func add(to file: inout TensorFile, prefix: String = "") {
        for name in names {
            guard let t = tensors[name] else { continue }
            file.set(prefix + name, StoredTensor(floats: t.values, shape: t.shape))
        }
    }

    /// The tensors of a weight file whose names start with `prefix` (the prefix is removed), in file order.
    public init(from file: TensorFile, prefix: String = "") {
        for name in file.names where name.hasPrefix(prefix) {
            guard let t = file.tensors[name] else { continue }
            self[String(name.dropFirst(prefix.count))] = NamedTensor(shape: t.shape, values: t.floats())
        }
    }
}
