import Checkpoints
import Foundation
import Tensor

/// What `fundus-screen bench` measures: whole-network inference speed and memory, and where the time goes.
public struct BenchmarkReport: Sendable {
    public var model: String
    public var inputShape: [Int]
    /// Seconds of each timed run (after one warm-up run).
    public var runs: [Double]
    /// Process CPU seconds (user + system) of each timed run: under contention, CPU/threads estimates the
    /// uncontended wall time.
    public var cpuSeconds: [Double]
    public var implementations: [String: Int]
    public var warmUpSeconds: Double
    public var gflopPerImage: Double
    public var peakRSSBytes: Int
    /// Seconds by layer kind during one profiled run (profiling adds a little overhead).
    public var split: [(kind: String, seconds: Double)]
    /// GFLOP/s of single convolution shapes run alone: (description, GFLOP/s, oneDNN implementation).
    public var convolutions: [(shape: String, gflops: Double, implementation: String)]

    /// Whether 3×3 convolutions ran as Winograd where the engine allows it.
    public var winograd = true
    public var bf16 = false

    public var medianSeconds: Double { runs.sorted()[runs.count / 2] }
    public var gflops: Double { gflopPerImage / medianSeconds }

    public var text: String {
        var lines = [
            "model: \(model), input \(inputShape), random weights",
            String(format: "seconds per image: median %.3f of %d runs (%@); warm-up %.3f", medianSeconds, runs.count,
                   runs.map { String(format: "%.3f", $0) }.joined(separator: ", "), warmUpSeconds),
            String(format: "CPU seconds per image (user+sys): %@", cpuSeconds.map { String(format: "%.2f", $0) }.joined(separator: ", ")),
            String(format: "work: %.1f GFLOP per image (direct convolution count), %.1f GFLOP/s", gflopPerImage, gflops),
            MachineLimit.line(gflops: gflops, bf16: bf16, winograd: winograd),
            String(format: "peak RSS: %.2f GiB", Double(peakRSSBytes) / Double(1 << 30)),
            "time by layer kind (profiled run):",
        ]
        let total = split.reduce(0) { $0 + $1.seconds }
        for (kind, s) in split {
            lines.append(String(format: "  %-20@ %7.3f s  %5.1f %%", kind, s, 100 * s / max(total, 1e-9)))
        }
        lines.append("oneDNN convolution implementations (kernel, stride, source layout: shapes):")
        for (k, n) in implementations.sorted(by: { $0.key < $1.key }) { lines.append("  \(k): \(n)") }
        lines.append("single convolution shapes:")
        for c in convolutions { lines.append(String(format: "  %@: %.1f GFLOP/s (%@)", c.shape, c.gflops, c.implementation)) }
        return lines.joined(separator: "\n")
    }
}

/// The machine's arithmetic limit that the bench's GFLOP/s are compared with: fused multiply-adds at full width on
/// every core, from /proc/cpuinfo. The performance goals were set on 2 Zen 4 cores: 117 GFLOP/s per core in fp32
/// (ENGINE.md; AVX-512 runs on two 256-bit FMA pipes there, about 3.7 GHz) and about twice that in bf16
/// (AVX512-BF16 dot products): 234 / 468 for the machine. An Intel core with AVX-512 has two 512-bit FMA units:
/// 64 fp32 FLOP per cycle at the nominal clock; without AMX its bf16 dot products are counted at the fp32 rate
/// (oneDNN's bf16 kernels measured no faster than its fp32 ones on such a machine).
public enum MachineLimit {
    public static let zen4PerCore = 117.0
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    struct CPU {
        var name = "unknown CPU", vendor = "", family = 0, megahertz = 0.0
        var flags: Set<Substring> = []
        static let current: CPU = {
            var cpu = CPU()
            guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return cpu }
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { continue }
                switch parts[0] {
                case "model name" where cpu.name == "unknown CPU": cpu.name = parts[1]
                case "vendor_id": cpu.vendor = parts[1]
                case "cpu family": cpu.family = Int(parts[1]) ?? 0
                case "cpu MHz" where cpu.megahertz == 0: cpu.megahertz = Double(parts[1]) ?? 0
                case "flags" where cpu.flags.isEmpty: cpu.flags = Set(parts[1].split(separator: " "))
                default: break
                }
            }
            return cpu
        }()
        var isZen4: Bool { vendor == "AuthenticAMD" && family == 25 && flags.contains("avx512f") }
    }

    /// GFLOP/s of all cores and how it was reckoned.
    public static func gflops(bf16: Bool) -> (value: Double, basis: String) {
        let cpu = CPU.current
        if cpu.isZen4 || cpu.megahertz == 0 {
            let per = zen4PerCore * (bf16 ? 2 : 1)
            return (Double(cores) * per, String(format: "%@, %d cores × %.0f as measured on Zen 4", cpu.name, cores, per))
        }
        let perCycle = cpu.flags.contains("avx512f") ? 64.0 : cpu.flags.contains("fma") ? 32.0 : 8.0
        let bf16Rate = bf16 && cpu.flags.contains("amx_bf16") ? 16.0 : 1.0
        let per = perCycle * bf16Rate * cpu.megahertz / 1000
        return (Double(cores) * per, String(format: "%@, %d cores × %.0f FLOP/cycle × %.2f GHz nominal%@", cpu.name, cores,
                                            perCycle * bf16Rate, cpu.megahertz / 1000,
                                            bf16 && bf16Rate == 1 ? ", bf16 counted at the fp32 rate (no AMX)" : ""))
    }

    /// "limit: … GFLOP/s (basis); this run x = y %", and the goals' machine's figure.
    public static func line(gflops: Double, bf16: Bool, winograd: Bool) -> String {
        let (limit, basis) = Self.gflops(bf16: bf16)
        var text = String(format: "limit: %.0f GFLOP/s %@ (%@); this run %.1f GFLOP/s = %.0f %% of it", limit,
                          bf16 ? "bf16" : "fp32", basis, gflops, 100 * gflops / limit)
        if !CPU.current.isZen4 {
            text += String(format: "; on the goals' 2-core Zen 4: %.0f %% of %.0f", 100 * gflops / (2 * zen4PerCore * (bf16 ? 2 : 1)),
                           2 * zen4PerCore * (bf16 ? 2 : 1))
        }
        if winograd && !bf16 {
            text += " (3×3 convolutions as Winograd do fewer multiplications than counted: the rate can pass the limit)"
        }
        return text
    }
}

/// What `fundus-screen bench --training` measures.
public struct TrainingBenchmarkReport: Sendable {
    public var seconds: [Double]
    public var peakRSSBytes: Int
    /// Bytes in tensors at the most during a timed step, and when its forward pass had finished (parameters,
    /// gradients included; oneDNN's scratchpads and reordered weights not).
    public var peakTensorBytes = 0
    public var tensorBytesAfterForward = 0
    /// Convolution work of one step: forward, backward data and backward weights (direct count).
    public var gflopPerStep: Double
    public var bf16 = false
    public var medianSeconds: Double { seconds.sorted()[seconds.count / 2] }
}

public enum NetworkBenchmark {
    /// Times training steps (forward in training mode, bdice, backward) on random data: seconds per step of each
    /// run after a warm-up step, and the peak RSS.
    public static func training(architecture: ModelArchitecture = .w48(variant: .C), batch: Int = 2, height: Int = 512,
                                width: Int = 512, runs: Int = 2, bf16: Bool = false, winograd: Bool = true,
                                checkpointBranches: Int = 2, progress: (String) -> Void = { _ in })
        throws(NetworkError) -> TrainingBenchmarkReport {
        EngineThreads.configureBLASForEngine()
        EngineThreads.configureMemoryForEngine()
        let model = try SegmentationModel(architecture: architecture)
        model.bf16Training = bf16
        model.checkpointBranches = checkpointBranches
        if !winograd { model.withEngine { $0.winogradMaxChannels = 0 } }
        var random = SplitMix(seed: 7)
        let input = Tensor((0..<(batch * 3 * height * width)).map { _ in random.uniform() * 4 - 2 },
                           shape: [batch, 3, height, width])
        let labels = (0..<(batch * height * width)).map { _ in Int32(random.next() % 5) }
        var seconds: [Double] = []
        var flops = 0.0
        var peakTensors = 0
        model.withEngine { $0.profiling = true }
        for k in 0...runs {
            if k == 1 { model.withEngine { $0.profile = [:] } }
            TensorMemory.resetPeak()
            let before = model.withEngine { $0.flops }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (loss, _) = try model.trainingStep(input: input, labels: labels)
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            progress(String(format: "%@ step: %.3f s, loss %.4f", k == 0 ? "warm-up" : "timed", s, loss))
            if k > 0 { seconds.append(s) }
            peakTensors = max(peakTensors, TensorMemory.peakBytes)
            flops = model.withEngine { $0.flops } - before
        }
        for (k, n) in model.withEngine({ $0.implementations }).sorted(by: { $0.key < $1.key }) { progress("  \(k): \(n)") }
        for (kind, t) in model.withEngine({ $0.profile }).sorted(by: { $0.value > $1.value }) {
            progress(String(format: "  %-40@ %8.3f s (over %d steps)", kind, t, runs))
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return TrainingBenchmarkReport(seconds: seconds, peakRSSBytes: usage.ru_maxrss * 1024,
                                       peakTensorBytes: peakTensors,
                                       tensorBytesAfterForward: model.withEngine { $0.tensorBytesAfterForward },
                                       gflopPerStep: flops * 1e-9, bf16: bf16)
    }

    /// Runs the network with random weights on a random input: one warm-up, then `runs` timed probability passes,
    /// one profiled pass, and the heaviest convolution shapes alone. `ensemble`: the architectures of the other
    /// networks a model card's `ensemble` averages with this one (each with random weights and the same
    /// `channelScales`), so that the time per image is a screening's; the profile and the single shapes stay the
    /// first network's.
    public static func run(architecture: ModelArchitecture = .w48(variant: .C), height: Int = 960, width: Int = 1440,
                           runs: Int = 3, bf16: Bool = false, winograd: Bool = true, shapes: Bool = false,
                           channelScales: [Int: [Double]] = [:], ensemble: [ModelArchitecture] = [],
                           progress: (String) -> Void = { _ in }) throws(NetworkError) -> BenchmarkReport {
        EngineThreads.configureBLASForEngine()
        EngineThreads.configureMemoryForEngine()
        let model = try SegmentationModel(architecture: architecture)
        model.bf16Inference = bf16
        model.channelScales = channelScales
        if !winograd { model.withEngine { $0.winogradMaxChannels = 0 } }
        for memberArchitecture in ensemble {
            let member = try SegmentationModel(architecture: memberArchitecture)
            member.bf16Inference = bf16
            member.channelScales = channelScales
            if !winograd { member.withEngine { $0.winogradMaxChannels = 0 } }
            model.ensemble.append(member)
        }
        var random = SplitMix(seed: 42)
        let input = Tensor((0..<(3 * height * width)).map { _ in random.uniform() * 4 - 2 }, shape: [1, 3, height, width])
        func timed(_ body: () throws(NetworkError) -> Void) throws(NetworkError) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        }
        progress("warm-up run")
        model.withEngine { $0.profiling = true }
        let warm = try timed { () throws(NetworkError) in _ = try model.probabilities(input) }
        let warmSplit = model.withEngine { e -> [(String, Double)] in
            e.profiling = false
            defer { e.profile = [:] }
            return e.profile.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }
        }
        for (kind, t) in warmSplit.prefix(6) { progress(String(format: "  warm-up %@: %.3f s", kind, t)) }
        var times: [Double] = []
        var cpu: [Double] = []
        var flops = 0.0
        // Every network's engine counts its own work (an ensemble's members run on theirs).
        func counted() -> Double { ([model] + model.ensemble).reduce(0) { $0 + $1.withEngine { $0.flops } } }
        for k in 0..<runs {
            let before = counted()
            let c0 = cpuTime()
            times.append(try timed { () throws(NetworkError) in _ = try model.probabilities(input) })
            cpu.append(cpuTime() - c0)
            flops = counted() - before
            progress(String(format: "run %d: %.3f s", k + 1, times.last!))
        }
        // The profiled pass and the single shapes below: the first network alone.
        model.ensemble = []
        model.withEngine { $0.profile = [:]; $0.profiling = true; $0.profileShapes = shapes }
        _ = try model.probabilities(input)
        let split = model.withEngine { e -> [(String, Double)] in
            e.profiling = false
            return e.profile.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)  // before the single-shape runs below allocate their own buffers
        let implementations = model.withEngine { $0.implementations }
        let c = architecture.stages[3].channels
        let q = (height + 3) / 4, r = (width + 3) / 4
        let shapes: [(String, [Int], [Int])] = [
            ("3x3 \(c[0])->\(c[0]) at \(q)x\(r)", [1, c[0], q, r], [c[0], c[0], 3, 3]),
            ("1x1 \(architecture.concatChannels)->\(architecture.headChannels) at \(q)x\(r) (head)",
             [1, architecture.concatChannels, q, r], [architecture.headChannels, architecture.concatChannels, 1, 1]),
        ]
        let convolutions = model.withEngine { e in
            shapes.map { name, xs, ws -> (String, Double, String) in
                let x = Tensor(shape: xs, layout: .blocked16)
                let w = Tensor(shape: ws)
                for i in 0..<w.count { w.data[i] = random.uniform() - 0.5 }
                _ = e.convolution(x, weight: w, bias: nil, padding: ws[2] / 2, constantWeights: true, bf16: bf16)
                var best = Double.infinity
                for _ in 0..<5 {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = e.convolution(x, weight: w, bias: nil, padding: ws[2] / 2, constantWeights: true, bf16: bf16)
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
                let f = 2 * Double(ws[0] * ws[1] * ws[2] * ws[3]) * Double(xs[2] * xs[3])
                return (name, f / best * 1e-9, e.convolutionImplementation(inputShape: xs, weightShape: ws, padding: ws[2] / 2, bf16: bf16))
            }
        }
        let name = architecture.displayName + (ensemble.isEmpty ? "" : " and \(ensemble.count) more network\(ensemble.count == 1 ? "" : "s") averaged (the card's ensemble; the profile and shapes are the first's)")
        return BenchmarkReport(model: name + (bf16 ? " (bf16 convolutions)" : ""), inputShape: input.shape, runs: times,
                               cpuSeconds: cpu, implementations: implementations, warmUpSeconds: warm, gflopPerImage: flops * 1e-9, peakRSSBytes: usage.ru_maxrss * 1024, split: split,
                               convolutions: convolutions, winograd: winograd && !bf16, bf16: bf16)
    }
}

/// User + system CPU seconds of this process so far.
func cpuTime() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6
}
