import ArgumentParser
import Foundation
import Lesions
import Store
import Training

/// `fundus-screen annotations`: the graders' lesion masks of archive images, which `train --data db:train` learns
/// from and `--val db:validation` validates on.
struct AnnotationsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "annotations",
        abstract: "Register graders' lesion masks of archive images for training and validation.",
        subcommands: [Import.self, List.self, Remove.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an annotated folder (IDRiD, IDRiD's download as it comes, DDR or nnU-Net layout) against the archive's images.",
            discussion: """
            Each photograph is matched to its archive image by path, else by content (SHA-256); photographs the \
            archive does not hold are listed and the command fails (import them with `archive import` first). \
            Classes whose mask folder exists are annotated; a missing mask file means the grader found no such lesion. \
            Importing an image again replaces its annotation.
            """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Annotated folder: images/ + masks/<CLS>/ (IDRiD), IDRiD's download (its A. Segmentation folder), image/ + label/<CLS>/ (DDR) or imagesTr/ + labelsTr/ (nnU-Net).") var folder: String
        @Option(help: "train or validation.") var split: String = "train"
        @Option(help: "Only these images, by stem: comma-separated, ranges allowed (IDRiD_01-IDRiD_10).") var images: String?
        @Option(help: "Who annotated them.") var grader: String?

        func validate() throws {
            if AnnotationSplit(rawValue: split) == nil { throw ValidationError("--split is train or validation") }
        }

        func run() throws {
            let logger = global.makeLogger("fundus-screen.annotations")
            let connection = try Database.connect(global.databaseLocation, logger: logger)
            let outcome = try AnnotationImport(connection: connection, logger: logger).register(
                folder: URL(fileURLWithPath: folder), split: AnnotationSplit(rawValue: split)!,
                images: try images.map { try LesionDataset.expandSelection($0) }, grader: grader)
            print("registered \(outcome.registered.count) annotated images as \(split)")
            if !outcome.notInArchive.isEmpty {
                print("not in the archive (run `fundus-screen archive import` on them first):")
                for path in outcome.notInArchive { print("  \(path)") }
                throw ExitCode(2)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List annotated images with their split and classes.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only train or validation.") var split: String?

        func validate() throws {
            if let split, AnnotationSplit(rawValue: split) == nil { throw ValidationError("--split is train or validation") }
        }

        func run() throws {
            let logger = global.makeLogger("fundus-screen.annotations")
            let images = try Annotations(connection: Database.connect(global.databaseLocation, logger: logger))
                .list(split: split.flatMap(AnnotationSplit.init(rawValue:)))
            if images.isEmpty { print("no annotated images"); return }
            for image in images {
                let classes = image.masks.keys.sorted().map { image.masks[$0]! == nil ? "\($0)(none)" : $0 }.joined(separator: " ")
                print("\(image.imageID)\t\(image.split.rawValue)\t\(image.patientID)\t\(image.path)\t\(classes)")
            }
            let splits = Dictionary(grouping: images, by: \.split).mapValues(\.count)
            print("\(images.count) annotated images: " + AnnotationSplit.allCases.map { "\(splits[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", "))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the annotation of archive images (by id).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Archive image ids.") var ids: [Int64]

        func run() throws {
            let logger = global.makeLogger("fundus-screen.annotations")
            let annotations = Annotations(connection: try Database.connect(global.databaseLocation, logger: logger))
            for id in ids { print(try annotations.remove(imageID: id) ? "removed \(id)" : "image \(id) had no annotation") }
        }
    }
}
