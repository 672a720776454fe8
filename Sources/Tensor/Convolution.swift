import CDNNL

/// Convolution on oneDNN: activations in nChw16c (the network's input may be plain NCHW), weights given as plain
/// OIHW [out, in, kh, kw] and reordered into whatever layout the chosen kernel wants. Groups and dilation: none.
///
/// Where oneDNN has no optimised kernel for nChw16c activations — CPUs without AVX-512 (AVX2: its kernels block
/// channels by 8) — it would run the reference implementation, about 100× slower (W16 M2MRF-C at 256×256 on two
/// AMD EPYC Zen 3 vCPUs: 58 s). There the primitive is created again with the activations' layouts left to the
/// kernel (`ConvShape.kernelLayouts`), and sources, destinations and their gradients are reordered to and from
/// nChw16c around the call.
extension ComputeEngine {
    /// Output side of a convolution along one axis (PyTorch's floor rule).
    public static func convolutionOutput(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        (size + 2 * padding - kernel) / stride + 1
    }

    private struct ConvShape {
        var inShape: [Int]
        var inLayout: Layout
        /// The caller's layout of the result (and of dL/dy).
        var outLayout: Layout = .blocked16
        var weightShape: [Int]
        var hasBias: Bool
        var stride: Int
        var padding: Int
        /// bf16 source and weights (f32 bias, f32 destination, f32 accumulation): opt-in, inference or
        /// mixed-precision training.
        var bf16 = false
        /// Winograd (oneDNN's F(2×2, 3×3) or F(4×4, 3×3) kernels) instead of direct convolution: 3×3 stride 1 only.
        var winograd = false
        /// Source, destination and their gradients in the layouts the kernel chooses (format `any`) rather than
        /// nChw16c; the caller reorders (the primitive's memory descriptors say into what).
        var kernelLayouts = false
        /// Under `kernelLayouts`: nChw8c asked for instead of `any` (`ComputeEngine.forceBlocks8`).
        var blocks8 = false
        var outShape: [Int] {
            [inShape[0], weightShape[0],
             ComputeEngine.convolutionOutput(inShape[2], kernel: weightShape[2], stride: stride, padding: padding),
             ComputeEngine.convolutionOutput(inShape[3], kernel: weightShape[3], stride: stride, padding: padding)]
        }
        var key: String { "\(inShape) \(inLayout)>\(outLayout) w\(weightShape) b\(hasBias) s\(stride) p\(padding)\(bf16 ? " bf16" : "")\(winograd ? " wino" : "")" }
        /// An activation's memory descriptor: `tag`, or `any` under `kernelLayouts`.
        private func activation(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
            ComputeEngine.md(dims, kernelLayouts ? (blocks8 ? dnnl_nChw8c : dnnl_format_tag_any) : tag, type)
        }
        static func tag(_ layout: Layout) -> dnnl_format_tag_t {
            switch layout {
            case .plain: dnnl_nchw
            case .blocked16: dnnl_nChw16c
            case .blocked8: dnnl_nChw8c
            }
        }
        /// The caller's f32 source.
        var userSrcMD: dnnl_memory_desc_t { ComputeEngine.md(inShape, Self.tag(inLayout)) }
        /// The source the primitive reads (bf16 copy of the user's when bf16).
        var srcMD: dnnl_memory_desc_t { activation(inShape, Self.tag(inLayout), bf16 ? dnnl_bf16 : dnnl_f32) }
        /// The caller's f32 destination (and dL/dy).
        var userDstMD: dnnl_memory_desc_t { ComputeEngine.md(outShape, Self.tag(outLayout)) }
        var dstMD: dnnl_memory_desc_t { activation(outShape, Self.tag(outLayout)) }
        /// dL/dx as a backward-data primitive writes it.
        var diffSrcMD: dnnl_memory_desc_t { activation(inShape, Self.tag(inLayout)) }
        /// dL/dy as a backward primitive reads it (bf16 in mixed precision).
        var diffDstMD: dnnl_memory_desc_t { activation(outShape, Self.tag(outLayout), bf16 ? dnnl_bf16 : dnnl_f32) }
        /// Weight gradients stay f32 (the master weights' precision) in any layout.
        var anyDiffWeightsMD: dnnl_memory_desc_t { ComputeEngine.md(weightShape, dnnl_format_tag_any) }
        var userWeightsMD: dnnl_memory_desc_t { ComputeEngine.md(weightShape, dnnl_oihw) }
        var anyWeightsMD: dnnl_memory_desc_t {
            ComputeEngine.md(weightShape, dnnl_format_tag_any, bf16 ? dnnl_bf16 : dnnl_f32)
        }
        static func layoutName(_ layout: Layout) -> String {
            switch layout {
            case .plain: "nchw"
            case .blocked16: "nChw16c"
            case .blocked8: "nChw8c"
            }
        }
        var biasMD: dnnl_memory_desc_t { ComputeEngine.md([weightShape[0]], dnnl_x) }
        var strides: [Int64] { [Int64(stride), Int64(stride)] }
        var padL: [Int64] { [Int64(padding), Int64(padding)] }
        var algorithm: dnnl_alg_kind_t { winograd ? dnnl_convolution_winograd : dnnl_convolution_direct }
        /// oneDNN wants the right/bottom padding that makes its output size equal PyTorch's floor rule.
        var padR: [Int64] {
            let o = outShape
            return [Int64((o[2] - 1) * stride + weightShape[2] - inShape[2] - padding),
                    Int64((o[3] - 1) * stride + weightShape[3] - inShape[3] - padding)]
        }
    }

    private func attributes(relu: Bool, sum: Bool) -> dnnl_primitive_attr_t? {
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "attr_create")
        check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad_mode")
        if relu || sum {
            var ops: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&ops), "post_ops_create")
            if sum { check(dnnl_post_ops_append_sum(ops, 1), "append_sum") }
            if relu { check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "append_relu") }
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "set_post_ops")
            dnnl_post_ops_destroy(ops)
        }
        return attr
    }

    /// Whether a convolution of this shape is asked of oneDNN as Winograd: f32, 3×3, stride 1, blocked source, at most
    /// `winogradMaxChannels` input channels; in training only with `trainingWinograd`.
    private func usesWinograd(_ s: ConvShape, training: Bool) -> Bool {
        (!training || trainingWinograd) && !s.bf16 && s.weightShape[2] == 3 && s.weightShape[3] == 3 && s.stride == 1
            && s.inLayout == .blocked16 && s.weightShape[1] <= winogradMaxChannels
    }

    /// The forward primitive for a shape; nil only for a bf16 or Winograd request this CPU's oneDNN cannot serve
    /// (the caller then asks for direct f32). Where nChw16c would get the reference kernel (or `kernelLayouts` is
    /// forced), the activations' layouts are left to the kernel: the primitive's `freeLayouts` says so.
    private func forwardPrimitive(_ s: ConvShape, training: Bool, relu: Bool, sum: Bool) -> Primitive? {
        let key = "conv fwd \(s.key) t\(training) r\(relu) s\(sum)"
        if let p = primitives[key] { return p }
        if s.bf16 && !bf16Available { return nil }
        if s.winograd && refused.contains(key) { return nil }
        if kernelLayouts && s.bf16 { return nil }  // kernel layouts are f32 only
        var free = s
        free.kernelLayouts = true
        free.blocks8 = forceBlocks8
        guard var p = createForward(kernelLayouts ? free : s, key: key, training: training, relu: relu, sum: sum)
        else { return nil }
        if p.isReference && !kernelLayouts {
            if s.bf16 {
                bf16Available = false  // bf16 only in the reference kernel: stay in f32
                return nil
            }
            if let q = createForward(free, key: key, training: training, relu: relu, sum: sum), !q.isReference { p = q }
        }
        primitives[key] = p
        implementations["\(training ? "training" : "inference")\(s.bf16 ? " bf16" : "") \(s.weightShape[2])x\(s.weightShape[3]) s\(s.stride) \(ConvShape.layoutName(s.inLayout))\(p.freeLayouts ? " (kernel layouts)" : "") \(p.implementation)", default: 0] += 1
        return p
    }

    private func createForward(_ s: ConvShape, key: String, training: Bool, relu: Bool, sum: Bool) -> Primitive? {
        var desc = dnnl_convolution_desc_t()
        var src = s.srcMD, w = s.anyWeightsMD, b = s.biasMD, dst = s.dstMD
        let status = withUnsafePointer(to: &b) { bp in
            dnnl_convolution_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                               s.algorithm, &src, &w, s.hasBias ? bp : nil, &dst,
                                               s.strides, s.padL, s.padR)
        }
        if s.winograd && status != dnnl_success { refused.insert(key); return nil }
        check(status, "conv fwd desc \(s.key)")
        let attr = attributes(relu: relu, sum: sum)
        var pd: dnnl_primitive_desc_t?
        let created = timed("setup: create primitives") { dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil) }
        dnnl_primitive_attr_destroy(attr)
        if s.bf16 && created != dnnl_success {
            bf16Available = false  // no bf16 kernel here: stay in f32
            return nil
        }
        if s.winograd && created != dnnl_success {
            refused.insert(key)  // no Winograd kernel for this shape: direct
            return nil
        }
        check(created, "conv fwd pd \(s.key)")
        let p = timed("setup: create primitives") { Primitive(pd: pd!, what: "conv fwd") }
        p.freeLayouts = s.kernelLayouts
        return p
    }

    /// `body` with an activation's data in the layout `wanted`: in place when it is the caller's `user` layout, else
    /// through a reordered copy in the engine's buffer for `slot` (another blocking where the kernel chose it, bf16 in
    /// mixed precision).
    private func withLayout<T>(_ data: UnsafeMutableRawPointer, user: dnnl_memory_desc_t, wanted: dnnl_memory_desc_t,
                               slot: ReorderSlot, _ body: (UnsafeMutableRawPointer) -> T) -> T {
        if ComputeEngine.equal(user, wanted) { return body(data) }
        let buf = reorderBuffer(slot, ComputeEngine.size(wanted))
        timed(user.data_type == wanted.data_type ? "reorder activations" : "reorder bf16") {
            reorder(from: user, data, to: wanted, buf)
        }
        return body(buf)
    }

    /// `body` writes a result in the layout `wanted`; it lands in `data` (layout `user`), through the engine's
    /// destination buffer when the two differ. `accumulate`: the buffer starts as a copy of `data` (a sum post-op adds
    /// to it).
    private func intoLayout(_ data: UnsafeMutableRawPointer, user: dnnl_memory_desc_t, wanted: dnnl_memory_desc_t,
                            accumulate: Bool, _ body: (UnsafeMutableRawPointer) -> Void) {
        if ComputeEngine.equal(user, wanted) { return body(data) }
        let buf = reorderBuffer(.destination, ComputeEngine.size(wanted))
        if accumulate { timed("reorder activations") { reorder(from: user, data, to: wanted, buf) } }
        body(buf)
        timed("reorder activations") { reorder(from: wanted, buf, to: user, data) }
    }

    /// Runs `body` with the weights in the layout `wanted`: in place when it is plain OIHW, from the cache for
    /// constant weights, else through a temporary reorder. `values`, when given, computes the weights' values
    /// (`weight` is then only the cache's key): folded BatchNorm weights are made when the cache needs them and not
    /// kept beside their reordered copy.
    private func withWeights<T>(_ weight: Tensor, values: (() -> Tensor)? = nil, user: dnnl_memory_desc_t,
                                wanted: dnnl_memory_desc_t, constant: Bool,
                                _ body: (UnsafeMutableRawPointer) -> T) -> T {
        if values == nil && ComputeEngine.equal(user, wanted) { return body(UnsafeMutableRawPointer(weight.data)) }
        let layout = layoutKey(wanted)
        if constant, let c = constantWeights[ObjectIdentifier(weight)], c.layout == layout {
            return body(c.reordered)
        }
        let source = values?() ?? weight
        let buf = UnsafeMutableRawPointer.allocate(byteCount: ComputeEngine.size(wanted), alignment: 64)
        timed(constant ? "setup: reorder weights" : "reorder weights") {
            reorder(from: user, UnsafeMutableRawPointer(source.data), to: wanted, buf)
        }
        if constant {
            if let old = constantWeights[ObjectIdentifier(weight)] { old.reordered.deallocate() }
            constantWeights[ObjectIdentifier(weight)] = (weight, layout, buf)
            return body(buf)
        }
        defer { buf.deallocate() }
        return body(buf)
    }

    /// y = conv(x, weight) + bias, then optionally y += `sumInto` (the result is written into `sumInto`) and ReLU.
    /// x: [N, C, H, W] blocked (or plain NCHW for the network's input); weight [O, C, kh, kw] plain; bias [O].
    /// Returns [N, O, Ho, Wo] blocked. `weightValues` (constant weights only): the weights' values are computed by
    /// it when the cache needs them, and `weight` is only the cache's key (its shape must be theirs).
    /// `bf16` (blocked sources only; inference or mixed-precision training): the source is converted to bf16 for the
    /// call and constant weights once; accumulation and the result stay f32, relative error ~1e-3. Its speed depends
    /// on the CPU: about twice f32 on Zen 4, slower than f32 on an Intel Xeon without AMX (measured).
    public func convolution(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                            training: Bool = false, constantWeights constant: Bool = false,
                            weightValues: (() -> Tensor)? = nil,
                            sumInto: Tensor? = nil, relu: Bool = false, bf16: Bool = false) -> Tensor {
        precondition(x.shape.count == 4 && weight.shape.count == 4 && x.c == weight.shape[1],
                     "convolution of \(x.shape) with weights \(weight.shape)")
        var s = ConvShape(inShape: x.shape, inLayout: x.layout, weightShape: weight.shape, hasBias: bias != nil, stride: stride, padding: padding)
        s.bf16 = bf16 && x.layout == .blocked16
        let p = chosenForward(&s, training: training, relu: relu, sum: sumInto != nil)
        countFlops(s)
        let out: Tensor
        if let acc = sumInto {
            precondition(acc.shape == s.outShape && acc.layout.isBlocked, "sum post-op into \(acc.shape), want \(s.outShape)")
            out = acc
        } else {
            // The kernel's own nChw8c is returned as it is (no reorder to nChw16c and, next time, back).
            if nativeBlocks8 && p.freeLayouts
                && ComputeEngine.equal(p.md(dnnl_query_dst_md), ComputeEngine.md(s.outShape, dnnl_nChw8c)) {
                s.outLayout = .blocked8
            }
            out = Tensor(shape: s.outShape, layout: s.outLayout, zeroed: false)
        }
        s.outLayout = out.layout
        // The source as the kernel reads it (a bf16 copy in mixed precision, another layout where `freeLayouts`).
        let srcMD = p.md(dnnl_query_src_md), dstMD = p.md(dnnl_query_dst_md)
        withLayout(UnsafeMutableRawPointer(x.data), user: s.userSrcMD, wanted: srcMD, slot: .source) { source in
            intoLayout(UnsafeMutableRawPointer(out.data), user: s.userDstMD, wanted: dstMD, accumulate: sumInto != nil) { dst in
                withWeights(weight, values: weightValues, user: s.userWeightsMD, wanted: p.md(dnnl_query_weights_md),
                            constant: constant) { wp in
                    var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
                        (DNNL_ARG_SRC, srcMD, source),
                        (DNNL_ARG_WEIGHTS, p.md(dnnl_query_weights_md), wp),
                        (DNNL_ARG_DST, dstMD, dst),
                    ]
                    if let b = bias { args.append((DNNL_ARG_BIAS, s.biasMD, UnsafeMutableRawPointer(b.data))) }
                    timed(profileKind(s)) { execute(p, args) }
                }
            }
        }
        return out
    }

    /// The forward primitive `convolution` runs for a shape: bf16 and Winograd where asked and served, else direct
    /// f32 (`s` is updated to say which).
    private func chosenForward(_ s: inout ConvShape, training: Bool, relu: Bool, sum: Bool) -> Primitive {
        s.winograd = usesWinograd(s, training: training)
        if let p = forwardPrimitive(s, training: training, relu: relu, sum: sum) { return p }
        s.bf16 = false
        s.winograd = false
        return forwardPrimitive(s, training: training, relu: relu, sum: sum)!
    }

    private func countFlops(_ s: ConvShape) {
        let o = s.outShape
        flops += 2 * Double(o[0] * o[1] * o[2] * o[3]) * Double(s.weightShape[1] * s.weightShape[2] * s.weightShape[3])
    }

    /// Inference: residual blocks without downsample one after another — each block's steps applied to its input,
    /// the input summed in before the last step's ReLU — as `convolutionChain` block by block would compute them.
    /// Where the kernels want other layouts, the blocks' inputs and outputs stay in the kernel's layout too: the
    /// branch's input and its result are reordered once each, whatever the number of blocks.
    public func residualBlocksChain(_ x: Tensor, _ blocks: [[ConvolutionStep]]) -> Tensor {
        precondition(blocks.allSatisfy { $0.count > 1 }, "a residual block has at least two convolutions")
        guard !blocks.isEmpty else { return x }
        // The primitives, and whether every block reads and writes the same kernel layout as the first one's input.
        var chained = x.layout.isBlocked
        var plan: [[(ConvShape, Primitive)]] = []
        var inputMD: dnnl_memory_desc_t?
        for block in blocks {
            var inShape = x.shape, row: [(ConvShape, Primitive)] = []
            for (k, step) in block.enumerated() {
                var s = ConvShape(inShape: inShape, inLayout: .blocked16, weightShape: step.weight.shape,
                                  hasBias: step.bias != nil, stride: step.stride, padding: step.padding)
                let p = chosenForward(&s, training: false, relu: step.relu, sum: k == block.count - 1)
                chained = chained && p.freeLayouts && !p.isReference
                row.append((s, p))
                inShape = s.outShape
            }
            precondition(inShape == x.shape, "a residual block without downsample keeps its input's shape")
            let into = row[0].1.md(dnnl_query_src_md), out = row[row.count - 1].1.md(dnnl_query_dst_md)
            if inputMD == nil { inputMD = into }
            chained = chained && ComputeEngine.equal(into, inputMD!) && ComputeEngine.equal(out, inputMD!)
            plan.append(row)
        }
        guard chained, let blockMD = inputMD else {
            return blocks.reduce(x) { h, block in convolutionChain(h, block, residual: h) }
        }
        // The blocks' running sum lives in the result itself where the kernels' layout is nChw8c and the engine
        // returns it (`nativeBlocks8`): x is copied in once and nothing is reordered out. Otherwise in the
        // chain-input buffer, reordered to nChw16c at the end.
        let user = ComputeEngine.md(of: x)
        let native = nativeBlocks8 && ComputeEngine.equal(blockMD, ComputeEngine.md(x.shape, dnnl_nChw8c))
        let out = Tensor(shape: x.shape, layout: native ? .blocked8 : .blocked16, zeroed: false)
        let input = native ? UnsafeMutableRawPointer(out.data) : reorderBuffer(.chainInput, ComputeEngine.size(blockMD))
        if native && x.layout == .blocked8 {
            timed("copy activations") { out.data.update(from: x.data, count: x.storageCount) }
        } else {
            timed("reorder activations") { reorder(from: user, UnsafeMutableRawPointer(x.data), to: blockMD, input) }
        }
        var buffer = 1
        for (block, row) in zip(blocks, plan) {
            var current = input, currentMD = blockMD
            for (k, (step, (s, p))) in zip(block, row).enumerated() {
                let srcMD = p.md(dnnl_query_src_md), dstMD = p.md(dnnl_query_dst_md)
                chainSource(&current, &currentMD, wanted: srcMD, buffer: &buffer)
                // The last step sums into the block's input (its residual), which the earlier steps only read.
                let dst: UnsafeMutableRawPointer
                if k == block.count - 1 {
                    dst = input
                } else {
                    dst = otherBuffer(&buffer, dstMD)
                }
                executeChainStep(step, s, p, source: current, destination: dst)
                (current, currentMD) = (dst, dstMD)
            }
        }
        if !native {
            timed("reorder activations") { reorder(from: blockMD, input, to: ComputeEngine.md(of: out), UnsafeMutableRawPointer(out.data)) }
        }
        return out
    }

    /// A chain's other ping-pong buffer (source or destination slot), with room for `md`.
    private func otherBuffer(_ buffer: inout Int, _ md: dnnl_memory_desc_t) -> UnsafeMutableRawPointer {
        buffer = 1 - buffer
        return reorderBuffer(ReorderSlot(rawValue: buffer)!, ComputeEngine.size(md))
    }

    /// A chain step's source: the current activation, reordered into the other buffer where the step's kernel wants
    /// another layout.
    private func chainSource(_ current: inout UnsafeMutableRawPointer, _ currentMD: inout dnnl_memory_desc_t,
                             wanted: dnnl_memory_desc_t, buffer: inout Int) {
        guard !ComputeEngine.equal(currentMD, wanted) else { return }
        let b = otherBuffer(&buffer, wanted)
        timed("reorder activations") { reorder(from: currentMD, current, to: wanted, b) }
        (current, currentMD) = (b, wanted)
    }

    /// Runs one chain step (constant weights, bias, post-ops as its primitive was made) from `source` into `destination`.
    private func executeChainStep(_ step: ConvolutionStep, _ s: ConvShape, _ p: Primitive,
                                  source: UnsafeMutableRawPointer, destination: UnsafeMutableRawPointer) {
        countFlops(s)
        withWeights(step.weight, values: step.weightValues, user: s.userWeightsMD, wanted: p.md(dnnl_query_weights_md),
                    constant: true) { wp in
            var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
                (DNNL_ARG_SRC, p.md(dnnl_query_src_md), source),
                (DNNL_ARG_WEIGHTS, p.md(dnnl_query_weights_md), wp),
                (DNNL_ARG_DST, p.md(dnnl_query_dst_md), destination),
            ]
            if let b = step.bias { args.append((DNNL_ARG_BIAS, s.biasMD, UnsafeMutableRawPointer(b.data))) }
            timed(profileKind(s)) { execute(p, args) }
        }
    }

    /// The profile's name for a forward convolution's own time (its reorders are timed apart).
    private func profileKind(_ s: ConvShape) -> String {
        let w = s.weightShape
        let kind = w[2] == 1 && w[3] == 1 ? "conv 1x1" : "conv \(w[2])x\(w[3])"
        return profileShapes ? "\(kind) \(w[1])->\(w[0]) at \(s.inShape[2])x\(s.inShape[3])" : kind
    }

    /// Inference: `steps` applied one after another to `x` (blocked, or plain NCHW: the network's input), the last
    /// summing `residual` in before its ReLU (into `residual` itself when `intoResidual`, else into a new tensor) — a
    /// residual block's convolutions, the stem, or the head's 1×1 and classifier. The same arithmetic as calling
    /// `convolution` step by step, which is what runs where the kernels read nChw16c. Where they want other layouts (`freeLayouts`: AVX2), the intermediate results stay
    /// in the kernel's layout in the engine's reorder buffers instead of going to nChw16c and back: `x`, the residual
    /// (unless it is `x`) and the result are reordered once each (a BasicBlock: 2 reorders instead of 5).
    public func convolutionChain(_ x: Tensor, _ steps: [ConvolutionStep], residual: Tensor? = nil,
                                 intoResidual: Bool = false, bf16: Bool = false) -> Tensor {
        precondition(!steps.isEmpty && (!intoResidual || residual != nil))
        var shapes: [ConvShape] = [], primitives: [Primitive] = []
        var inShape = x.shape
        for (k, step) in steps.enumerated() {
            precondition(step.weight.shape.count == 4 && inShape[1] == step.weight.shape[1],
                         "convolution chain: step \(k) of \(inShape) with weights \(step.weight.shape)")
            var s = ConvShape(inShape: inShape, inLayout: k == 0 ? x.layout : .blocked16, weightShape: step.weight.shape,
                              hasBias: step.bias != nil, stride: step.stride, padding: step.padding)
            s.bf16 = bf16 && s.inLayout == .blocked16
            primitives.append(chosenForward(&s, training: false, relu: step.relu, sum: k == steps.count - 1 && residual != nil))
            shapes.append(s)
            inShape = s.outShape
        }
        guard primitives.allSatisfy({ $0.freeLayouts && !$0.isReference }),
              shapes.allSatisfy({ !$0.bf16 }) else {
            // nChw16c kernels (or bf16): nothing to save; one call per step.
            var h = x
            for (k, step) in steps.enumerated() {
                let sum = k == steps.count - 1 ? residual.map { intoResidual ? $0 : $0.copy() } : nil
                h = convolution(h, weight: step.weight, bias: step.bias, stride: step.stride, padding: step.padding,
                                constantWeights: true, weightValues: step.weightValues, sumInto: sum, relu: step.relu,
                                bf16: bf16)
            }
            return h
        }
        if let residual {
            precondition(residual.shape == inShape && residual.layout.isBlocked,
                         "convolution chain: residual \(residual.shape), want \(inShape)")
        }
        // The result: into the residual when asked; else nChw8c where the last kernel writes it and the engine
        // returns it (`nativeBlocks8`), else nChw16c. The last step writes straight into it when the layouts agree.
        let lastDstMD = primitives[primitives.count - 1].md(dnnl_query_dst_md)
        let native = nativeBlocks8 && ComputeEngine.equal(lastDstMD, ComputeEngine.md(inShape, dnnl_nChw8c))
        let out = intoResidual ? residual! : Tensor(shape: inShape, layout: native ? .blocked8 : .blocked16, zeroed: false)
        let outMD = ComputeEngine.md(of: out)
        // x in the kernel's layout (in the chain-input buffer), then the intermediate results alternating between the
        // source and destination buffers. A residual that is x (a block without downsample) is summed into x's
        // reordered copy, which the steps before the last only read: no second reorder of x.
        let x0MD = primitives[0].md(dnnl_query_src_md)
        var current = UnsafeMutableRawPointer(x.data), currentMD = shapes[0].userSrcMD, buffer = 1
        var reorderedInput: UnsafeMutableRawPointer?
        if !ComputeEngine.equal(currentMD, x0MD) {
            let b = reorderBuffer(.chainInput, ComputeEngine.size(x0MD))
            timed("reorder activations") { reorder(from: currentMD, current, to: x0MD, b) }
            (current, currentMD, reorderedInput) = (b, x0MD, b)
        }
        var written = false
        for (k, (step, (s, p))) in zip(steps, zip(shapes, primitives)).enumerated() {
            let srcMD = p.md(dnnl_query_src_md), dstMD = p.md(dnnl_query_dst_md)
            chainSource(&current, &currentMD, wanted: srcMD, buffer: &buffer)
            let dst: UnsafeMutableRawPointer
            if k == steps.count - 1, ComputeEngine.equal(dstMD, outMD), current != UnsafeMutableRawPointer(out.data) {
                // Straight into the result; a residual not summed into in place is copied there first.
                dst = UnsafeMutableRawPointer(out.data)
                if let residual, !intoResidual {
                    if residual.layout == out.layout {
                        timed("copy activations") { out.data.update(from: residual.data, count: out.storageCount) }
                    } else {
                        timed("reorder activations") {
                            reorder(from: ComputeEngine.md(of: residual), UnsafeMutableRawPointer(residual.data), to: outMD, dst)
                        }
                    }
                }
                written = true
            } else if k == steps.count - 1, let residual {
                if k > 0, residual === x, let input = reorderedInput, ComputeEngine.equal(x0MD, dstMD) {
                    dst = input
                } else {
                    dst = otherBuffer(&buffer, dstMD)
                    timed("reorder activations") {
                        reorder(from: ComputeEngine.md(of: residual), UnsafeMutableRawPointer(residual.data), to: dstMD, dst)
                    }
                }
            } else {
                dst = otherBuffer(&buffer, dstMD)
            }
            executeChainStep(step, s, p, source: current, destination: dst)
            (current, currentMD) = (dst, dstMD)
        }
        if !written {
            timed("reorder activations") { reorder(from: currentMD, current, to: outMD, UnsafeMutableRawPointer(out.data)) }
        }
        return out
    }

    /// A backward primitive (data or weights) for a shape, created once; nil (remembered) when oneDNN refuses a bf16
    /// or Winograd request for it.
    private func backwardPrimitive(_ kind: String, _ shape: ConvShape,
                                   _ initDesc: (ConvShape, inout dnnl_convolution_desc_t) -> dnnl_status_t) -> Primitive? {
        var s = shape
        let key = "conv bwd \(kind) \(s.key)"
        if let c = primitives[key] { return c }
        if refused.contains(key) { return nil }
        guard let hint = forwardPrimitive(s, training: true, relu: false, sum: false) else { return nil }
        s.kernelLayouts = hint.freeLayouts  // the forward kernel's layouts, so the backward one matches it
        s.blocks8 = forceBlocks8
        var desc = dnnl_convolution_desc_t()
        let status = initDesc(s, &desc)
        if (s.bf16 || s.winograd) && status != dnnl_success { refused.insert(key); return nil }
        check(status, "conv bwd \(kind) desc \(s.key)")
        let attr = attributes(relu: false, sum: false)
        var pd: dnnl_primitive_desc_t?
        let created = dnnl_primitive_desc_create(&pd, &desc, attr, engine, hint.pd)
        dnnl_primitive_attr_destroy(attr)
        if (s.bf16 || s.winograd) && created != dnnl_success { refused.insert(key); return nil }
        check(created, "conv bwd \(kind) pd \(s.key)")
        let p = Primitive(pd: pd!, what: "conv bwd \(kind)")
        p.freeLayouts = s.kernelLayouts
        primitives[key] = p
        implementations["bwd \(kind)\(s.bf16 ? " bf16" : "") \(s.weightShape[2])x\(s.weightShape[3]) s\(s.stride) \(ConvShape.layoutName(s.inLayout))\(p.freeLayouts ? " (kernel layouts)" : "") \(p.implementation)", default: 0] += 1
        return p
    }

    /// dL/dx of a convolution, given dL/dy [N, O, Ho, Wo] blocked. Returns [N, C, H, W] blocked (f32).
    /// `bf16` (mixed-precision training): dL/dy and the weights in bf16, f32 accumulation and result.
    public func convolutionBackwardData(_ dy: Tensor, weight: Tensor, inputShape: [Int], inputLayout: Layout = .blocked16,
                                        stride: Int = 1, padding: Int = 0, bf16: Bool = false) -> Tensor {
        run(backwardDataPlan(dy, weight: weight, inputShape: inputShape, inputLayout: inputLayout, stride: stride,
                             padding: padding, bf16: bf16), dy)
    }

    /// dL/dweight [O, C, kh, kw] (plain) and dL/dbias [O] of a convolution with input x, given dL/dy.
    /// `bf16` (mixed-precision training, blocked x): x and dL/dy in bf16, f32 accumulation and gradients.
    public func convolutionBackwardWeights(_ x: Tensor, _ dy: Tensor, weightShape: [Int], hasBias: Bool,
                                           stride: Int = 1, padding: Int = 0, bf16: Bool = false)
        -> (weight: Tensor, bias: Tensor?) {
        run(backwardWeightsPlan(x, dy, weightShape: weightShape, hasBias: hasBias, stride: stride, padding: padding, bf16: bf16), dy)
    }

    /// The gradients of one convolution at once: dL/dweight and dL/dbias when `weights`, dL/dx when `data`. Where
    /// both kernels read dL/dy in one layout other than the engine's (oneDNN's 8-channel blocks on AVX2), it is
    /// reordered once for both instead of once each. The results are those of the two calls above.
    public func convolutionBackward(_ x: Tensor, _ dy: Tensor, weight: Tensor, hasBias: Bool, weights: Bool, data: Bool,
                                    stride: Int = 1, padding: Int = 0, bf16: Bool = false)
        -> (dx: Tensor?, dw: Tensor?, db: Tensor?) {
        let weightsPlan = weights ? backwardWeightsPlan(x, dy, weightShape: weight.shape, hasBias: hasBias, stride: stride,
                                                        padding: padding, bf16: bf16) : nil
        let dataPlan = data ? backwardDataPlan(dy, weight: weight, inputShape: x.shape, inputLayout: x.layout, stride: stride,
                                               padding: padding, bf16: bf16) : nil
        guard let weightsPlan, let dataPlan, ComputeEngine.equal(weightsPlan.diffDstMD, dataPlan.diffDstMD),
              !ComputeEngine.equal(dataPlan.shape.userDstMD, dataPlan.diffDstMD) else {
            let dwb = weightsPlan.map { plan in timed("backward conv weights (within conv)") { run(plan, dy) } }
            return (dataPlan.map { run($0, dy) }, dwb?.weight, dwb?.bias)
        }
        return withLayout(UnsafeMutableRawPointer(dy.data), user: dataPlan.shape.userDstMD, wanted: dataPlan.diffDstMD, slot: .chainInput) { ddst in
            let (dw, db) = timed("backward conv weights (within conv)") { weightsPlan.run(ddst) }
            return (dataPlan.run(ddst), dw, db)
        }
    }

    /// A plan run on dL/dy as the engine holds it (reordered into the source slot where the kernel wants another layout).
    private func run(_ plan: BackwardDataPlan, _ dy: Tensor) -> Tensor {
        withLayout(UnsafeMutableRawPointer(dy.data), user: plan.shape.userDstMD, wanted: plan.diffDstMD, slot: .source) { plan.run($0) }
    }

    /// The same for weight gradients (dL/dy into the destination slot: the source slot holds x).
    private func run(_ plan: BackwardWeightsPlan, _ dy: Tensor) -> (weight: Tensor, bias: Tensor?) {
        withLayout(UnsafeMutableRawPointer(dy.data), user: plan.shape.userDstMD, wanted: plan.diffDstMD, slot: .destination) { plan.run($0) }
    }

    /// A backward-data primitive chosen for one shape, and its execution given dL/dy in `diffDstMD`.
    private struct BackwardDataPlan {
        var shape: ConvShape
        var diffDstMD: dnnl_memory_desc_t
        var run: (UnsafeMutableRawPointer) -> Tensor
    }

    private func backwardDataPlan(_ dy: Tensor, weight: Tensor, inputShape: [Int], inputLayout: Layout, stride: Int,
                                  padding: Int, bf16: Bool) -> BackwardDataPlan {
        // dL/dx in the input's blocking (nChw16c for a plain input).
        var s = ConvShape(inShape: inputShape, inLayout: inputLayout == .plain ? .blocked16 : inputLayout,
                          weightShape: weight.shape, hasBias: false, stride: stride, padding: padding)
        s.outLayout = dy.layout
        precondition(dy.shape == s.outShape && dy.layout.isBlocked, "convolution gradient \(dy.shape) \(dy.layout), want \(s.outShape)")
        s.bf16 = bf16 && bf16Available
        s.winograd = usesWinograd(s, training: true)
        func make(_ s: ConvShape) -> Primitive? {
            backwardPrimitive("data", s) { s, desc in
                var dsrc = s.diffSrcMD, w = s.anyWeightsMD, ddst = s.diffDstMD
                return dnnl_convolution_backward_data_desc_init(&desc, s.algorithm, &dsrc, &w, &ddst,
                                                                s.strides, s.padL, s.padR)
            }
        }
        var chosen = make(s)
        if chosen == nil { s.bf16 = false; s.winograd = false; chosen = make(s) }
        let p = chosen!
        let shape = s
        let diffDstMD = p.md(dnnl_query_diff_dst_md), diffSrcMD = p.md(dnnl_query_diff_src_md)
        return BackwardDataPlan(shape: shape, diffDstMD: diffDstMD) { [self] ddst in
            flops += 2 * Double(dy.n * dy.c * dy.h * dy.w) * Double(weight.count / weight.shape[0])
            let dx = Tensor(shape: inputShape, layout: shape.inLayout, zeroed: false)
            intoLayout(UnsafeMutableRawPointer(dx.data), user: shape.userSrcMD, wanted: diffSrcMD, accumulate: false) { dsrc in
                withWeights(weight, user: shape.userWeightsMD, wanted: p.md(dnnl_query_weights_md), constant: false) { wp in
                    execute(p, [
                        (DNNL_ARG_DIFF_DST, diffDstMD, ddst),
                        (DNNL_ARG_WEIGHTS, p.md(dnnl_query_weights_md), wp),
                        (DNNL_ARG_DIFF_SRC, diffSrcMD, dsrc),
                    ])
                }
            }
            return dx
        }
    }

    /// A backward-weights primitive chosen for one shape, and its execution given dL/dy in `diffDstMD`.
    private struct BackwardWeightsPlan {
        var shape: ConvShape
        var diffDstMD: dnnl_memory_desc_t
        var run: (UnsafeMutableRawPointer) -> (weight: Tensor, bias: Tensor?)
    }

    private func backwardWeightsPlan(_ x: Tensor, _ dy: Tensor, weightShape: [Int], hasBias: Bool, stride: Int,
                                     padding: Int, bf16: Bool) -> BackwardWeightsPlan {
        var s = ConvShape(inShape: x.shape, inLayout: x.layout, weightShape: weightShape, hasBias: hasBias, stride: stride, padding: padding)
        s.outLayout = dy.layout
        precondition(dy.shape == s.outShape && dy.layout.isBlocked, "convolution gradient \(dy.shape) \(dy.layout), want \(s.outShape)")
        s.bf16 = bf16 && bf16Available && x.layout == .blocked16
        s.winograd = usesWinograd(s, training: true)
        func make(_ s: ConvShape) -> Primitive? {
            backwardPrimitive("weights", s) { s, desc in
                var src = s.srcMD, dw = s.anyDiffWeightsMD, db = s.biasMD, ddst = s.diffDstMD
                return withUnsafePointer(to: &db) { bp in
                    dnnl_convolution_backward_weights_desc_init(&desc, s.algorithm, &src, &dw, hasBias ? bp : nil,
                                                                &ddst, s.strides, s.padL, s.padR)
                }
            }
        }
        var chosen = make(s)
        if chosen == nil { s.bf16 = false; s.winograd = false; chosen = make(s) }
        let p = chosen!
        let shape = s
        let wanted = p.md(dnnl_query_diff_weights_md)
        let srcMD = p.md(dnnl_query_src_md), diffDstMD = p.md(dnnl_query_diff_dst_md)
        return BackwardWeightsPlan(shape: shape, diffDstMD: diffDstMD) { [self] ddst in
            flops += 2 * Double(dy.n * dy.c * dy.h * dy.w) * Double(weightShape[1] * weightShape[2] * weightShape[3])
            let dw = Tensor(shape: weightShape, layout: .plain, zeroed: false)
            let db = hasBias ? Tensor(shape: [weightShape[0]], layout: .plain, zeroed: false) : nil
            let direct = ComputeEngine.equal(wanted, shape.userWeightsMD)
            let buf = direct ? UnsafeMutableRawPointer(dw.data)
                             : UnsafeMutableRawPointer.allocate(byteCount: ComputeEngine.size(wanted), alignment: 64)
            withLayout(UnsafeMutableRawPointer(x.data), user: shape.userSrcMD, wanted: srcMD, slot: .source) { src in
                var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
                    (DNNL_ARG_SRC, srcMD, src),
                    (DNNL_ARG_DIFF_DST, diffDstMD, ddst),
                    (DNNL_ARG_DIFF_WEIGHTS, wanted, buf),
                ]
                if let db { args.append((DNNL_ARG_DIFF_BIAS, shape.biasMD, UnsafeMutableRawPointer(db.data))) }
                execute(p, args)
            }
            if !direct {
                reorder(from: wanted, buf, to: shape.userWeightsMD, UnsafeMutableRawPointer(dw.data))
                buf.deallocate()
            }
            return (dw, db)
        }
    }

    /// Which oneDNN implementation runs a forward convolution of this shape (for the bench and tests).
    public func convolutionImplementation(inputShape: [Int], inputLayout: Layout = .blocked16, weightShape: [Int],
                                          stride: Int = 1, padding: Int = 0, bf16: Bool = false) -> String {
        var s = ConvShape(inShape: inputShape, inLayout: inputLayout, weightShape: weightShape, hasBias: false, stride: stride, padding: padding)
        s.bf16 = bf16 && inputLayout == .blocked16
        s.winograd = usesWinograd(s, training: false)
        if let p = forwardPrimitive(s, training: false, relu: false, sum: false) { return p.implementation }
        s.bf16 = false
        s.winograd = false
        return forwardPrimitive(s, training: false, relu: false, sum: false)!.implementation
    }
}


/// One convolution of an inference chain (`ComputeEngine.convolutionChain`): constant weights [O, C, kh, kw] (with
/// `weightValues` as in `convolution`: computes the values when the engine's cache needs them), bias, stride,
/// padding, and a ReLU post-op.
public struct ConvolutionStep {
    public var weight: Tensor
    public var bias: Tensor?
    public var stride: Int
    public var padding: Int
    public var relu: Bool
    public var weightValues: (() -> Tensor)?

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, relu: Bool = false,
                weightValues: (() -> Tensor)? = nil) {
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.relu = relu
        self.weightValues = weightValues
    }
}
