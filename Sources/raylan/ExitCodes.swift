import ArgumentParser
import RayLAN

/// The exit codes every command documents in `--help`.
enum ExitCodes {
    static let jobFailed: Int32 = 3
    static let jobStopped: Int32 = 4
    static let usage: Int32 = 64
    static let unreachable: Int32 = 69
    static let authentication: Int32 = 77
    static let interrupted: Int32 = 130
    /// `raylan doctor` found a FAIL.
    static let checksFailed: Int32 = 2
    /// `raylan up --join`: this host's Ray or Python differs from the head's.
    static let versionMismatch: Int32 = 78
    /// `raylan up`: RayLAN's node or a pinned port is already in use here.
    static let alreadyRunning: Int32 = 75

    static let summary = """
        0 success; 1 other failure; 3 the job FAILED; 4 the job was STOPPED; \(common)
        """

    /// The codes every command shares, after its own.
    static let common = """
        64 bad input (usage); 69 the cluster cannot be reached (or does not speak TLS); 77 the cluster refused the \
        token or wants one, or its certificate is not the pinned one (or unknown, without --trust-on-first-use); \
        130 interrupted.
        """

    /// The exit code for an error thrown by the library.
    static func code(for error: any Error) -> Int32 {
        if let error = error as? ClusterError {
            if error.code == .unreachable || error.code == .notTLS { return unreachable }
            if [.unauthorized, .forbidden, .certificateMismatch, .certificateUnknown].contains(error.code) {
                return authentication
            }
        }
        if let error = error as? HostNodeError {
            if error.code == .versionMismatch { return versionMismatch }
            if error.code == .alreadyRunning || error.code == .portInUse { return alreadyRunning }
        }
        if let error = error as? any RayLANError, error.isUsageError { return usage }
        return 1
    }
}

/// Runs a command body, turning library errors into one `Error:` line on stderr and the documented exit code.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch is CancellationError {
        throw ExitCode(ExitCodes.interrupted)
    } catch {
        // Messages may quote the cluster's text (Ray's, a remote exception's): no terminal control sequences pass.
        Terminal.error(TerminalText.strippingControls(from: "Error: \(error)"))
        throw ExitCode(ExitCodes.code(for: error))
    }
}
