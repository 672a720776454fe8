/// What a weight file describes: an HRNetV2 backbone (plain, or with M2MRF fuse layers of variant A–D) and the
/// FCN head of the official M2MRF code. Shared by the network builder, the checkpoint readers (which infer it from
/// keys and shapes) and the model card.
public struct ModelArchitecture: Codable, Sendable, Equatable, Hashable {
    /// How the fuse layers of stages 2–4 and the new-branch transitions are built.
    /// `plain` is mmseg's HRNet (3×3 stride-2 convs down, 1×1 conv + BN + bilinear up).
    /// A–D replace them by M2MRF: down one-step (A, B) or cascade (C, D); up one-step (A, C) or cascade (B, D).
    public enum Variant: String, Codable, Sendable, CaseIterable {
        case plain, A, B, C, D

        public var usesM2MRF: Bool { self != .plain }
        /// Downsampling fuse paths are chains of ×0.5 steps (C, D) rather than one step (A, B).
        public var cascadeDown: Bool { self == .C || self == .D }
        /// Upsampling fuse paths are chains of ×2 steps (B, D) rather than one step (A, C).
        public var cascadeUp: Bool { self == .B || self == .D }
    }

    public enum Block: String, Codable, Sendable {
        case basic = "BASIC"
        case bottleneck = "BOTTLENECK"
    }

    /// One HRNet stage, as mmseg's `extra.stageN` dict.
    public struct Stage: Codable, Sendable, Equatable, Hashable {
        public var modules: Int
        public var block: Block
        /// Blocks per branch.
        public var blocks: [Int]
        /// Channels per branch (before the block expansion; a bottleneck stage outputs 4× these).
        public var channels: [Int]

        public init(modules: Int, block: Block, blocks: [Int], channels: [Int]) {
            self.modules = modules
            self.block = block
            self.blocks = blocks
            self.channels = channels
        }

        public var branches: Int { channels.count }
    }

    /// M2MRF hyper-parameters (the official configs use 8, 4, 64 everywhere).
    public struct M2MRFSettings: Codable, Sendable, Equatable, Hashable {
        public var patchSize: Int
        public var encodeChannelsRate: Int
        public var fcChannelsRate: Int

        public init(patchSize: Int = 8, encodeChannelsRate: Int = 4, fcChannelsRate: Int = 64) {
            self.patchSize = patchSize
            self.encodeChannelsRate = encodeChannelsRate
            self.fcChannelsRate = fcChannelsRate
        }
    }

    public var variant: Variant
    /// stage1 … stage4.
    public var stages: [Stage]
    public var m2mrf: M2MRFSettings
    /// FCN head: `convs.0` width (the official config uses the concatenated width, e.g. 720 for W48).
    public var headChannels: Int
    public var numClasses: Int

    public init(variant: Variant, stages: [Stage], m2mrf: M2MRFSettings = .init(), headChannels: Int? = nil,
                numClasses: Int = 4) {
        self.variant = variant
        self.stages = stages
        self.m2mrf = m2mrf
        self.headChannels = headChannels ?? stages.last.map { $0.channels.reduce(0, +) } ?? 0
        self.numClasses = numClasses
    }

    /// Channels the head receives after resize-concat of the four branches.
    public var concatChannels: Int { stages.last.map { $0.channels.reduce(0, +) } ?? 0 }

    /// HRNetV2 families as mmseg configures them, with the given fuse variant.
    public static func hrnet(width: Int, variant: Variant) -> ModelArchitecture {
        layout(width: width, variant: variant, blocksPerBranch: 4, modules: [1, 4, 3])
    }

    public static func w18Small(variant: Variant) -> ModelArchitecture { small(width: 18, variant: variant) }

    /// mmseg's HRNetV2-W18-small layout (2 blocks per branch; 1, 3 and 2 modules) at any width. Width 16 keeps every
    /// branch a multiple of oneDNN's 16-channel blocks (18 pads to 32, wasting almost half of the first branch).
    public static func small(width: Int, variant: Variant) -> ModelArchitecture {
        layout(width: width, variant: variant, blocksPerBranch: 2, modules: [1, 3, 2])
    }

    /// mmseg's HRNetV2 layout: a 64-channel bottleneck stage, then stages of 2, 3 and 4 branches of `width`·2^i
    /// channels, each branch `blocksPerBranch` basic blocks, the stages repeated `modules` times.
    static func layout(width: Int, variant: Variant, blocksPerBranch n: Int, modules: [Int]) -> ModelArchitecture {
        let c = [width, width * 2, width * 4, width * 8]
        return ModelArchitecture(variant: variant, stages: [
            Stage(modules: 1, block: .bottleneck, blocks: [n], channels: [64]),
            Stage(modules: modules[0], block: .basic, blocks: [n, n], channels: Array(c[0..<2])),
            Stage(modules: modules[1], block: .basic, blocks: [n, n, n], channels: Array(c[0..<3])),
            Stage(modules: modules[2], block: .basic, blocks: [n, n, n, n], channels: c),
        ])
    }

    /// Architectures by the names users type: `<family>-<variant>`, family w48, w32, w18, w18-small, w16-small or
    /// tiny (the parity-fixture size), variant plain, A, B, C or D: `w48-C` is the paper's best.
    public static func named(_ text: String) -> ModelArchitecture? {
        guard let dash = text.lastIndex(of: "-") else { return nil }
        let v = String(text[text.index(after: dash)...])
        guard let variant = Variant(rawValue: v.lowercased() == "plain" ? "plain" : v.uppercased()) else { return nil }
        switch text[..<dash].lowercased() {
        case "w48": return .w48(variant: variant)
        case "w32": return .w32(variant: variant)
        case "w18": return .w18(variant: variant)
        case "w18-small", "w18small", "w18s": return .w18Small(variant: variant)
        case "w16-small", "w16small", "w16s": return .small(width: 16, variant: variant)
        case "tiny": return .tinyFixture(variant: variant)
        default: return nil
        }
    }

    public static let namesHelp = "w48-C (the paper's best), w48|w32|w18|w18-small|w16-small|tiny with -plain, -A, -B, -C or -D"

    public static func w18(variant: Variant) -> ModelArchitecture { hrnet(width: 18, variant: variant) }
    public static func w32(variant: Variant) -> ModelArchitecture { hrnet(width: 32, variant: variant) }
    public static func w48(variant: Variant) -> ModelArchitecture { hrnet(width: 48, variant: variant) }

    /// The configuration of the parity fixtures in ../shared/fixtures/parity (README there).
    public static func tinyFixture(variant: Variant) -> ModelArchitecture {
        ModelArchitecture(variant: variant, stages: [
            Stage(modules: 1, block: .bottleneck, blocks: [1], channels: [8]),
            Stage(modules: 1, block: .basic, blocks: [1, 1], channels: [8, 16]),
            Stage(modules: 1, block: .basic, blocks: [1, 1, 1], channels: [8, 16, 32]),
            Stage(modules: 1, block: .basic, blocks: [1, 1, 1, 1], channels: [8, 16, 32, 64]),
        ])
    }

    /// Why this description cannot be built (it may come from a user's metadata.json), or nil when it can:
    /// four stages of 1, 2, 3, 4 branches, one block count and width per branch, sizes in sane ranges.
    public var problem: String? {
        guard stages.count == 4 else { return "\(stages.count) stages; HRNetV2 has 4" }
        for (i, s) in stages.enumerated() {
            let name = "stage\(i + 1)"
            guard s.channels.count == i + 1 else { return "\(name) has \(s.channels.count) branches, expected \(i + 1)" }
            guard s.blocks.count == s.channels.count else { return "\(name) lists \(s.blocks.count) block counts for \(s.channels.count) branches" }
            guard (1...64).contains(s.modules), i > 0 || s.modules == 1 else { return "\(name) has \(s.modules) modules" }
            guard s.blocks.allSatisfy({ (1...64).contains($0) }) else { return "\(name) has block counts \(s.blocks)" }
            guard s.channels.allSatisfy({ (1...4096).contains($0) }) else { return "\(name) has widths \(s.channels)" }
        }
        let k = m2mrf.patchSize
        guard k > 0, k <= 64, k & (k - 1) == 0 else { return "M2MRF patch size \(k) is not a power of two up to 64" }
        guard (1...4096).contains(m2mrf.encodeChannelsRate), (1...4096).contains(m2mrf.fcChannelsRate) else {
            return "M2MRF rates \(m2mrf.encodeChannelsRate), \(m2mrf.fcChannelsRate) out of range"
        }
        guard (1...8192).contains(headChannels), (1...1024).contains(numClasses) else {
            return "head of \(headChannels) channels and \(numClasses) classes"
        }
        return nil
    }

    /// A short human name: "HRNetV2-W48 M2MRF-C" style.
    public var displayName: String {
        let w = stages.count > 1 ? stages[1].channels.first ?? 0 : 0
        let base = "HRNetV2-W\(w)"
        return variant == .plain ? base : "\(base) M2MRF-\(variant.rawValue)"
    }
}
