// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "FeeRecon",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "feerecon", targets: ["feerecon"]),
        .executable(name: "feerecon-bench", targets: ["FeeReconBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // MARK: System libraries and C shims
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CShims",
            dependencies: ["CCurl"]
        ),

        // MARK: Infrastructure libraries
        .target(
            name: "Cryptography",
            dependencies: ["CLibCrypto"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Signing",
            dependencies: ["Cryptography"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CurlHTTP",
            dependencies: [
                "CCurl",
                "CShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Domain and adapters
        .target(
            name: "FeeReconCore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PortalGateway",
            dependencies: [
                "FeeReconCore",
                "Signing",
                "CurlHTTP",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FeeReconStore",
            dependencies: [
                "FeeReconCore",
                "Postgres",
                "Cryptography",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FeeReconServer",
            dependencies: [
                "FeeReconCore",
                "FeeReconStore",
                "PortalGateway",
                "Signing",
                "Cryptography",
                "Postgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Templates")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatewaySandbox",
            dependencies: [
                "Signing",
                "Cryptography",
                "CurlHTTP",
                "Postgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "feerecon",
            dependencies: [
                "FeeReconServer",
                "FeeReconStore",
                "GatewaySandbox",
                "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FeeReconBench",
            dependencies: [
                "Postgres",
                "Signing",
                "CurlHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/FeeReconBench",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .target(
            name: "TestSupport",
            dependencies: [
                "Postgres",
                "FeeReconStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FeeReconCoreTests",
            dependencies: ["FeeReconCore", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FeeReconServerTests",
            dependencies: [
                "FeeReconServer", "FeeReconStore", "FeeReconCore", "PortalGateway", "Signing", "CurlHTTP", "Postgres", "TestSupport",
                "GatewaySandbox",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PortalGatewayTests",
            dependencies: [
                "PortalGateway", "FeeReconCore", "Signing", "CurlHTTP", "Cryptography", "GatewaySandbox", "Postgres", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CryptographyTests",
            dependencies: ["Cryptography"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SigningTests",
            dependencies: ["Signing", "Cryptography"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CurlHTTPTests",
            dependencies: [
                "CurlHTTP",
                "Cryptography",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresTests",
            dependencies: ["Postgres", "TestSupport", "Cryptography"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewaySandboxTests",
            dependencies: [
                "GatewaySandbox",
                "Signing",
                "CurlHTTP",
                "Postgres",
                "Cryptography",
                "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FeeReconStoreTests",
            dependencies: ["FeeReconStore", "FeeReconCore", "Postgres", "Cryptography", "TestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
