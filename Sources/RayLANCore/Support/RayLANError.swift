import Foundation

/// What every RayLAN error offers besides its description: whether the caller's input was at fault.
///
/// The CLI maps ``isUsageError`` to exit code 64 (EX_USAGE).
public protocol RayLANError: Error, CustomStringConvertible, LocalizedError {
    /// True when the input (an address, a path, a flag's value) was wrong, not the cluster.
    var isUsageError: Bool { get }
}

extension RayLANError {
    public var errorDescription: String? { description }
}

/// One sentence saying what failed, then the remedy.
package func sentence(_ message: String, remedy: String?) -> String {
    guard let remedy, !remedy.isEmpty else { return message }
    let end = message.hasSuffix(".") || message.hasSuffix("?") ? "" : "."
    return "\(message)\(end) \(remedy)"
}
