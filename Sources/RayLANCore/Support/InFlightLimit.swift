/// At most `limit` operations at a time; the others wait their turn, first come first served.
///
/// A waiting operation ends with `CancellationError` when its task is cancelled, and never takes a turn.
final class InFlightLimit: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var free: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state: LockedBox<State>

    init(_ limit: Int) {
        precondition(limit > 0, "an in-flight limit must be at least 1")
        state = LockedBox(State(free: limit))
    }

    /// Runs `body` once a turn is free, and frees the turn when it ends.
    func withTurn<Result>(_ body: () async throws -> Result) async throws -> Result {
        try await takeTurn()
        defer { freeTurn() }
        return try await body()
    }

    /// The operations waiting for a turn now.
    var waiting: Int { state.withLock { $0.waiters.count } }

    private func takeTurn() async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Checked under the lock that the cancellation handler takes too: either the handler finds this
                // waiter, or the task was cancelled before it would have been queued.
                let queued: Bool? = state.withLock { state in
                    if Task.isCancelled { return nil }
                    if state.free > 0 {
                        state.free -= 1
                        return false
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return true
                }
                switch queued {
                case nil: continuation.resume(throwing: CancellationError())
                case false?: continuation.resume()
                case true?: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func freeTurn() {
        let next = state.withLock { state -> Waiter? in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            // The turn passes straight to the first waiter.
            return state.waiters.removeFirst()
        }
        next?.continuation.resume()
    }
}
