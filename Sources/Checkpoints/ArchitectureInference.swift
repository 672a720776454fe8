extension ModelArchitecture {
    /// Reads the architecture off a state dict's names and shapes, so a user needs only the weight file:
    /// stages (modules, blocks per branch, widths, block type) from `layer1` / `stage{2,3,4}`; the variant from the
    /// fuse layers (`sample_0` names mean cascade up; several elements in `fuse_layers.i.j` for j < i mean cascade
    /// down); M2MRF patch size and rates from the M2MRF shapes; head width and class count from the FCN head.
    /// The result is then checked against every name and shape it implies.
    public static func infer(from tensors: TensorFile, file: String = "weights") throws(CheckpointError) -> ModelArchitecture {
        let shapes = tensors.tensors.mapValues(\.shape)
        return try infer(shapes: shapes, file: file)
    }

    /// The same from a bare name → shape list (state-dict names as mmseg saves them).
    public static func infer(shapes: [String: [Int]], file: String = "weights") throws(CheckpointError) -> ModelArchitecture {
        var scan = KeyScan(shapes: shapes, file: file)
        let arch = try scan.architecture()
        try arch.check(shapes: shapes, file: file)
        return arch
    }

    /// Checks that `shapes` holds exactly this architecture's backbone and head tensors (other top-level groups,
    /// such as an auxiliary head, are left alone). The error names what is missing, extra or misshapen.
    public func check(shapes: [String: [Int]], file: String = "weights") throws(CheckpointError) {
        if let problem { throw .unsupported(file: file, reason: "the architecture \(displayName) cannot be built: \(problem)") }
        let layout = stateDictLayout()
        var missing: [String] = []
        var wrong: [String] = []
        for e in layout {
            guard let s = shapes[e.name] else { missing.append(e.name); continue }
            // num_batches_tracked may be saved as [] or [1].
            if s != e.shape && !(e.shape.isEmpty && s == [1]) {
                wrong.append("\(e.name) is \(s), expected \(e.shape)")
            }
        }
        let known = Set(layout.map(\.name))
        let extra = shapes.keys.filter { ($0.hasPrefix("backbone.") || $0.hasPrefix("decode_head.")) && !known.contains($0) }.sorted()
        func some(_ list: [String]) -> String {
            list.prefix(4).joined(separator: "; ") + (list.count > 4 ? "; … (\(list.count) in all)" : "")
        }
        if !missing.isEmpty {
            throw .notThisNetwork(file: file, reason: "as \(displayName) it lacks \(missing.count) tensors: \(some(missing))")
        }
        if !wrong.isEmpty {
            throw .notThisNetwork(file: file, reason: "as \(displayName) \(wrong.count) tensors have other shapes: \(some(wrong))")
        }
        if !extra.isEmpty {
            throw .notThisNetwork(file: file, reason: "as \(displayName) it has \(extra.count) tensors the architecture does not: \(some(extra))")
        }
    }
}

/// Reading names like `backbone.stage3.0.fuse_layers.2.0.1.0.sample_encode_conv.weight`.
private struct KeyScan {
    let shapes: [String: [Int]]
    let file: String
    /// Names split at dots, once.
    let parts: [[Substring]]

    init(shapes: [String: [Int]], file: String) {
        self.shapes = shapes
        self.file = file
        self.parts = shapes.keys.map { $0.split(separator: ".", omittingEmptySubsequences: false) }
    }

    func missing(_ what: String) -> CheckpointError {
        let groups = Set(shapes.keys.map { $0.split(separator: ".").first.map(String.init) ?? $0 }).sorted().prefix(6)
        return .notThisNetwork(file: file, reason: "\(what) (its tensors start with: \(groups.joined(separator: ", ")))")
    }

    func shape(_ name: String) throws(CheckpointError) -> [Int] {
        guard let s = shapes[name] else { throw missing("no tensor '\(name)'") }
        return s
    }

    /// The integers k such that some name starts with `prefix.k.`
    func indices(_ prefix: String) -> [Int] {
        let p = prefix.split(separator: ".", omittingEmptySubsequences: false)
        var found = Set<Int>()
        for n in parts where n.count > p.count && n.starts(with: p) {
            if let k = Int(n[p.count]) { found.insert(k) }
        }
        return found.sorted()
    }

    func has(_ name: String) -> Bool { shapes[name] != nil }

    /// `0..<n` with no gaps, or an error naming the hole.
    func count(_ prefix: String) throws(CheckpointError) -> Int {
        let ks = indices(prefix)
        guard ks == Array(0..<ks.count) else { throw missing("\(prefix).* has indices \(ks), with gaps") }
        return ks.count
    }

    mutating func architecture() throws(CheckpointError) -> ModelArchitecture {
        let b = "backbone"
        guard has("\(b).conv1.weight") else {
            throw missing("no 'backbone.conv1.weight': not an mmsegmentation HRNet encoder-decoder checkpoint")
        }
        guard has("decode_head.conv_seg.weight") else {
            throw missing("no 'decode_head.conv_seg.weight': the FCN decode head is missing")
        }
        // Stage 1: layer1 blocks.
        let l1 = try count("\(b).layer1")
        guard l1 > 0 else { throw missing("no 'backbone.layer1.0.*' (stage 1)") }
        let s1Block: ModelArchitecture.Block = has("\(b).layer1.0.conv3.weight") ? .bottleneck : .basic
        var stages = [ModelArchitecture.Stage(modules: 1, block: s1Block, blocks: [l1],
                                              channels: [try shape("\(b).layer1.0.conv1.weight")[0]])]
        // Stages 2–4: HRModules of branches of blocks.
        for k in 2...4 {
            let p = "\(b).stage\(k)"
            let modules = try count(p)
            guard modules > 0 else { throw missing("no '\(p).0.*' (HRNet has four stages)") }
            let branches = try count("\(p).0.branches")
            guard branches > 0 else { throw missing("no '\(p).0.branches.0.*'") }
            var blocks: [Int] = [], channels: [Int] = []
            for br in 0..<branches {
                blocks.append(try count("\(p).0.branches.\(br)"))
                channels.append(try shape("\(p).0.branches.\(br).0.conv1.weight")[0])
            }
            let block: ModelArchitecture.Block = has("\(p).0.branches.0.0.conv3.weight") ? .bottleneck : .basic
            stages.append(.init(modules: modules, block: block, blocks: blocks, channels: channels))
        }

        // Variant: M2MRF anywhere; cascade up from `sample_0`; cascade down from chained down-steps.
        let encoders = shapes.keys.filter { $0.hasPrefix("\(b).") && $0.hasSuffix(".sample_encode_conv.weight") }
        var variant = ModelArchitecture.Variant.plain
        var settings = ModelArchitecture.M2MRFSettings()
        if !encoders.isEmpty {
            let up = shapes.keys.contains { $0.contains(".fuse_layers.") && $0.contains(".sample_0.") }
            var down: Bool? = nil
            for k in 2...4 {
                let branches = stages[k - 1].branches
                for i in 0..<branches { for j in 0..<i where i - j >= 2 {
                    down = indices("\(b).stage\(k).0.fuse_layers.\(i).\(j)").count > 1
                } }
            }
            switch (down ?? false, up) {
            case (false, false): variant = .A
            case (false, true): variant = .B
            case (true, false): variant = .C
            case (true, true): variant = .D
            }
            settings = try m2mrfSettings(encoders.map { String($0.dropLast(".sample_encode_conv.weight".count)) })
        }

        let head = try shape("decode_head.convs.0.conv.weight")
        let seg = try shape("decode_head.conv_seg.weight")
        guard head.count == 4, head[2] == 1, head[3] == 1 else {
            throw .notThisNetwork(file: file, reason: "decode_head.convs.0.conv.weight is \(head); the M2MRF FCN head is one 1×1 conv")
        }
        return ModelArchitecture(variant: variant, stages: stages, m2mrf: settings, headChannels: head[0], numClasses: seg[0])
    }

    /// Patch size k from `sample_fc` (in = C'·k²); rates r and α as the values that reproduce every module's
    /// C' = int(C_in/r) and D = int(k²C'/α), preferring the official 4 and 64.
    func m2mrfSettings(_ modules: [String]) throws(CheckpointError) -> ModelArchitecture.M2MRFSettings {
        var patch: Int? = nil
        var rates = Set(1...4096), alphas = Set(1...4096)
        for m in modules {
            let enc = try shape(m + ".sample_encode_conv.weight")
            let fc = try shape(m + ".sample.sample_fc.weight")
            guard enc.count == 4, fc.count == 3, enc[0] > 0 else { throw missing("\(m) has M2MRF shapes \(enc), \(fc)") }
            let cin = enc[1], c = enc[0], d = fc[0]
            let kk = fc[1] / c
            let k = Int(Double(kk).squareRoot().rounded())
            guard k * k * c == fc[1] else { throw missing("\(m).sample.sample_fc.weight \(fc) is not C'·k² for C' = \(c)") }
            if let p = patch, p != k {
                throw .unsupported(file: file, reason: "M2MRF patch sizes differ (\(p) and \(k) at \(m)); one patch size for all M2MRF modules is supported")
            }
            patch = k
            rates = rates.filter { cin / $0 == c }
            alphas = alphas.filter { k * k * c / $0 == d }
        }
        func pick(_ s: Set<Int>, _ preferred: Int) -> Int { s.contains(preferred) ? preferred : (s.min() ?? preferred) }
        return .init(patchSize: patch ?? 8, encodeChannelsRate: pick(rates, 4), fcChannelsRate: pick(alphas, 64))
    }
}
