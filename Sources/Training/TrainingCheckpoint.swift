import Checkpoints
import Foundation
import Network

/// Where the data sampler stands: the shuffled order of the current pass over the dataset and the next position.
public struct SampleOrder: Codable, Sendable, Equatable {
    public var epoch = 0
    public var order: [Int] = []
    public var cursor = 0

    public init() {}

    /// The next sample index; a new shuffled pass starts (drawn from `rng`) when the last one is used up.
    public mutating func next(count: Int, rng: inout TrainingRNG) -> Int {
        if cursor >= order.count || order.count != count {
            if !order.isEmpty { epoch += 1 }
            order = rng.permutation(count)
            cursor = 0
        }
        defer { cursor += 1 }
        return order[cursor]
    }
}

/// Everything a run needs to continue exactly where it stopped: the model (parameters and BN buffers), the momentum
/// buffers, the number of optimiser steps done, the RNG and sampler state, and the configuration.
///
/// On disk: one safetensors file, `iter_<8 digits>.safetensors`, with the tensors under `model/` and
/// `momentum/`, and the rest as JSON in the metadata key `fundus.training_state`; then `latest.json` naming it.
/// Both are written to a temporary file and renamed, so a kill at any moment leaves the previous checkpoint usable.
public struct TrainingCheckpoint: Sendable, Equatable {
    public var configuration: TrainingConfiguration
    /// Optimiser steps completed.
    public var iteration: Int
    public var rng: TrainingRNG
    public var sampler: SampleOrder
    public var model: ModelState
    public var momentumBuffers: [String: [Float]]
    /// Seconds spent training up to this checkpoint, summed over the runs that resumed one another (nil in
    /// checkpoints written before it was recorded).
    public var trainingSeconds: Double?

    public init(configuration: TrainingConfiguration, iteration: Int, rng: TrainingRNG, sampler: SampleOrder,
                model: ModelState, momentumBuffers: [String: [Float]], trainingSeconds: Double? = nil) {
        self.trainingSeconds = trainingSeconds
        self.configuration = configuration
        self.iteration = iteration
        self.rng = rng
        self.sampler = sampler
        self.model = model
        self.momentumBuffers = momentumBuffers
    }

    static let metadataKey = WeightLoader.trainingStateKey
    static let formatVersion = 1

    private struct Header: Codable {
        var format: Int
        var iteration: Int
        var rng: TrainingRNG
        var sampler: SampleOrder
        var configuration: TrainingConfiguration
        var seconds: Double?
    }

    private struct Latest: Codable {
        var iteration: Int
        var file: String
    }

    public static func fileName(iteration: Int) -> String {
        "iter_" + String(repeating: "0", count: max(0, 8 - String(iteration).count)) + String(iteration) + ".safetensors"
    }

    /// Writes the checkpoint into `directory` (created if needed) and points `latest.json` at it. Returns the file.
    @discardableResult
    public func write(to directory: URL) throws(TrainingError) -> URL {
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TrainingError(.checkpoint, "cannot create checkpoint folder \(directory.path): \(error.localizedDescription)")
        }
        var file = TensorFile()
        model.add(to: &file, prefix: "model/")
        for name in model.names {
            guard let buf = momentumBuffers[name], let shape = model[name]?.shape else { continue }
            file.set("momentum/" + name, StoredTensor(floats: buf, shape: shape))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let header = Header(format: Self.formatVersion, iteration: iteration, rng: rng, sampler: sampler, configuration: configuration,
                            seconds: trainingSeconds)
        guard let json = try? encoder.encode(header), let text = String(data: json, encoding: .utf8) else {
            throw TrainingError(.checkpoint, "cannot encode the training state at iteration \(iteration)")
        }
        file.metadata[Self.metadataKey] = text
        let url = directory.appendingPathComponent(Self.fileName(iteration: iteration))
        do { try Safetensors.write(file, to: url) } catch {
            throw TrainingError(.checkpoint, "cannot write checkpoint \(url.path): \(error)")
        }
        let latest = directory.appendingPathComponent("latest.json")
        do {
            try encoder.encode(Latest(iteration: iteration, file: url.lastPathComponent)).write(to: latest, options: .atomic)
        } catch {
            throw TrainingError(.checkpoint, "cannot write \(latest.path): \(error.localizedDescription)")
        }
        return url
    }

    /// Reads one checkpoint file.
    public static func read(_ url: URL) throws(TrainingError) -> TrainingCheckpoint {
        let file: TensorFile
        do { file = try Safetensors.read(url) } catch {
            throw TrainingError(.checkpoint, "cannot read checkpoint: \(error)")
        }
        guard let text = file.metadata[metadataKey] else {
            throw TrainingError(.checkpoint, "\(url.path) is a weight file, not a training checkpoint (no \(metadataKey) metadata)")
        }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(text.utf8)) } catch {
            throw TrainingError(.checkpoint, "\(url.path): the training state does not decode: \(error)")
        }
        guard header.format == formatVersion else {
            throw TrainingError(.checkpoint, "\(url.path) has checkpoint format \(header.format); this build reads \(formatVersion)")
        }
        let model = ModelState(from: file, prefix: "model/")
        var buffers: [String: [Float]] = [:]
        for (name, t) in ModelState(from: file, prefix: "momentum/").tensors {
            guard model[name]?.values.count == t.values.count else {
                throw TrainingError(.checkpoint, "\(url.path): momentum for '\(name)' matches no model tensor of its size")
            }
            buffers[name] = t.values
        }
        return TrainingCheckpoint(configuration: header.configuration, iteration: header.iteration, rng: header.rng,
                                  sampler: header.sampler, model: model, momentumBuffers: buffers,
                                  trainingSeconds: header.seconds)
    }

    /// The checkpoint `latest.json` in `directory` names, or nil when the folder holds none yet.
    public static func latest(in directory: URL) throws(TrainingError) -> TrainingCheckpoint? {
        let pointer = directory.appendingPathComponent("latest.json")
        guard FileManager.default.fileExists(atPath: pointer.path) else { return nil }
        let latest: Latest
        do { latest = try JSONDecoder().decode(Latest.self, from: Data(contentsOf: pointer)) } catch {
            throw TrainingError(.checkpoint, "\(pointer.path) does not name a checkpoint: \(error.localizedDescription)")
        }
        let checkpoint = try read(directory.appendingPathComponent(latest.file))
        guard checkpoint.iteration == latest.iteration else {
            throw TrainingError(.checkpoint, "\(pointer.path) says iteration \(latest.iteration), \(latest.file) holds \(checkpoint.iteration)")
        }
        return checkpoint
    }
}

/// The weights of a run in progress as a model bundle (`<name>.safetensors` + `metadata.json`) that `screen`,
/// `evaluate` and `train --from` take: to look at a long run's masks before it ends, or keep a good iteration.
public enum TrainingSnapshot {
    public static func export(_ checkpoint: TrainingCheckpoint, from folder: URL, name: String, to directory: URL) throws -> URL {
        let c = checkpoint.configuration
        return try bundle(checkpoint.model, configuration: c, name: name, to: directory,
                          trainingData: "snapshot of a training run (\(folder.path))",
                          note: "iteration \(checkpoint.iteration) of \(c.iterations), seed \(c.seed) (not validated)", folder: folder)
    }

    static func bundle(_ state: ModelState, configuration c: TrainingConfiguration, name: String, to directory: URL,
                       trainingData: String, note: String, folder: URL) throws -> URL {
        guard let architecture = c.architecture else {
            throw TrainingError(.checkpoint, "\(folder.path): the checkpoint does not name its architecture")
        }
        var model = NetworkModel(try SegmentationModel(architecture: architecture))
        try model.load(state)
        var card = ModelCard(name: name, version: name, architecture: architecture,
                             normalisation: c.normalisation,
                             inputScale: c.inputScale,
                             trainingData: trainingData)
        card.changelog[name] = note
        return try WeightLoader.save(tensors: TrainingSession.stableExport(model.network), card: card, to: directory)
    }
}

extension ModelState {
    /// The element-wise mean of states that hold the same tensors (names and shapes): the weights of several
    /// checkpoints of one run averaged (Izmailov et al.'s stochastic weight averaging, without its BN recomputation:
    /// the batch-norm running statistics are averaged like the weights).
    public static func mean(_ states: [ModelState]) throws(TrainingError) -> ModelState {
        guard let first = states.first else { throw TrainingError(.model, "no model states to average") }
        var sum = first
        for (k, state) in states.enumerated().dropFirst() {
            guard Set(state.names) == Set(first.names) else {
                let differ = Set(state.names).symmetricDifference(first.names).sorted().prefix(3).joined(separator: ", ")
                throw TrainingError(.model, "state \(k + 1) of \(states.count) holds other tensors than the first (\(differ))")
            }
            for name in first.names {
                let t = state.tensors[name]!
                guard t.shape == first.tensors[name]!.shape else {
                    throw TrainingError(.model, "state \(k + 1) of \(states.count): '\(name)' has shape \(t.shape), the first \(first.tensors[name]!.shape)")
                }
                sum.modify(name) { v in for i in v.indices { v[i] += t.values[i] } }
            }
        }
        let scale = 1 / Float(states.count)
        for name in first.names { sum.modify(name) { v in for i in v.indices { v[i] *= scale } } }
        return sum
    }
}

extension TrainingCheckpoint {
    /// The checkpoint files (`iter_<n>.safetensors`) in `directory`, by iteration.
    public static func files(in directory: URL) throws(TrainingError) -> [URL] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw TrainingError(.checkpoint, "cannot list \(directory.path): \(error.localizedDescription)")
        }
        return names.filter { $0.hasPrefix("iter_") && $0.hasSuffix(".safetensors") }.sorted()
            .map { directory.appendingPathComponent($0) }
    }
}

extension TrainingSnapshot {
    /// The mean of the weights of several checkpoints of one run as a model bundle. The checkpoints must share the
    /// architecture; the card names the iterations averaged.
    public static func exportAverage(_ checkpoints: [TrainingCheckpoint], from folder: URL, name: String,
                                     to directory: URL) throws -> URL {
        guard let last = checkpoints.max(by: { $0.iteration < $1.iteration }) else {
            throw TrainingError(.checkpoint, "\(folder.path): no checkpoints to average")
        }
        for c in checkpoints where c.configuration.architecture != last.configuration.architecture {
            throw TrainingError(.checkpoint, "\(folder.path): iteration \(c.iteration) has another architecture than iteration \(last.iteration)")
        }
        let iterations = checkpoints.map(\.iteration).sorted()
        let c = last.configuration
        return try bundle(try ModelState.mean(checkpoints.map(\.model)), configuration: c, name: name, to: directory,
                          trainingData: "weights averaged over checkpoints of a training run (\(folder.path))",
                          note: "mean of the weights (batch-norm running statistics averaged too) of \(iterations.count) "
                              + "checkpoints, iterations \(iterations.map(String.init).joined(separator: ", ")) of \(c.iterations), "
                              + "seed \(c.seed) (not validated)", folder: folder)
    }
}
