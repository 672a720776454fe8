import CBLAS
import Foundation

/// The ops of one forward pass. With a `tape`, each op records its backward step there (training); without one,
/// nothing but the outputs is kept (inference). Activations are blocked [N, C, H, W]; matrices are plain.
public struct Ops {
    public let engine: ComputeEngine
    public let tape: Tape?
    /// BatchNorm uses batch statistics (and updates the running ones) when training.
    public let training: Bool
    /// Convolutions in bf16 (f32 accumulation, f32 results and weight gradients): inference, or mixed-precision
    /// training whose backward convolutions are bf16 too (PyTorch autocast's split: BatchNorm, loss, master weights
    /// f32). Opt-in, not parity-exact.
    public let bf16: Bool
    /// Gradient checkpointing: HRNet modules run the blocks of their first `checkpointBranches` branches through
    /// `checkpointed` (training with a tape only), which keeps none of those blocks' activations for backward and
    /// computes them again there.
    public let checkpointBranches: Int
    /// A checkpointed region being run again in backward: BatchNorm normalises with the batch statistics as before
    /// but leaves the running statistics alone (they moved once, in the forward pass).
    public let replaying: Bool

    public init(engine: ComputeEngine, tape: Tape? = nil, training: Bool = false, bf16: Bool = false,
                checkpointBranches: Int = 0, replaying: Bool = false) {
        self.engine = engine
        self.tape = tape
        self.training = training
        self.bf16 = bf16
        self.checkpointBranches = checkpointBranches
        self.replaying = replaying
    }

    // MARK: Gradient checkpointing

    /// `body(ops)` with its activations recomputed in backward instead of kept: the forward pass runs it without
    /// recording; one backward step runs it again on a tape of its own (training convolutions and batch statistics
    /// as the first time, so the same values) and backpropagates dL/doutput through that, handing the gradients of
    /// its parameters and inputs to this tape. `body` must depend only on tensors that outlive the step (its
    /// inputs and parameters); it runs twice.
    public func checkpointed(_ body: @escaping (Ops) -> Tensor) -> Tensor {
        guard let tape else { return body(self) }
        let engine = self.engine, training = self.training, bf16 = self.bf16
        let y = body(Ops(engine: engine, training: training, bf16: bf16, replaying: replaying))
        y.requiresGrad = true
        tape.record("checkpointed region (forward again and backward)") {
            guard let dy = tape.takeGradient(y) else { return }
            let inner = Tape()
            let again = body(Ops(engine: engine, tape: inner, training: training, bf16: bf16, replaying: true))
            inner.backward(from: again, gradient: dy)
            inner.handOver(to: tape)
        }
        return y
    }

    /// Inference: no tape and not training (convolution chains, folded BatchNorm, post-ops).
    public var inference: Bool { tape == nil && !training }

    private func tracks(_ ts: Tensor?...) -> Bool { tape != nil && ts.contains { $0?.requiresGrad == true } }

    // MARK: Layouts

    /// x in nChw16c (for the ops that need one blocking: bf16 convolutions, maps of mixed blockings); x itself when
    /// it is not nChw8c. With a tape, dL/dx goes back in x's layout.
    public func blocked16(_ x: Tensor) -> Tensor {
        guard x.layout == .blocked8 else { return x }
        let y = engine.timed("reorder activations") { x.inLayout(.blocked16) }
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("reorder") {
            guard let dy = tape.takeGradient(y) else { return }
            tape.accumulate(x, dy)   // converted to x's layout there
        }
        return y
    }

    /// The maps in one blocking: as they are when they share one, else in nChw16c (`blocked16`).
    func oneBlocking(_ xs: [Tensor]) -> [Tensor] {
        xs.allSatisfy({ $0.layout == xs[0].layout && $0.layout.isBlocked }) ? xs : xs.map(blocked16)
    }

    // MARK: Convolution

    /// conv(x, weight) + bias. x [N, C, H, W]; weight [O, C, k, k] plain; bias [O] or nil.
    /// Inference only: `relu` and `sumInto` run as oneDNN post-ops; `weightValues` computes the weights' values
    /// when the engine's cache of reordered constant weights needs them (`weight` is then the cache's key).
    public func conv(_ x: Tensor, _ weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                     relu: Bool = false, sumInto: Tensor? = nil, weightValues: (() -> Tensor)? = nil) -> Tensor {
        precondition(tape == nil || (!relu && sumInto == nil && weightValues == nil), "post-ops are for inference only")
        let engine = self.engine
        // The engine times the convolution itself by kind, and its reorders apart.
        let y = engine.convolution(x, weight: weight, bias: bias, stride: stride, padding: padding,
                                   training: tape != nil || training, constantWeights: inference,
                                   weightValues: weightValues, sumInto: sumInto, relu: relu, bf16: bf16)
        guard let tape, tracks(x, weight, bias) else { return y }
        y.requiresGrad = true
        tape.record("conv") {
            guard let dy = tape.takeGradient(y) else { return }
            // Both gradients in one call: dL/dy is reordered for the kernels once (AVX2).
            let (dx, dw, db) = engine.convolutionBackward(x, dy, weight: weight, hasBias: bias != nil,
                                                          weights: weight.requiresGrad || bias?.requiresGrad == true,
                                                          data: x.requiresGrad, stride: stride, padding: padding, bf16: bf16)
            if let dw { tape.accumulate(weight, dw) }
            if let bias, let db { tape.accumulate(bias, db) }
            if let dx { tape.accumulate(x, dx) }
        }
        return y
    }

    /// Inference: convolutions one after another, the last summing `residual` in (into it when `intoResidual`),
    /// with the intermediate results kept in the kernels' layout (`ComputeEngine.convolutionChain`).
    public func convChain(_ x: Tensor, _ steps: [ConvolutionStep], residual: Tensor? = nil, intoResidual: Bool = false) -> Tensor {
        precondition(inference, "convolution chains are for inference only")
        // bf16 kernels read nChw16c; f32 chains take either blocking and return the kernels' own (nChw8c on AVX2).
        let x = bf16 ? blocked16(x) : x
        return engine.convolutionChain(x, steps, residual: bf16 && !intoResidual ? residual.map(blocked16) : residual,
                                       intoResidual: intoResidual, bf16: bf16)
    }

    /// Inference: residual blocks without downsample (`ComputeEngine.residualBlocksChain`).
    public func residualBlocks(_ x: Tensor, _ blocks: [[ConvolutionStep]]) -> Tensor {
        precondition(inference, "convolution chains are for inference only")
        guard !bf16 else { return blocks.reduce(blocked16(x)) { h, block in convChain(h, block, residual: h) } }
        return engine.residualBlocksChain(x, blocks)
    }

    // MARK: BatchNorm

    /// BatchNorm2d as PyTorch: training normalises with the batch mean and biased variance and moves the running
    /// statistics by `momentum` (running_var gets the unbiased variance); inference uses the running statistics.
    /// Optionally followed by `+ residual` and ReLU in the same pass: y = relu(bn(x) + residual). Training then
    /// keeps only x and y for backward (not the intermediate sums), a third of the activation memory of a block.
    public func batchNorm(_ x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
                          momentum: Float = 0.1, eps: Float = 1e-5, residual: Tensor? = nil, relu: Bool = false) -> Tensor {
        precondition(x.layout.isBlocked, "batchNorm wants a blocked activation")
        let C = x.c, HW = x.h * x.w, B = x.layout.blockWidth
        let lanes = x.channelBlocks * B
        let residualValues = residual?.inLayout(x.layout)   // read in x's layout; its gradient goes to `residual`
        // Per-lane (channel) vectors; padding lanes stay 0 so padding stays 0.
        let mean = Tensor(shape: [lanes]), invstd = Tensor(shape: [lanes])
        let scale = Tensor(shape: [lanes]), shift = Tensor(shape: [lanes])
        let M = Double(x.n * HW)
        if training {
            let sum = Self.laneSums(x, nil, center: nil)
            for ch in 0..<C { mean.data[ch] = Float(sum[ch] / M) }
            // Variance from centred values (no cancellation).
            let sq = Self.laneSums(x, x, center: mean)
            for ch in 0..<C {
                let v = sq[ch] / M
                invstd.data[ch] = Float(1 / (v + Double(eps)).squareRoot())
                guard !replaying else { continue }  // the running statistics moved in the forward pass
                runningMean.data[ch] = (1 - momentum) * runningMean.data[ch] + momentum * mean.data[ch]
                let unbiased = M > 1 ? v * M / (M - 1) : v
                runningVar.data[ch] = (1 - momentum) * runningVar.data[ch] + momentum * Float(unbiased)
            }
        } else {
            for ch in 0..<C {
                mean.data[ch] = runningMean.data[ch]
                invstd.data[ch] = 1 / (runningVar.data[ch] + eps).squareRoot()
            }
        }
        for ch in 0..<C {
            scale.data[ch] = weight.data[ch] * invstd.data[ch]
            shift.data[ch] = bias.data[ch] - mean.data[ch] * scale.data[ch]
        }
        let y = Tensor(shape: x.shape, layout: x.layout, zeroed: false)
        if let residual {
            precondition(residual.shape == x.shape, "residual \(residual.shape) for \(x.shape)")
        }
        engine.timed("batchnorm") { Self.laneAffine(x, scale: scale, shift: shift, residual: residualValues, relu: relu, into: y) }
        if relu && training && !replaying { recordDecisions(y) }
        guard let tape, tracks(x, weight, bias, residual) else { return y }
        y.requiresGrad = true
        let training = self.training
        tape.record("batchnorm") {
            guard let dy = tape.takeGradient(y) else { return }
            defer { if let residual { tape.accumulate(residual, dy) } }  // after the reads below
            // Σdy and Σdy·x̂ per channel, x̂ = (x − mean)·invstd, in one pass that also applies ReLU's mask to dy
            // (dy is ours now).
            let (sdy, sdyxc) = Self.laneGradientSums(dy, x, center: mean, reluOutput: relu ? y : nil)
            let dw = Tensor(shape: [C]), db = Tensor(shape: [C])
            for ch in 0..<C {
                dw.data[ch] = Float(sdyxc[ch] * Double(invstd.data[ch]))
                db.data[ch] = Float(sdy[ch])
            }
            tape.accumulate(weight, dw)
            tape.accumulate(bias, db)
            guard x.requiresGrad else { return }
            // Training: dx = scale·dy − scale/M·Σdy − scale/M·invstd²·Σdy(x−mean)·(x − mean) = a·dy + c·(x − mean) + b.
            // Inference statistics are constants: dx = scale·dy.
            let a = Tensor(shape: [lanes]), b = Tensor(shape: [lanes]), c = Tensor(shape: [lanes])
            for ch in 0..<C {
                let s = Double(scale.data[ch]), i = Double(invstd.data[ch])
                a.data[ch] = scale.data[ch]
                if training {
                    let k = s / M * i * i * sdyxc[ch]
                    c.data[ch] = Float(-k)
                    b.data[ch] = Float(-s / M * sdy[ch])
                }
            }
            let dx = Tensor(shape: x.shape, layout: x.layout, zeroed: false)
            if B == 8 {
                Self.laneGradientInput(SIMD8<Float>.self, dy, x, a: a, b: b, c: c, mean: mean, into: dx)
            } else {
                Self.laneGradientInput(SIMD16<Float>.self, dy, x, a: a, b: b, c: c, mean: mean, into: dx)
            }
            tape.accumulate(x, dx)
        }
        return y
    }

    /// Runs `body(plane)` for each of `planes` (an image's block of 16 channels): on every core through Dispatch
    /// when the work is large enough to pay for it, else in order on this thread. Each plane writes only its own
    /// memory, so results do not depend on the threads.
    static func forEachPlane(_ planes: Int, floatsPerPlane: Int, _ body: (Int) -> Void) {
        if planes > 1 && planes * floatsPerPlane >= 1 << 16 {
            // The planes write disjoint memory and concurrentPerform returns after the last: safe to share the body.
            struct SharedBody: @unchecked Sendable { let run: (Int) -> Void }
            withoutActuallyEscaping(body) { body in
                let shared = SharedBody(run: body)
                DispatchQueue.concurrentPerform(iterations: planes) { shared.run($0) }
            }
        } else {
            for pi in 0..<planes { body(pi) }
        }
    }

    /// Per channel lane: Σ u (v == nil) or Σ u·(v − center), over N, H, W of blocked tensors. Float partial sums
    /// over runs of 64 pixels, accumulated in Double per plane; planes are then added in order (deterministic, and
    /// the same in either blocking: a lane's pixels are summed in the same order).
    static func laneSums(_ u: Tensor, _ v: Tensor?, center: Tensor?) -> [Double] {
        u.layout == .blocked8 ? laneSums(SIMD8<Float>.self, u, v, center: center) : laneSums(SIMD16<Float>.self, u, v, center: center)
    }

    /// `laneSums` with the block width a constant of the specialisation (the lane loops unrolled as before).
    @inline(__always)
    static func laneSums<V: LaneVector>(_: V.Type, _ u: Tensor, _ v: Tensor?, center: Tensor?) -> [Double] {
        let B = V.scalarCount, cb = u.channelBlocks, HW = u.h * u.w, plane = HW * B, planes = u.n * cb
        var partial = [Double](repeating: 0, count: planes * B)
        partial.withUnsafeMutableBufferPointer { buffer in
            let sums = buffer.baseAddress!
            forEachPlane(planes, floatsPerPlane: plane) { pi in
                let up = u.data + pi * plane
                let vp = v.map { $0.data + pi * plane }
                let cp = center.map { $0.data + (pi % cb) * B }
                let out = sums + pi * B
                // One SIMD lane per channel: each lane adds its pixels in order, as a lane-by-lane loop would.
                let c = cp.map { V.load($0) } ?? V()
                var i = 0
                while i < HW {
                    let end = min(i + 64, HW)
                    var acc = V()
                    if let vp, cp != nil {
                        for j in i..<end { acc += V.load(up + j * B) * (V.load(vp + j * B) - c) }
                    } else if let vp {
                        for j in i..<end { acc += V.load(up + j * B) * V.load(vp + j * B) }
                    } else {
                        for j in i..<end { acc += V.load(up + j * B) }
                    }
                    for l in 0..<B { out[l] += Double(acc[l]) }
                    i = end
                }
            }
        }
        return reducePlanes(partial, channelBlocks: cb, width: B)
    }

    /// BatchNorm backward's two sums in one pass: Σ dy and Σ dy·(x − center) per lane. With `reluOutput`, first
    /// zeroes dy where that ReLU output is ≤ 0 (in place). Same summation order as `laneSums`.
    static func laneGradientSums(_ dy: Tensor, _ x: Tensor, center: Tensor, reluOutput: Tensor?) -> (sum: [Double], centred: [Double]) {
        dy.layout == .blocked8
            ? laneGradientSums(SIMD8<Float>.self, dy, x, center: center, reluOutput: reluOutput)
            : laneGradientSums(SIMD16<Float>.self, dy, x, center: center, reluOutput: reluOutput)
    }

    @inline(__always)
    static func laneGradientSums<V: LaneVector>(_: V.Type, _ dy: Tensor, _ x: Tensor, center: Tensor, reluOutput: Tensor?)
        -> (sum: [Double], centred: [Double]) {
        let B = V.scalarCount, cb = dy.channelBlocks, HW = dy.h * dy.w, plane = HW * B, planes = dy.n * cb
        var partial = [Double](repeating: 0, count: planes * 2 * B)
        partial.withUnsafeMutableBufferPointer { buffer in
            let sums = buffer.baseAddress!
            forEachPlane(planes, floatsPerPlane: plane) { pi in
                let g = dy.data + pi * plane, xv = x.data + pi * plane
                let yv = reluOutput.map { $0.data + pi * plane }
                let cp = center.data + (pi % cb) * B
                let out = sums + pi * 2 * B
                // One SIMD lane per channel: the same additions in the same order as lane-by-lane loops.
                let c = V.load(cp)
                var i = 0
                while i < HW {
                    let end = min(i + 64, HW)
                    var sumD = V(), sumDX = V()
                    if let yv {
                        for j in i..<end {
                            let d = V.load(g + j * B).gated(by: V.load(yv + j * B))
                            d.store(g + j * B)
                            sumD += d
                            sumDX += d * (V.load(xv + j * B) - c)
                        }
                    } else {
                        for j in i..<end {
                            let d = V.load(g + j * B)
                            sumD += d
                            sumDX += d * (V.load(xv + j * B) - c)
                        }
                    }
                    for l in 0..<B { out[l] += Double(sumD[l]); out[B + l] += Double(sumDX[l]) }
                    i = end
                }
            }
        }
        let sum = reducePlanes((0..<planes).flatMap { partial[$0 * 2 * B ..< $0 * 2 * B + B] }, channelBlocks: cb, width: B)
        let centred = reducePlanes((0..<planes).flatMap { partial[$0 * 2 * B + B ..< $0 * 2 * B + 2 * B] }, channelBlocks: cb, width: B)
        return (sum, centred)
    }

    /// Adds per-plane lane sums (plane pi = image pi / cb, channel block pi % cb) into per-channel sums, in order.
    private static func reducePlanes(_ partial: [Double], channelBlocks cb: Int, width B: Int) -> [Double] {
        var out = [Double](repeating: 0, count: cb * B)
        for pi in 0..<(partial.count / B) {
            for l in 0..<B { out[(pi % cb) * B + l] += partial[pi * B + l] }
        }
        return out
    }

    /// y = scale·x + shift per channel lane, optionally + residual and then ReLU, in one pass.
    static func laneAffine(_ x: Tensor, scale: Tensor, shift: Tensor, residual: Tensor? = nil, relu: Bool = false, into y: Tensor) {
        if x.layout == .blocked8 {
            laneAffine(SIMD8<Float>.self, x, scale: scale, shift: shift, residual: residual, relu: relu, into: y)
        } else {
            laneAffine(SIMD16<Float>.self, x, scale: scale, shift: shift, residual: residual, relu: relu, into: y)
        }
    }

    @inline(__always)
    static func laneAffine<V: LaneVector>(_: V.Type, _ x: Tensor, scale: Tensor, shift: Tensor, residual: Tensor?, relu: Bool,
                                          into y: Tensor) {
        let B = V.scalarCount, cb = x.channelBlocks, HW = x.h * x.w, plane = HW * B
        forEachPlane(x.n * cb, floatsPerPlane: plane) { pi in
            let k = pi % cb
            let xp = x.data + pi * plane, yp = y.data + pi * plane
            let s = V.load(scale.data + k * B), t = V.load(shift.data + k * B)
            if let residual {
                let rp = residual.data + pi * plane
                if relu {
                    for i in 0..<HW { (V.load(xp + i * B) * s + t + V.load(rp + i * B)).positivePart.store(yp + i * B) }
                } else {
                    for i in 0..<HW { (V.load(xp + i * B) * s + t + V.load(rp + i * B)).store(yp + i * B) }
                }
            } else if relu {
                for i in 0..<HW { (V.load(xp + i * B) * s + t).positivePart.store(yp + i * B) }
            } else {
                for i in 0..<HW { (V.load(xp + i * B) * s + t).store(yp + i * B) }
            }
        }
    }

    /// BatchNorm's dL/dx = a·dy + c·(x − mean) + b per channel lane.
    @inline(__always)
    static func laneGradientInput<V: LaneVector>(_: V.Type, _ dy: Tensor, _ x: Tensor, a: Tensor, b: Tensor, c: Tensor,
                                                 mean: Tensor, into dx: Tensor) {
        let B = V.scalarCount, cb = x.channelBlocks, HW = x.h * x.w, plane = HW * B
        forEachPlane(x.n * cb, floatsPerPlane: plane) { pi in
            let lane = (pi % cb) * B
            let g = dy.data + pi * plane, xv = x.data + pi * plane, o = dx.data + pi * plane
            let pa = V.load(a.data + lane), pb = V.load(b.data + lane)
            let pc = V.load(c.data + lane), pm = V.load(mean.data + lane)
            for i in 0..<HW {
                (pa * V.load(g + i * B) + pc * (V.load(xv + i * B) - pm) + pb).store(o + i * B)
            }
        }
    }

    /// Appends a ReLU output's decisions to `engine.reluDecisions` when a check asked for them.
    private func recordDecisions(_ y: Tensor) {
        guard engine.reluDecisions != nil else { return }
        engine.reluDecisions!.append(y.values().map { $0 > 0 })
    }

    // MARK: Elementwise

    public func relu(_ x: Tensor) -> Tensor {
        let y = Tensor(shape: x.shape, layout: x.layout, zeroed: false)
        engine.timed("relu") { for i in 0..<x.storageCount { y.data[i] = max(x.data[i], 0) } }
        if training && !replaying { recordDecisions(y) }
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("relu") {
            guard let dy = tape.takeGradient(y) else { return }
            let dx = Tensor(shape: x.shape, layout: x.layout, zeroed: false)
            for i in 0..<x.storageCount { dx.data[i] = y.data[i] > 0 ? dy.data[i] : 0 }
            tape.accumulate(x, dx)
        }
        return y
    }

    /// Σ terms (same shape), in the first term's layout.
    public func sum(_ terms: [Tensor]) -> Tensor {
        precondition(!terms.isEmpty)
        let y = terms[0].copy()
        engine.timed("add") { for t in terms.dropFirst() { y.add(t.inLayout(y.layout)) } }
        guard let tape, terms.contains(where: { $0.requiresGrad }) else { return y }
        y.requiresGrad = true
        tape.record("add") {
            guard let dy = tape.takeGradient(y) else { return }
            for t in terms where t.requiresGrad { tape.accumulate(t, dy.copy()) }
        }
        return y
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { sum([a, b]) }

    /// relu(Σ terms): HRNet's fuse. Inference does it in one buffer, without the intermediate sum.
    public func sumRelu(_ terms: [Tensor]) -> Tensor {
        if tape != nil { return relu(sum(terms)) }
        let y = terms[0].copy()
        engine.timed("add") {
            for t in terms.dropFirst() { y.add(t.inLayout(y.layout)) }
            for i in 0..<y.storageCount { y.data[i] = max(y.data[i], 0) }
        }
        return y
    }

    /// Bilinear resize (align_corners=False) of a plain NCHW tensor, one channel plane at a time: the network's
    /// output edge, where 4 class channels would otherwise be padded to a block of 16. Inference only.
    public func resizeBilinearPlain(_ x: Tensor, height outH: Int, width outW: Int) -> Tensor {
        precondition(x.layout == .plain && x.shape.count == 4 && tape == nil)
        let (rows, cols, y) = Self.bilinearResize(x, height: outH, width: outW)
        let inW = x.w
        engine.timed("resize") {
            Self.forEachPlane(x.n * x.c, floatsPerPlane: outH * outW) { p in
                let plane = x.data + p * x.h * inW, out = y.data + p * outH * outW
                for oy in 0..<outH {
                    let r = rows[oy]
                    let top = plane + r.0 * inW, bottom = plane + r.1 * inW
                    let o = out + oy * outW
                    for ox in 0..<outW {
                        let c = cols[ox]
                        o[ox] = r.2 * (c.2 * top[c.0] + c.3 * top[c.1]) + r.3 * (c.2 * bottom[c.0] + c.3 * bottom[c.1])
                    }
                }
            }
        }
        return y
    }

    /// Elementwise sigmoid, returned as plain NCHW (the network's output edge).
    public func sigmoid(_ x: Tensor) -> Tensor {
        let p = x.toPlain()
        let y = p === x ? Tensor(shape: x.shape, layout: .plain, zeroed: false) : p  // a fresh conversion is ours
        for i in 0..<p.count { y.data[i] = 1 / (1 + expf(-p.data[i])) }
        return y
    }

    // MARK: Spatial

    /// Bilinear resize to outH × outW with align_corners=False, exactly as PyTorch's upsample_bilinear2d (source
    /// index (dst + 0.5)·in/out − 0.5, clamped at 0; the far neighbour is clamped to the last row/column).
    public func resizeBilinear(_ x: Tensor, height outH: Int, width outW: Int) -> Tensor {
        precondition(x.layout.isBlocked)
        if x.h == outH && x.w == outW { return x }
        let (rows, cols, y) = Self.bilinearResize(x, height: outH, width: outW)
        let inW = x.w, B = x.layout.blockWidth
        engine.timed("resize") {
            Self.forEachPlane(x.n * x.channelBlocks, floatsPerPlane: outH * outW * B) { pi in
                Self.resizePlane(x.data + pi * x.h * inW * B, lanes: B, inW: inW, rows: rows, cols: cols,
                                 into: y.data + pi * outH * outW * B)
            }
        }
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("resize") {
            guard let dy = tape.takeGradient(y) else { return }
            let dx = Tensor(shape: x.shape, layout: x.layout)
            let planes = x.n * x.channelBlocks, inPlane = x.h * x.w * B, outPlane = outH * outW * B
            Self.forEachPlane(planes, floatsPerPlane: outPlane) { pi in
                if B == 8 {
                    Self.resizePlaneBackward(SIMD8<Float>.self, dy.data + pi * outPlane, inW: inW, rows: rows, cols: cols,
                                             into: dx.data + pi * inPlane)
                } else {
                    Self.resizePlaneBackward(SIMD16<Float>.self, dy.data + pi * outPlane, inW: inW, rows: rows, cols: cols,
                                             into: dx.data + pi * inPlane)
                }
            }
            tape.accumulate(x, dx)
        }
        return y
    }

    /// One plane of a channel block (`lanes` channels): out[oy, ox] = bilinear mix of the four taps.
    static func resizePlane(_ plane: UnsafeMutablePointer<Float>, lanes: Int, inW: Int, rows: [(Int, Int, Float, Float)],
                            cols: [(Int, Int, Float, Float)], into out: UnsafeMutablePointer<Float>) {
        if lanes == 8 {
            resizePlane(SIMD8<Float>.self, plane, inW: inW, rows: rows, cols: cols, into: out)
        } else {
            resizePlane(SIMD16<Float>.self, plane, inW: inW, rows: rows, cols: cols, into: out)
        }
    }

    @inline(__always)
    static func resizePlane<V: LaneVector>(_: V.Type, _ plane: UnsafeMutablePointer<Float>, inW: Int,
                                           rows: [(Int, Int, Float, Float)], cols: [(Int, Int, Float, Float)],
                                           into out: UnsafeMutablePointer<Float>) {
        let outW = cols.count, B = V.scalarCount
        for oy in 0..<rows.count {
            let r = rows[oy]
            for ox in 0..<outW {
                let c = cols[ox]
                let a = V.load(plane + (r.0 * inW + c.0) * B), b = V.load(plane + (r.0 * inW + c.1) * B)
                let d = V.load(plane + (r.1 * inW + c.0) * B), e = V.load(plane + (r.1 * inW + c.1) * B)
                (r.2 * (c.2 * a + c.3 * b) + r.3 * (c.2 * d + c.3 * e)).store(out + (oy * outW + ox) * B)
            }
        }
    }

    /// dL/dx of one plane's bilinear resize: each output gradient spread over its four taps (added in the forward
    /// pass's tap order).
    @inline(__always)
    static func resizePlaneBackward<V: LaneVector>(_: V.Type, _ g: UnsafeMutablePointer<Float>, inW: Int,
                                                   rows: [(Int, Int, Float, Float)], cols: [(Int, Int, Float, Float)],
                                                   into o: UnsafeMutablePointer<Float>) {
        let outW = cols.count, B = V.scalarCount
        func add(_ p: UnsafeMutablePointer<Float>, _ v: V) { (V.load(p) + v).store(p) }
        for oy in 0..<rows.count {
            let r = rows[oy]
            for ox in 0..<outW {
                let c = cols[ox]
                let v = V.load(g + (oy * outW + ox) * B)
                add(o + (r.0 * inW + c.0) * B, r.2 * c.2 * v)
                add(o + (r.0 * inW + c.1) * B, r.2 * c.3 * v)
                add(o + (r.1 * inW + c.0) * B, r.3 * c.2 * v)
                add(o + (r.1 * inW + c.1) * B, r.3 * c.3 * v)
            }
        }
    }

    /// Resizes every map to height × width (bilinear, align_corners=False) and concatenates them along channels:
    /// the FCN head's resize_concat. Inference writes each map straight into its channel range when the ranges
    /// start on channel blocks (all HRNet widths are multiples of 16); otherwise, and when training, it is
    /// resize then concat.
    /// `rows` (inference only) computes just that band of output rows: [N, ΣC, rows.count, width].
    public func resizeConcat(_ xs: [Tensor], height: Int, width: Int, rows band: Range<Int>? = nil) -> Tensor {
        let xs = oneBlocking(xs)
        let B = xs[0].layout.blockWidth
        var bases: [Int] = []
        var total = 0
        for x in xs { bases.append(total); total += x.c }
        guard tape == nil, bases.allSatisfy({ $0 % B == 0 }) else {
            precondition(band == nil, "banded resize-concat is for inference with block-aligned widths")
            return concat(xs.map { resizeBilinear($0, height: height, width: width) })
        }
        let band = band ?? 0..<height
        let y = Tensor(shape: [xs[0].n, total, band.count, width], layout: xs[0].layout)
        let outPlane = band.count * width * B
        engine.timed("resize") {
            // Every (map, image, channel block) plane of the result, on every core.
            let taps = xs.map { x in (Array(Self.bilinearTaps(input: x.h, output: height)[band]), Self.bilinearTaps(input: x.w, output: width)) }
            let jobs = zip(xs.indices, bases).flatMap { i, base in
                (0..<xs[i].n).flatMap { b in (0..<xs[i].channelBlocks).map { k in (i, base, b, k) } }
            }
            Self.forEachPlane(jobs.count, floatsPerPlane: outPlane) { j in
                let (i, base, b, k) = jobs[j]
                let x = xs[i], (rows, cols) = taps[i]
                let src = x.data + (b * x.channelBlocks + k) * x.h * x.w * B
                let dst = y.data + (b * y.channelBlocks + base / B + k) * outPlane
                if x.h == height && x.w == width { dst.update(from: src + band.lowerBound * width * B, count: outPlane) }
                else { Self.resizePlane(src, lanes: B, inW: x.w, rows: rows, cols: cols, into: dst) }
            }
        }
        return y
    }

    /// Copies a band of rows [N, C, r, W] into `whole` [N, C, H, W] starting at row `at` (inference).
    public func placeRows(_ band: Tensor, into whole: Tensor, at row: Int) {
        let band = band.inLayout(whole.layout)
        precondition(band.n == whole.n && band.c == whole.c && band.w == whole.w && row + band.h <= whole.h)
        let planes = band.n * band.channelBlocks, B = whole.layout.blockWidth
        for pi in 0..<planes {
            (whole.data + (pi * whole.h + row) * whole.w * B).update(from: band.data + pi * band.h * band.w * B,
                                                                     count: band.h * band.w * B)
        }
    }

    /// A bilinear resize of x to outH × outW: the taps of its rows and columns, and its output (x's batch, channels
    /// and layout; not zeroed).
    static func bilinearResize(_ x: Tensor, height outH: Int, width outW: Int)
        -> (rows: [(Int, Int, Float, Float)], cols: [(Int, Int, Float, Float)], y: Tensor) {
        (bilinearTaps(input: x.h, output: outH), bilinearTaps(input: x.w, output: outW),
         Tensor(shape: [x.n, x.c, outH, outW], layout: x.layout, zeroed: false))
    }

    /// (near index, far index, near weight, far weight) per output position, PyTorch's align_corners=False rule.
    static func bilinearTaps(input: Int, output: Int) -> [(Int, Int, Float, Float)] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { d in
            let src = max(scale * (Float(d) + 0.5) - 0.5, 0)
            let i0 = min(Int(src), input - 1)
            let i1 = i0 < input - 1 ? i0 + 1 : i0
            let l1 = src - Float(i0)
            return (i0, i1, 1 - l1, l1)
        }
    }

    /// Nearest-neighbour upsampling by an integer factor (nn.Upsample(scale_factor=f, mode='nearest')).
    public func upsampleNearest(_ x: Tensor, factor f: Int) -> Tensor {
        precondition(x.layout.isBlocked)
        let outH = x.h * f, outW = x.w * f, B = x.layout.blockWidth
        let y = Tensor(shape: [x.n, x.c, outH, outW], layout: x.layout, zeroed: false)
        let planes = x.n * x.channelBlocks, inPlane = x.h * x.w * B, outPlane = outH * outW * B
        Self.forEachPlane(planes, floatsPerPlane: outPlane) { pi in
            for oy in 0..<outH {
                for ox in 0..<outW {
                    (y.data + pi * outPlane + (oy * outW + ox) * B)
                        .update(from: x.data + pi * inPlane + ((oy / f) * x.w + ox / f) * B, count: B)
                }
            }
        }
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("resize") {
            guard let dy = tape.takeGradient(y) else { return }
            let dx = Tensor(shape: x.shape, layout: x.layout)
            Self.forEachPlane(planes, floatsPerPlane: outPlane) { pi in
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        let g = dy.data + pi * outPlane + (oy * outW + ox) * B
                        let o = dx.data + pi * inPlane + ((oy / f) * x.w + ox / f) * B
                        for l in 0..<B { o[l] += g[l] }
                    }
                }
            }
            tape.accumulate(x, dx)
        }
        return y
    }

    /// Zero padding at the bottom and right up to height × width.
    public func padBottomRight(_ x: Tensor, height: Int, width: Int) -> Tensor {
        if x.h == height && x.w == width { return x }
        precondition(x.layout.isBlocked)
        let y = Tensor(shape: [x.n, x.c, height, width], layout: x.layout)
        Self.copyWindow(from: x, to: y, rows: x.h, cols: x.w)
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("pad/crop") {
            guard let dy = tape.takeGradient(y) else { return }
            let dx = Tensor(shape: x.shape, layout: x.layout, zeroed: false)
            Self.copyWindow(from: dy.inLayout(x.layout), to: dx, rows: x.h, cols: x.w)
            tape.accumulate(x, dx)
        }
        return y
    }

    /// The top-left height × width window.
    public func crop(_ x: Tensor, height: Int, width: Int) -> Tensor {
        if x.h == height && x.w == width { return x }
        precondition(x.layout.isBlocked)
        let y = Tensor(shape: [x.n, x.c, height, width], layout: x.layout, zeroed: false)
        Self.copyWindow(from: x, to: y, rows: height, cols: width)
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("pad/crop") {
            guard let dy = tape.takeGradient(y) else { return }
            let dx = Tensor(shape: x.shape, layout: x.layout)
            Self.copyWindow(from: dy.inLayout(x.layout), to: dx, rows: height, cols: width)
            tape.accumulate(x, dx)
        }
        return y
    }

    /// Copies the top-left rows × cols of every plane of `src` into `dst` (same N, blocking and channel blocks).
    static func copyWindow(from src: Tensor, to dst: Tensor, rows: Int, cols: Int) {
        precondition(src.layout == dst.layout && src.layout.isBlocked)
        let planes = src.n * src.channelBlocks, B = src.layout.blockWidth
        for pi in 0..<planes {
            for r in 0..<rows {
                (dst.data + ((pi * dst.h + r) * dst.w) * B)
                    .update(from: src.data + ((pi * src.h + r) * src.w) * B, count: cols * B)
            }
        }
    }

    /// Concatenation along channels.
    public func concat(_ xs: [Tensor]) -> Tensor {
        let xs = oneBlocking(xs)
        let C = xs.reduce(0) { $0 + $1.c }
        let x0 = xs[0]
        let y = Tensor(shape: [x0.n, C, x0.h, x0.w], layout: x0.layout)
        engine.timed("concat") { Self.moveChannels(xs, y, toConcat: true) }
        guard let tape, xs.contains(where: { $0.requiresGrad }) else { return y }
        y.requiresGrad = true
        tape.record("concat") {
            guard let dy = tape.takeGradient(y) else { return }
            let parts = xs.map { Tensor(shape: $0.shape, layout: y.layout) }
            Self.moveChannels(parts, dy.inLayout(y.layout), toConcat: false)
            for (x, g) in zip(xs, parts) { tape.accumulate(x, g) }
        }
        return y
    }

    /// Copies channel ranges between `parts` and the concatenation `whole` (all in one blocking), in either direction.
    static func moveChannels(_ parts: [Tensor], _ whole: Tensor, toConcat: Bool) {
        let HW = whole.h * whole.w, B = whole.layout.blockWidth
        var base = 0
        for p in parts {
            precondition(p.n == whole.n && p.h == whole.h && p.w == whole.w && p.layout == whole.layout,
                         "concat of \(p.shape) \(p.layout) with \(whole.shape) \(whole.layout)")
            for b in 0..<whole.n {
                if base % B == 0 {
                    // Whole blocks line up: copy block planes (padding lanes of the last block are zero on both sides).
                    for k in 0..<p.channelBlocks {
                        let pp = p.data + (b * p.channelBlocks + k) * HW * B
                        let wp = whole.data + (b * whole.channelBlocks + base / B + k) * HW * B
                        let lanes = min(B, p.c - k * B)
                        if lanes == B {
                            if toConcat { wp.update(from: pp, count: HW * B) } else { pp.update(from: wp, count: HW * B) }
                            continue
                        }
                        for i in 0..<HW {
                            if toConcat { (wp + i * B).update(from: pp + i * B, count: lanes) }
                            else { (pp + i * B).update(from: wp + i * B, count: lanes) }
                        }
                    }
                } else {
                    for ch in 0..<p.c {
                        let wc = base + ch
                        let pp = p.data + ((b * p.channelBlocks + ch / B) * HW) * B + ch % B
                        let wp = whole.data + ((b * whole.channelBlocks + wc / B) * HW) * B + wc % B
                        for i in 0..<HW {
                            if toConcat { wp[i * B] = pp[i * B] } else { pp[i * B] = wp[i * B] }
                        }
                    }
                }
            }
            base += p.c
        }
    }

    // MARK: Patches (M2MRF)

    /// Non-overlapping k×k patches as rows: x [N, C, gh·k, gw·k] → plain [N·gh·gw, C·k·k]. Rows run over
    /// (n, ph, pw) row-major; the column of x[n, c, ph·k+i, pw·k+j] is c·k² + i·k + j (nn.Unfold's order).
    public func unfold(_ x: Tensor, patch k: Int) -> Tensor {
        precondition(x.layout.isBlocked && x.h % k == 0 && x.w % k == 0, "unfold of \(x.shape) by \(k)")
        let gh = x.h / k, gw = x.w / k, C = x.c, cb = x.channelBlocks, W = x.w, H = x.h, B = x.layout.blockWidth
        let cols = C * k * k
        let y = Tensor(shape: [x.n * gh * gw, cols], layout: .plain, zeroed: false)
        engine.timed("m2mrf unfold/fold") {
            Self.patchCopy(patchRows: y.data, blocked: x.data, lanes: B, n: x.n, C: C, cb: cb, H: H, W: W, k: k, toRows: true)
        }
        guard let tape, tracks(x) else { return y }
        y.requiresGrad = true
        tape.record("m2mrf unfold/fold") {
            guard let dy = tape.takeGradient(y) else { return }
            let dx = Tensor(shape: x.shape, layout: x.layout)
            Self.patchCopy(patchRows: dy.data, blocked: dx.data, lanes: B, n: x.n, C: C, cb: cb, H: H, W: W, k: k, toRows: false)
            tape.accumulate(x, dx)
        }
        return y
    }

    /// The inverse of `unfold`: rows [N·gh·gw, C·k·k] → blocked [N, C, gh·k, gw·k] (nn.Fold with stride = kernel),
    /// in `layout` (a blocking).
    public func fold(_ rows: Tensor, batch n: Int, channels C: Int, gridHeight gh: Int, gridWidth gw: Int,
                     patch k: Int, layout: Layout = .blocked16) -> Tensor {
        precondition(rows.shape == [n * gh * gw, C * k * k], "fold of \(rows.shape) into \(C)×\(k)×\(k) patches")
        precondition(layout.isBlocked)
        let y = Tensor(shape: [n, C, gh * k, gw * k], layout: layout)
        let cb = y.channelBlocks, B = layout.blockWidth
        engine.timed("m2mrf unfold/fold") {
            Self.patchCopy(patchRows: rows.data, blocked: y.data, lanes: B, n: n, C: C, cb: cb, H: gh * k, W: gw * k, k: k, toRows: false)
        }
        guard let tape, tracks(rows) else { return y }
        y.requiresGrad = true
        tape.record("m2mrf unfold/fold") {
            guard let dy = tape.takeGradient(y) else { return }
            let dr = Tensor(shape: rows.shape, layout: .plain, zeroed: false)
            Self.patchCopy(patchRows: dr.data, blocked: dy.inLayout(layout).data, lanes: B, n: n, C: C, cb: cb, H: gh * k, W: gw * k, k: k,
                           toRows: true)
            tape.accumulate(rows, dr)
        }
        return y
    }

    static func patchCopy(patchRows: UnsafeMutablePointer<Float>, blocked: UnsafeMutablePointer<Float>, lanes B: Int,
                          n: Int, C: Int, cb: Int, H: Int, W: Int, k: Int, toRows: Bool) {
        let gh = H / k, gw = W / k, cols = C * k * k
        for b in 0..<n {
            for ph in 0..<gh {
                for pw in 0..<gw {
                    let row = patchRows + ((b * gh + ph) * gw + pw) * cols
                    for ch in 0..<C {
                        let plane = blocked + ((b * cb + ch / B) * H * W) * B + ch % B
                        for i in 0..<k {
                            let src = plane + ((ph * k + i) * W + pw * k) * B
                            let r = row + ch * k * k + i * k
                            if toRows { for j in 0..<k { r[j] = src[j * B] } }
                            else { for j in 0..<k { src[j * B] = r[j] } }
                        }
                    }
                }
            }
        }
    }

    // MARK: Matrix products

    /// x [M, K] · weightᵀ + bias: weight [O, K], bias [O] → [M, O] (a Linear layer on OpenBLAS).
    public func linear(_ x: Tensor, _ weight: Tensor, bias: Tensor?) -> Tensor {
        // weight may carry trailing 1s (a Conv1d kernel [O, K, 1] acting as a Linear layer).
        let M = x.shape[0], K = x.shape[1], O = weight.shape[0]
        precondition(weight.count == O * K, "linear of \(x.shape) with \(weight.shape)")
        let y = Tensor(shape: [M, O], layout: .plain, zeroed: false)
        engine.flops += 2 * Double(M) * Double(O) * Double(K)
        engine.timed("m2mrf fc") {
            if let bias { for m in 0..<M { (y.data + m * O).update(from: bias.data, count: O) } }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(O), Int32(K), 1,
                        x.data, Int32(K), weight.data, Int32(K), bias == nil ? 0 : 1, y.data, Int32(O))
        }
        guard let tape, tracks(x, weight, bias) else { return y }
        y.requiresGrad = true
        tape.record("m2mrf fc") {
            guard let dy = tape.takeGradient(y) else { return }
            if weight.requiresGrad {
                let dw = Tensor(shape: weight.shape, layout: .plain, zeroed: false)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(O), Int32(K), Int32(M), 1,
                            dy.data, Int32(O), x.data, Int32(K), 0, dw.data, Int32(K))
                tape.accumulate(weight, dw)
            }
            if let bias, bias.requiresGrad {
                let db = Tensor(shape: [O])
                for m in 0..<M { for o in 0..<O { db.data[o] += dy.data[m * O + o] } }
                tape.accumulate(bias, db)
            }
            if x.requiresGrad {
                let dx = Tensor(shape: [M, K], layout: .plain, zeroed: false)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(K), Int32(O), 1,
                            dy.data, Int32(O), weight.data, Int32(K), 0, dx.data, Int32(K))
                tape.accumulate(x, dx)
            }
        }
        return y
    }
}

/// A SIMD vector of one pixel's channel block: 16 floats (nChw16c) or 8 (nChw8c).
protocol LaneVector: SIMD where Scalar == Float {
    /// max(x, 0) lane by lane (ReLU): x where x > 0, else +0.
    var positivePart: Self { get }
    /// Self where `gate` > 0, else +0, lane by lane (ReLU's backward mask).
    func gated(by gate: Self) -> Self
}

// The masked operations are requirements met by each concrete type: written in generic code (`V: LaneVector`), SIMD's
// comparisons and `replacing(with:where:)` compile to lane-by-lane loops through the stack even once specialised —
// BatchNorm's forward and backward passes spent a third of a W16 training step there; with the concrete type in
// hand they are a vector compare and a blend (the same results, bit for bit).
extension SIMD16: LaneVector where Scalar == Float {
    @inline(__always) var positivePart: Self { replacing(with: 0, where: .!(self .> 0)) }
    @inline(__always) func gated(by gate: Self) -> Self { Self().replacing(with: self, where: gate .> 0) }
}
extension SIMD8: LaneVector where Scalar == Float {
    @inline(__always) var positivePart: Self { replacing(with: 0, where: .!(self .> 0)) }
    @inline(__always) func gated(by gate: Self) -> Self { Self().replacing(with: self, where: gate .> 0) }
}

extension LaneVector {
    /// The floats at `p` (one pixel's channel block of a blocked tensor).
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Self {
        UnsafeRawPointer(p).loadUnaligned(as: Self.self)
    }
    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> Self { load(UnsafePointer(p)) }
    /// Writes the floats at `p`.
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: Self.self)
    }
}
