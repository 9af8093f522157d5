import Foundation
import RayLAN
import RayLANDoctor
import RayLANTesting
import Testing

/// Beside ``RayClusterTests`` (see ``OwnClusterTests``): the LAN's clusters are in network namespaces of their own,
/// so their ports never meet the local ones.
extension OwnClusterTests {
    /// A real (simulated) LAN: a head host, a worker host and a client, each in its own network, PID and
    /// mount namespace, joined by a bridge. Every Ray here is started by `raylan up` inside those hosts.
    @Suite("On a simulated LAN (network namespaces)")
    struct LAN {
        /// The ports `raylan up` pins, written out independently of the code that pins them.
        static let pinnedPorts: Set<Int> = Set(6379...6387).union([8000, 8265]).union(10001...10999)

        @Test(
            "up --head, a refused version mismatch, up --join, status, a GPU job on the worker, doctor healthy and broken, down",
            .enabled(
                if: NetworkLab.unavailableReason == nil || NetworkLab.isRequired,
                "skipped because RAYLAN_SKIP_LAN=1: \(NetworkLab.unavailableReason ?? "")"))
        func lan() async throws {
            // A LAN suite that cannot run is a failure, not a silent skip; RAYLAN_SKIP_LAN=1 makes it a skip.
            if let reason = NetworkLab.unavailableReason {
                Issue.record("The LAN test cannot run here: \(reason). Set RAYLAN_SKIP_LAN=1 to skip it.")
                return
            }
            // Hosts' state folders, and the unrelated Ray's temp dir: removed after the lab (and every
            // process in it) is gone.
            let root = try TestEnvironment.makeTemporaryDirectory("raylan-lan")
            let otherTemp = "/tmp/rl-other-\(UUID().uuidString.prefix(6).lowercased())"
            defer {
                for host in ["head", "worker"] {
                    if let node = HostNode.recorded(in: root.appendingPathComponent(host).path) {
                        try? FileManager.default.removeItem(atPath: node.ray.temporaryDirectory)
                    }
                }
                try? FileManager.default.removeItem(at: root)
                try? FileManager.default.removeItem(atPath: otherTemp)
            }
            try await NetworkLab.with(["head", "worker", "client"]) { lab in
                let home = { (host: String) in root.appendingPathComponent(host).path }
                let head = lab["head"]
                let worker = lab["worker"]

                // The head, bound to its LAN address, with token authentication.
                let up = try await lab.raylan(
                    on: "head", ["up", "--head", "--bind", head.address, "--json"], home: home("head"))
                try #require(up.status == 0, "\(up)")
                let headOut = try JSONDecoder().decode(UpOutput.self, from: Data(up.stdout.utf8))
                #expect(headOut.dashboardURL == "https://\(head.address):8265")
                let fingerprint = try #require(headOut.fingerprint)
                #expect(headOut.joinCommand.contains("--join \(head.address) --fingerprint \(fingerprint)"))
                #expect(headOut.ufw.contains { $0.contains("from \(lab.subnet) to any port 8265") }, "\(headOut.ufw)")
                #expect(headOut.firewalld.contains { $0.contains("source address=\"\(lab.subnet)\"") })
                let tokenFile = try #require(headOut.tokenFile)
                let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(
                    in: .whitespacesAndNewlines)
                #expect(token.count >= 32)

                // Every port the head's Ray listens on is one of the pinned ones (a firewall can be written).
                let listening = try await lab.run(on: "head", "/usr/bin/ss", ["-ltnH"])
                let ports = Self.ports(listening.stdout)
                #expect(ports.contains(8265) && ports.contains(6379) && ports.contains(8000), "\(listening.stdout)")
                #expect(
                    ports.subtracting(Self.pinnedPorts).isEmpty,
                    "unpinned ports: \(ports.subtracting(Self.pinnedPorts).sorted())")

                // Sealed on the wire: the dashboard's and Serve's ports answer TLS with the printed certificate, and
                // plain HTTP gets no answer from the LAN (Ray itself listens on loopback only).
                let certificate = home("head") + "/tls/head-cert.pem"
                try await Self.expectSealed(lab, head.address, certificate: certificate, "Ray 2.60")
                let rayListeners = try await lab.run(on: "head", "/usr/bin/ss", ["-ltnpH"])
                for line in rayListeners.stdout.split(separator: "\n")
                where line.contains(":8265 ") || line.contains(":8000 ") {
                    // Ray's own (python, ProxyActor) on 127.0.0.1; on the LAN address, only RayLAN's front.
                    #expect(line.contains("127.0.0.1:") || line.contains("\"raylan\""), "\(line)")
                }
                // A wrong fingerprint: exit 77 before anything is sent; none at all: refused too, naming what to do.
                let wrongPin = "sha256:" + String(repeating: "0", count: 64)
                let wrong = try await lab.raylan(
                    on: "client", ["status", "--address", head.address, "--fingerprint", wrongPin], home: home("client")
                )
                #expect(wrong.status == 77 && wrong.stderr.contains(fingerprint), "\(wrong)")
                let unpinned = try await lab.raylan(
                    on: "client", ["status", "--address", head.address], home: home("client"))
                #expect(unpinned.status == 77 && unpinned.stderr.contains("--fingerprint"), "\(unpinned)")

                // The seed's version-mismatch problem: a Ray 2.45 environment is refused, naming both versions.
                let ray245 = TestEnvironment.packageRoot.appendingPathComponent(TestEnvironment.Ray.ray245.rawValue)
                    .path
                let mismatch = try await lab.raylan(
                    on: "worker",
                    [
                        "up", "--join", head.address, "--fingerprint", fingerprint, "--token-file", tokenFile,
                        "--python",
                        ray245,
                    ],
                    home: home("worker"))
                #expect(mismatch.status == 78, "\(mismatch)")
                #expect(mismatch.stderr.contains("2.45.0") && mismatch.stderr.contains("2.60.0"), "\(mismatch.stderr)")
                #expect(!FileManager.default.fileExists(atPath: home("worker") + "/node.json"))
                let nothing = try await lab.run(on: "worker", "/bin/ps", ["-eo", "args"])
                #expect(!nothing.stdout.contains("raylet"), "\(nothing.stdout)")

                // The worker joins with one logical GPU (no real GPU needed).
                let join = try await lab.raylan(
                    on: "worker",
                    [
                        "up", "--join", head.address, "--fingerprint", fingerprint, "--token-file", tokenFile, "--gpus",
                        "1", "--json",
                    ],
                    home: home("worker"))
                try #require(join.status == 0, "\(join)")
                let joinOut = try JSONDecoder().decode(UpOutput.self, from: Data(join.stdout.utf8))
                #expect(joinOut.nodeAddress == worker.address)
                let workerPorts = Self.ports(try await lab.run(on: "worker", "/usr/bin/ss", ["-ltnH"]).stdout)
                #expect(workerPorts.subtracting(Self.pinnedPorts).isEmpty, "unpinned ports: \(workerPorts.sorted())")

                // The client sees two alive nodes, the GPU on the worker.
                let auth = ["--address", head.address, "--fingerprint", fingerprint, "--token-file", tokenFile]
                var nodes: [NodeInfo] = []
                let twoAlive = try await eventually(timeout: .seconds(60)) {
                    let status = try await lab.raylan(on: "client", ["status", "--json"] + auth, home: home("client"))
                    guard status.status == 0,
                        let state = try? JSONDecoder().decode(ClusterState.self, from: Data(status.stdout.utf8))
                    else { return false }
                    nodes = state.nodes
                    return state.nodes.filter(\.isAlive).count == 2
                }
                #expect(twoAlive, "\(nodes)")
                #expect(nodes.first { $0.ip == worker.address }?.gpus.total == 1)
                #expect(nodes.first { $0.ip == head.address }?.isHead == true)

                // A job that needs a GPU runs on the worker's address.
                let job = try await lab.raylan(
                    on: "client",
                    ["job", "submit", "--gpus", "1"] + auth + [
                        "--", "python", "-c", "import ray; ray.init(); print('NODE', ray.util.get_node_ip_address())",
                    ],
                    home: home("client"))
                #expect(job.status == 0, "\(job)")
                #expect(job.stdout.contains("NODE \(worker.address)"), "\(job.stdout)")

                // Everything the client sends and gets from here to the detection run is captured on the LAN's bridge,
                // and so is the traffic between the head and the worker (Ray's own, not RayLAN's: see below).
                let clientCapture = try await lab.capture(
                    "host \(lab["client"].address)", to: root.appendingPathComponent("client.pcap").path)
                let nodesCapture = try await lab.capture(
                    "host \(head.address) and host \(worker.address)",
                    to: root.appendingPathComponent("nodes.pcap").path)
                // A marker sent in clear, so that the capture shows it sees the client's bytes.
                let marker = "raylan-marker-\(UUID().uuidString)"
                _ = try await Self.fetch(lab, "http://\(head.address):8265/\(marker)")

                // The seed's gpu_task through the gateway, from the client: it runs on the worker, the node with the
                // GPU, and sees the GPU Ray gave it.
                let gatewayCode = TestEnvironment.packageRoot.appendingPathComponent("examples/gateway/python").path
                let gpuTask = try await lab.raylan(
                    on: "client", ["call", "--working-dir", gatewayCode, "--gpus", "1"] + auth + ["gpu:gpu_task"],
                    home: home("client"))
                #expect(
                    gpuTask.status == 0 && gpuTask.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "true",
                    "\(gpuTask)")
                let gpuWhere = try await lab.raylan(
                    on: "client",
                    ["call", "--working-dir", gatewayCode, "--gpus", "1", "--json"] + auth + ["gpu:where"],
                    home: home("client"))
                #expect(gpuWhere.stdout.contains(#""node" : "\#(worker.address)""#), "\(gpuWhere)")

                // The detection service, deployed from the client: it gets a service key, which the client reads
                // over the token-protected dashboard; an anonymous request from the same host is refused.
                let samples = TestEnvironment.packageRoot.appendingPathComponent("samples").path
                let out = root.appendingPathComponent("client-out").path
                let detect = try await lab.raylan(
                    on: "client", ["detect", samples, "--out", out, "--gpus-per-replica", "0"] + auth,
                    home: home("client"))
                #expect(detect.status == 0, "\(detect)")
                let python = try TestEnvironment.environment(.current).python
                let post = """
                    import ssl, sys, urllib.request, urllib.error
                    context = ssl.create_default_context(cafile=sys.argv[2])
                    context.check_hostname = False
                    request = urllib.request.Request(sys.argv[1], data=open(sys.argv[3], "rb").read(), method="POST")
                    if len(sys.argv) > 4: request.add_header("Authorization", "Bearer " + sys.argv[4])
                    try: print(urllib.request.urlopen(request, timeout=60, context=context).status)
                    except urllib.error.HTTPError as error: print(error.code)
                    """
                let url = "https://\(head.address):8000/raylan/shapes-yolo11n/detect"
                let image = samples + "/shapes_00.jpg"
                // The refused requests carry one byte: the guard answers 401 before reading a body and closes the
                // connection, and a client still sending a whole image then meets a broken pipe, not the answer.
                let byte = root.appendingPathComponent("one-byte").path
                try Data([0xFF]).write(to: URL(fileURLWithPath: byte))
                let anonymous = try await lab.run(on: "client", python, ["-c", post, url, certificate, byte])
                #expect(anonymous.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "401", "\(anonymous)")
                let withToken = try await lab.run(on: "client", python, ["-c", post, url, certificate, byte, token])
                #expect(withToken.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "401", "\(withToken)")
                let serve = try await lab.raylan(
                    on: "client", ["serve", "status", "--json", "--show-keys"] + auth, home: home("client"))
                let status = try JSONDecoder().decode(ServeStatus.self, from: Data(serve.stdout.utf8))
                let key = try #require(
                    status.applications["shapes-yolo11n"]?.deployedAppConfig?["args"]?["api_key"]?.stringValue)
                let keyed = try await lab.run(on: "client", python, ["-c", post, url, certificate, image, key])
                #expect(keyed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "200", "\(keyed)")

                // The capture of the client's traffic (detect, call, serve status with its keys) holds the marker
                // sent in clear, and neither the token nor either service key: they crossed the LAN inside TLS.
                let gatewayKey = try #require(
                    status.applications[GatewayDeployment.defaultName]?.deployedAppConfig?["args"]?["api_key"]?
                        .stringValue)
                let clientBytes = try await clientCapture.stop()
                let nodesBytes = try await nodesCapture.stop()
                #expect(clientBytes.range(of: Data(marker.utf8)) != nil, "the capture saw no client traffic")
                #expect(clientBytes.count > 100_000, "\(clientBytes.count) bytes captured")
                for (name, secret) in [("the token", token), ("the service key", key), ("the gateway key", gatewayKey)]
                {
                    #expect(clientBytes.range(of: Data(secret.utf8)) == nil, "\(name) crossed the LAN in clear")
                }
                // What stays in clear, as docs/security.md says: Ray's own traffic between nodes (GCS, raylets, object
                // transfer), which carries the cluster token with its calls.
                print(
                    "LAN capture: \(clientBytes.count) bytes of the client's traffic, no secret in clear; between the "
                        + "nodes \(nodesBytes.count) bytes, the token in clear: \(nodesBytes.range(of: Data(token.utf8)) != nil)"
                )
                #expect(nodesBytes.count > 10_000, "\(nodesBytes.count) bytes between the nodes")
                #expect(
                    nodesBytes.range(of: Data(token.utf8)) != nil,
                    "Ray's traffic between nodes no longer shows the token: update docs/security.md (What stays in clear)"
                )
                let gatewayDown = try await lab.raylan(on: "client", ["gateway", "down"] + auth, home: home("client"))
                #expect(gatewayDown.status == 0, "\(gatewayDown)")

                // --on-cluster on the LAN: a folder both hosts mount at the same path (a bind mount standing in for
                // NFS) is read and detected by Ray Data actors on both nodes, with the service's results; a folder
                // only the head has (a tmpfs mounted in the head's namespace) is refused, naming the path and nodes.
                let export = root.appendingPathComponent("nfs-export")
                try FileManager.default.createDirectory(at: export, withIntermediateDirectories: true)
                // 48 files (four copies of the 12 samples) in batches of 2: more batches than one detector takes in
                // flight, so that both detectors get work.
                let originals = (0..<12).map { String(format: "shapes_%02d.jpg", $0) }
                let names = (0..<4).flatMap { copy in originals.map { "copy\(copy)-\($0)" } }
                for name in names {
                    try FileManager.default.copyItem(
                        atPath: samples + "/" + String(name.drop { $0 != "-" }.dropFirst()),
                        toPath: export.appendingPathComponent(name).path)
                }
                let sharedMount = root.appendingPathComponent("mnt-shared").path
                let headOnly = root.appendingPathComponent("mnt-head-only").path
                for folder in [sharedMount, headOnly] {
                    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                }
                for host in ["head", "worker"] {
                    let mounted = try await lab.run(on: host, "/bin/mount", ["--bind", export.path, sharedMount])
                    try #require(mounted.status == 0, "\(mounted)")
                }
                let tmpfs = try await lab.run(on: "head", "/bin/mount", ["-t", "tmpfs", "raylan-test", headOnly])
                try #require(tmpfs.status == 0, "\(tmpfs)")
                let copied = try await lab.run(on: "head", "/bin/cp", [samples + "/shapes_00.jpg", headOnly + "/"])
                try #require(copied.status == 0, "\(copied)")
                let datasetOut = root.appendingPathComponent("on-cluster-out").path
                let onCluster = try await lab.raylan(
                    on: "client",
                    [
                        "detect", "--on-cluster", sharedMount, "--out", datasetOut, "--actors", "2",
                        "--batch-size", "2", "--gpus-per-actor", "0", "--json",
                        // The results' folder on the head, in the test's folder: the default is in the home of
                        // the user the head's Ray runs as, here this machine's root.
                        "--cluster-out", root.appendingPathComponent("on-cluster-results").path,
                    ] + auth, home: home("client"), timeout: .seconds(600))
                #expect(onCluster.status == 0, "\(onCluster)")
                let datasetSummary = try? JSONDecoder().decode(
                    DetectionSummary.self, from: Data(onCluster.stdout.utf8))
                #expect(datasetSummary?.succeeded == names.count, "\(onCluster)")
                // Every file answered once, by the detectors of both nodes.
                let perNode = datasetSummary?.nodes ?? [:]
                #expect(perNode.values.reduce(0, +) == names.count, "\(onCluster)")
                let workedOn = Set(perNode.filter { $0.value > 0 }.keys.map { $0 })
                #expect(workedOn == [head.address, worker.address], "\(perNode)")
                print("LAN --on-cluster: images per node \(perNode)")
                let served = DetectionJournal.read(URL(fileURLWithPath: out).appendingPathComponent("detections.jsonl"))
                let onClusterLines = try String(contentsOfFile: datasetOut + "/detections.jsonl", encoding: .utf8)
                    .split(separator: "\n").map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
                #expect(onClusterLines.count == names.count)
                for line in onClusterLines {
                    let name = (line["path"]?.stringValue ?? "" as String).split(separator: "-").last.map(String.init)
                    let expected = try #require(served.first { $0.path.hasSuffix("/" + (name ?? "?")) }?.result)
                    let got = try JSONDecoder().decode(
                        [Detection].self, from: JSONEncoder().encode(line["result"]?["detections"] ?? .array([])))
                    // The streamed run shrank each file to the model's size first (--max-side auto), so boxes agree
                    // as the bench's shrink agreement measures it (one to one, same class, IoU ≥ 0.9), not to the
                    // pixel, and two boxes with scores a hair apart may come in either order.
                    let agreement = DetectionAgreement(reference: expected.detections, candidate: got)
                    #expect(
                        agreement.matched == expected.detections.count && agreement.matched == got.count,
                        "\(name ?? "?"): \(got) vs \(expected.detections)")
                }
                let refused = try await lab.raylan(
                    on: "client",
                    [
                        "detect", "--on-cluster", headOnly, "--gpus-per-actor", "0", "--cluster-out",
                        datasetOut + "-refused",
                    ]
                        + auth,
                    home: home("client"), timeout: .seconds(300))
                #expect(refused.status == 64, "\(refused)")
                #expect(
                    refused.stderr.contains("path_not_on_every_node") && refused.stderr.contains(head.address)
                        && refused.stderr.contains(worker.address), "\(refused.stderr)")

                // Two replicas, one per node: both serve, and Serve's status places them on both hosts.
                let spread = try await lab.raylan(
                    on: "client",
                    ["serve", "deploy", "--replicas", "2", "--max-replicas-per-node", "1", "--gpus-per-replica", "0"]
                        + auth,
                    home: home("client"))
                #expect(spread.status == 0, "\(spread)")
                let placed = try await lab.raylan(
                    on: "client", ["serve", "status", "--json", "--show-keys"] + auth, home: home("client"))
                let replicas =
                    try JSONDecoder().decode(ServeStatus.self, from: Data(placed.stdout.utf8))
                    .applications["shapes-yolo11n"]?.deployments?.values.flatMap { $0.replicas ?? [] } ?? []
                #expect(Set(replicas.compactMap(\.nodeIP)) == [head.address, worker.address], "\(replicas)")

                // doctor passes on the healthy cluster; the logical GPU is a WARN, not a FAIL.
                let healthy = try await Self.doctor(lab, auth, home: home("client"))
                #expect(healthy.result.status == 0, "\(healthy.result)")
                #expect(healthy.report.passed)
                #expect(healthy.report.checks.map(\.number) == Array(1...8))
                #expect(healthy.report.checks.filter { $0.status == .fail }.isEmpty, "\(healthy.report.checks)")
                #expect(healthy.report[.versions]?.summary.contains("2 node(s)") == true, "\(healthy.report.checks)")
                #expect(healthy.report[.gpus]?.status == .warn)
                #expect(
                    healthy.report[.gpus].map {
                        $0.summary.contains(worker.address) && $0.summary.contains("nvidia-smi")
                    } == true)
                #expect(healthy.report[.authentication]?.summary.contains("refused an anonymous request") == true)

                // The seed's ray://HOST:6379 form: FAIL with the right address as remedy.
                let seed = try await Self.doctor(
                    lab, ["--address", "ray://\(head.address):6379", "--token-file", tokenFile], home: home("client"))
                #expect(seed.result.status == 2, "\(seed.result)")
                #expect(seed.report[.address]?.status == .fail)
                #expect(
                    seed.report[.address]?.remedy?.contains("--address \(head.address)") == true,
                    "\(seed.report.checks)")

                // A firewall on the head drops the dashboard port and rejects the Ray Client port: FAIL, and
                // the two are told apart.
                let nft = "/usr/sbin/nft"
                for rule in [
                    ["add", "table", "inet", "rltest"],
                    ["add", "chain", "inet", "rltest", "input", "{ type filter hook input priority 0 ; }"],
                    ["add", "rule", "inet", "rltest", "input", "tcp", "dport", "8265", "drop"],
                    [
                        "add", "rule", "inet", "rltest", "input", "tcp", "dport", "10001", "reject", "with", "tcp",
                        "reset",
                    ],
                ] {
                    let added = try await lab.run(on: "head", nft, rule)
                    try #require(added.status == 0, "\(added)")
                }
                let walled = try await Self.doctor(lab, auth, home: home("client"))
                #expect(walled.result.status == 2)
                let portsCheck = try #require(walled.report[.ports])
                #expect(portsCheck.status == .fail)
                #expect(portsCheck.summary.contains("8265") && portsCheck.summary.contains("dropped"), "\(portsCheck)")
                #expect(
                    portsCheck.remedy?.contains("firewall on \(head.address) for port 8265") == true, "\(portsCheck)")
                #expect(
                    portsCheck.details.contains { $0.contains("10001") && $0.contains("refused") },
                    "\(portsCheck.details)")
                #expect(walled.report.checks[2...].allSatisfy { $0.status == .skip })
                _ = try await lab.run(on: "head", nft, ["delete", "table", "inet", "rltest"])

                // The worker stops in the middle of a run that uses its replica: the run still answers every input
                // (retries reach the head's replica), at most after one --resume. Its node is dead, and doctor says so.
                let many = try Self.images(Self.runImages, in: root.appendingPathComponent("many"))
                let lostOut = root.appendingPathComponent("lost-out")
                let lostRun = ["detect", many.path, "--out", lostOut.path, "--no-deploy"] + Self.oneAtATime + auth
                let clientHome = home("client")
                async let during = lab.raylan(on: "client", lostRun, home: clientHome, timeout: .seconds(900))
                let going = await eventually(timeout: .seconds(180)) {
                    DetectionJournal.read(lostOut.appendingPathComponent("detections.jsonl")).count >= 20
                }
                #expect(going, "the run did not get going")
                let workerDown = try await lab.raylan(on: "worker", ["down"], home: home("worker"))
                let answeredAtDown = DetectionJournal.read(lostOut.appendingPathComponent("detections.jsonl")).count
                #expect(answeredAtDown < Self.runImages, "the run ended before the worker went down")
                let lostFirst = try await during
                var lost = DetectionJournal.read(lostOut.appendingPathComponent("detections.jsonl"))
                print(
                    "LAN worker lost mid-run: \(answeredAtDown) answered when it went down; exit \(lostFirst.status), "
                        + "\(lost.filter { !$0.succeeded }.count) of \(Self.runImages) failed")
                if lost.contains(where: { !$0.succeeded }) {
                    let again = try await lab.raylan(
                        on: "client", lostRun + ["--resume"], home: home("client"), timeout: .seconds(900))
                    #expect(again.status == 0, "\(again)")
                    lost = DetectionJournal.read(lostOut.appendingPathComponent("detections.jsonl"))
                }
                #expect(
                    lost.count == Self.runImages && Set(lost.map { $0.path }).count == Self.runImages
                        && lost.allSatisfy { $0.succeeded })
                #expect(workerDown.status == 0, "\(workerDown)")
                #expect(workerDown.stdout.contains("Stopped the Ray worker"))
                let dead = try await eventually(timeout: .seconds(90)) {
                    let status = try await lab.raylan(on: "client", ["status", "--json"] + auth, home: home("client"))
                    let state = try? JSONDecoder().decode(ClusterState.self, from: Data(status.stdout.utf8))
                    return state?.nodes.contains { $0.ip == worker.address && !$0.isAlive } ?? false
                }
                #expect(dead)
                let broken = try await Self.doctor(lab, auth, home: home("client"))
                #expect(broken.result.status == 2)
                #expect(broken.report[.nodes]?.status == .fail)
                #expect(
                    broken.report[.nodes]?.summary.contains("dead: \(worker.address)") == true,
                    "\(broken.report.checks)")

                // `raylan down` on the head ends RayLAN's head and leaves an unrelated Ray on the same host
                // running: every one of its processes (each names its temp dir) lives on, and it still answers.
                let ray = try TestEnvironment.environment(.current).rayExecutable
                let other = try await lab.run(
                    on: "head", ray,
                    [
                        "start", "--head", "--port=7379", "--include-dashboard=false", "--ray-client-server-port=7380",
                        "--temp-dir=\(otherTemp)", "--num-cpus=1", "--disable-usage-stats",
                    ],
                    environment: ["RAY_AUTH_MODE": "disabled"])
                try #require(other.status == 0, "\(other)")
                let otherProcesses = try await Self.processes(on: "head", lab).filter { $0.value.contains(otherTemp) }
                // At least the GCS server, the raylet and Ray's Python agents.
                #expect(otherProcesses.count >= 3, "\(otherProcesses)")
                #expect(otherProcesses.values.contains { $0.contains("--gcs_server_port=7379") }, "\(otherProcesses)")
                let headDown = try await lab.raylan(on: "head", ["down"], home: home("head"))
                #expect(headDown.status == 0, "\(headDown)")
                #expect(headDown.stdout.contains("Stopped the Ray head"))
                let survivors = try await Self.processes(on: "head", lab)
                for (pid, commandLine) in otherProcesses.sorted(by: { $0.key < $1.key }) {
                    #expect(survivors[pid] != nil, "the unrelated Ray lost process \(pid): \(commandLine)")
                }
                let answers = try await lab.run(
                    on: "head", ray, ["status", "--address", "\(head.address):7379"],
                    environment: ["RAY_AUTH_MODE": "disabled"], timeout: .seconds(120))
                #expect(answers.status == 0, "the unrelated Ray no longer answers: \(answers)")
                #expect(answers.stdout.contains("1.0 CPU"), "\(answers.stdout)")
                let after = try await lab.run(on: "head", "/bin/ps", ["-eo", "args"])
                #expect(!after.stdout.contains("--gcs_server_port=6379"), "RayLAN's head survived:\n\(after.stdout)")
                #expect(!FileManager.default.fileExists(atPath: home("head") + "/node.json"))

                // Head restart: a run is cut off by 'raylan down' on the head; after 'raylan up --head' a
                // --resume redeploys the service (Serve's state went with the head) and answers the rest once.
                _ = try await lab.run(on: "head", "/bin/kill", ["-9"] + otherProcesses.keys.map(String.init))
                let up2 = try await lab.raylan(
                    on: "head", ["up", "--head", "--bind", head.address], home: home("head"))
                try #require(up2.status == 0, "\(up2)")
                let restartOut = root.appendingPathComponent("restart-out")
                let restartRun =
                    ["detect", many.path, "--out", restartOut.path, "--gpus-per-replica", "0", "--replicas", "1"]
                    + Self.oneAtATime + auth
                async let cut = lab.raylan(on: "client", restartRun, home: clientHome, timeout: .seconds(900))
                let begun = await eventually(timeout: .seconds(300)) {
                    DetectionJournal.read(restartOut.appendingPathComponent("detections.jsonl")).count >= 20
                }
                #expect(begun, "the run did not get going")
                let down2 = try await lab.raylan(on: "head", ["down"], home: home("head"))
                #expect(down2.status == 0, "\(down2)")
                let headGone = Date()
                let cutRun = try await cut
                let cutSeconds = Date().timeIntervalSince(headGone)
                // The cut run ends by itself with exit 5 (some inputs failed), every input in its journal: what
                // was answered, at most the give-up count (8 here) tried and failed as unavailable, and every
                // other input named "not sent" without being sent.
                #expect(cutRun.status == 5, "\(cutRun)")
                let cutJournal = DetectionJournal.read(restartOut.appendingPathComponent("detections.jsonl"))
                let before = cutJournal.filter(\.succeeded)
                let failedAtCut = cutJournal.filter { !$0.succeeded }
                let notSent = failedAtCut.filter { $0.error?.message.hasPrefix("not sent") == true }
                #expect(cutJournal.count == Self.runImages, "\(cutJournal.count) lines after the cut")
                #expect(failedAtCut.allSatisfy { $0.error?.code == .unavailable }, "\(failedAtCut.prefix(3))")
                #expect(failedAtCut.count - notSent.count <= 8, "\(failedAtCut.count - notSent.count) were tried")
                #expect(!notSent.isEmpty, "no input was named not sent")
                let up3 = try await lab.raylan(
                    on: "head", ["up", "--head", "--bind", head.address], home: home("head"))
                try #require(up3.status == 0, "\(up3)")
                let resumed = try await lab.raylan(
                    on: "client", restartRun + ["--resume"], home: home("client"), timeout: .seconds(900))
                #expect(resumed.status == 0, "\(resumed)")
                #expect(resumed.stderr.contains("Deploying"), "the service was not redeployed: \(resumed.stderr)")
                let final = DetectionJournal.read(restartOut.appendingPathComponent("detections.jsonl"))
                #expect(
                    final.count == Self.runImages && Set(final.map { $0.path }).count == Self.runImages
                        && final.allSatisfy { $0.succeeded })
                #expect(before.count < Self.runImages, "the head went down after the run had finished")
                print(
                    "LAN head restart: \(before.count) of \(Self.runImages) answered before; the cut run ended "
                        + String(
                            format: "%.1f s after the head's 'raylan down' (exit %d, %d tried and failed, %d not sent)",
                            cutSeconds, cutRun.status, failedAtCut.count - notSent.count, notSent.count)
                        + "; the rest answered after --resume")
                _ = try await lab.raylan(on: "head", ["down"], home: home("head"))

                // A head on Ray 2.45 (no token authentication there: --insecure) gets the same TLS front on both ports,
                // with the same certificate: the client's recorded pin still holds.
                let old = try await lab.raylan(
                    on: "head", ["up", "--head", "--bind", head.address, "--insecure", "--python", ray245, "--json"],
                    home: home("head"), timeout: .seconds(300))
                try #require(old.status == 0, "\(old)")
                let oldOut = try JSONDecoder().decode(UpOutput.self, from: Data(old.stdout.utf8))
                #expect(oldOut.fingerprint == fingerprint)
                let oldStatus = try await lab.raylan(
                    on: "client", ["status", "--json", "--address", head.address], home: home("client"))
                #expect(oldStatus.status == 0 && oldStatus.stdout.contains("2.45.0"), "\(oldStatus)")
                try await Self.expectSealed(lab, head.address, certificate: certificate, "Ray 2.45")
                let oldDown = try await lab.raylan(on: "head", ["down"], home: home("head"))
                #expect(oldDown.status == 0, "\(oldDown)")
            }
        }

        /// The images of the runs that a fault interrupts, sent one image per request, one request at a time, so
        /// that a run lasts long enough (about a minute on two cores) for the fault to land in its middle.
        static let runImages = 600
        static let oneAtATime = ["--concurrency", "1", "--images-per-request", "1"]

        /// `count` distinct image files (copies of the samples) in `folder`.
        static func images(_ count: Int, in folder: URL) throws -> URL {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let samples = TestEnvironment.packageRoot.appendingPathComponent("samples")
            let names = try FileManager.default.contentsOfDirectory(atPath: samples.path).filter {
                $0.hasSuffix(".jpg")
            }.sorted()
            for index in 0..<count {
                try FileManager.default.copyItem(
                    at: samples.appendingPathComponent(names[index % names.count]),
                    to: folder.appendingPathComponent(String(format: "image_%04d.jpg", index)))
            }
            return folder
        }

        struct UpOutput: Decodable {
            var nodeAddress: String
            var dashboardURL: String
            var fingerprint: String?
            var tokenFile: String?
            var joinCommand: String
            var ufw: [String]
            var firewalld: [String]
        }

        /// From the client host: the head's dashboard and Serve ports give no answer to plain HTTP, and an HTTP answer
        /// over TLS with `certificate`.
        static func expectSealed(_ lab: NetworkLab, _ head: String, certificate: String, _ what: String) async throws {
            for port in [8265, 8000] {
                let plain = try await fetch(lab, "http://\(head):\(port)/-/healthz")
                #expect(plain.hasPrefix("no answer"), "\(what), plain HTTP on \(port): \(plain)")
                let sealed = try await fetch(lab, "https://\(head):\(port)/-/healthz", certificate: certificate)
                #expect(Int(sealed) != nil, "\(what), TLS on \(port): \(sealed)")
            }
        }

        /// GETs `url` from the client host: the HTTP status, or "no answer: …" when the connection gave none (TLS
        /// against `certificate` as the only trust root, without a host name check).
        static func fetch(_ lab: NetworkLab, _ url: String, certificate: String? = nil) async throws -> String {
            let script = """
                import ssl, sys, urllib.request, urllib.error
                context = None
                if len(sys.argv) > 2:
                    context = ssl.create_default_context(cafile=sys.argv[2])
                    context.check_hostname = False
                try: print(urllib.request.urlopen(sys.argv[1], timeout=20, context=context).status)
                except urllib.error.HTTPError as error: print(error.code)
                except Exception as error: print("no answer:", type(error).__name__, error)
                """
            let python = try TestEnvironment.environment(.current).python
            let result = try await lab.run(
                on: "client", python, ["-c", script, url] + (certificate.map { [$0] } ?? []))
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        static func doctor(_ lab: NetworkLab, _ arguments: [String], home: String) async throws -> (
            result: CommandResult, report: DoctorReport
        ) {
            let result = try await lab.raylan(on: "client", ["doctor", "--json"] + arguments, home: home)
            let report = try JSONDecoder().decode(DoctorReport.self, from: Data(result.stdout.utf8))
            return (result, report)
        }

        /// The processes alive on `host`: command lines by pid (as the host numbers them). Zombies count as
        /// gone (the host's init, a `sleep`, reaps nothing).
        static func processes(on host: String, _ lab: NetworkLab) async throws -> [Int: String] {
            let listing = try await lab.run(on: host, "/bin/ps", ["-eo", "pid=,stat=,args="])
            try #require(listing.status == 0, "\(listing)")
            var result: [Int: String] = [:]
            for line in listing.stdout.split(separator: "\n") {
                let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
                guard fields.count == 3, let pid = Int(fields[0]), !fields[1].hasPrefix("Z") else { continue }
                result[pid] = String(fields[2])
            }
            return result
        }

        /// The TCP ports in `ss -ltnH` output.
        static func ports(_ output: String) -> Set<Int> {
            Set(
                output.split(separator: "\n").compactMap { line in
                    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                    guard fields.count >= 4, let colon = fields[3].lastIndex(of: ":") else { return nil }
                    return Int(fields[3][fields[3].index(after: colon)...])
                })
        }
    }
}
