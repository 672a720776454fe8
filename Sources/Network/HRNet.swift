import Checkpoints
import Tensor

/// How one fuse term of an HRModule brings branch j to branch i's resolution and width.
enum FusePath {
    /// Plain HRNet, j > i: 1×1 conv + BN, then mmseg's `Upsample(scale_factor=2^(j−i), mode='bilinear',
    /// align_corners=False)`, which resizes to (h·f, w·f).
    case bilinearUp(ConvBN, factor: Int)
    /// M2MRF, j > i: 1×1 conv + BN, then one M2MRF ×2^(j−i) (A, C) or a chain of ×2 (B, D).
    case m2mrfUp(ConvBN, [M2MRF])
    /// j < i: a chain of steps, each a 3×3 stride-2 conv + BN (plain) or an M2MRF ÷2^m + BN; ReLU after all but the
    /// last step.
    case down([DownStep])
}

/// One downsampling step of a fuse path or a new-branch transition.
enum DownStep {
    case conv(ConvBN)
    case m2mrf(M2MRF, BatchNorm, relu: Bool)

    func callAsFunction(_ x: Tensor, _ ops: Ops) -> Tensor {
        switch self {
        case let .conv(unit): return unit(x, ops)
        case let .m2mrf(op, bn, relu):
            return bn(op(x, ops), ops, relu: relu)
        }
    }
}

/// mmseg's HRModule: parallel branches of blocks, then every output branch sums all branches brought to its
/// resolution, and ReLU.
final class HRModule {
    let branches: [[BasicBlock]]
    /// fuse[i][j] for i ≠ j; nil on the diagonal.
    let fuse: [[FusePath?]]

    init(_ prefix: String, stage: ModelArchitecture.Stage, variant: ModelArchitecture.Variant,
         m2mrf: ModelArchitecture.M2MRFSettings, _ store: ParameterStore) {
        precondition(stage.block == .basic, "HRNet stages 2–4 use BASIC blocks")
        let c = stage.channels
        branches = (0..<stage.branches).map { b in
            (0..<stage.blocks[b]).map { k in BasicBlock("\(prefix).branches.\(b).\(k)", in: c[b], planes: c[b], store) }
        }
        let settings = (m2mrf.patchSize, m2mrf.encodeChannelsRate, m2mrf.fcChannelsRate)
        var fuse: [[FusePath?]] = []
        for i in 0..<stage.branches where stage.branches > 1 {
            var row: [FusePath?] = []
            for j in 0..<stage.branches {
                let p = "\(prefix).fuse_layers.\(i).\(j)"
                if j == i {
                    row.append(nil)
                } else if j > i {
                    let unit = ConvBN(conv: p + ".0", bn: p + ".1", in: c[j], out: c[i], kernel: 1, relu: false, store)
                    let factor = 1 << (j - i)
                    if !variant.usesM2MRF {
                        row.append(.bilinearUp(unit, factor: factor))
                    } else if variant.cascadeUp {
                        row.append(.m2mrfUp(unit, (0..<(j - i)).map { t in
                            M2MRF("\(p).sample_\(t)", scaleUp: 2, in: c[i], out: c[i], settings: settings, store)
                        }))
                    } else {
                        row.append(.m2mrfUp(unit, [M2MRF(p + ".2", scaleUp: factor, in: c[i], out: c[i], settings: settings, store)]))
                    }
                } else {
                    var steps: [DownStep] = []
                    if variant.usesM2MRF && !variant.cascadeDown {
                        let op = M2MRF(p + ".0.0", scaleDown: 1 << (i - j), in: c[j], out: c[i], settings: settings, store)
                        steps.append(.m2mrf(op, BatchNorm(p + ".0.1", c[i], store), relu: false))
                    } else {
                        for k in 0..<(i - j) {
                            let last = k == i - j - 1
                            let out = last ? c[i] : c[j]
                            if variant.usesM2MRF {
                                let op = M2MRF("\(p).\(k).0", scaleDown: 2, in: c[j], out: out, settings: settings, store)
                                steps.append(.m2mrf(op, BatchNorm("\(p).\(k).1", out, store), relu: !last))
                            } else {
                                steps.append(.conv(ConvBN(conv: "\(p).\(k).0", bn: "\(p).\(k).1", in: c[j], out: out,
                                                          kernel: 3, stride: 2, relu: !last, store)))
                            }
                        }
                    }
                    row.append(.down(steps))
                }
            }
            fuse.append(row)
        }
        self.fuse = fuse
    }

    func callAsFunction(_ xs: [Tensor], _ ops: Ops) -> [Tensor] {
        let ys = zip(branches, xs).enumerated().map { b, branch in
            let (blocks, x) = branch
            // Inference: the branch's blocks as one chain (their outputs stay in the kernels' layout).
            if ops.inference { return blocks.inferenceChain(x, ops) }
            let run: (Ops) -> Tensor = { o in blocks.reduce(x) { h, block in block(h, o) } }
            // Checkpointed: only the branch's input (kept anyway) and output (kept by the fuse) stay for backward.
            return b < ops.checkpointBranches && !blocks.isEmpty ? ops.checkpointed(run) : run(ops)
        }
        if ys.count == 1 { return ys }
        return fuse.indices.map { i in
            var terms: [Tensor] = []
            for j in ys.indices {
                switch fuse[i][j] {
                case nil:
                    terms.append(ys[j])
                case let .bilinearUp(unit, factor)?:
                    let reduced = unit(ys[j], ops)
                    let up = ops.resizeBilinear(reduced, height: reduced.h * factor, width: reduced.w * factor)
                    terms.append(ops.resizeBilinear(up, height: ys[i].h, width: ys[i].w))
                case let .m2mrfUp(unit, chain)?:
                    // The official forward still resizes every upsampled term to branch i's size (odd sizes).
                    let up = chain.reduce(unit(ys[j], ops)) { h, op in op(h, ops) }
                    terms.append(ops.resizeBilinear(up, height: ys[i].h, width: ys[i].w))
                case let .down(steps)?:
                    terms.append(steps.reduce(ys[j]) { h, step in step(h, ops) })
                }
            }
            return ops.sumRelu(terms)
        }
    }
}

/// How a stage's input branch is made from the previous stage's outputs.
enum Transition {
    /// Same branch, same width.
    case none
    /// Same branch, new width: 3×3 conv + BN + ReLU.
    case conv(ConvBN)
    /// A new, half-resolution branch from the previous stage's last branch.
    case newBranch([DownStep])
}

/// HRNetV2 (mmseg 0.8's `HRNet`, with the M2MRF replacements of `HRNet_M2MRF_{A,B,C,D}`): stem, stage 1 of
/// bottlenecks, then stages 2–4 of HRModules with transitions between them. Outputs one map per branch, at
/// 1/4, 1/8, 1/16, 1/32 of the input.
final class HRNetBackbone {
    let stem1, stem2: ConvBN
    let layer1: [Bottleneck]
    let transitions: [[Transition]]
    let stages: [[HRModule]]

    init(_ a: ModelArchitecture, _ store: ParameterStore) {
        stem1 = ConvBN(conv: "backbone.conv1", bn: "backbone.bn1", in: 3, out: 64, kernel: 3, stride: 2, relu: true, store)
        stem2 = ConvBN(conv: "backbone.conv2", bn: "backbone.bn2", in: 64, out: 64, kernel: 3, stride: 2, relu: true, store)
        let s1 = a.stages[0]
        precondition(s1.block == .bottleneck && s1.branches == 1, "stage 1 is one branch of bottlenecks")
        var inC = 64
        var blocks: [Bottleneck] = []
        for k in 0..<s1.blocks[0] {
            blocks.append(Bottleneck("backbone.layer1.\(k)", in: inC, planes: s1.channels[0], store))
            inC = s1.channels[0] * Bottleneck.expansion
        }
        layer1 = blocks
        let settings = (a.m2mrf.patchSize, a.m2mrf.encodeChannelsRate, a.m2mrf.fcChannelsRate)
        var previous = [inC]
        var transitions: [[Transition]] = []
        var stages: [[HRModule]] = []
        for s in 1..<a.stages.count {
            let stage = a.stages[s]
            let t = "backbone.transition\(s)"
            var row: [Transition] = []
            for i in 0..<stage.branches {
                if i < previous.count {
                    row.append(previous[i] == stage.channels[i] ? .none
                        : .conv(ConvBN(conv: "\(t).\(i).0", bn: "\(t).\(i).1", in: previous[i], out: stage.channels[i],
                                       kernel: 3, relu: true, store)))
                } else {
                    var steps: [DownStep] = []
                    let chain = i + 1 - previous.count
                    for j in 0..<chain {
                        let inW = previous.last!
                        let out = j == chain - 1 ? stage.channels[i] : inW
                        if a.variant.usesM2MRF {
                            let op = M2MRF("\(t).\(i).\(j).0", scaleDown: 2, in: inW, out: out, settings: settings, store)
                            steps.append(.m2mrf(op, BatchNorm("\(t).\(i).\(j).1", out, store), relu: true))
                        } else {
                            steps.append(.conv(ConvBN(conv: "\(t).\(i).\(j).0", bn: "\(t).\(i).\(j).1", in: inW, out: out,
                                                      kernel: 3, stride: 2, relu: true, store)))
                        }
                    }
                    row.append(.newBranch(steps))
                }
            }
            transitions.append(row)
            stages.append((0..<stage.modules).map { m in
                HRModule("backbone.stage\(s + 1).\(m)", stage: stage, variant: a.variant, m2mrf: a.m2mrf, store)
            })
            previous = stage.channels
        }
        self.transitions = transitions
        self.stages = stages
    }

    /// x [N, 3, H, W] (plain or blocked) → branch maps [N, C_b, H/4/2^b, W/4/2^b].
    func callAsFunction(_ x: Tensor, _ ops: Ops) -> [Tensor] {
        // Stem: two 3×3 stride-2 convs, 1/4 resolution.
        let stem = ops.inference
            ? ops.convChain(x, [stem1.inferenceStep(ops), stem2.inferenceStep(ops)])  // the ½-size map stays in the kernel's layout
            : stem2(stem1(x, ops), ops)
        // Stage 1: bottlenecks on one branch.
        // In inference the blocks after the first (which projects the stem's channels) run as one chain, so the
        // 4×-wide 1/4-size map is reordered for the kernels once, not twice a block.
        var ys = [ops.inference ? layer1.inferenceChain(stem, ops) : layer1.reduce(stem) { h, block in block(h, ops) }]
        // Stages 2–4: transition (new branches from the last one), then HRModules.
        for (row, modules) in zip(transitions, stages) {
            let xs: [Tensor] = row.enumerated().map { i, t in
                switch t {
                case .none: return ys[i]
                case let .conv(unit): return unit(ys[i], ops)
                case let .newBranch(steps): return steps.reduce(ys[ys.count - 1]) { h, step in step(h, ops) }
                }
            }
            ys = modules.reduce(xs) { h, module in module(h, ops) }
        }
        return ys
    }
}

/// mmseg's FCNHead as configured by the M2MRF code: resize every branch to branch 0's size (bilinear,
/// align_corners False), concatenate, 1×1 conv + BN + ReLU, then the 1×1 classifier `conv_seg` (with bias).
final class FCNHead {
    let conv: ConvBN
    let classifierWeight, classifierBias: Tensor
    /// Floats of concatenated input per band in inference (about 16 MB).
    var bandFloats = 4 << 20

    init(_ a: ModelArchitecture, _ store: ParameterStore) {
        conv = ConvBN(conv: "decode_head.convs.0.conv", bn: "decode_head.convs.0.bn", in: a.concatChannels,
                      out: a.headChannels, kernel: 1, relu: true, store)
        classifierWeight = store.make("decode_head.conv_seg.weight", [a.numClasses, a.headChannels, 1, 1], .normal(std: 0.01))
        classifierBias = store.make("decode_head.conv_seg.bias", [a.numClasses], .zeros)
    }

    /// Branch maps → logits [N, classes, H/4, W/4].
    func callAsFunction(_ xs: [Tensor], _ ops: Ops) -> Tensor {
        let h = xs[0].h, w = xs[0].w
        if ops.inference && xs.allSatisfy({ $0.c % 16 == 0 }) {
            // Inference: everything after the resizes is 1×1, so the head runs in bands of rows and never holds
            // the full concatenation (720 channels at 1/4 resolution is 250 MB for a 960×1440 input).
            // The logits in the blocking the classifier writes (nChw8c on AVX2).
            var logits: Tensor?
            let rows = max(1, bandFloats / max(1, xs[0].n * conv.weight.shape[1] * w))
            for r in stride(from: 0, to: h, by: rows) {
                let joined = ops.resizeConcat(xs, height: h, width: w, rows: r..<min(r + rows, h))
                let classifier = ConvolutionStep(weight: classifierWeight, bias: classifierBias)
                let band = ops.convChain(joined, [conv.inferenceStep(ops), classifier])
                let whole = logits ?? Tensor(shape: [xs[0].n, classifierWeight.shape[0], h, w], layout: band.layout)
                ops.placeRows(band, into: whole, at: r)
                logits = whole
            }
            return logits!
        }
        let joined = ops.resizeConcat(xs, height: h, width: w)
        return ops.conv(conv(joined, ops), classifierWeight, bias: classifierBias)
    }
}
