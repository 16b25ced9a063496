// swift-tools-version:6.2
import PackageDescription

/// Warnings are errors in CI (`.ci/run` runs with `CI=true`), for this package's own targets only: a
/// setting in a target's `swiftSettings` reaches that target alone, and SwiftPM builds dependencies
/// with their warnings suppressed. `swift build -Xswiftc -warnings-as-errors` would reach the
/// dependencies too, and clash with that suppression. Locally a warning stays a warning, so a half-done
/// edit still builds and runs its tests.
let inCI = !["", "0", "false"].contains(Context.environment["CI"] ?? "")
let ownTargetSettings: [SwiftSetting] = inCI ? [.treatAllWarnings(as: .error)] : []

let package = Package(
    name: "visitor-counter",
    products: [
        .executable(name: "visitor-counter", targets: ["visitor-counter"]),
        .executable(name: "visitor-counter-bench", targets: ["visitor-counter-bench"]),
        .library(name: "VisitorCounter", targets: ["VisitorCounter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(name: "CLinuxEvents"),
        .target(
            name: "VisitorCounter",
            dependencies: [
                "CFastCGI",
                "CLibPQ",
                "CLinuxEvents",
                "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: ownTargetSettings
        ),
        .executableTarget(
            name: "visitor-counter",
            dependencies: [
                "VisitorCounter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: ownTargetSettings
        ),
        .executableTarget(
            name: "visitor-counter-bench",
            dependencies: [
                "VisitorCounter",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: ownTargetSettings
        ),
        .testTarget(
            name: "VisitorCounterTests",
            dependencies: [
                "VisitorCounter",
                "visitor-counter",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: ownTargetSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
