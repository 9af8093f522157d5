#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Crypto
import Foundation
import NIOCore
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
@testable import RayLANDoctor

/// The head's TLS identity and front, and the client's pin, on loopback. The front relays to a recording server
/// (``FakeHTTPServer``, a stand-in for Ray's dashboard, which is not what these tests are about): what reaches it
/// is what passed the TLS front. The same pieces with a real head are tested on the simulated LAN.
@Suite("TLS: the head's identity, its front, and the client's pin")
struct TLSTests {
    @Test("A fingerprint is sha256: and 64 hex digits; other forms are usage errors")
    func fingerprints() throws {
        let hex = (0..<32).map { String(format: "%02x", $0 * 7 % 256) }.joined()
        let pin = try CertificatePin(parsing: "sha256:" + hex)
        #expect(pin.description == "sha256:" + hex)
        // As other tools print them: upper case, colons between bytes, no prefix.
        let colons = stride(from: 0, to: 64, by: 2).map { String(hex.uppercased().dropFirst($0).prefix(2)) }
        #expect(try CertificatePin(parsing: "SHA256:" + colons.joined(separator: ":")) == pin)
        #expect(try CertificatePin(parsing: hex) == pin)
        #expect(try JSONDecoder().decode(CertificatePin.self, from: JSONEncoder().encode(pin)) == pin)
        for bad in [
            "", "sha256:", "sha256:abc", "sha1:" + hex, "sha256:" + hex + "00", "sha256:" + hex.dropLast() + "g",
        ] {
            let error = try #require(throws: ClusterError.self, "\(bad)") { try CertificatePin(parsing: bad) }
            #expect(error.code == .invalidFingerprint && error.isUsageError)
        }
    }

    @Test("The head's identity is made once, mode 0600, and its pin is the certificate's SHA-256")
    func identity() throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-tls")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tls = folder.appendingPathComponent("tls").path
        let first = try HeadIdentity.loadOrCreate(in: tls, addresses: ["10.0.0.2"])
        for file in [first.certificateFile, first.keyFile] {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(file): \(String(mode, radix: 8))")
        }
        let again = try HeadIdentity.loadOrCreate(in: tls, addresses: ["10.0.0.3"])
        #expect(again.pin == first.pin)
        // The pin, computed here from the PEM file's bytes.
        let pem = try String(contentsOfFile: first.certificateFile, encoding: .utf8)
        let base64 = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let der = try #require(Data(base64Encoded: base64))
        #expect(first.pin.digest == Array(SHA256.hash(data: der)))
        // A key that does not load is named, with what to do.
        try Data("not a key".utf8).write(to: URL(fileURLWithPath: first.keyFile))
        let error = try #require(throws: TLSError.self) { try HeadIdentity.loadOrCreate(in: tls) }
        #expect(error.code == .identityUnusable)
        #expect(error.remedy?.contains("Remove") == true, "\(error)")
    }

    @Test("Pinned: a request and its answer stream through the front, and the pin is recorded")
    func pinned() async throws {
        try await Self.withIdentities(1) { identities, folder in
            let answer = FakeHTTPServer.Answer(status: 200, body: "head", streamedBytes: 6 << 20)
            try await FakeHTTPServer.with([answer]) { server in
                try await Self.withFront(identities[0], upstream: server.port) { port in
                    let knownHosts = KnownHosts(file: folder.appendingPathComponent("known_hosts").path)
                    let address = ClusterAddress(host: "127.0.0.1", port: port, pin: identities[0].pin)
                    #expect(address.scheme == "https")
                    try await RayCluster.withConnection(
                        to: address, configuration: .init(trust: .init(knownHosts: knownHosts))
                    ) { cluster in
                        let upload = Data(repeating: 0x61, count: 3 << 20)
                        let response = try await cluster.send(.POST, "/upload", body: upload, contentType: "text/plain")
                        #expect(response.status == 200)
                        #expect(response.body.count == 4 + (6 << 20))
                        #expect(await cluster.pin(for: address) == identities[0].pin)
                    }
                    #expect(server.requests.map(\.path) == ["/upload"])
                    #expect(server.requests.first?.body.count == 3 << 20)
                    #expect(knownHosts.pin(for: address) == identities[0].pin)
                }
            }
        }
    }

    @Test("A wrong pin is refused after the handshake, before any request; the CLI exits 77")
    func wrongPin() async throws {
        try await Self.withIdentities(2) { identities, folder in
            try await FakeHTTPServer.with([.init(status: 200, body: "{}")]) { server in
                try await Self.withFront(identities[0], upstream: server.port) { port in
                    let knownHosts = KnownHosts(file: folder.appendingPathComponent("known_hosts").path)
                    let wrong = ClusterAddress(host: "127.0.0.1", port: port, pin: identities[1].pin)
                    let token = AuthToken(value: "secret-token-\(UUID().uuidString)", source: .inline("test"))
                    let error = try await #require(throws: ClusterError.self) {
                        try await RayCluster.withConnection(
                            to: wrong, configuration: .init(token: token, trust: .init(knownHosts: knownHosts))
                        ) { try await $0.send(.GET, "/api/version") }
                    }
                    #expect(error.code == .certificateMismatch)
                    #expect(error.message.contains(identities[0].pin.description), "\(error)")
                    #expect(server.requests.isEmpty, "\(server.requests.map(\.path))")
                    #expect(knownHosts.entries().isEmpty)

                    // doctor names the mismatch in its check of the dashboard, and sends nothing either.
                    let report = await Doctor(
                        .init(
                            address: "127.0.0.1:\(port)", pin: identities[1].pin, trust: .init(knownHosts: knownHosts))
                    ).run()
                    let dashboard = try #require(report[.dashboard])
                    #expect(
                        dashboard.status == .fail && dashboard.summary.contains("not the pinned one"), "\(dashboard)")
                    #expect(server.requests.isEmpty, "\(server.requests.map(\.path))")

                    let home = folder.appendingPathComponent("home").path
                    let cli = try await CommandRunner.raylan(
                        ["status", "--address", "127.0.0.1:\(port)", "--fingerprint", identities[1].pin.description],
                        environment: ["RAYLAN_HOME": home])
                    #expect(cli.status == 77, "\(cli)")
                    #expect(cli.stderr.split(separator: "\n").count == 1, "\(cli.stderr)")
                    #expect(cli.stderr.contains("not the pinned one"), "\(cli.stderr)")
                    #expect(server.requests.isEmpty, "\(server.requests.map(\.path))")

                    // The same command with the right pin reaches the recording server.
                    let right = try await CommandRunner.raylan(
                        ["status", "--address", "127.0.0.1:\(port)", "--fingerprint", identities[0].pin.description],
                        environment: ["RAYLAN_HOME": home])
                    #expect(!server.requests.isEmpty, "\(right)")
                }
            }
        }
    }

    @Test("Unknown: refused unless trusted on first use, then recorded; a changed certificate is refused")
    func firstUse() async throws {
        try await Self.withIdentities(2) { identities, folder in
            try await FakeHTTPServer.with([.init(status: 200, body: "{}")]) { server in
                // The second front must bind the first one's port again. Another program may take a free port in
                // between (seen once in a full run); then the whole check runs again on another port, so that it
                // never passes without both fronts on one port.
                for attempt in 1...5 {
                    let knownHosts = KnownHosts(file: folder.appendingPathComponent("known_hosts-\(attempt)").path)
                    let answeredBefore = server.requests.count
                    // Below the system's range for outgoing connections, so that no connection's own end takes the
                    // port between the two fronts.
                    var fixed = Int.random(in: 20_000..<30_000)
                    while !FreePort.isFree(fixed, on: "127.0.0.1") { fixed = Int.random(in: 20_000..<30_000) }
                    let port = try await Self.withFront(identities[0], upstream: server.port, port: fixed) { port in
                        let address = try ClusterAddress(parsing: "https://127.0.0.1:\(port)")
                        let unknown = try await #require(throws: ClusterError.self) {
                            try await Self.get(address, trust: .init(knownHosts: knownHosts))
                        }
                        #expect(unknown.code == .certificateUnknown)
                        #expect(unknown.message.contains(identities[0].pin.description), "\(unknown)")
                        #expect(unknown.remedy?.contains("--trust-on-first-use") == true)
                        #expect(server.requests.count == answeredBefore)
                        #expect(
                            try await Self.get(address, trust: .init(onFirstUse: true, knownHosts: knownHosts)) == 200)
                        #expect(knownHosts.pin(for: address) == identities[0].pin)
                        // Recorded: no flag needed any more.
                        #expect(try await Self.get(address, trust: .init(knownHosts: knownHosts)) == 200)
                        return port
                    }
                    let answered = server.requests.count
                    #expect(answered == answeredBefore + 2)
                    // Another certificate on the same host and port: refused, trust on first use or not.
                    do {
                        try await Self.withFront(identities[1], upstream: server.port, port: port, bindAttempts: 30) {
                            port in
                            let address = try ClusterAddress(parsing: "https://127.0.0.1:\(port)")
                            let changed = try await #require(throws: ClusterError.self) {
                                try await Self.get(address, trust: .init(onFirstUse: true, knownHosts: knownHosts))
                            }
                            #expect(changed.code == .certificateMismatch)
                            #expect(changed.message.contains(knownHosts.file), "\(changed)")
                            #expect(server.requests.count == answered)
                            // The new fingerprint, given, is accepted and replaces the record.
                            #expect(
                                try await Self.get(
                                    address.pinned(identities[1].pin), trust: .init(knownHosts: knownHosts)) == 200)
                            #expect(knownHosts.pin(for: address) == identities[1].pin)
                        }
                        return
                    } catch let error as IOError where error.errnoCode == EADDRINUSE && attempt < 5 {
                        let holder = try? await CommandRunner.run("/usr/bin/env", ["ss", "-tanpH", "sport = :\(port)"])
                        print("TLS first use: port \(port) taken between the fronts: \(holder?.stdout ?? "?")")
                    }
                }
            }
        }
    }

    @Test("Plain HTTP to the front gets no answer and reaches nothing behind it")
    func plainRefused() async throws {
        try await Self.withIdentities(1) { identities, _ in
            try await FakeHTTPServer.with([.init(status: 200, body: "{}")]) { server in
                try await Self.withFront(identities[0], upstream: server.port) { port in
                    let plain = ClusterAddress(scheme: "http", host: "127.0.0.1", port: port)
                    let error = try await #require(throws: ClusterError.self) {
                        try await Self.get(plain, trust: .init(knownHosts: nil))
                    }
                    #expect(error.code == .unreachable, "\(error)")
                    #expect(server.requests.isEmpty)
                }
            }
        }
    }

    @Test("The front closes a connection that does not finish its handshake, and holds at most its bound")
    func frontLimits() async throws {
        try await Self.withIdentities(1) { identities, _ in
            try await FakeHTTPServer.with([.init(status: 200, body: "{}")]) { server in
                let pinned = { (port: Int) in ClusterAddress(host: "127.0.0.1", port: port, pin: identities[0].pin) }
                try await Self.withFront(identities[0], upstream: server.port, handshakeTimeout: .milliseconds(300)) {
                    port in
                    let silent = try Self.openConnection(port)
                    defer { close(silent) }
                    #expect(Self.closedByPeer(silent, within: .seconds(20)), "a silent connection stayed open")
                    #expect(try await Self.get(pinned(port), trust: .init(knownHosts: nil)) == 200)
                }
                try await Self.withFront(identities[0], upstream: server.port, maxConnections: 1) { port in
                    let held = try Self.openConnection(port)
                    let before = server.requests.count
                    let refused = try await #require(throws: ClusterError.self) {
                        try await Self.get(pinned(port), trust: .init(knownHosts: nil))
                    }
                    #expect(refused.code == .unreachable, "\(refused)")
                    #expect(server.requests.count == before)
                    close(held)
                    let served = await eventually(timeout: .seconds(20), every: .milliseconds(100)) {
                        (try? await Self.get(pinned(port), trust: .init(knownHosts: nil))) == 200
                    }
                    #expect(served, "the front took no connection after the held one closed")
                }
            }
        }
    }

    @Test("--fingerprint without --address, or with http://, is a usage error")
    func fingerprintUsage() async throws {
        let pin = "sha256:" + String(repeating: "ab", count: 32)
        for arguments in [
            ["status", "--fingerprint", pin], ["status", "--address", "http://10.0.0.2", "--fingerprint", pin],
            ["status", "--address", "10.0.0.2", "--fingerprint", "sha256:12"],
        ] {
            let result = try await CommandRunner.raylan(arguments)
            #expect(result.status == 64, "\(arguments): \(result)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }

    // MARK: Helpers

    /// GET `/api/version` at `address` with a connection of its own; the answer's status.
    static func get(_ address: ClusterAddress, trust: RayCluster.Configuration.Trust) async throws -> Int {
        try await RayCluster.withConnection(to: address, configuration: .init(trust: trust)) { cluster in
            try await cluster.send(.GET, "/api/version").status
        }
    }

    /// `count` new identities in a temporary folder, removed afterwards.
    static func withIdentities<R: Sendable>(
        _ count: Int, _ body: ([HeadIdentity], URL) async throws -> R
    ) async throws -> R {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-tls")
        defer { try? FileManager.default.removeItem(at: folder) }
        let identities = try (0..<count).map {
            try HeadIdentity.loadOrCreate(in: folder.appendingPathComponent("identity-\($0)").path)
        }
        return try await body(identities, folder)
    }

    /// Runs a TLS front on 127.0.0.1 (`port`, or a free one) that relays to `upstream`, runs `body` with its port,
    /// and stops it. A given port that the last front still holds while its listener closes is tried again.
    /// Runs `body` with a TLS front for `identity` on `port` (0: a free one) relaying to `upstream`; a port in use
    /// is bound again every 0.1 s, `bindAttempts` times in all.
    static func withFront<R: Sendable>(
        _ identity: HeadIdentity, upstream: Int, port: Int = 0, maxConnections: Int = 1024,
        handshakeTimeout: Duration = .seconds(10), bindAttempts: Int = 50, _ body: (Int) async throws -> R
    ) async throws -> R {
        let front = TLSFront(
            routes: [.init(listenHost: "127.0.0.1", port: port, upstreamPort: upstream)],
            certificateFile: identity.certificateFile, keyFile: identity.keyFile, maxConnections: maxConnections,
            handshakeTimeout: handshakeTimeout)
        var attempt = 0
        while true {
            attempt += 1
            let started = LockedBox(false)
            do {
                return try await front.whileRunning { ports in
                    started.withLock { $0 = true }
                    return try await body(ports[0])
                }
            } catch let error as IOError
                where error.errnoCode == EADDRINUSE && !started.withLock({ $0 }) && attempt < bindAttempts
            {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// A plain TCP connection to 127.0.0.1:`port` that sends nothing.
    static func openConnection(_ port: Int) throws -> Int32 {
        let fd = Sockets.tcp()
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, connected == 0 else {
            close(fd)
            throw FakeHTTPServer.FakeServerError(message: "cannot connect to 127.0.0.1:\(port)")
        }
        return fd
    }

    /// Whether the peer closes `fd` (a read returns end of file or a reset) within `limit`.
    static func closedByPeer(_ fd: Int32, within limit: Duration) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(limit.components.seconds * 1000)
        guard poll(&descriptor, 1, milliseconds) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) <= 0
    }
}
