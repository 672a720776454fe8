/// Every tensor of an architecture's mmseg state dict, with its shape, as the official code builds it
/// (m2mrf-reference.md §2): `backbone.…` (mmseg 0.8 HRNet with the M2MRF fuse layers) and `decode_head.…` (FCNHead).
/// The checkpoint readers check files against it; the network builder can address its parameters by these names.
public struct StateDictEntry: Sendable, Equatable, Hashable {
    public enum Kind: Sendable {
        /// Learned (conv weights and biases, BN weight and bias).
        case parameter
        /// BN running statistics (float) and `num_batches_tracked` (int64, shape []).
        case buffer
    }
    public var name: String
    public var shape: [Int]
    public var kind: Kind

    public var isParameter: Bool { kind == .parameter }
}

extension ModelArchitecture {
    /// All state-dict entries in module order.
    /// Empty when the architecture has a `problem`.
    public func stateDictLayout() -> [StateDictEntry] {
        guard problem == nil else { return [] }
        var out: [StateDictEntry] = []
        func param(_ name: String, _ shape: [Int]) { out.append(StateDictEntry(name: name, shape: shape, kind: .parameter)) }
        func bn(_ p: String, _ c: Int) {
            param(p + ".weight", [c]); param(p + ".bias", [c])
            out.append(StateDictEntry(name: p + ".running_mean", shape: [c], kind: .buffer))
            out.append(StateDictEntry(name: p + ".running_var", shape: [c], kind: .buffer))
            out.append(StateDictEntry(name: p + ".num_batches_tracked", shape: [], kind: .buffer))
        }
        func conv(_ p: String, _ cout: Int, _ cin: Int, _ k: Int) { param(p + ".weight", [cout, cin, k, k]) }
        /// M2MRF(scale 2^log2Scale, cin → cout): encode 1×1, two FCs over k×k patches, decode 1×1; all with bias.
        func m2mrfModule(_ p: String, _ cin: Int, _ cout: Int, log2Scale: Int) {
            let k = m2mrf.patchSize
            let c = cin / m2mrf.encodeChannelsRate                 // int(C_in / r)
            let d = k * k * c / m2mrf.fcChannelsRate               // int(k²·C' / α)
            let kOut = log2Scale >= 0 ? k << log2Scale : k >> -log2Scale
            param(p + ".sample_encode_conv.weight", [c, cin, 1, 1]); param(p + ".sample_encode_conv.bias", [c])
            param(p + ".sample.sample_fc.weight", [d, c * k * k, 1]); param(p + ".sample.sample_fc.bias", [d])
            param(p + ".sample.sample_fc1.weight", [c * kOut * kOut, d, 1]); param(p + ".sample.sample_fc1.bias", [c * kOut * kOut])
            param(p + ".sample_decode_conv.weight", [cout, c, 1, 1]); param(p + ".sample_decode_conv.bias", [cout])
        }
        func expansion(_ b: Block) -> Int { b == .bottleneck ? 4 : 1 }
        /// One residual block (mmseg BasicBlock / Bottleneck) with its optional 1×1 downsample.
        func block(_ p: String, _ type: Block, _ inC: Int, _ planes: Int) {
            if type == .bottleneck {
                conv(p + ".conv1", planes, inC, 1); bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3); bn(p + ".bn2", planes)
                conv(p + ".conv3", planes * 4, planes, 1); bn(p + ".bn3", planes * 4)
            } else {
                conv(p + ".conv1", planes, inC, 3); bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3); bn(p + ".bn2", planes)
            }
            if inC != planes * expansion(type) {
                conv(p + ".downsample.0", planes * expansion(type), inC, 1); bn(p + ".downsample.1", planes * expansion(type))
            }
        }

        let b = "backbone."
        conv(b + "conv1", 64, 3, 3); bn(b + "bn1", 64)
        conv(b + "conv2", 64, 64, 3); bn(b + "bn2", 64)
        guard let s1 = stages.first else { return out }
        var inC = 64
        for n in 0..<(s1.blocks.first ?? 0) {
            block(b + "layer1.\(n)", s1.block, inC, s1.channels[0])
            inC = s1.channels[0] * expansion(s1.block)
        }
        var pre = [inC]
        for (si, stage) in stages.enumerated().dropFirst() {
            // Transition from the previous stage's outputs to this stage's branches.
            let cur = stage.channels.map { $0 * expansion(stage.block) }
            let t = b + "transition\(si)"
            for i in 0..<cur.count {
                if i < pre.count {
                    if cur[i] != pre[i] { conv("\(t).\(i).0", cur[i], pre[i], 3); bn("\(t).\(i).1", cur[i]) }
                } else {
                    for j in 0...(i - pre.count) {
                        let cin = j == 0 ? pre[pre.count - 1] : cur[i]
                        let cout = j == i - pre.count ? cur[i] : cin
                        if variant.usesM2MRF {
                            m2mrfModule("\(t).\(i).\(j).0", cin, cout, log2Scale: -1); bn("\(t).\(i).\(j).1", cout)
                        } else {
                            conv("\(t).\(i).\(j).0", cout, cin, 3); bn("\(t).\(i).\(j).1", cout)
                        }
                    }
                }
            }
            // HRModules: branches of blocks, then the fuse layers between every pair of branches.
            var ins = cur
            for m in 0..<stage.modules {
                let p = b + "stage\(si + 1).\(m)"
                for br in 0..<stage.branches {
                    for n in 0..<stage.blocks[br] {
                        block("\(p).branches.\(br).\(n)", stage.block, ins[br], stage.channels[br])
                        ins[br] = stage.channels[br] * expansion(stage.block)
                    }
                }
                guard stage.branches > 1 else { continue }
                for i in 0..<stage.branches {
                    for j in 0..<stage.branches where j != i {
                        let f = "\(p).fuse_layers.\(i).\(j)"
                        if j > i {
                            conv(f + ".0", ins[i], ins[j], 1); bn(f + ".1", ins[i])
                            if variant.usesM2MRF {
                                if variant.cascadeUp {
                                    for s in 0..<(j - i) { m2mrfModule("\(f).sample_\(s)", ins[i], ins[i], log2Scale: 1) }
                                } else {
                                    m2mrfModule(f + ".2", ins[i], ins[i], log2Scale: j - i)
                                }
                            }
                        } else if variant.usesM2MRF && !variant.cascadeDown {
                            m2mrfModule(f + ".0.0", ins[j], ins[i], log2Scale: j - i); bn(f + ".0.1", ins[i])
                        } else {
                            for k in 0..<(i - j) {
                                let cout = k == i - j - 1 ? ins[i] : ins[j]
                                if variant.usesM2MRF { m2mrfModule("\(f).\(k).0", ins[j], cout, log2Scale: -1) }
                                else { conv("\(f).\(k).0", cout, ins[j], 3) }
                                bn("\(f).\(k).1", cout)
                            }
                        }
                    }
                }
            }
            pre = ins
        }
        // FCNHead: resize-concat of all branches → 1×1 ConvModule (no bias) + BN + ReLU → 1×1 conv_seg.
        conv("decode_head.convs.0.conv", headChannels, pre.reduce(0, +), 1); bn("decode_head.convs.0.bn", headChannels)
        conv("decode_head.conv_seg", numClasses, headChannels, 1); param("decode_head.conv_seg.bias", [numClasses])
        return out
    }

    /// Learned parameters (BN running statistics and counters excluded), e.g. 69.78 M + 0.52 M for W48 M2MRF-C.
    public var parameterCount: Int {
        stateDictLayout().filter(\.isParameter).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}
