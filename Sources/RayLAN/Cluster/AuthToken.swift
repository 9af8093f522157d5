import Foundation

/// A Ray authentication token (Ray 2.52+ token mode) and where it came from.
public struct AuthToken: Sendable, Hashable, CustomStringConvertible {
    /// The secret.
    public var value: String
    /// Where it was read from, for messages ("--token-file /x", "RAY_AUTH_TOKEN", "~/.ray/auth_token").
    public var source: String

    public init(value: String, source: String) {
        self.value = value
        self.source = source
    }

    /// Never prints the secret.
    public var description: String { "token from \(source)" }

    /// Finds the token to send, by precedence: `tokenFile` > `RAY_AUTH_TOKEN` > `RAY_AUTH_TOKEN_PATH` >
    /// `~/.ray/auth_token`. Returns nil when there is none (a cluster without authentication).
    ///
    /// - Throws: ``ClusterError`` (`tokenUnreadable`) when a named file cannot be read or is empty.
    public static func resolve(
        tokenFile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AuthToken? {
        if let tokenFile { return try read(tokenFile, source: "--token-file \(tokenFile)") }
        if let value = environment["RAY_AUTH_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines),
            !value.isEmpty
        {
            return AuthToken(value: value, source: "RAY_AUTH_TOKEN")
        }
        if let path = environment["RAY_AUTH_TOKEN_PATH"], !path.isEmpty {
            return try read(path, source: "RAY_AUTH_TOKEN_PATH \(path)")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let defaultPath = home + "/.ray/auth_token"
        if FileManager.default.fileExists(atPath: defaultPath) {
            return try read(defaultPath, source: "~/.ray/auth_token")
        }
        return nil
    }

    private static func read(_ path: String, source: String) throws -> AuthToken {
        guard let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)
        else {
            throw ClusterError(
                .tokenUnreadable, "Cannot read the token file '\(path)'",
                remedy: "Check the path; on the head node 'ray get-auth-token' prints the token.")
        }
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else {
            throw ClusterError(
                .tokenUnreadable, "The token file '\(path)' is empty",
                remedy: "Copy the token from the head node ('ray get-auth-token' prints it).")
        }
        return AuthToken(value: value, source: source)
    }
}
