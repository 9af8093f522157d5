#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import ArgumentParser
import Dispatch

/// Catches Ctrl-C (SIGINT) while a task runs: the first press runs the armed action (cancels the task), a
/// second one exits at once.
///
/// One handler for the whole process (libdispatch installs its SIGINT handler once per signal: a second
/// source after the first was cancelled and SIGINT reset would never fire, and Ctrl-C would be ignored).
/// Each phase arms it with its own action; `disarm()` leaves Ctrl-C caught but does nothing on a press.
final class Interrupt: @unchecked Sendable {
    /// The process's one handler.
    static let shared = Interrupt()

    private let queue = DispatchQueue(label: "raylan.interrupt")
    private var source: (any DispatchSourceSignal)?
    private var presses = 0
    private var action: (@Sendable () -> Void)?

    private init() {}

    /// Runs `action` on the next Ctrl-C (a second one exits); counts presses from zero again.
    func arm(_ action: @escaping @Sendable () -> Void) {
        queue.sync {
            presses = 0
            self.action = action
            guard source == nil else { return }
            signal(SIGINT, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: queue)
            source.setEventHandler { [unowned self] in
                presses += 1
                if presses == 1 { self.action?() } else { exit(ExitCodes.interrupted) }
            }
            source.resume()
            self.source = source
        }
    }

    /// No action on Ctrl-C until armed again (a press then exits on the second one as usual).
    func disarm() {
        queue.sync { action = nil }
    }

    /// Whether Ctrl-C was pressed since the last `arm`.
    var wasPressed: Bool { queue.sync { presses > 0 } }
}

extension Interrupt {
    /// Runs `body` as a task that the next Ctrl-C cancels: its result, and whether Ctrl-C was pressed.
    func run<Value: Sendable>(
        _ body: @escaping @Sendable () async throws -> Value
    ) async -> (result: Result<Value, any Error>, pressed: Bool) {
        let work = Task { try await body() }
        arm { work.cancel() }
        let result = await work.result
        disarm()
        return (result, wasPressed)
    }

    /// Returns at the next Ctrl-C (a second one exits at once).
    func untilPressed() async {
        _ = await run { try await Task.sleep(for: .seconds(365 * 24 * 3600)) }
    }

    /// Runs `body` as a task that the next Ctrl-C cancels; after a press, says `interrupted` on stderr and exits
    /// 130, else returns what `body` returned (or throws what it threw).
    func cancelling<Value: Sendable>(
        saying interrupted: String, _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let (result, pressed) = await run(body)
        if pressed {
            Terminal.error("\n" + interrupted)
            throw ExitCode(ExitCodes.interrupted)
        }
        return try result.get()
    }
}
