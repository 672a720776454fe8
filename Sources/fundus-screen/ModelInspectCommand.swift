import ArgumentParser
import Checkpoints
import Foundation

/// `fundus-screen model inspect FILE [--json]`: what a weight file holds, read without running anything.
struct ModelInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a weight file (.pth from mmsegmentation, or our .safetensors with metadata.json).",
        discussion: """
        Prints the format, the architecture inferred from the tensor names and shapes (HRNetV2 width, M2MRF variant \
        A–D, stages, head), parameter and buffer counts, the classes and the checkpoint's meta. Nothing in the \
        file is executed.
        """
    )

    @Argument(help: "A .pth/.pt checkpoint, a .safetensors file, or a model folder holding one.")
    var file: String

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let summary = try WeightLoader.summary(URL(fileURLWithPath: file))
        print(json ? summary.json : summary.text)
    }
}
