/// A Ray release version (`2.60.0`), comparable, with the request features it supports.
public struct RayVersion: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    /// The oldest Ray RayLAN supports: the seed's version.
    public static let oldestSupported = RayVersion(2, 45, 0)
    /// The newest Ray RayLAN was tested with.
    public static let newestTested = RayVersion(2, 60, 0)
    /// The supported range as text.
    public static let supportedRange = "Ray \(oldestSupported) to \(newestTested)"

    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `2.60.0`, `2.60`, or `2.61.0.dev0` (anything after the third number is ignored).
    public init?(_ text: String) {
        let numbers = text.split(separator: ".").prefix(3).map { part in Int(part.prefix { $0.isNumber }) }
        guard numbers.count >= 2, let major = numbers[0], let minor = numbers[1] else { return nil }
        self.init(major, minor, numbers.count > 2 ? (numbers[2] ?? 0) : 0)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let version = RayVersion(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a version: \(text)"))
        }
        self = version
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (lhs: RayVersion, rhs: RayVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    /// Whether RayLAN supports this version at all.
    public var isSupported: Bool { self >= Self.oldestSupported }
    /// Whether this version is newer than any RayLAN was tested with (it is used, with a warning).
    public var isNewerThanTested: Bool { self > Self.newestTested }

    /// `entrypoint_memory` in job submissions (Ray 2.8+).
    public var supportsEntrypointMemory: Bool { self >= RayVersion(2, 8) }
    /// `entrypoint_label_selector` in job submissions (Ray 2.60+; older versions answer 400).
    public var supportsEntrypointLabelSelector: Bool { self >= RayVersion(2, 60) }
    /// Token authentication (`RAY_AUTH_MODE=token`, Ray 2.52+).
    public var supportsTokenAuthentication: Bool { self >= RayVersion(2, 52) }
}
