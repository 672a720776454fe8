import Foundation

/// The one source of randomness of a training run: sample order, scale jitter, crops, photometric distortion,
/// flips and rotations all draw from it, so a run is a function of its seed, and saving this state with the weights
/// lets a resumed run continue exactly where it stopped.
///
/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64. Integer and real draws are computed here, not by the
/// standard library, whose algorithms may change between toolchains.
public struct TrainingRNG: Sendable, Equatable, Codable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1), 53 random bits (numpy's `random_sample`).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [low, high) (numpy's `uniform(low, high)`).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }

    /// Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n must be positive.
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0, "below(\(n)): the range is empty")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Uniform integer in [low, high) — numpy's `randint(low, high)`, high exclusive, as mmseg's transforms call it.
    public mutating func integer(_ low: Int, _ high: Int) -> Int { low + below(high - low) }

    /// A fair coin: numpy's `randint(2) == 1`.
    public mutating func coin() -> Bool { below(2) == 1 }

    /// A Fisher–Yates shuffle of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        var i = n - 1
        while i > 0 {
            a.swapAt(i, below(i + 1))
            i -= 1
        }
        return a
    }

    // Saved as four hexadecimal strings: JSON numbers above 2^53 do not survive every reader.
    public init(from decoder: Decoder) throws {
        let words = try decoder.singleValueContainer().decode([String].self)
        let parsed = words.compactMap { UInt64($0, radix: 16) }
        guard parsed.count == 4, parsed != [0, 0, 0, 0] else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "random state must be four hex words, not all zero; got \(words)"))
        }
        s = (parsed[0], parsed[1], parsed[2], parsed[3])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode([s.0, s.1, s.2, s.3].map { String($0, radix: 16) })
    }

    public static func == (a: TrainingRNG, b: TrainingRNG) -> Bool {
        a.s.0 == b.s.0 && a.s.1 == b.s.1 && a.s.2 == b.s.2 && a.s.3 == b.s.3
    }
}
