// swift-tools-version:6.0
import PackageDescription

// The lab's own matrix kernel and rounding kernels are written with SIMD types; code
// generation for the build machine's vector units makes them fast. Results do not depend
// on it: the kernels fix the summation order and use fused multiply-add everywhere, so the
// bits are the same whatever the vector width (see ARCHITECTURE.md "Determinism").
#if arch(x86_64)
let nativeCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "native"])]
#else
let nativeCPU: [SwiftSetting] = []
#endif

var package = Package(
    name: "PrecisionLab",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "plab", targets: ["plab"]),
        .library(name: "Numerics", targets: ["Numerics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]
        ),
        .systemLibrary(
            name: "CEdit",
            pkgConfig: "libedit",
            providers: [.apt(["libedit-dev"]), .brew(["libedit"])]
        ),
        .target(name: "CBF16"),
        // oneDNN's float32 product (libdnnl-dev: its headers carry no pkg-config file; on macOS,
        // Homebrew's onednn, under one of Homebrew's two prefixes).
        .target(
            name: "CDNNL",
            cSettings: [.unsafeFlags(["-I/opt/homebrew/include", "-I/usr/local/include"], .when(platforms: [.macOS]))],
            linkerSettings: [
                .linkedLibrary("dnnl"),
                .unsafeFlags(["-L/opt/homebrew/lib", "-L/usr/local/lib"], .when(platforms: [.macOS])),
            ]
        ),
        .target(name: "CPool"),
        .target(name: "Files"),
        .target(name: "JSON"),
        .target(name: "Plot"),
        .target(name: "Tokenizer", dependencies: ["JSON"]),
        .target(
            name: "Numerics",
            dependencies: ["CBLAS", "CBF16", "CDNNL", "CPool"],
            swiftSettings: nativeCPU
        ),
        .target(
            name: "Model",
            dependencies: ["Numerics"],
            swiftSettings: nativeCPU
        ),
        .target(
            name: "Storage",
            dependencies: ["Model", "Numerics", "Files", "JSON"]
        ),
        .target(
            name: "Mismatch",
            dependencies: ["Numerics", "JSON"],
            swiftSettings: nativeCPU
        ),
        .target(
            name: "Engines",
            dependencies: ["Numerics", "Model", "Mismatch"],
            swiftSettings: nativeCPU
        ),
        .target(
            name: "RL",
            dependencies: ["Numerics", "JSON", "Model", "Storage", "Mismatch", "Engines"],
            swiftSettings: nativeCPU
        ),
        .target(
            name: "Lab",
            dependencies: ["Numerics", "Files", "JSON", "Plot", "Model", "Storage", "Mismatch", "Engines", "RL", "Tokenizer"],
            swiftSettings: nativeCPU
        ),
        .executableTarget(
            name: "plab",
            dependencies: [
                "Numerics", "Files", "JSON", "Model", "Engines", "Lab", "Plot", "CEdit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "JSONTests",
            dependencies: ["JSON"]
        ),
        .testTarget(
            name: "TokenizerTests",
            dependencies: ["Tokenizer", "JSON"]
        ),
        .testTarget(
            name: "PlotTests",
            dependencies: ["Plot"]
        ),
        .testTarget(
            name: "FilesTests",
            dependencies: ["Files"]
        ),
        .testTarget(
            name: "NumericsTests",
            dependencies: ["Numerics", "CBLAS", "CBF16", "CDNNL"],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "ModelTests",
            dependencies: ["Model", "Storage", "Numerics"],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "StorageTests",
            dependencies: ["Storage", "Model", "Numerics", "JSON"]
        ),
        .testTarget(
            name: "MismatchTests",
            dependencies: ["Mismatch", "Numerics", "JSON"],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "EnginesTests",
            dependencies: ["Engines", "Model", "Mismatch", "Numerics"],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "RLTests",
            dependencies: ["RL", "Engines", "Model", "Storage", "Mismatch", "Numerics", "JSON"],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "LabTests",
            dependencies: ["Lab", "Files", "Plot", "Engines", "Model", "RL", "Numerics", "JSON", "Storage", "Tokenizer"],
            swiftSettings: nativeCPU
        ),
        .testTarget(
            name: "PlabTests",
            dependencies: []
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Coverage-guided fuzz targets (fuzz/, scripts/fuzz), in the manifest only when PLAB_FUZZ is
// set: they are libFuzzer entry points with no main of their own, so they link only with
// `--sanitize fuzzer`, and the normal build and tests never see them.
if Context.environment["PLAB_FUZZ"] != nil {
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["Lab", "Model", "Numerics", "RL"], path: "fuzz/Sources/FuzzSupport"))
    for name in ["FuzzCommands", "FuzzSessionFiles", "FuzzTranscripts", "FuzzCheckpoint", "FuzzNumbers"] {
        package.targets.append(.executableTarget(name: name, dependencies: ["FuzzSupport", "Lab", "Model", "Storage", "Numerics"],
                                                 path: "fuzz/Sources/\(name)"))
    }
}
