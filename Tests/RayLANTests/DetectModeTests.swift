import Foundation
import RayLANTesting
import Testing

/// `raylan detect`'s table of which option applies to which mode, as `--help` prints it, checked cell by cell
/// against what the command does: an option where the table says "yes" gets past validation and reaches the
/// cluster (a fake dashboard that refuses every request with 401: exit 77); one where it says "—" is a usage
/// error naming it and the mode (exit 64) before any request.
@Suite("raylan detect: which option applies to which mode")
struct DetectModeTests {
    /// A command line per mode, as the table's header names the modes.
    static let modes: [String: [String]] = [
        "images": ["detect", TestEnvironment.packageRoot.appendingPathComponent("samples").path],
        "--on-cluster images": ["detect", "--on-cluster", "/data/photos"],
        "videos/streams": ["detect", "rtsp://127.0.0.1:1/live"],
    ]

    /// The options that apply to every mode (`--on-cluster` chooses one).
    static let everyMode: Set<String> = [
        "--address", "--token-file", "--fingerprint", "--trust-on-first-use", "--model", "--conf", "--iou", "--classes",
        "--out", "--annotate", "--on-cluster",
        "--gpus-per-replica", "--imgsz", "--backend", "--port", "--json", "--version",
    ]

    /// Each option in the table with a valid value (so that only where it is given can refuse it).
    static func arguments(for option: String, keyFile: String) -> [String] {
        switch option {
        case "--format": ["--format", "coco"]
        case "--concurrency", "--images-per-request", "--batch-size", "--max-batch", "--max-queued-requests":
            [option, "4"]
        case "--max-side": ["--max-side", "320"]
        case "--force": ["--resume", "--force"]
        case "--cluster-out": ["--cluster-out", "/tmp/raylan-results"]
        case "--lease": ["--lease", "60"]
        case "--vid-stride": ["--vid-stride", "2"]
        case "--track": ["--track", "bytetrack"]
        case "--reconnect-attempts", "--actors", "--replicas", "--max-replicas-per-node": [option, "1"]
        case "--gpus-per-actor": ["--gpus-per-actor", "0"]
        case "--cpus-per-actor": ["--cpus-per-actor", "0.5"]
        case "--batch-wait-ms": ["--batch-wait-ms", "5"]
        case "--view-fps": ["--view-fps", "5"]
        case "--key-file": ["--key-file", keyFile]
        default: [option]
        }
    }

    /// The table's rows as `--help` prints them: option → (mode title → applies).
    static func table(in help: String) throws -> [String: [String: Bool]] {
        let lines = help.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let header = try #require(lines.first { $0.hasPrefix("| option |") }, "no table in --help:\n\(help)")
        func cells(_ line: String) -> [String] {
            line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let titles = Array(cells(header).dropFirst())
        var rows: [String: [String: Bool]] = [:]
        for line in lines where line.hasPrefix("| `--") {
            let row = cells(line)
            let option = row[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            rows[option] = Dictionary(uniqueKeysWithValues: zip(titles, row.dropFirst().map { $0 == "yes" }))
        }
        return rows
    }

    @Test("Every option × mode cell of --help's table holds: accepted and sent to the cluster, or exit 64 naming both")
    func everyCell() async throws {
        let help = try await CommandRunner.raylan(["detect", "--help"])
        let table = try Self.table(in: help.stdout)
        #expect(table.count >= 20, "\(table.keys.sorted())")
        #expect(Set(table.values.flatMap(\.keys)) == Set(Self.modes.keys), "\(help.stdout)")
        // Every other option applies to every mode: a new option is placed in the table or named here.
        // An option's own line in OPTIONS is indented by two spaces (its help's wrapped lines by more).
        let options = Set(
            help.stdout.split(separator: "\n").filter { $0.hasPrefix("  --") }.compactMap {
                $0.split(separator: " ").first.map(String.init)
            })
        #expect(options.subtracting(table.keys) == Self.everyMode, "\(options.subtracting(table.keys).sorted())")
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-modes")
        defer { try? FileManager.default.removeItem(at: folder) }
        let keyFile = folder.appendingPathComponent("key").path
        try Data("a-service-key-of-enough-length".utf8).write(to: URL(fileURLWithPath: keyFile))
        let refused = FakeHTTPServer.Answer(status: 401, body: "Unauthorized")
        try await FakeHTTPServer.with([refused]) { server in
            let cells = table.sorted { $0.key < $1.key }.flatMap { option, modes in
                modes.sorted { $0.key < $1.key }.map { (option, $0.key, $0.value) }
            }
            try await withThrowingTaskGroup(of: (String, String, Bool, CommandResult).self) { group in
                var pending = cells[...]
                func start() {
                    guard let (option, mode, applies) = pending.popFirst() else { return }
                    let command =
                        Self.modes[mode]! + Self.arguments(for: option, keyFile: keyFile)
                        + ["--address", "127.0.0.1:\(server.port)", "--out", folder.appendingPathComponent("out").path]
                    group.addTask {
                        let home = folder.appendingPathComponent("home-\(UUID().uuidString.prefix(8))").path
                        // BROWSER: xdg-open's browser where no desktop is found; --open runs it, and nothing opens.
                        let result = try await CommandRunner.raylan(
                            command, environment: ["RAYLAN_HOME": home, "BROWSER": "true"])
                        return (option, mode, applies, result)
                    }
                }
                for _ in 0..<4 { start() }
                while let (option, mode, applies, result) = try await group.next() {
                    start()
                    if applies {
                        #expect(result.status == 77, "\(option) with \(mode): \(result)")
                    } else {
                        #expect(result.status == 64, "\(option) with \(mode): \(result)")
                        #expect(
                            result.stderr.contains(option) && result.stderr.contains("not apply to \(mode)"),
                            "\(option) with \(mode): \(result.stderr)")
                    }
                }
            }
            // The refused cells sent nothing, and none of the accepted ones got past the refusal to write.
            #expect(server.requests.allSatisfy { $0.method == "GET" }, "\(server.requests.map(\.method))")
        }
    }

    @Test("--format and --report with --on-cluster need --out: exit 64 naming it, before anything is sent")
    func onClusterExportsNeedOut() async throws {
        for option in [["--format", "coco"], ["--format", "yolo"], ["--report"]] {
            let result = try await CommandRunner.raylan(
                ["detect", "--on-cluster", "/data/photos"] + option + ["--address", "127.0.0.1:9"])
            #expect(result.status == 64, "\(option): \(result)")
            #expect(result.stderr.contains("give --out"), "\(option): \(result.stderr)")
        }
    }

    @Test("docs/video-and-datasets.md shows the same table as --help")
    func docsTable() async throws {
        let help = try await CommandRunner.raylan(["detect", "--help"])
        let docs = try String(
            contentsOf: TestEnvironment.packageRoot.appendingPathComponent("docs/video-and-datasets.md"),
            encoding: .utf8)
        let helpTable = try Self.table(in: help.stdout)
        #expect(try Self.table(in: docs) == helpTable)
    }
}
