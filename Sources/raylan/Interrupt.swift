#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Dispatch

/// Catches Ctrl-C (SIGINT) while a task runs: the first press cancels the task, a second one exits at once.
final class Interrupt: @unchecked Sendable {
    private let source: any DispatchSourceSignal
    private var presses = 0
    private var onInterrupt: (@Sendable () -> Void)?
    private let queue = DispatchQueue(label: "raylan.interrupt")

    /// Installs the handler; `onInterrupt` runs on the first Ctrl-C.
    init(_ onInterrupt: @escaping @Sendable () -> Void) {
        self.onInterrupt = onInterrupt
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: queue)
        source.setEventHandler { [unowned self] in
            presses += 1
            if presses == 1 {
                onInterrupt()
            } else {
                exit(ExitCodes.interrupted)
            }
        }
        source.resume()
    }

    /// Whether Ctrl-C was pressed.
    var wasPressed: Bool { queue.sync { presses > 0 } }

    /// Restores the default Ctrl-C behaviour.
    func remove() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}
