import Foundation

/// A job's driver log, line by line: an `AsyncSequence` of `String` (without newlines).
///
/// Single-pass. It reads `GET /api/jobs/{id}/logs` only when asked for more lines, so memory stays bounded
/// by one log read; lines longer than ``maxLineLength`` are split. While following, it ends after the job
/// reaches a terminal state and its last line has been delivered.
///
/// The lines are as the job wrote them, escape sequences included: print them on a terminal through
/// ``TerminalText/strippingControls(from:)``, so that a job cannot rewrite the terminal or set its title.
public struct JobLogLines: AsyncSequence, Sendable {
    public typealias Element = String

    /// Longer lines are delivered in pieces of this many bytes.
    public static let maxLineLength = 64 * 1024

    let cluster: RayCluster
    let id: String
    let follow: Bool
    let pollInterval: Duration

    public func makeAsyncIterator() -> Iterator {
        Iterator(source: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let source: JobLogLines
        var offset = 0
        var partial = Data()
        var ready: [String] = []
        var finished = false

        public mutating func next() async throws -> String? {
            while ready.isEmpty {
                if finished { return nil }
                try await poll()
            }
            return ready.removeFirst()
        }

        private mutating func poll() async throws {
            let terminal = source.follow ? try await source.cluster.job(source.id).status.isTerminal : true
            let log = Data(try await source.cluster.logs(of: source.id).utf8)
            if log.count < offset { offset = 0 }  // the log was replaced: start again
            partial.append(log[log.startIndex.advanced(by: offset)...])
            offset = log.count
            while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                append(partial[partial.startIndex..<newline])
                partial = Data(partial[partial.index(after: newline)...])
            }
            while partial.count > JobLogLines.maxLineLength {
                let cut = partial.startIndex.advanced(by: JobLogLines.maxLineLength)
                append(partial[..<cut])
                partial = Data(partial[cut...])
            }
            if terminal {
                if !partial.isEmpty { append(partial) }
                partial = Data()
                finished = true
            } else if ready.isEmpty {
                try await Task.sleep(for: source.pollInterval)
            }
        }

        private mutating func append(_ bytes: Data) {
            var line = String(decoding: bytes, as: UTF8.self)
            if line.hasSuffix("\r") { line.removeLast() }
            ready.append(line)
        }
    }
}
