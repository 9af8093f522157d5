#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
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
