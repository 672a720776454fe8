import Checkpoints
import Foundation

/// Everything that decides what a training run computes. Saved in every checkpoint, so a resumed run checks it is
/// continuing the same run. Defaults are the official IDRiD config (m2mrf-reference.md §4.2, §6).
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    public var seed: UInt64 = 0
    /// Optimiser steps (the official IDRiD schedule: 40 000).
    public var iterations: Int = 40_000
    /// Images per forward/backward pass.
    public var batchSize: Int = 1
    /// Micro-batches summed into one optimiser step (effective batch = batchSize × accumulation; official 1 × 4).
    public var accumulation: Int = 1
    /// Training crop, height × width (official IDRiD 960 × 1440).
    public var cropHeight: Int = 960
    public var cropWidth: Int = 1440
    /// mmseg Resize `img_scale` as (long edge, short edge), jittered by a ratio in `ratioRange`: `inputScale`,
    /// saved as numbers.
    public var scaleLong: Int = InputScale.idrid.longEdge
    public var scaleShort: Int = InputScale.idrid.shortEdge
    public var ratioRange: [Double] = [0.5, 2.0]
    public var catMaxRatio: Double = 0.75
    /// Share of crops centred on a lesion instead of drawn uniformly (nnU-Net's foreground oversampling; not in the
    /// official pipeline, nil or 0 = off): a lesion class present in the image is drawn uniformly, then one of its
    /// pixels, which lands at a uniform position inside the crop. Rare, small classes (MA, SE) then appear in crops
    /// often enough to learn from in a short schedule.
    public var lesionCropProbability: Double?
    public var photometricDistortion = true
    /// Online flips and 90° rotations (the official code made these offline, ×6; see Augmentation).
    public var flipsAndRotations = true
    /// RGB mean and standard deviation (IDRiD; DDR uses its own): `normalisation`, saved as numbers.
    public var mean: [Float] = Normalisation.idrid.mean.map(Float.init)
    public var std: [Float] = Normalisation.idrid.std.map(Float.init)
    public var schedule = PolySchedule(maxIterations: 40_000)
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    /// Weight of a binary cross-entropy term added to bdice; 0 is the official loss.
    public var bceWeight: Float = 0
    /// Dice over the batch per class instead of per image (nnU-Net's batch dice; nil or false = official).
    public var batchDice: Bool?
    /// Weight of the lesion pixels in the BCE term (PyTorch's `pos_weight`; nil or 1 = plain BCE).
    public var bcePositiveWeight: Float?
    /// Mixed precision (`train --bf16`): convolutions forward and backward in bf16 with f32 accumulation; master
    /// weights, BatchNorm, loss and gradients f32 (nil or false: all f32).
    public var bf16: Bool?
    /// Save the training state every this many iterations (official 5 000).
    public var checkpointInterval: Int = 5_000
    /// The network being trained, when known (the card of the result carries it).
    public var architecture: ModelArchitecture?

    public init() {}

    public var effectiveBatch: Int { batchSize * accumulation }

    /// `mean` and `std` as Checkpoints' `Normalisation` (RGB): what the validator applies and the card records.
    public var normalisation: Normalisation {
        get { Normalisation(mean: mean.map(Double.init), std: std.map(Double.init)) }
        set {
            mean = newValue.mean.map(Float.init)
            std = newValue.std.map(Float.init)
        }
    }

    /// `scaleLong` and `scaleShort` as Checkpoints' `InputScale` (keep-ratio): what the validator resizes to and the
    /// card records.
    public var inputScale: InputScale {
        get { InputScale(longEdge: scaleLong, shortEdge: scaleShort) }
        set {
            scaleLong = newValue.longEdge
            scaleShort = newValue.shortEdge
        }
    }

    /// Refuses settings that cannot train, with the setting named.
    public func validate() throws(TrainingError) {
        func check(_ ok: Bool, _ what: String) throws(TrainingError) {
            if !ok { throw TrainingError(.configuration, "training configuration: \(what)") }
        }
        try check(iterations > 0, "iterations must be positive, got \(iterations)")
        try check(batchSize > 0 && accumulation > 0, "batch \(batchSize) and accumulation \(accumulation) must be positive")
        try check(cropHeight > 0 && cropWidth > 0, "crop \(cropHeight)×\(cropWidth) must be positive")
        try check(scaleLong > 0 && scaleShort > 0, "scale \(scaleLong)×\(scaleShort) must be positive")
        try check(ratioRange.count == 2 && ratioRange[0] > 0 && ratioRange[0] <= ratioRange[1], "ratio range \(ratioRange) must be [low, high] with 0 < low ≤ high")
        try check(mean.count == 3 && std.count == 3 && std.allSatisfy { $0 > 0 }, "mean and std need 3 values, std positive")
        try check((0...1).contains(lesionCropProbability ?? 0), "the lesion crop probability must lie in 0…1, got \(lesionCropProbability ?? 0)")
        try check((bcePositiveWeight ?? 1) > 0, "the BCE positive weight must be positive, got \(bcePositiveWeight ?? 1)")
        try check(checkpointInterval > 0, "checkpoint interval must be positive, got \(checkpointInterval)")
        try check(schedule.maxIterations == iterations, "the schedule runs \(schedule.maxIterations) iterations, the run \(iterations)")
    }
}

/// Architecture names the `train` command accepts (see `ModelArchitecture.named`).
public enum ArchitectureName {
    public static func parse(_ name: String) -> ModelArchitecture? { ModelArchitecture.named(name) }
    public static let help = ModelArchitecture.namesHelp
}

