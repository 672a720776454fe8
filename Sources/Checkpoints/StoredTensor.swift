import Foundation

/// Element types found in weight files (safetensors names; PyTorch storages map onto them).
public enum StoredDType: String, Codable, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool: 1
        }
    }
}

/// A tensor as a weight file holds it: element type, shape, and the little-endian bytes in row-major order.
/// Conversion to the engine's float32 happens here, once, at load.
public struct StoredTensor: Sendable, Equatable {
    public var dtype: StoredDType
    public var shape: [Int]
    public var bytes: Data

    public init(dtype: StoredDType, shape: [Int], bytes: Data) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public init(floats: [Float], shape: [Int]) {
        precondition(floats.count == shape.reduce(1, *), "shape \(shape) does not hold \(floats.count) values")
        self.dtype = .f32
        self.shape = shape
        self.bytes = floats.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    public init(int32s: [Int32], shape: [Int]) {
        precondition(int32s.count == shape.reduce(1, *), "shape \(shape) does not hold \(int32s.count) values")
        self.dtype = .i32
        self.shape = shape
        self.bytes = int32s.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    public var count: Int { shape.reduce(1, *) }

    /// The values as float32 (exact for f32/f16/bf16/small ints; f64 is rounded).
    public func floats() -> [Float] {
        let n = count
        return bytes.withUnsafeBytes { raw -> [Float] in
            switch dtype {
            case .f32: return (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            case .f64: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case .f16: return (0..<n).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case .bf16: return (0..<n).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
            case .i64: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .i32: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            case .i16: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
            case .i8: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
            case .u8, .bool: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0, as: UInt8.self)) }
            }
        }
    }

    /// The values as integers (floats are truncated).
    public func ints() -> [Int] {
        let n = count
        return bytes.withUnsafeBytes { raw -> [Int] in
            switch dtype {
            case .i64: return (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .i32: return (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            case .i16: return (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
            case .i8: return (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
            case .u8, .bool: return (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0, as: UInt8.self)) }
            default: return floats().map { Int($0) }
            }
        }
    }
}

/// A named set of tensors, as one weight file holds it (keys in file order), plus string metadata.
public struct TensorFile: Sendable {
    public var names: [String]
    public var tensors: [String: StoredTensor]
    public var metadata: [String: String]

    public init(names: [String] = [], tensors: [String: StoredTensor] = [:], metadata: [String: String] = [:]) {
        self.names = names
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> StoredTensor? { tensors[name] }

    public mutating func set(_ name: String, _ tensor: StoredTensor) {
        if tensors[name] == nil { names.append(name) }
        tensors[name] = tensor
    }

    /// The tensor, or an error naming the file and the missing key.
    public func require(_ name: String, in file: String = "") throws(CheckpointError) -> StoredTensor {
        guard let t = tensors[name] else { throw .missingTensor(name: name, file: file) }
        return t
    }
}

/// What went wrong reading or writing a weight file, with the file and the reason.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case malformed(file: String, reason: String)
    case unsupported(file: String, reason: String)
    case missingTensor(name: String, file: String)
    case notThisNetwork(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "cannot read \(file): \(reason)"
        case let .malformed(file, reason): "\(file) is not a valid weight file: \(reason)"
        case let .unsupported(file, reason): "\(file) holds something fundus-screen does not load: \(reason)"
        case let .missingTensor(name, file): "\(file.isEmpty ? "weights" : file) lack the tensor '\(name)'"
        case let .notThisNetwork(file, reason): "\(file) is not an HRNetV2 / M2MRF-HRNetV2 segmentation checkpoint: \(reason)"
        }
    }
}

/// The bytes of the file at `url`, memory-mapped when `mapped` and safe: how weight files and cards are read; a
/// failure is `CheckpointError.unreadable`, naming the file.
func readFile(_ url: URL, mapped: Bool = true) throws(CheckpointError) -> Data {
    do { return try Data(contentsOf: url, options: mapped ? .mappedIfSafe : []) } catch {
        throw .unreadable(file: url.path, reason: error.localizedDescription)
    }
}
