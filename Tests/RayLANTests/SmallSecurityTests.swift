import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// Small security rules that need no cluster: job logs made safe for a terminal, a head that never starts
/// open unasked, a gateway without a key refused unless only this machine reaches it, and RayLAN's Python side
/// found from its own executable, never from the current folder.
@Suite("Small security rules")
struct SmallSecurityTests {
    // MARK: Terminal text

    /// Hostile log text and what is printed of it.
    static let hostileText: [(input: String, printed: String)] = [
        ("plain text", "plain text"),
        ("ünïcødé ✓ 漢字 🙂", "ünïcødé ✓ 漢字 🙂"),
        ("tab\tkept", "tab\tkept"),
        ("\u{1B}[31mred\u{1B}[0m", "red"),
        ("\u{1B}[2J\u{1B}[Hwiped", "wiped"),
        ("\u{1B}[?1049halternate screen", "alternate screen"),
        ("ask\u{1B}[6n", "ask"),
        ("up\u{1B}[1A\u{1B}[2Kover", "upover"),
        ("\u{1B}]0;pwned title\u{07}after", "after"),
        ("\u{1B}]2;title\u{1B}\\after", "after"),
        ("\u{1B}]52;c;cm0gLXJmIH4=\u{07}clipboard", "clipboard"),
        ("\u{1B}]8;;http://evil.example\u{1B}\\link\u{1B}]8;;\u{1B}\\", "link"),
        ("\u{1B}Ptmux;\u{1B}\u{1B}]0;x\u{07}\u{1B}\\dcs", "dcs"),
        ("\u{1B}_apc\u{1B}\\x\u{1B}^pm\u{1B}\\y\u{1B}Xsos\u{1B}\\z", "xyz"),
        ("\u{1B}cafter reset", "after reset"),
        ("\u{1B}(Bcharset\u{1B}#8", "charset"),
        ("\u{1B}7saved\u{1B}8", "saved"),
        ("\u{9B}31mC1 CSI", "C1 CSI"),
        ("\u{9D}0;title\u{9C}C1 OSC", "C1 OSC"),
        ("\u{90}dcs\u{9C}C1 DCS", "C1 DCS"),
        ("\u{85}next\u{8D}line\u{9C}", "nextline"),
        ("bell\u{07} back\u{08}space nul\u{00} del\u{7F} esc-less\u{1A}", "bell backspace nul del esc-less"),
        ("progress 10%\rprogress 20%", "progress 10%\nprogress 20%"),
        ("safe\rrm -rf ~", "safe\nrm -rf ~"),
        ("crlf\r\nline", "crlf\nline"),
        ("trailing\r", "trailing\n"),
        ("\u{1B}", ""),
        ("cut\u{1B}[", "cut"),
        ("\u{1B}]0;unterminated title", ""),
        ("\u{1B}]0;unterminated\nnext line", "\nnext line"),
        ("\u{1B}[31\u{1B}]0;nested\u{07}text", "text"),
        ("\u{1B}[31;\u{E9}m", "\u{E9}m"),
    ]

    @Test(
        "Terminal controls are removed from hostile text; printable text, newlines and tabs stay",
        arguments: hostileText)
    func strippingControls(input: String, printed: String) {
        let result = TerminalText.strippingControls(from: input)
        #expect(result == printed)
        let controls = result.unicodeScalars.filter {
            ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value)
        }
        #expect(controls.isEmpty, "controls left: \(controls.map { String($0.value, radix: 16) })")
        #expect(TerminalText.strippingControls(from: result) == result, "not idempotent")
    }

    // MARK: Head authentication

    /// (Ray version, --token-file given, --insecure) and the outcome: `token`, `none`, or the error code.
    static let headCases: [(version: String, tokenGiven: Bool, insecure: Bool, outcome: String)] = [
        ("2.60.0", false, false, "token"),
        ("2.52.0", false, false, "token"),
        ("2.52.0", true, false, "token"),
        ("2.61.0.dev0", false, false, "token"),
        ("2.60.0", false, true, "none"),
        ("2.45.0", false, true, "none"),
        ("2.51.9", false, false, "authentication_unavailable"),
        ("2.45.0", false, false, "authentication_unavailable"),
        ("2.45.0", true, false, "authentication_unavailable"),
        ("not-a-version", false, false, "authentication_unavailable"),
        ("2.60.0", true, true, "invalid_argument"),
        ("2.45.0", true, true, "invalid_argument"),
    ]

    @Test(
        "A head uses a token where Ray has token authentication; without it only --insecure starts it",
        arguments: headCases)
    func headAuthentication(version: String, tokenGiven: Bool, insecure: Bool, outcome: String) {
        do {
            let authentication = try HostNode.headAuthentication(
                rayVersion: version, tokenGiven: tokenGiven, insecure: insecure)
            #expect("\(authentication)" == outcome)
        } catch let error as HostNodeError {
            #expect(error.code.description == outcome, "\(error)")
            #expect(error.isUsageError, "exit 64 in the CLI")
            #expect(!error.description.contains("\n"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("Ray 2.45 without --insecure: one line that names the version, the danger and both remedies")
    func headRefusalMessage() {
        let error = #expect(throws: HostNodeError.self) {
            try HostNode.headAuthentication(rayVersion: "2.45.0", tokenGiven: false, insecure: false)
        }
        #expect(
            error?.description
                == "This Ray (2.45.0) has no token authentication: anyone on the LAN could run code on this host. "
                + "Pass --insecure to accept that, or install ray>=2.52.")
    }

    // MARK: Gateway without a key

    /// Serve's status: not running, or running with `applications` and/or proxies and these HTTP options.
    static func serve(applications: Bool = false, proxies: Bool = false, options: ServeStatus.HTTPOptions? = nil)
        -> ServeStatus
    {
        let application = ServeStatus.Application(
            name: "detector", routePrefix: "/raylan/detector", status: .running, message: nil, deployments: nil,
            deployedAppConfig: nil)
        return ServeStatus(
            applications: applications ? ["detector": application] : [:], httpOptions: options,
            proxies: proxies ? ["node-1": ServeStatus.Proxy(nodeIP: "10.0.0.1", status: nil)] : [:])
    }

    static let anyHost = ServeStatus.HTTPOptions(host: "0.0.0.0", port: 8000)
    static let loopbackProxy = ServeStatus.HTTPOptions(host: "127.0.0.1", port: 8000)

    /// (the dashboard's host, Serve's status, the deploy's proxy host, refused).
    static let gatewayCases: [(clusterHost: String, serve: ServeStatus, httpHost: String?, refused: Bool)] = [
        ("127.0.0.1", serve(), nil, false),
        ("localhost", serve(), nil, false),
        ("LOCALHOST", serve(), nil, false),
        ("::1", serve(), nil, false),
        ("[::1]", serve(), nil, false),
        ("127.0.0.2", serve(), nil, false),
        ("127.0.0.1", serve(), "127.0.0.1", false),
        ("127.0.0.1", serve(applications: true, proxies: true, options: loopbackProxy), nil, false),
        ("127.0.0.1", serve(proxies: true, options: loopbackProxy), "0.0.0.0", false),
        // Beyond loopback, or a name that only starts like it.
        ("192.168.1.5", serve(), nil, true),
        ("0.0.0.0", serve(), nil, true),
        ("127.evil.com", serve(), nil, true),
        ("127.0.0.1.nip.io", serve(), nil, true),
        ("127.1", serve(), nil, true),
        ("127.0.0.256", serve(), nil, true),
        ("localhost.evil.com", serve(), nil, true),
        // The deploy would start Serve on every address.
        ("127.0.0.1", serve(), "0.0.0.0", true),
        ("127.0.0.1", serve(), "127.evil.com", true),
        // Serve runs with no application (as 'raylan up' starts it) on every address.
        ("127.0.0.1", serve(proxies: true, options: anyHost), nil, true),
        ("127.0.0.1", serve(options: anyHost), "127.0.0.1", true),
        // Serve runs and does not say where its proxy listens.
        ("127.0.0.1", serve(applications: true), nil, true),
        ("127.0.0.1", serve(applications: true, options: .init(host: nil, port: 8000)), nil, true),
        ("127.0.0.1", serve(proxies: true), "127.0.0.1", true),
        ("127.0.0.1", serve(applications: true, options: anyHost), nil, true),
        ("127.0.0.1", serve(applications: true, options: .init(host: "::", port: 8000)), nil, true),
    ]

    @Test(
        "A gateway without a key is refused unless the dashboard and Serve's proxy are loopback",
        arguments: gatewayCases)
    func openGateway(clusterHost: String, serve: ServeStatus, httpHost: String?, refused: Bool) {
        let exposure = RayCluster.openGatewayExposure(clusterHost: clusterHost, serve: serve, httpHost: httpHost)
        #expect((exposure != nil) == refused, "\(exposure ?? "allowed")")
    }

    // MARK: RayLAN's folders

    @Test("RayLAN's folders are made 0700 with every missing folder above them; a wider existing one is narrowed")
    func privateFolders() throws {
        let root = try TestEnvironment.makeTemporaryDirectory("raylan-private")
        defer { try? FileManager.default.removeItem(at: root) }
        func mode(_ path: String) -> Int? {
            (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int).map { $0 & 0o777 }
        }
        let home = root.appendingPathComponent("home/.raylan").path
        try RayLANHome.makePrivateFolder(home + "/uploads")
        #expect([mode(root.path + "/home"), mode(home), mode(home + "/uploads")] == [0o700, 0o700, 0o700])
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: home)
        try RayLANHome.makePrivateFolder(home)
        #expect(mode(home) == 0o700)
        #expect(mode(home + "/uploads") == 0o700)
    }

    // MARK: Project search

    /// A folder that looks like a RayLAN checkout: `.venv/bin/ray` (executable) and `cluster/raylan_detect/app.py`.
    static func plantCheckout() throws -> URL {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-planted")
        let fileManager = FileManager.default
        try fileManager.createDirectory(
            at: folder.appendingPathComponent(".venv/bin"), withIntermediateDirectories: true)
        try fileManager.createDirectory(
            at: folder.appendingPathComponent("cluster/raylan_detect"), withIntermediateDirectories: true)
        _ = fileManager.createFile(
            atPath: folder.appendingPathComponent(".venv/bin/ray").path, contents: Data("#!/bin/sh\n".utf8),
            attributes: [.posixPermissions: 0o755])
        _ = fileManager.createFile(
            atPath: folder.appendingPathComponent("cluster/raylan_detect/app.py").path, contents: Data())
        return URL(fileURLWithPath: folder.resolvingSymlinksInPath().path)
    }

    @Test("The executable's checkout is found (links resolved); a planted one in the current folder is not")
    func projectSearch() async throws {
        // The planted checkout is one RayLAN finds, from an executable inside it or linked into it.
        let planted = try Self.plantCheckout()
        let links = try TestEnvironment.makeTemporaryDirectory("raylan-links")
        defer {
            try? FileManager.default.removeItem(at: planted)
            try? FileManager.default.removeItem(at: links)
        }
        let inside = planted.appendingPathComponent(".build/debug/raylan").path
        try FileManager.default.createDirectory(
            atPath: (inside as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: inside, contents: Data(), attributes: [.posixPermissions: 0o755])
        let link = links.appendingPathComponent("raylan").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: inside)
        for executable in [inside, link] {
            let python = try RayEnvironment.locate(environment: [:], executablePath: executable)
            #expect(python.rayExecutable == planted.path + "/.venv/bin/ray")
            let code = try ClusterCode.locate(environment: [:], executablePath: executable)
            #expect(code.directory.path == planted.path + "/cluster")
        }

        // The real raylan, hard-linked outside any checkout, run with the planted checkout as its current folder
        // (a child process: the current folder is the whole process's). Neither its Python nor its cluster code
        // is taken: the embedded cluster's start says no Python was found.
        let elsewhere = try TestEnvironment.makeTemporaryDirectory("raylan-elsewhere")
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        let executable = elsewhere.appendingPathComponent("raylan").path
        try FileManager.default.linkItem(atPath: TestEnvironment.raylanExecutable, toPath: executable)
        let run = try await CommandRunner.run(
            "/bin/sh", ["-c", #"cd "$1" && exec "$2" status"#, "sh", planted.path, executable],
            environment: [
                "RAYLAN_HOME": elsewhere.appendingPathComponent("home").path, "RAYLAN_PYTHON": nil,
                "RAYLAN_CLUSTER_DIR": nil, "RAYLAN_ADDRESS": nil,
            ])
        #expect(run.status != 0 && run.stderr.contains("No Python environment with Ray found"), "\(run)")
        #expect(!run.stderr.contains(planted.path + "/.venv"), "\(run)")
    }

    @Test("RayLAN's own executable path is absolute, so a bare 'raylan' on PATH does not mean the current folder")
    func executablePathIsAbsolute() throws {
        let path = try #require(Bundle.main.executablePath)
        #expect(path.hasPrefix("/"), "\(path)")
        #expect(FileManager.default.isExecutableFile(atPath: path), "\(path)")
    }
}
