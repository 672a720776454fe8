import Foundation

/// A value built by the pickle reader. Lists and dicts are shared boxes because pickle fills them after they are
/// memoised (EMPTY_DICT, BINPUT, …, SETITEMS): a later BINGET must see the filled object.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Data)
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// One of the few callables we recognise (never called: REDUCE interprets it).
    case global(PickleGlobal)
    /// A torch storage type, such as `torch.FloatStorage`.
    case storageType(StoredDType, name: String)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRef)

    var string: String? { if case let .string(s) = self { s } else { nil } }
    var int: Int? {
        switch self {
        case let .int(i): i
        case let .bool(b): b ? 1 : 0
        default: nil
        }
    }
    /// Elements of a tuple or a list.
    var items: [PickleValue]? {
        switch self {
        case let .tuple(t): t
        case let .list(l): l.items
        default: nil
        }
    }
    var dict: PickleDict? { if case let .dict(d) = self { d } else { nil } }

    /// Python-like text, for meta values a user reads (`('bg', 'EX')`, `{'lr': 0.01}`).
    var repr: String {
        var budget = 4000
        return repr(depth: 0, budget: &budget)
    }

    /// Nesting depth and the number of values printed are bounded: a list may contain itself (legal pickle), and
    /// a crafted file must not make us print forever.
    private func repr(depth: Int, budget: inout Int) -> String {
        budget -= 1
        guard depth < 16, budget > 0 else { return "…" }
        let d = depth + 1
        func all(_ items: [PickleValue], _ budget: inout Int) -> String {
            var parts: [String] = []
            for v in items {
                guard budget > 0 else { parts.append("…"); break }
                parts.append(v.repr(depth: d, budget: &budget))
            }
            return parts.joined(separator: ", ")
        }
        switch self {
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return "\(i)"
        case let .float(f): return "\(f)"
        case let .string(s): return "'\(s)'"
        case let .bytes(data): return "b<\(data.count) bytes>"
        case let .tuple(t): return t.count == 1 ? "(\(t[0].repr(depth: d, budget: &budget)),)" : "(" + all(t, &budget) + ")"
        case let .list(l): return "[" + all(l.items, &budget) + "]"
        case let .dict(x):
            var parts: [String] = []
            for (k, v) in x.pairs {
                guard budget > 0 else { parts.append("…"); break }
                parts.append(k.repr(depth: d, budget: &budget) + ": " + v.repr(depth: d, budget: &budget))
            }
            return "{" + parts.joined(separator: ", ") + "}"
        case let .global(g): return g.rawValue
        case let .storageType(_, name): return name
        case let .storage(s): return "<storage \(s.key) \(s.dtype.rawValue)×\(s.count)>"
        case let .tensor(t): return "<tensor \(t.storage.dtype.rawValue) \(t.size)>"
        }
    }

    /// Plain text: strings without quotes, everything else as `repr`.
    var text: String { string ?? repr }
}

final class PickleList {
    var items: [PickleValue] = []
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A dict keeping insertion order (a Python dict does; an OrderedDict must).
final class PickleDict {
    var pairs: [(PickleValue, PickleValue)] = []
    init() {}
    subscript(key: String) -> PickleValue? {
        pairs.last(where: { $0.0.string == key })?.1
    }
}

enum PickleGlobal: String {
    case orderedDict = "collections.OrderedDict"
    case rebuildTensorV2 = "torch._utils._rebuild_tensor_v2"
    case rebuildParameter = "torch._utils._rebuild_parameter"
}

/// `('storage', torch.FloatStorage, '12', 'cpu', 1728)`: the bytes live in `<archive>/data/12`.
struct TorchStorageRef {
    var dtype: StoredDType
    var key: String
    var location: String
    /// Elements in the storage.
    var count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view (in elements) into a storage.
struct TorchTensorRef {
    var storage: TorchStorageRef
    var offset: Int
    var size: [Int]
    var stride: [Int]
}

/// "Just enough pickle" for `torch.save`: a stack machine over the opcodes of protocols 2–4 that builds plain values
/// and recognises exactly the torch callables above. It never imports or calls anything: any other GLOBAL is refused
/// with its name.
struct PickleReader {
    let bytes: [UInt8]
    let file: String
    private var pos = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    /// The torch storage classes and the element type each holds.
    static let storageTypes: [String: StoredDType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]

    init(_ data: Data, file: String) {
        self.bytes = [UInt8](data)
        self.file = file
    }

    static func load(_ data: Data, file: String) throws(CheckpointError) -> PickleValue {
        var reader = PickleReader(data, file: file)
        return try reader.run()
    }

    private func fail(_ reason: String) -> CheckpointError {
        .malformed(file: file, reason: "pickle data.pkl at byte \(pos): \(reason)")
    }

    private mutating func take(_ n: Int) throws(CheckpointError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw fail("ends early (needs \(n) more bytes); truncated?") }
        defer { pos += n }
        return bytes[pos ..< pos + n]
    }

    private mutating func byte() throws(CheckpointError) -> UInt8 { try take(1).first! }

    private mutating func uint(_ n: Int) throws(CheckpointError) -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    private mutating func line() throws(CheckpointError) -> String {
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("a text argument lacks its newline") }
        let s = String(decoding: bytes[pos ..< end], as: UTF8.self)
        pos = end + 1
        return s
    }

    private mutating func pop() throws(CheckpointError) -> PickleValue {
        guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw fail("stack underflow") }
        return v
    }

    /// The values pushed since the last MARK, removing them and the mark.
    private mutating func popMark() throws(CheckpointError) -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw fail("no MARK to pop to") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private mutating func string(_ n: Int) throws(CheckpointError) -> String {
        String(decoding: try take(n), as: UTF8.self)
    }

    private mutating func run() throws(CheckpointError) -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                    // PROTO
            case 0x95: _ = try uint(8)                                   // FRAME (a hint only)
            case 0x2E:                                                   // STOP
                guard let top = stack.last else { throw fail("STOP with an empty stack") }
                return top
            case 0x28: marks.append(stack.count)                         // MARK
            case 0x30: _ = try pop()                                     // POP
            case 0x31: _ = try popMark()                                 // POP_MARK
            case 0x32:                                                   // DUP
                guard let top = stack.last else { throw fail("DUP with an empty stack") }
                stack.append(top)
            case 0x4E: stack.append(.none)                               // NONE
            case 0x88: stack.append(.bool(true))                         // NEWTRUE
            case 0x89: stack.append(.bool(false))                        // NEWFALSE
            case 0x4B: stack.append(.int(Int(try uint(1))))              // BININT1
            case 0x4D: stack.append(.int(Int(try uint(2))))              // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))   // BININT
            case 0x49:                                                   // INT (text; 00/01 are False/True)
                let s = try line()
                if s == "00" { stack.append(.bool(false)) } else if s == "01" { stack.append(.bool(true)) }
                else if let i = Int(s) { stack.append(.int(i)) } else { throw fail("INT '\(s)' is not a number") }
            case 0x8A, 0x8B:                                             // LONG1, LONG4: little-endian two's complement
                let n = op == 0x8A ? Int(try byte()) : Int(try uint(4))
                guard n <= 8 else { throw fail("an integer of \(n) bytes is too large") }
                let raw = try take(n)
                var v: UInt64 = 0
                for (i, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
                if n > 0, n < 8, raw.last! & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                stack.append(.int(Int(Int64(bitPattern: v))))
            case 0x47:                                                   // BINFLOAT: big-endian double
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x58: stack.append(.string(try string(Int(try uint(4)))))   // BINUNICODE
            case 0x8C: stack.append(.string(try string(Int(try byte()))))    // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try string(Int(clamping: try uint(8)))))  // BINUNICODE8
            case 0x55: stack.append(.string(try string(Int(try byte()))))    // SHORT_BINSTRING
            case 0x54: stack.append(.string(try string(Int(try uint(4)))))   // BINSTRING
            case 0x43: stack.append(.bytes(Data(try take(Int(try byte())))))    // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(Data(try take(Int(try uint(4))))))   // BINBYTES
            case 0x7D: stack.append(.dict(PickleDict()))                 // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                 // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                          // EMPTY_TUPLE
            case 0x74: stack.append(.tuple(try popMark()))               // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                 // TUPLE1
            case 0x86:                                                   // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87:                                                   // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x6C: stack.append(.list(PickleList(try popMark())))    // LIST
            case 0x64:                                                   // DICT
                let items = try popMark()
                let d = PickleDict()
                try setItems(d, items)
                stack.append(.dict(d))
            case 0x61:                                                   // APPEND
                let v = try pop()
                try append(to: stack.last, [v])
            case 0x65:                                                   // APPENDS
                let items = try popMark()
                try append(to: stack.last, items)
            case 0x73:                                                   // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d)? = stack.last else { throw fail("SETITEM on something that is not a dict") }
                d.pairs.append((k, v))
            case 0x75:                                                   // SETITEMS
                let items = try popMark()
                guard case let .dict(d)? = stack.last else { throw fail("SETITEMS on something that is not a dict") }
                try setItems(d, items)
            case 0x71: try put(Int(try byte()))                          // BINPUT
            case 0x72: try put(Int(try uint(4)))                         // LONG_BINPUT
            case 0x94: try put(memo.count)                               // MEMOIZE
            case 0x68: try get(Int(try byte()))                          // BINGET
            case 0x6A: try get(Int(try uint(4)))                         // LONG_BINGET
            case 0x63:                                                   // GLOBAL 'module\nname\n'
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                   // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else { throw fail("STACK_GLOBAL without two strings") }
                stack.append(try global(m, n))
            case 0x51:                                                   // BINPERSID
                stack.append(try persistent(try pop()))
            case 0x52:                                                   // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x62:                                                   // BUILD
                // state_dict() OrderedDicts carry `_metadata` (module versions) as instance state: not needed.
                let state = try pop()
                switch stack.last {
                case .dict?, .tensor?: break
                default: throw fail("BUILD (set object state \(state.repr.prefix(60))) on an object we do not know")
                }
            default:
                pos -= 1
                throw .unsupported(file: file, reason: "pickle opcode 0x\(String(op, radix: 16)) at byte \(pos) is outside the subset torch.save writes")
            }
        }
    }

    private mutating func put(_ index: Int) throws(CheckpointError) {
        guard let top = stack.last else { throw fail("memo put with an empty stack") }
        memo[index] = top
    }

    private mutating func get(_ index: Int) throws(CheckpointError) {
        guard let v = memo[index] else { throw fail("memo get of unknown index \(index)") }
        stack.append(v)
    }

    private func append(to target: PickleValue?, _ items: [PickleValue]) throws(CheckpointError) {
        guard case let .list(l)? = target else { throw fail("APPEND on something that is not a list") }
        l.items.append(contentsOf: items)
    }

    private func setItems(_ d: PickleDict, _ items: [PickleValue]) throws(CheckpointError) {
        guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values") }
        for i in stride(from: 0, to: items.count, by: 2) { d.pairs.append((items[i], items[i + 1])) }
    }

    private func global(_ module: String, _ name: String) throws(CheckpointError) -> PickleValue {
        if let g = PickleGlobal(rawValue: "\(module).\(name)") { return .global(g) }
        if module == "torch", let dtype = Self.storageTypes[name] { return .storageType(dtype, name: "torch.\(name)") }
        throw .unsupported(file: file, reason: "the pickle refers to \(module).\(name); only tensors, storages, dicts, lists and plain values are read (nothing is ever executed)")
    }

    /// `('storage', storage_type, key, location, numel)`
    private func persistent(_ pid: PickleValue) throws(CheckpointError) -> PickleValue {
        guard let t = pid.items, t.count == 5, t[0].string == "storage",
              case let .storageType(dtype, _) = t[1], let key = t[2].string, let location = t[3].string,
              let count = t[4].int, count >= 0 else {
            throw fail("persistent id \(pid.repr.prefix(80)) is not a torch storage reference")
        }
        return .storage(TorchStorageRef(dtype: dtype, key: key, location: location, count: count))
    }

    private func reduce(_ callable: PickleValue, _ args: PickleValue) throws(CheckpointError) -> PickleValue {
        guard case let .global(g) = callable, let a = args.items else {
            throw fail("REDUCE of \(callable.repr.prefix(60)) is not something torch.save writes")
        }
        switch g {
        case .orderedDict:
            let d = PickleDict()
            // OrderedDict([(k, v), …]) is legal pickle too.
            if let pairs = a.first?.items {
                for p in pairs {
                    guard let kv = p.items, kv.count == 2 else { throw fail("OrderedDict argument is not a list of pairs") }
                    d.pairs.append((kv[0], kv[1]))
                }
            }
            return .dict(d)
        case .rebuildTensorV2:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count >= 4, case let .storage(s) = a[0], let offset = a[1].int,
                  let size = a[2].items?.compactMap(\.int), let stride = a[3].items?.compactMap(\.int),
                  size.count == a[2].items?.count, stride.count == size.count else {
                throw fail("_rebuild_tensor_v2 arguments \(args.repr.prefix(120)) are not (storage, offset, size, stride, …)")
            }
            return .tensor(TorchTensorRef(storage: s, offset: offset, size: size, stride: stride))
        case .rebuildParameter:
            // (data, requires_grad, backward_hooks): a Parameter is its tensor.
            guard let t = a.first, case .tensor = t else { throw fail("_rebuild_parameter of something that is not a tensor") }
            return t
        }
    }
}
