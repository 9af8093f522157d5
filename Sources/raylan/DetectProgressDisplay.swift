import Foundation
import RayLAN

/// Shows a detect run's events on stderr: a bar with images/s and ETA on a terminal, a line per 10%
/// otherwise, and the deployment's steps.
final class DetectProgressDisplay: @unchecked Sendable {
    private let lock = NSLock()
    private var lastDecile = 0
    private var drewBar = false
    private var saidSkipped = false

    /// An image run's events (streamed, or read on the cluster): the deploy's steps, then the bar.
    func show(_ event: DetectionEvent) {
        switch event {
        case .deploying(let deployment): DeploymentOptions.announce(deployment)
        case .preparing(let line): Terminal.error("  \(line)")
        case .checking: Terminal.error("Looking the paths up on every node…")
        case .started(let progress): lock.withLock { sayResuming(progress) }
        case .progress(let progress): step(progress)
        case .downloaded(let url): Terminal.error("Downloaded \(url.path).")
        case .wrote(let url): Terminal.error("Wrote \(url.path).")
        default: break
        }
    }

    /// Says once that a resumed run skips inputs, if it does.
    private func sayResuming(_ progress: DetectionRun.Progress) {
        if progress.skipped > 0 && !saidSkipped {
            saidSkipped = true
            Terminal.error("Resuming: \(progress.skipped) inputs already answered, \(progress.total) to go.")
        }
    }

    /// The bar (a terminal) or a line per 10% (otherwise), a resumed run's skipped inputs said once first.
    func step(_ progress: DetectionRun.Progress) {
        lock.lock()
        defer { lock.unlock() }
        sayResuming(progress)
        let (done, total, failed, rate) = (progress.done, progress.total, progress.failed, progress.imagesPerSecond)
        if Terminal.stderrIsTerminal {
            let width = 30
            let filled = total > 0 ? width * min(done, total) / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = String(
                format: "\r%@ %d/%d  %.1f img/s  ETA %.0f s  %d failed ", bar, done, total, rate,
                progress.secondsLeft ?? 0, failed)
            FileHandle.standardError.write(Data(line.utf8))
            drewBar = true
        } else {
            let decile = total > 0 ? 10 * done / total : 10
            if decile > lastDecile || done == total {
                lastDecile = decile
                Terminal.error(String(format: "%d/%d images (%.1f img/s, %d failed)", done, total, rate, failed))
            }
        }
    }

    /// Ends the bar's line.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
