import Foundation

/// Keeps decoded, field-of-view-cropped samples in memory, so each photograph and its masks are decoded once per
/// run instead of once per draw. Decoding a 4288×2848 JPEG, four masks and finding the field of view costs about as
/// much as a W16 training step on 2 cores; with the cache a step spends its time in the network.
///
/// Bounded by bytes: when a new sample would pass the budget, the least recently used ones are dropped (a set larger
/// than the budget still trains, decoding what does not fit). What a sample decodes to does not depend on whether it
/// came from the cache, so a run's weights do not either.
public final class CachedSamples: TrainingSampleSource, @unchecked Sendable {
    public let source: any TrainingSampleSource
    /// Most bytes of pixels and labels kept.
    public let budget: Int

    private let lock = NSLock()
    private var entries: [Int: LabelledImage] = [:]
    /// Least recently used first.
    private var recency: [Int] = []
    private var bytes = 0
    private var hitCount = 0
    private var missCount = 0

    public init(_ source: any TrainingSampleSource, budgetBytes: Int) {
        self.source = source
        self.budget = max(0, budgetBytes)
    }

    public var count: Int { source.count }

    /// (cache hits, decodes) so far.
    public var statistics: (hits: Int, misses: Int) {
        lock.withLock { (hitCount, missCount) }
    }

    public var cachedBytes: Int { lock.withLock { bytes } }

    public func load(_ index: Int) throws -> LabelledImage {
        let cached: LabelledImage? = lock.withLock {
            guard let entry = entries[index] else { return nil }
            hitCount += 1
            touch(index)
            return entry
        }
        if let cached { return cached }
        let sample = try source.load(index)
        lock.withLock {
            missCount += 1
            let size = Self.size(of: sample)
            guard size <= budget, entries[index] == nil else { return }
            while bytes + size > budget, let oldest = recency.first {
                recency.removeFirst()
                if let dropped = entries.removeValue(forKey: oldest) { bytes -= Self.size(of: dropped) }
            }
            entries[index] = sample
            recency.append(index)
            bytes += size
        }
        return sample
    }

    private func touch(_ index: Int) {
        if let at = recency.firstIndex(of: index) { recency.remove(at: at) }
        recency.append(index)
    }

    static func size(of sample: LabelledImage) -> Int { sample.rgb.count + sample.labels.count }
}

/// A sample source whose passes draw some samples more often than others: a pass is `indices` (indices into
/// `source`, repeats allowed), shuffled by the trainer's sampler like any set. Used to give a partially labelled
/// extra set (the vessels) a chosen share of the draws whatever its size; the cache below it still holds each
/// photograph once.
public struct RepeatedSamples: TrainingSampleSource {
    public let source: any TrainingSampleSource
    public let indices: [Int]

    public init(_ source: any TrainingSampleSource, indices: [Int]) {
        precondition(!indices.isEmpty && indices.allSatisfy { (0..<source.count).contains($0) }, "indices outside the source")
        self.source = source
        self.indices = indices
    }

    public var count: Int { indices.count }
    public func load(_ index: Int) throws -> LabelledImage { try source.load(indices[index]) }

    /// Repeats of the `main` first samples and of the `extra` after them whose pass gives the extra ones the share
    /// nearest `share` (0 < share < 1) with at most `maxRepeats` of either: (main repeats, extra repeats).
    public static func repeats(main: Int, extra: Int, share: Double, maxRepeats: Int = 20) -> (main: Int, extra: Int) {
        precondition(main > 0 && extra > 0 && share > 0 && share < 1)
        var best = (main: 1, extra: 1), bestError = Double.infinity
        for rm in 1...maxRepeats {
            for rx in 1...maxRepeats {
                let got = Double(rx * extra) / Double(rx * extra + rm * main)
                // Nearest share first, then the shortest pass.
                let error = abs(got - share) + 1e-9 * Double(rm * main + rx * extra)
                if error < bestError { bestError = error; best = (rm, rx) }
            }
        }
        return best
    }
}
