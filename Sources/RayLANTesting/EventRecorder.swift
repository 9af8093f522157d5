import Foundation

/// What a run hands to its event callback, kept in order for assertions after the run (the callback may be
/// called from any task).
public final class EventRecorder<Event: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Event] = []

    public init() {}

    public func record(_ event: Event) { lock.withLock { stored.append(event) } }

    /// Everything recorded so far.
    public var events: [Event] { lock.withLock { stored } }
}
