/// A value named by a string — a job's status, a node's state, a Serve status, an error code — as an open
/// struct rather than an enum, so that a value a newer Ray (or service) adds still decodes; compare with the
/// static members (`status == .running`).
///
/// Conformers declare `rawValue`, `init(rawValue:)` and their known values; coding as the bare string comes
/// from the standard library's `RawRepresentable` coding, and the description is the string.
public protocol StringValue: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible
where RawValue == String {}

extension StringValue {
    public var description: String { rawValue }
}
