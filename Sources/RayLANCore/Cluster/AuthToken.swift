#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation

/// A Ray authentication token (Ray 2.52+ token mode) and where it came from.
public struct AuthToken: Sendable, Hashable, CustomStringConvertible {
    /// The secret.
    public var value: String
    /// Where it came from, for messages and to read it again (a file, an environment variable).
    public var source: Source

    /// A token and where it came from.
    ///
    /// - Parameters:
    ///   - value: the secret.
    ///   - source: where it came from; ``Source/inline(_:)`` for a token made in code.
    public init(value: String, source: Source) {
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
        if let tokenFile { return try read(tokenFile, source: .file(tokenFile, via: "--token-file")) }
        if let value = environment["RAY_AUTH_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines),
            !value.isEmpty
        {
            return AuthToken(value: value, source: .environment("RAY_AUTH_TOKEN"))
        }
        if let path = environment["RAY_AUTH_TOKEN_PATH"], !path.isEmpty {
            return try read(path, source: .file(path, via: "RAY_AUTH_TOKEN_PATH"))
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let defaultPath = home + "/.ray/auth_token"
        if FileManager.default.fileExists(atPath: defaultPath) {
            return try read(defaultPath, source: .file(defaultPath))
        }
        return nil
    }

    /// Reads the token again from where it came from: its file, or its environment variable.
    ///
    /// - Parameters:
    ///   - source: where the token came from, e.g. as a ``LocalRay`` record keeps it.
    ///   - environment: the environment to read a variable from. Default: this process's.
    /// - Returns: the token; nil for an ``Source/inline(_:)`` token (it was never stored anywhere) and for
    ///   an environment variable that is no longer set.
    /// - Throws: ``ClusterError`` (`tokenUnreadable`) when the file cannot be read or is empty.
    public static func load(
        from source: Source, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AuthToken? {
        if let path = source.path { return try read(path, source: source) }
        guard let variable = source.environmentVariable,
            let value = environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty
        else { return nil }
        return AuthToken(value: value, source: source)
    }

    /// A new random token: 32 bytes from the system's secure generator, as 64 hex digits.
    ///
    /// - Parameter source: where the token will be kept, for messages.
    public static func generate(source: Source) -> AuthToken {
        AuthToken(value: randomHex(), source: source)
    }

    /// Reads the token file at `path`, or, when there is none, makes one with a new random token.
    ///
    /// The file is created with mode 0600 in one step (`open` with `O_CREAT | O_EXCL`), so it is never
    /// readable by others, whatever the umask; an existing file is read, never overwritten or re-moded.
    ///
    /// - Parameters:
    ///   - path: the token file; its folder is made when missing.
    ///   - via: how the path was given, for messages (e.g. `--token-file`). Default nil.
    /// - Returns: the token, with the file as its source.
    /// - Throws: ``ClusterError``: `tokenUnwritable` when the file cannot be made, `tokenUnreadable` when
    ///   an existing one cannot be read or is empty.
    public static func loadOrCreate(at path: String, via: String? = nil) throws -> AuthToken {
        let source = Source.file(path, via: via)
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        let token = generate(source: source)
        do {
            try PrivateFile.write(Array((token.value + "\n").utf8), to: path, exclusive: true)
        } catch {
            if error.alreadyExists { return try read(path, source: source) }
            throw unwritable(path, reason: error.reason)
        }
        return token
    }

    private static func unwritable(_ path: String, reason: String) -> ClusterError {
        ClusterError(
            .tokenUnwritable, "Cannot write the token file '\(path)': \(reason)",
            remedy: "Check the permissions of its folder, or pass --token-file with another path.")
    }

    private static func read(_ path: String, source: Source) throws -> AuthToken {
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
                remedy:
                    "Copy the token from the head node ('ray get-auth-token' prints it), or remove the file to have "
                    + "a new token made.")
        }
        return AuthToken(value: value, source: source)
    }
}

extension AuthToken {
    /// Where a token came from, without the secret: enough to say so in messages and to read a file or an
    /// environment variable again. `Codable`, so a record (`local-cluster.json`) can keep it.
    public struct Source: Sendable, Hashable, Codable, CustomStringConvertible {
        private enum Kind: String, Sendable, Hashable, Codable {
            case file, environment, inline
        }

        private let kind: Kind
        /// The path, the variable's name, or the description.
        private let name: String
        /// How a file was given (`--token-file`, `RAY_AUTH_TOKEN_PATH`).
        private let via: String?

        private init(_ kind: Kind, _ name: String, via: String? = nil) {
            self.kind = kind
            self.name = name
            self.via = via
        }

        /// A token file.
        ///
        /// - Parameters:
        ///   - path: the file.
        ///   - via: how it was given, for messages (`--token-file`, `RAY_AUTH_TOKEN_PATH`). Default nil.
        public static func file(_ path: String, via: String? = nil) -> Source { Source(.file, path, via: via) }

        /// An environment variable that holds the token itself, e.g. `RAY_AUTH_TOKEN`.
        public static func environment(_ variable: String) -> Source { Source(.environment, variable) }

        /// A token handed over in code; `description` says whose it is. It cannot be read again.
        public static func inline(_ description: String) -> Source { Source(.inline, description) }

        /// The token file, for a token kept in one.
        public var path: String? { kind == .file ? name : nil }
        /// The environment variable, for a token read from one.
        public var environmentVariable: String? { kind == .environment ? name : nil }

        /// `--token-file /path`, `RAY_AUTH_TOKEN`, or an inline token's description.
        public var description: String { via.map { "\($0) \(name)" } ?? name }
    }
}
