import Foundation
import Testing
@testable import Training

/// A temporary folder removed when the test ends.
func temporaryFolder(_ name: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("fundus-training-\(name.filter { $0.isLetter })-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A random 4×6 batch with labels that follow the colour a little, so the toy model has something to learn.
func toyBatch(_ rng: inout TrainingRNG, count: Int = 2) -> TrainingBatch {
    let h = 4, w = 6, hw = h * w
    var images = [Float](repeating: 0, count: count * 3 * hw), labels = [UInt8](repeating: 0, count: count * hw)
    for n in 0..<count {
        for i in 0..<hw {
            let l = UInt8(rng.below(5))
            labels[n * hw + i] = l
            for k in 0..<3 { images[(n * 3 + k) * hw + i] = Float(rng.uniform(-1, 1)) + (l > 0 && k == Int(l) % 3 ? 1 : 0) }
        }
    }
    return TrainingBatch(count: count, height: h, width: w, images: images, labels: labels, annotated: [Bool](repeating: true, count: count * 4))
}

/// Steps of toy training drawing data from the RNG: the optimiser, schedule and RNG as the loop uses them.
func toySteps(_ model: inout ToyPixelModel, _ sgd: inout SGD, _ rng: inout TrainingRNG, from: Int, to: Int, schedule: PolySchedule) throws {
    for it in from..<to {
        let batch = toyBatch(&rng)
        let result = try model.trainingStep(batch, loss: LossSettings())
        try model.updateParameters { p in try sgd.step(&p, gradients: result.gradients, learningRate: schedule.learningRate(at: it)) }
    }
}

@Test("N steps straight equal N/2 steps, checkpoint, load, N/2 steps — bit for bit")
func checkpointResumeIsExact() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    var configuration = TrainingConfiguration()
    configuration.iterations = 20
    configuration.schedule = PolySchedule(maxIterations: 20)
    let schedule = configuration.schedule

    var straight = ToyPixelModel(seed: 1), sgdA = SGD(), rngA = TrainingRNG(seed: 9)
    try toySteps(&straight, &sgdA, &rngA, from: 0, to: 20, schedule: schedule)

    var first = ToyPixelModel(seed: 1), sgdB = SGD(), rngB = TrainingRNG(seed: 9)
    try toySteps(&first, &sgdB, &rngB, from: 0, to: 10, schedule: schedule)
    try TrainingCheckpoint(configuration: configuration, iteration: 10, rng: rngB, sampler: SampleOrder(),
                           model: first.state, momentumBuffers: sgdB.momentumBuffers).write(to: folder)

    let saved = try #require(try TrainingCheckpoint.latest(in: folder))
    #expect(saved.iteration == 10)
    #expect(saved.configuration == configuration)
    #expect(saved.trainingSeconds == nil)   // written without it: unknown, not zero
    var resumed = ToyPixelModel(seed: 99)   // different init: everything must come from the checkpoint
    try resumed.load(saved.model)
    var sgdC = SGD(momentumBuffers: saved.momentumBuffers), rngC = saved.rng
    try toySteps(&resumed, &sgdC, &rngC, from: 10, to: 20, schedule: schedule)

    #expect(resumed.state == straight.state)
    #expect(sgdC.momentumBuffers == sgdA.momentumBuffers)
    #expect(resumed.state["head.steps"]?.values == [20])
    #expect(rngC == rngA)
    // Training moved the weights at all.
    #expect(straight.state != ToyPixelModel(seed: 1).state)
}

@Test("A folder without checkpoints resumes nothing; a weight file is not taken for a checkpoint")
func checkpointAbsentOrWrong() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(try TrainingCheckpoint.latest(in: folder) == nil)
    let plain = folder.appendingPathComponent("weights.safetensors")
    try Data([8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8)).write(to: plain)
    #expect(throws: TrainingError.self) { try TrainingCheckpoint.read(plain) }
    try Data("{\"iteration\": 5, \"file\": \"iter_00000005.safetensors\"}".utf8).write(to: folder.appendingPathComponent("latest.json"))
    #expect(throws: TrainingError.self) { try TrainingCheckpoint.latest(in: folder) }
}
