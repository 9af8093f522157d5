/// A job's state as Ray reports it. A struct, so a state that a newer Ray adds still decodes.
public struct JobStatus: StringValue {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending = JobStatus(rawValue: "PENDING")
    public static let running = JobStatus(rawValue: "RUNNING")
    public static let stopped = JobStatus(rawValue: "STOPPED")
    public static let succeeded = JobStatus(rawValue: "SUCCEEDED")
    public static let failed = JobStatus(rawValue: "FAILED")

    /// STOPPED, SUCCEEDED and FAILED are final.
    public var isTerminal: Bool { self == .stopped || self == .succeeded || self == .failed }

}
