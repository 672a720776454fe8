/// Per-channel mean and standard deviation, in `channelOrder` on 0…255 pixel values, that a network was trained with:
/// it sees (value − mean) / std. The one definition, with the official presets: the model card carries it
/// (`ModelCard.normalisation`), training records it, Imaging applies it to a photograph (`tensor(_:)`).
public struct Normalisation: Codable, Sendable, Equatable {
    public var mean: [Double]
    public var std: [Double]
    public var channelOrder: String

    public init(mean: [Double], std: [Double], channelOrder: String = "RGB") {
        self.mean = mean
        self.std = std
        self.channelOrder = channelOrder
    }

    /// IDRiD training set statistics of the official configs (RGB).
    public static let idrid = Normalisation(mean: [116.513, 56.437, 16.309], std: [80.206, 41.232, 13.293])
    /// DDR training set statistics of the official configs (RGB).
    public static let ddr = Normalisation(mean: [81.205, 50.636, 21.216], std: [76.252, 48.798, 21.625])
}
