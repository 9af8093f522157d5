/// One of `raylan doctor`'s checks and what it found.
///
/// Encodes as `number`, `name`, `status`, `summary`, `remedy` (when there is one), `details` and `seconds`.
public struct DoctorCheck: Sendable, Hashable, Codable {
    /// Which check this is. The cases are in the order the checks run; a check's ``number`` is its place.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// 1: the address parses, and is the dashboard rather than the seed's `ray://` form.
        case address
        /// 2: the dashboard, GCS, Ray Client and Serve ports answer a TCP connect.
        case ports
        /// 3: a Ray dashboard answers, and where it listens (loopback only or the LAN).
        case dashboard
        /// 4: the cluster's authentication mode, and whether it accepts this machine.
        case authentication
        /// 5: Ray and Python versions, the same on every node.
        case versions
        /// 6: every node is alive.
        case nodes
        /// 7: GPUs declared, seen by nvidia-smi and usable by torch.
        case gpus
        /// 8: Serve's proxies and applications.
        case serve

        /// 1…8, in the order the checks run.
        public var number: Int { Self.allCases.firstIndex(of: self)! + 1 }
    }

    /// PASS, WARN, FAIL, or SKIP (not run because an earlier check failed).
    public enum Status: String, Sendable, Hashable, Codable, Comparable {
        /// Nothing wrong.
        case pass = "PASS"
        /// Works, with a pitfall or a limit worth knowing.
        case warn = "WARN"
        /// Broken: the remedy says what to fix.
        case fail = "FAIL"
        /// Not run, because an earlier check failed.
        case skip = "SKIP"

        var rank: Int {
            switch self {
            case .pass: 0
            case .skip: 1
            case .warn: 2
            case .fail: 3
            }
        }

        /// Orders by severity: PASS < SKIP < WARN < FAIL.
        public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
    }

    /// Which check this is.
    public var kind: Kind
    /// 1…8, in the order they run (the kind's place).
    public var number: Int { kind.number }
    /// A short name: "address", "ports", "dashboard", "authentication", "versions", "nodes", "gpus", "serve".
    public var name: String { kind.rawValue }
    /// What the check found.
    public var status: Status
    /// One line: what was found.
    public var summary: String
    /// One line: what to do, for WARN and FAIL.
    public var remedy: String?
    /// Further findings, one per line (per port, per node, per GPU).
    public var details: [String]
    /// How long the check took.
    public var seconds: Double

    /// A check's result.
    ///
    /// - Parameters:
    ///   - kind: Which check.
    ///   - status: PASS, WARN, FAIL or SKIP.
    ///   - summary: One line: what was found.
    ///   - remedy: One line: what to do. Default none.
    ///   - details: Further findings, one per line. Default none.
    ///   - seconds: How long the check took. Default 0.
    public init(
        _ kind: Kind, status: Status, summary: String, remedy: String? = nil, details: [String] = [],
        seconds: Double = 0
    ) {
        self.kind = kind
        self.status = status
        self.summary = summary
        self.remedy = remedy
        self.details = details
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case number, name, status, summary, remedy, details, seconds
    }

    /// Decodes a check as ``encode(to:)`` writes it; the kind comes from `name`.
    ///
    /// - Throws: `DecodingError.dataCorrupted` for a name that is not a ``Kind``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let name = try container.decode(String.self, forKey: .name)
        guard let kind = Kind(rawValue: name) else {
            throw DecodingError.dataCorruptedError(
                forKey: .name, in: container, debugDescription: "'\(name)' is not one of raylan doctor's checks.")
        }
        self.kind = kind
        status = try container.decode(Status.self, forKey: .status)
        summary = try container.decode(String.self, forKey: .summary)
        remedy = try container.decodeIfPresent(String.self, forKey: .remedy)
        details = try container.decode([String].self, forKey: .details)
        seconds = try container.decode(Double.self, forKey: .seconds)
    }

    /// Encodes `number` and `name` (from the kind) with the findings.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(number, forKey: .number)
        try container.encode(name, forKey: .name)
        try container.encode(status, forKey: .status)
        try container.encode(summary, forKey: .summary)
        try container.encodeIfPresent(remedy, forKey: .remedy)
        try container.encode(details, forKey: .details)
        try container.encode(seconds, forKey: .seconds)
    }
}

extension DoctorCheck {
    /// Makes one kind's results, so that a check's code says only what it found:
    /// `let check = DoctorCheck.Builder(.versions)`, then `return check(.pass, "…")`.
    struct Builder: Sendable {
        let kind: Kind

        init(_ kind: Kind) { self.kind = kind }

        func callAsFunction(
            _ status: Status, _ summary: String, remedy: String? = nil, details: [String] = []
        ) -> DoctorCheck {
            DoctorCheck(kind, status: status, summary: summary, remedy: remedy, details: details)
        }
    }

    /// This check with its time set to `seconds`.
    func taking(_ seconds: Double) -> DoctorCheck {
        var copy = self
        copy.seconds = seconds
        return copy
    }
}

/// Everything `raylan doctor` found.
public struct DoctorReport: Sendable, Hashable, Codable {
    /// The address checked (after the `ray://` rewrite), or the embedded cluster's.
    public var address: String
    /// The checks in the order they ran: every ``DoctorCheck/Kind`` once when the doctor made the report.
    public var checks: [DoctorCheck]
    /// True when no check FAILed.
    public var passed: Bool { !checks.contains { $0.status == .fail } }

    /// The check of one kind: `report[.versions]`; nil when the report does not hold it.
    public subscript(kind: DoctorCheck.Kind) -> DoctorCheck? {
        checks.first { $0.kind == kind }
    }

    enum CodingKeys: String, CodingKey {
        case address, checks, passed
    }

    /// A report of `checks` on `address`.
    public init(address: String, checks: [DoctorCheck]) {
        self.address = address
        self.checks = checks
    }

    /// Decodes a report as ``encode(to:)`` writes it (`passed` is recomputed from the checks).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        address = try container.decode(String.self, forKey: .address)
        checks = try container.decode([DoctorCheck].self, forKey: .checks)
    }

    /// Encodes the address, the checks and `passed`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(checks, forKey: .checks)
        try container.encode(passed, forKey: .passed)
    }
}
