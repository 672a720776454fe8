// swift-tools-version:6.0
// fundus-screen: screening fundus photograph archives for diabetic-retinopathy lesions with M2MRF-HRNetV2.
import PackageDescription

let package = Package(
    name: "fundus-screen",
    products: [
        .executable(name: "fundus-screen", targets: ["fundus-screen"]),
        .executable(name: "fundus-fuzz", targets: ["fundus-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C libraries of the system (Debian packages; scripts/setup.sh installs them).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas"),
        .systemLibrary(name: "CDNNL"),
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq"),
        .target(
            name: "CImageCodecs",
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("tiff")]
        ),

        // DICOM through DCMTK (Debian libdcmtk-dev: no pkg-config file; headers under /usr/include/dcmtk, found as
        // "dcmtk/..."). C++ inside, a C interface outside.
        .target(
            name: "CDicom",
            linkerSettings: [
                .linkedLibrary("dcmimage"), .linkedLibrary("dcmimgle"), .linkedLibrary("dcmjpeg"), .linkedLibrary("dcmjpls"),
                .linkedLibrary("dcmdata"), .linkedLibrary("ijg8"), .linkedLibrary("ijg12"), .linkedLibrary("ijg16"),
                .linkedLibrary("dcmtkcharls"), .linkedLibrary("oflog"), .linkedLibrary("ofstd"), .linkedLibrary("stdc++"),
            ]
        ),

        // Our modules; see ../shared/design/ARCHITECTURE.md for who may import whom.
        .target(name: "Tensor", dependencies: ["CDNNL", "CBLAS"]),
        .target(name: "Checkpoints"),
        .target(name: "Network", dependencies: ["Tensor", "Checkpoints"]),
        // Imaging applies Checkpoints' Normalisation (the model card's) to photographs.
        .target(name: "Imaging", dependencies: ["CImageCodecs", "CDicom", "Checkpoints"]),
        .target(name: "Lesions"),
        .target(name: "Store", dependencies: ["CPostgres", "Lesions", .product(name: "Logging", package: "swift-log")]),
        // Pipeline uses Reports' findings export for the local form's findings.csv/json (one export, see README).
        .target(name: "Pipeline", dependencies: [
            "Tensor", "Network", "Checkpoints", "Imaging", "Lesions", "Store", "Reports",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Training", dependencies: [
            "Tensor", "Network", "Checkpoints", "Imaging", "Lesions", "Store",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Reports", dependencies: [
            "Store", "Imaging", "Lesions", .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "fundus-screen", dependencies: [
            "Tensor", "Network", "Checkpoints", "Imaging", "Lesions", "Store", "Pipeline", "Training", "Reports",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Mutation fuzzing of the decoders and the field of view (pipelines/fuzz.sh).
        .executableTarget(name: "fundus-fuzz", dependencies: ["Imaging"]),

        // Test support: where ../shared is, and a private PostgreSQL server per test.
        .target(name: "TestSupport", dependencies: ["Store", .product(name: "Logging", package: "swift-log")]),
        // The one finite-difference check of the tape's gradients, for the Tensor and the Network tests.
        .target(name: "GradientCheck", dependencies: ["Tensor"], path: "Tests/GradientCheck"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "GradientCheck"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "TestSupport"]),
        // An independent Double-precision re-implementation of the official forward, for whole-network gradient
        // checks. Optimised even in debug builds: finite differences need many forward passes.
        .target(name: "ReferenceModel", path: "Tests/ReferenceModel", swiftSettings: [.unsafeFlags(["-O"])]),
        .testTarget(name: "NetworkTests", dependencies: [
            "Network", "Checkpoints", "Tensor", "TestSupport", "ReferenceModel", "GradientCheck",
        ]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Checkpoints", "CImageCodecs", "TestSupport"]),
        .testTarget(name: "LesionsTests", dependencies: ["Lesions", "TestSupport"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Lesions", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: [
            "Pipeline", "Tensor", "Network", "Checkpoints", "Imaging", "Lesions", "Store", "Reports", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ReportsTests", dependencies: [
            "Reports", "Imaging", "Lesions", "Store", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TrainingTests", dependencies: [
            "Training", "Lesions", "Imaging", "Store", "Network", "Tensor", "Checkpoints", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
