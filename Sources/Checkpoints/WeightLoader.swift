import Foundation

/// A weight file read and understood: its tensors (state-dict names, dtypes as stored) and the architecture they fit.
public struct LoadedWeights: Sendable {
    public var architecture: ModelArchitecture
    public var tensors: TensorFile
    public var source: URL
    /// The `metadata.json` beside our own weight files; nil for imported PyTorch checkpoints.
    public var card: ModelCard?
    /// A PyTorch checkpoint's `meta` dict (values as Python-like text), or the safetensors `__metadata__`.
    public var meta: [String: String]

    public init(architecture: ModelArchitecture, tensors: TensorFile, source: URL, card: ModelCard? = nil,
                meta: [String: String] = [:]) {
        self.architecture = architecture
        self.tensors = tensors
        self.source = source
        self.card = card
        self.meta = meta
    }

    /// Lesion class names in output-channel order: the card's, else the checkpoint's CLASSES less a leading
    /// background name (mmseg lists 'bg' although the sigmoid head has no background channel), else EX, HE, SE, MA.
    public var classes: [String] {
        if let c = card?.classes { return c }
        if let text = meta["CLASSES"] {
            var names = text.split(whereSeparator: { "()[], '\"".contains($0) }).map(String.init)
            if names.count == architecture.numClasses + 1, let first = names.first,
               ["bg", "background", "_background_"].contains(first.lowercased()) {
                names.removeFirst()
            }
            if names.count == architecture.numClasses { return names }
        }
        return ModelCard.classNames(numClasses: architecture.numClasses)
    }
}

/// The formats `WeightLoader` recognises by their first bytes.
public enum WeightFormat: String, Sendable, Codable {
    case pytorch = "PyTorch checkpoint (torch.save zip)"
    case safetensors = "safetensors"
}

public enum WeightLoader {
    /// Reads a `.pth`/`.pt` (zip magic) or a `.safetensors` file, by its content, not its extension; a folder
    /// holding one `.safetensors` (a model bundle) works too. For safetensors the architecture comes from the
    /// `metadata.json` beside it when there is one, else it is inferred from the names and shapes; either way
    /// it is checked against every tensor.
    public static func load(_ url: URL) throws(CheckpointError) -> LoadedWeights {
        let url = try weightFile(url)
        let format = try sniff(url)
        switch format {
        case .pytorch:
            let tensors = try TorchCheckpoint.read(url)
            let arch = try ModelArchitecture.infer(from: tensors, file: url.path)
            return LoadedWeights(architecture: arch, tensors: tensors, source: url, card: nil, meta: tensors.metadata)
        case .safetensors:
            let tensors = try Safetensors.read(url)
            if let state = tensors.metadata[trainingStateKey] { return try trainingCheckpoint(tensors, state: state, url: url) }
            let card = try ModelCard.beside(url)
            let arch: ModelArchitecture
            if let card {
                arch = card.architecture
                try arch.check(shapes: tensors.tensors.mapValues(\.shape), file: url.path)
            } else {
                arch = try ModelArchitecture.infer(from: tensors, file: url.path)
            }
            return LoadedWeights(architecture: arch, tensors: tensors, source: url, card: card, meta: tensors.metadata)
        }
    }

    /// The metadata key of a training checkpoint (`TrainingCheckpoint`: the model under `model/`, the optimiser's
    /// momentum under `momentum/`, the run's state as JSON here).
    public static let trainingStateKey = "fundus.training_state"

    /// A training checkpoint's model (`iter_*.safetensors` of a `train`/`crossval` work folder), to validate or screen
    /// with a run that is still going: the architecture from its configuration, the momentum left out. No card: the
    /// IDRiD normalisation and scale, one scale per class unless asked.
    static func trainingCheckpoint(_ file: TensorFile, state: String, url: URL) throws(CheckpointError) -> LoadedWeights {
        struct State: Decodable {
            struct Configuration: Decodable { var architecture: ModelArchitecture? }
            var iteration: Int
            var configuration: Configuration
        }
        var model = TensorFile()
        for name in file.names where name.hasPrefix("model/") { model.set(String(name.dropFirst(6)), file.tensors[name]!) }
        guard !model.names.isEmpty else {
            throw .malformed(file: url.path, reason: "a training checkpoint without model/ tensors")
        }
        let decoded = try? JSONDecoder().decode(State.self, from: Data(state.utf8))
        let arch: ModelArchitecture
        if let a = decoded?.configuration.architecture {
            arch = a
            try arch.check(shapes: model.tensors.mapValues(\.shape), file: url.path)
        } else {
            arch = try ModelArchitecture.infer(from: model, file: url.path)
        }
        var meta = ["training checkpoint": url.lastPathComponent]
        if let decoded { meta["iteration"] = String(decoded.iteration) }
        return LoadedWeights(architecture: arch, tensors: model, source: url, card: nil, meta: meta)
    }

    /// Writes `<card.name>.safetensors` and `metadata.json` into `directory` (created if needed), both atomically.
    /// Returns the weight file's URL. The card's `weightsFile` is set to the file name.
    @discardableResult
    public static func save(tensors: TensorFile, card: ModelCard, to directory: URL) throws(CheckpointError) -> URL {
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw .unreadable(file: directory.path, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        try card.architecture.check(shapes: tensors.tensors.mapValues(\.shape), file: card.name)
        let safeName = card.name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }
        let weights = directory.appendingPathComponent(String(safeName) + ".safetensors")
        var card = card
        card.weightsFile = weights.lastPathComponent
        var file = tensors
        file.metadata["format"] = "pt"
        file.metadata["fundus-screen.model"] = card.name
        file.metadata["fundus-screen.version"] = card.version
        try Safetensors.write(file, to: weights)
        try card.write(to: directory.appendingPathComponent(ModelCard.fileName))
        return weights
    }

    /// The format by the first bytes.
    public static func sniff(_ url: URL) throws(CheckpointError) -> WeightFormat {
        let head: Data
        do {
            let h = try FileHandle(forReadingFrom: url)
            defer { try? h.close() }
            head = try h.read(upToCount: 300) ?? Data()
        } catch {
            throw .unreadable(file: url.path, reason: error.localizedDescription)
        }
        if ZipArchive.looksLikeZip(head) { return .pytorch }
        if let legacy = TorchCheckpoint.legacyFormat(head) {
            throw .unsupported(file: url.path, reason: "\(legacy); load it in PyTorch ≥ 1.6 and save it again with torch.save(obj, path)")
        }
        // safetensors: an 8-byte header length, then a JSON object.
        if head.count >= 10, head[head.startIndex + 8] == UInt8(ascii: "{") { return .safetensors }
        let hex = head.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw .unsupported(file: url.path, reason: "neither a PyTorch checkpoint nor safetensors (first bytes \(hex.isEmpty ? "none: the file is empty" : hex))")
    }

    /// A folder means the one `.safetensors` file inside it.
    public static func weightFile(_ url: URL) throws(CheckpointError) -> URL {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw .unreadable(file: url.path, reason: "no such file")
        }
        guard isDir.boolValue else { return url }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [])
            .filter { $0.hasSuffix(".safetensors") || $0.hasSuffix(".pth") || $0.hasSuffix(".pt") }.sorted()
        let cardURL = url.appendingPathComponent(ModelCard.fileName)
        if FileManager.default.fileExists(atPath: cardURL.path), let w = try ModelCard.read(cardURL).weightsFile, names.contains(w) {
            return url.appendingPathComponent(w)
        }
        guard names.count == 1 else {
            throw .unreadable(file: url.path, reason: names.isEmpty ? "the folder holds no weight file" : "the folder holds \(names.count) weight files (\(names.joined(separator: ", "))); name one")
        }
        return url.appendingPathComponent(names[0])
    }
}
