// swift-tools-version:6.1
import PackageDescription

// MemberImportVisibility is left off: on Linux the members of C structs such as `struct stat` belong to
// whichever clang module first included the header (Glibc, CDispatch or CoreFoundation), which changed
// from build to build, so a file's imports could not satisfy it reliably.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "RayLAN",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "RayLAN", targets: ["RayLAN"]),
        .library(name: "RayLANDoctor", targets: ["RayLANDoctor"]),
        .library(name: "RayLANBench", targets: ["RayLANBench"]),
        .library(name: "RayLANView", targets: ["RayLANView"]),
        .library(name: "RayLANTesting", targets: ["RayLANTesting"]),
        .executable(name: "raylan", targets: ["raylan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // TLS on the LAN: the head's TLS front, its self-signed certificate, and the client's pinning.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        // Without its default trait SubprocessFoundation (Data inputs and outputs), which RayLAN does not use.
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2", traits: []),
        // The local web view (raylan view, raylan detect --view). Without its default traits (swift-configuration
        // support and full Foundation), which the view does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // The module a user imports: the targets below, re-exported.
        .target(
            name: "RayLAN",
            dependencies: ["RayLANCore", "RayLANGateway", "RayLANDetection", "RayLANLocal"],
            swiftSettings: swiftSettings
        ),
        // Clusters and their HTTP interfaces (dashboard: Jobs, packages, state; Serve), TLS, the applications' deploys.
        .target(
            name: "RayLANCore",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // Remote functions, actors and objects through the gateway application.
        .target(
            name: "RayLANGateway",
            dependencies: [
                "RayLANCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Detection: streamed images (the client of the detection service) and work on the cluster (videos, live
        // streams and datasets, followed through the gateway's session actors).
        .target(
            name: "RayLANDetection",
            dependencies: [
                "RayLANCore", "RayLANGateway",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // Client-side downscale of JPEGs (DownscaledImage); macOS uses ImageIO instead.
                .target(name: "CTurboJPEG", condition: .when(platforms: [.linux])),
            ],
            swiftSettings: swiftSettings
        ),
        // Ray processes on this machine: the embedded cluster, process groups, a Ray node on a LAN host.
        .target(
            name: "RayLANLocal",
            dependencies: [
                "RayLANCore",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // Short commands run for their output (ProcessGroup.capture).
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            swiftSettings: swiftSettings
        ),
        // `raylan doctor`'s checks of a cluster and this machine. Nothing in RayLAN depends on them.
        .target(
            name: "RayLANDoctor",
            dependencies: [
                "RayLAN",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // `raylan bench`: RayLAN measured against its references. Nothing in RayLAN depends on it.
        .target(
            name: "RayLANBench",
            dependencies: [
                "RayLAN",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // libjpeg-turbo's TurboJPEG API (DCT-domain scaling), for DownscaledImage on Linux.
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]
        ),
        // The local web view of a run's detections: a page on loopback, behind a token, that only reads.
        .target(
            name: "RayLANView",
            dependencies: [
                "RayLAN",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Assets")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RayLANTesting",
            dependencies: ["RayLAN"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "raylan",
            dependencies: [
                "RayLAN", "RayLANView", "RayLANDoctor", "RayLANBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "detect-example",
            dependencies: ["RayLAN"],
            path: "examples/detect",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "gateway-example",
            dependencies: ["RayLAN"],
            path: "examples/gateway",
            exclude: ["python"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RayLANTests",
            dependencies: [
                "RayLAN", "RayLANCore", "RayLANGateway", "RayLANDetection", "RayLANLocal", "RayLANView",
                "RayLANTesting", "RayLANDoctor", "RayLANBench",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
