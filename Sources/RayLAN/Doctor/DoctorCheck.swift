/// One of `raylan doctor`'s checks and what it found.
public struct DoctorCheck: Sendable, Hashable, Codable {
    /// PASS, WARN, FAIL, or SKIP (not run because an earlier check failed).
    public enum Status: String, Sendable, Hashable, Codable, Comparable {
        case pass = "PASS"
        case warn = "WARN"
        case fail = "FAIL"
        case skip = "SKIP"

        var rank: Int {
            switch self {
            case .pass: 0
            case .skip: 1
            case .warn: 2
            case .fail: 3
            }
        }

        public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
    }

    /// 1…8, in the order they run.
    public var number: Int
    /// A short name: "address", "ports", "dashboard", "authentication", "versions", "nodes", "gpus", "serve".
    public var name: String
    public var status: Status
    /// One line: what was found.
    public var summary: String
    /// One line: what to do, for WARN and FAIL.
    public var remedy: String?
    /// Further findings, one per line (per port, per node, per GPU).
    public var details: [String]
    /// How long the check took.
    public var seconds: Double

    public init(
        number: Int, name: String, status: Status, summary: String, remedy: String? = nil, details: [String] = [],
        seconds: Double = 0
    ) {
        self.number = number
        self.name = name
        self.status = status
        self.summary = summary
        self.remedy = remedy
        self.details = details
        self.seconds = seconds
    }
}

/// Everything `raylan doctor` found.
public struct DoctorReport: Sendable, Hashable, Codable {
    /// The address checked (after the `ray://` rewrite), or the embedded cluster's.
    public var address: String
    public var checks: [DoctorCheck]
    /// True when no check FAILed.
    public var passed: Bool { !checks.contains { $0.status == .fail } }

    enum CodingKeys: String, CodingKey {
        case address, checks, passed
    }

    public init(address: String, checks: [DoctorCheck]) {
        self.address = address
        self.checks = checks
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        address = try container.decode(String.self, forKey: .address)
        checks = try container.decode([DoctorCheck].self, forKey: .checks)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(checks, forKey: .checks)
        try container.encode(passed, forKey: .passed)
    }
}
