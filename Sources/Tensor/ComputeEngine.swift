import CDNNL
import Foundation

@inline(__always)
func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
    // A failing oneDNN call here means a shape or descriptor bug of ours, not bad user input: inputs are validated
    // before they reach the engine.
    precondition(status == dnnl_success, "oneDNN \(what()) failed with status \(status.rawValue)")
}

/// A primitive with its descriptor and the memory descriptors it was created for.
final class Primitive {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    let scratchpadBytes: Int
    /// A convolution whose activations are in the layouts its kernel chose, not nChw16c (the caller reorders).
    var freeLayouts = false

    init(pd: dnnl_primitive_desc_t, what: String) {
        self.pd = pd
        var p: dnnl_primitive_t?
        check(dnnl_primitive_create(&p, pd), "primitive_create(\(what))")
        primitive = p!
        if let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) {
            var m = md.pointee
            scratchpadBytes = dnnl_memory_desc_get_size(&m)
        } else {
            scratchpadBytes = 0
        }
    }

    func md(_ what: dnnl_query_t) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, what, 0)!.pointee
    }

    var implementation: String {
        var s: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s)
        return s.map { String(cString: $0) } ?? "?"
    }

    /// oneDNN's reference implementation ("ref:any"): correct, and about 100× slower than its optimised kernels.
    var isReference: Bool { implementation.hasPrefix("ref") }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }
}

/// The oneDNN CPU engine and stream, the primitives created so far (by shape), weights reordered into the layouts
/// those primitives want, and one user scratchpad.
///
/// oneDNN handles are not thread-safe and libgomp keeps one OpenMP team per OS thread (ENGINE.md): one
/// `ComputeEngine` is used by one long-lived thread at a time. That is the invariant behind `@unchecked Sendable`.
public final class ComputeEngine: @unchecked Sendable {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    var primitives: [String: Primitive] = [:]
    /// Weights already reordered for a primitive, for weights that do not change (inference).
    var constantWeights: [ObjectIdentifier: (weight: Tensor, layout: String, reordered: UnsafeMutableRawPointer)] = [:]
    var scratchpad: UnsafeMutableRawPointer?
    var scratchpadBytes = 0
    /// Buffers for activations reordered around a convolution (`ReorderSlot`), kept and grown like the scratchpad:
    /// allocated and freed per call they cost page faults and fragment the heap (training at 512² on AVX2: 1.9 M
    /// minor faults and 22 s of system time in two steps).
    var reorderBuffers: [(pointer: UnsafeMutableRawPointer, bytes: Int)?] = [nil, nil, nil]
    /// Seconds spent per kind of layer when `profiling` is on (the bench's split).
    public var profile: [String: Double] = [:]
    public var profiling = false
    /// While profiling: tensor bytes live when the last training forward pass had finished (what backward needs).
    public var tensorBytesAfterForward = 0
    /// Profile convolutions by shape rather than by kind.
    public var profileShapes = false
    /// Floating-point operations of convolutions (forward and backward) and matrix products run so far, 2 per
    /// multiply-add of the direct algorithm (Winograd does fewer multiplications for the same count).
    public var flops: Double = 0
    /// oneDNN implementations chosen for the convolution primitives created so far, with how many shapes use each.
    public var implementations: [String: Int] = [:]
    /// False once oneDNN refused a bf16 convolution on this CPU; bf16 requests then run in f32.
    public internal(set) var bf16Available = true
    /// Inference 3×3 stride-1 convolutions with at most this many input channels run as Winograd (oneDNN's
    /// F(2×2, 3×3) or F(4×4, 3×3) kernels, fewer multiplications than direct) where oneDNN has a kernel for the
    /// shape; 0 turns Winograd off. W48 M2MRF-C at 960×1440 on 2 Intel Xeon vCPUs: direct 5.3–6.3 s, Winograd up
    /// to 192 channels 3.2–3.9 s (peak RSS +0.2 GiB), everywhere 3.6 s (+0.7 GiB: the 384-channel branch's
    /// transformed weights are 4× the size of its direct ones). Results agree with direct convolution to float
    /// rounding.
    public var winogradMaxChannels = 192
    /// Training convolutions (forward, backward data, backward weights) as Winograd too, under the same rule, where
    /// oneDNN has the F(4×4, 3×3) training kernels for the shape. W48-C training step, batch 2, 512²: 7.7–9.1 s
    /// direct, 7.5–7.7 s with Winograd (one session, same machine).
    public var trainingWinograd = true
    /// Convolutions take their activations in the layouts oneDNN's kernels choose (nChw8c with AVX2), reordered to
    /// and from the tensors' nChw16c around each call, even where an nChw16c kernel exists. Off by default: it is
    /// what happens anyway, per primitive, where nChw16c would get the reference kernel (CPUs without AVX-512);
    /// on, it lets tests run that path on any CPU. f32 only (bf16 requests run in f32).
    public var kernelLayouts = false
    /// Under kernel layouts, ask for nChw8c rather than leaving the choice to oneDNN: AVX2's layout on any CPU
    /// (tests of the nChw8c path on AVX-512 machines).
    public var forceBlocks8 = false
    /// A convolution whose kernel writes nChw8c returns its result in `Layout.blocked8` instead of reordering it to
    /// nChw16c (training and single inference convolutions; chains keep nChw16c at their ends). Environment
    /// FUNDUS_NATIVE_8C=0 turns it off.
    public var nativeBlocks8 = ProcessInfo.processInfo.environment["FUNDUS_NATIVE_8C"] != "0"
    /// Primitive keys of bf16 or Winograd requests oneDNN refused (they run as direct f32, without asking again).
    var refused: Set<String> = []
    /// When not nil, every ReLU of a training pass appends its decisions here (output > 0, in NCHW order), in the
    /// order the ReLUs run. A check can then replay the same piecewise-linear function elsewhere: a float32 pass and
    /// an exact one disagree on activations within rounding of zero, and one such ReLU moves a whole layer's gradient.
    public var reluDecisions: [[Bool]]?

    public init() {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0), "engine_create")
        engine = e!
        var s: dnnl_stream_t?
        check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "stream_create")
        stream = s!
    }

    deinit {
        for (_, v) in constantWeights { v.reordered.deallocate() }
        scratchpad?.deallocate()
        for b in reorderBuffers { b?.pointer.deallocate() }
        primitives.removeAll()
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// Forgets the reordered copies of constant weights (call after changing weights in place).
    public func forgetConstantWeights() {
        for (_, v) in constantWeights { v.reordered.deallocate() }
        constantWeights.removeAll()
    }

    /// Times `body` under `kind` when profiling.
    @inline(__always)
    public func timed<T>(_ kind: String, _ body: () -> T) -> T {
        guard profiling else { return body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = body()
        profile[kind, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        return r
    }

    func scratch(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes > 0 else { return nil }
        if bytes > scratchpadBytes {
            scratchpad?.deallocate()
            scratchpad = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            scratchpadBytes = bytes
        }
        return scratchpad
    }

    /// The activation buffers one convolution call may need at once: its source (or dL/dy for backward data) and
    /// its destination (or dL/dx; dL/dy for backward weights); an inference chain's input besides (`convolutionChain`).
    enum ReorderSlot: Int { case source = 0, destination = 1, chainInput = 2 }

    /// The slot's buffer with room for `bytes`, kept for later calls (its contents are not).
    func reorderBuffer(_ slot: ReorderSlot, _ bytes: Int) -> UnsafeMutableRawPointer {
        if let b = reorderBuffers[slot.rawValue], b.bytes >= bytes { return b.pointer }
        reorderBuffers[slot.rawValue]?.pointer.deallocate()
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        reorderBuffers[slot.rawValue] = (p, bytes)
        return p
    }

    /// Runs a primitive on (argument, memory descriptor, buffer) triples, plus the scratchpad.
    func execute(_ p: Primitive, _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)]) {
        var mems: [dnnl_memory_t?] = []
        var execArgs: [dnnl_exec_arg_t] = []
        var all = args
        if p.scratchpadBytes > 0, let s = scratch(p.scratchpadBytes) {
            all.append((DNNL_ARG_SCRATCHPAD, p.md(dnnl_query_scratchpad_md), s))
        }
        for (arg, md, ptr) in all {
            var m: dnnl_memory_t?
            var d = md
            check(dnnl_memory_create(&m, &d, engine, ptr), "memory_create")
            mems.append(m)
            execArgs.append(dnnl_exec_arg_t(arg: arg, memory: m))
        }
        check(dnnl_primitive_execute(p.primitive, stream, Int32(execArgs.count), execArgs), "execute")
        check(dnnl_stream_wait(stream), "stream_wait")
        for m in mems { dnnl_memory_destroy(m) }
    }

    /// Copies between two layouts of the same logical tensor.
    func reorder(from src: dnnl_memory_desc_t, _ srcPtr: UnsafeMutableRawPointer,
                 to dst: dnnl_memory_desc_t, _ dstPtr: UnsafeMutableRawPointer) {
        var s = src, d = dst
        let key = "reorder \(layoutKey(s)) -> \(layoutKey(d))"
        let p: Primitive
        if let cached = primitives[key] {
            p = cached
        } else {
            var attr: dnnl_primitive_attr_t?
            check(dnnl_primitive_attr_create(&attr), "attr_create")
            check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad_mode")
            var pd: dnnl_primitive_desc_t?
            check(dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, attr), "reorder_pd")
            dnnl_primitive_attr_destroy(attr)
            p = Primitive(pd: pd!, what: "reorder")
            primitives[key] = p
        }
        execute(p, [(DNNL_ARG_FROM, s, srcPtr), (DNNL_ARG_TO, d, dstPtr)])
    }

    /// A string that identifies a memory descriptor's layout (dims, padding and blocking).
    func layoutKey(_ md: dnnl_memory_desc_t) -> String {
        var m = md
        let nd = Int(m.ndims)
        var parts: [Int64] = []
        withUnsafeBytes(of: &m.dims) { b in for i in 0..<nd { parts.append(b.load(fromByteOffset: i * 8, as: Int64.self)) } }
        withUnsafeBytes(of: &m.padded_dims) { b in for i in 0..<nd { parts.append(b.load(fromByteOffset: i * 8, as: Int64.self)) } }
        if m.format_kind == dnnl_blocked {
            let bd = m.format_desc.blocking
            var bdc = bd
            withUnsafeBytes(of: &bdc.strides) { b in for i in 0..<nd { parts.append(b.load(fromByteOffset: i * 8, as: Int64.self)) } }
            parts.append(Int64(bd.inner_nblks))
            withUnsafeBytes(of: &bdc.inner_blks) { b in for i in 0..<Int(bd.inner_nblks) { parts.append(b.load(fromByteOffset: i * 8, as: Int64.self)) } }
            withUnsafeBytes(of: &bdc.inner_idxs) { b in for i in 0..<Int(bd.inner_nblks) { parts.append(b.load(fromByteOffset: i * 8, as: Int64.self)) } }
        } else {
            parts.append(-Int64(m.format_kind.rawValue))
            if m.format_kind == dnnl_format_kind_wino {
                // Winograd weights: their blocking is chosen for the problem (its spatial size too), so two problems
                // with the same weight dims can want different layouts; without these fields they shared a key,
                // and a pass at a smaller input reused weights reordered for the larger one (garbage logits).
                let w = m.format_desc.wino_desc
                parts += [Int64(w.wino_format.rawValue), Int64(w.r), Int64(w.alpha), Int64(w.ic), Int64(w.oc),
                          Int64(w.ic_block), Int64(w.oc_block), Int64(w.ic2_block), Int64(w.oc2_block),
                          Int64(w.adj_scale.bitPattern), Int64(w.size)]
            }
        }
        parts.append(Int64(m.extra.flags))
        parts.append(Int64(m.data_type.rawValue))
        return parts.map(String.init).joined(separator: ",")
    }

    static func md(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
        var m = dnnl_memory_desc_t()
        check(dnnl_memory_desc_init_by_tag(&m, Int32(dims.count), dims.map(Int64.init), type, tag), "memory_desc \(dims)")
        return m
    }

    static func md(of t: Tensor) -> dnnl_memory_desc_t {
        switch t.layout {
        case .blocked16: return md(t.shape, dnnl_nChw16c)
        case .blocked8: return md(t.shape, dnnl_nChw8c)
        case .plain:
            switch t.shape.count {
            case 1: return md(t.shape, dnnl_x)
            case 2: return md(t.shape, dnnl_nc)
            case 4: return md(t.shape, dnnl_nchw)
            default: preconditionFailure("no oneDNN layout for shape \(t.shape)")
            }
        }
    }

    static func size(_ md: dnnl_memory_desc_t) -> Int {
        var m = md
        return dnnl_memory_desc_get_size(&m)
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var x = a, y = b
        return dnnl_memory_desc_equal(&x, &y) != 0
    }
}
