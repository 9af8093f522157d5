import Crypto
import Foundation
import NIOHTTP1
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// The Python module the gateway tests call (`Tests/Fixtures/gateway/tasks.py`).
enum GatewayFixture {
    static let directory = TestEnvironment.packageRoot.appendingPathComponent("Tests/Fixtures/gateway")

    /// A gateway on the suite's cluster with the fixture as its working directory, deployed when needed (Serve on
    /// the test cluster's own port).
    static func gateway(_ cluster: RayCluster) async throws -> Gateway {
        try await cluster.gateway(workingDirectory: directory, httpPort: try requireCluster().ray.ports.serve)
    }

    struct Digest: Decodable, Equatable {
        var size: Int
        var sha256: String
    }

    static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// The error `body` throws, as a ``GatewayError``.
    static func gatewayError(_ body: () async throws -> Void) async -> GatewayError? {
        do {
            try await body()
            return nil
        } catch let error as GatewayError {
            return error
        } catch {
            Issue.record("expected a GatewayError, got \(error)")
            return nil
        }
    }
}

extension RayClusterTests.Main {
    /// Remote functions, actors and objects from Swift over the gateway, against a real Ray 2.60 with 4 CPUs,
    /// one logical GPU and `special: 2`.
    @Suite("Gateway: remote functions, actors and objects")
    struct GatewayTests {
        @Test("The seed's gpu_task with one GPU gets the GPU (CUDA_VISIBLE_DEVICES); values and keywords round-trip")
        func gpuTaskAndValues() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                struct CUDA: Decodable {
                    var cuda_visible_devices: String
                    var gpu_ids: [Int]
                }
                let withGPU: CUDA = try await tasks.call("tasks:cuda", resources: .gpus(1))
                #expect(withGPU.cuda_visible_devices == "0", "\(withGPU)")
                #expect(withGPU.gpu_ids == [0])
                let without: CUDA = try await tasks.call("tasks:cuda")
                #expect(without.gpu_ids.isEmpty)

                let sum: Int = try await tasks.call("tasks:add", 40, keywords: ["b": 2])
                #expect(sum == 42)
                let joined: [String] = try await tasks.call("tasks:add", ["a"], ["b", "c"])
                #expect(joined == ["a", "b", "c"])
                let nothing: JSONValue = try await tasks.call("tasks:noop")
                #expect(nothing == .null)
                // Data goes as bytes and comes back as bytes.
                let bytes = Data((0...255).map { UInt8($0) })
                let digest: GatewayFixture.Digest = try await tasks.call("tasks:digest", bytes)
                #expect(digest == .init(size: 256, sha256: GatewayFixture.sha256(bytes)))
                let twice: Data = try await tasks.call("tasks:repeat", bytes, 2)
                #expect(twice == bytes + bytes)
                // The runtime environment reaches the call.
                var withEnvironment = tasks
                withEnvironment.runtime.environment = ["RAYLAN_TEST_VALUE": "from swift"]
                let value: String? = try await withEnvironment.call("tasks:environment", "RAYLAN_TEST_VALUE")
                #expect(value == "from swift")
            }
        }

        @Test(
            "Failures are named errors: the remote traceback, a missing module or function, infeasible, unserializable")
        func namedErrors() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                let raised = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("tasks:boom", "the message from Swift")
                }
                #expect(raised?.code == .remoteException)
                #expect(raised?.remote?.type == "ValueError")
                #expect(raised?.remote?.message == "the message from Swift")
                #expect(raised?.remote?.traceback.contains("in boom") == true, "\(String(describing: raised))")

                let nested = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("tasks:nested_import")
                }
                #expect(nested?.code == .remoteException, "a module importing something missing is the user's error")
                #expect(nested?.remote?.type == "ModuleNotFoundError")

                let module = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("no_such_module:f")
                }
                #expect(module?.code == .missingModule, "\(String(describing: module))")
                let function = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("tasks:no_such_function")
                }
                #expect(function?.code == .missingFunction, "\(String(describing: function))")

                let tooMany = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("tasks:noop", resources: .gpus(2))
                }
                #expect(tooMany?.code == .infeasible, "\(String(describing: tooMany))")
                let custom = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call(
                        "tasks:noop", resources: ResourceRequest(custom: ["special": 3]))
                }
                #expect(custom?.code == .infeasible)

                let odd = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("tasks:unserializable")
                }
                #expect(odd?.code == .unserializableResult)
                let badName = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await tasks.call("no colon")
                }
                #expect(badName?.code == .invalidArgument)
            }
        }

        @Test(
            "A timeout cancels the call; cancelling a GPU task frees the GPU; cancelling the Swift task cancels the remote one"
        )
        func timeoutsAndCancellation() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                // A call that times out while it runs: it held the only GPU for a 600 s sleep, and is gone on the
                // cluster afterwards, since a GPU call runs next (its own 120 s timeout would end it otherwise).
                let timingOut = Task {
                    await GatewayFixture.gatewayError {
                        let _: Double = try await tasks.call(
                            "tasks:sleep", 600, resources: .gpus(1), timeout: .seconds(20))
                    }
                }
                let ran = await eventually(timeout: .seconds(20)) {
                    (try? await tasks.tasks().contains { $0.function == "tasks:sleep" && $0.state == .running }) == true
                }
                #expect(ran, "the call that was to time out never ran")
                let late = await timingOut.value
                #expect(late?.code == .timeout, "\(String(describing: late))")
                let gpuBack: Double = try await tasks.call(
                    "tasks:sleep", 0, resources: .gpus(1), timeout: .seconds(120))
                #expect(gpuBack == 0)

                // A task holding the only GPU, cancelled: another GPU call runs afterwards (it could not while
                // the first held the GPU, and its own timeout would end it).
                let holder = try await tasks.submit("tasks:sleep", 600, resources: .gpus(1))
                #expect(holder.state == .running)
                let cancelled = try await tasks.cancel(holder.id)
                #expect(cancelled.state == .cancelled, "\(cancelled)")
                let next: Double = try await tasks.call("tasks:sleep", 0, resources: .gpus(1), timeout: .seconds(120))
                #expect(next == 0)
                let stopped = await GatewayFixture.gatewayError { let _: Data = try await tasks.get(holder.ref) }
                #expect(stopped?.code == .cancelled)
                try await tasks.free(holder.ref)

                // Cancelling the Swift task cancels the call on the cluster, which frees the GPU too.
                let swiftTask = Task {
                    let _: Double = try await tasks.call("tasks:sleep", 600, resources: .gpus(1))
                }
                let running = await eventually(timeout: .seconds(60)) {
                    (try? await tasks.tasks().contains { $0.function == "tasks:sleep" && $0.state == .running }) == true
                }
                #expect(running)
                swiftTask.cancel()
                let outcome = await swiftTask.result
                #expect(throws: CancellationError.self) { try outcome.get() }
                let after: Double = try await tasks.call("tasks:sleep", 0, resources: .gpus(1), timeout: .seconds(120))
                #expect(after == 0)
            }
        }

        @Test("200 MB put and get are byte-identical; a ref passed to 10 calls crosses the network once")
        func objects() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                var generator = SystemRandomNumberGenerator()
                var big = Data(count: 200_000_000)
                big.withUnsafeMutableBytes { buffer in
                    let words = buffer.bindMemory(to: UInt64.self)
                    for index in words.indices { words[index] = generator.next() }
                }
                let ref = try await tasks.put(big)
                let back = try await tasks.get(ref)
                #expect(back.count == big.count)
                #expect(GatewayFixture.sha256(back) == GatewayFixture.sha256(big))
                let listed = try await tasks.objects().first { $0.id == ref.id }
                #expect(listed?.size == big.count)
                try await tasks.free(ref)
                #expect(try await tasks.objects().contains { $0.id == ref.id } == false)
                let freed = await GatewayFixture.gatewayError { _ = try await tasks.get(ref) }
                #expect(freed?.code == .unknownObject)

                let piece = big.prefix(8_000_000)
                let pieceRef = try await tasks.put(Data(piece))
                let before = tasks.traffic.sent
                for _ in 0..<10 {
                    let digest: GatewayFixture.Digest = try await tasks.call("tasks:digest", pieceRef)
                    #expect(digest == .init(size: piece.count, sha256: GatewayFixture.sha256(Data(piece))))
                }
                let sent = tasks.traffic.sent - before
                #expect(sent < 100_000, "10 calls with the ref sent \(sent) bytes; the object is \(piece.count)")
                // A ref nested in a list is resolved too.
                let nested: [Int] = try await tasks.call(
                    "tasks:sizes", [RemoteArgument.ref(pieceRef), .json(.string("abc"))])
                #expect(nested == [piece.count, 3])

                // A submitted call's result stays on the cluster: get it, and pass it on by ref.
                let task = try await tasks.submit("tasks:repeat", pieceRef, 2)
                let result: Data = try await tasks.result(of: task.id)
                #expect(result.count == 2 * piece.count)
                let chained: GatewayFixture.Digest = try await tasks.call("tasks:digest", task.ref)
                #expect(chained.size == 2 * piece.count)
                try await tasks.free(task.ref)
                try await tasks.free(pieceRef)
            }
        }

        @Test(
            "RayLAN's cluster code is staged once per connection: asked again, it is neither staged nor sent; an edited file is staged and sent anew"
        )
        func codeStagedOncePerConnection() async throws {
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-staged-code")
            defer { try? FileManager.default.removeItem(at: folder) }
            let code = ClusterCode(directory: folder.appendingPathComponent("cluster"))
            try FileManager.default.copyItem(at: try ClusterCode.locate().directory, to: code.directory)
            func edit(_ note: String) throws {
                let file = code.directory.appendingPathComponent("raylan_common/contract.py")
                let handle = try FileHandle(forWritingTo: file)
                try handle.seekToEnd()
                try handle.write(contentsOf: Data("\n# \(note)\n".utf8))
                try handle.close()
            }
            // Code no cluster has yet: its first staging is an upload, which says so.
            try edit("staging test \(UUID().uuidString)")
            try await requireCluster().withConnection { cluster in
                let said = LockedBox<[String]>([])
                func stage() async throws -> StagedCode {
                    try await cluster.stageCode(code, model: nil) { line in said.withLock { $0.append(line) } }
                }
                let first = try await stage()
                #expect(cluster.stagings.withLock { $0 } == 1)
                #expect(said.withLock { $0 }.count == 1, "\(said.withLock { $0 })")
                #expect(said.withLock { $0.first?.contains("Uploaded RayLAN's cluster code") } == true)
                #expect(try await cluster.hasPackage(named: first.packageName))
                let again = try await stage()
                #expect(again == first)
                #expect(cluster.stagings.withLock { $0 } == 1, "staged again")
                #expect(said.withLock { $0.count } == 1, "sent again: \(said.withLock { $0 })")

                try edit("edited by the staging test")
                let afterEdit = try await stage()
                #expect(cluster.stagings.withLock { $0 } == 2)
                #expect(afterEdit.uri != first.uri)
                #expect(said.withLock { $0 }.count == 2, "\(said.withLock { $0 })")
                #expect(said.withLock { $0.last?.contains("Uploaded RayLAN's cluster code") } == true)
                #expect(try await cluster.hasPackage(named: afterEdit.packageName))
            }
        }

        @Test("500 concurrent calls are all answered")
        func manyCalls() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                let sums = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                    for index in 0..<500 {
                        group.addTask { (index, try await tasks.call("tasks:add", index, 1, as: Int.self)) }
                    }
                    return try await group.reduce(into: [Int: Int]()) { $0[$1.0] = $1.1 }
                }
                #expect(sums.count == 500)
                #expect(sums.allSatisfy { $0.value == $0.key + 1 })
            }
        }

        @Test("Actors: created once with resources, called by id and name, errors named, killed")
        func actors() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                let counter = try await tasks.actor(
                    "tasks:Counter", 10, name: "counter-test",
                    resources: ResourceRequest(cpus: 0, custom: ["special": 1]))
                #expect(counter.info.state == .alive)
                let first: Int = try await counter.call("add", 5)
                let second: Int = try await counter.call("add", keywords: ["by": 2])
                #expect(first == 15 && second == 17, "the actor keeps its state between calls")
                let byName = try await tasks.actor(named: "counter-test")
                let third: Int = try await byName.call("add")
                #expect(third == 18)
                let taken = await GatewayFixture.gatewayError {
                    _ = try await tasks.actor("tasks:Counter", name: "counter-test")
                }
                #expect(taken?.code == .nameTaken)
                let failed = await GatewayFixture.gatewayError { let _: Int = try await counter.call("fail") }
                #expect(failed?.code == .remoteException)
                #expect(failed?.remote?.message == "count is 18")
                let missing = await GatewayFixture.gatewayError { let _: Int = try await counter.call("nothing") }
                #expect(missing?.code == .missingFunction)
                let broken = await GatewayFixture.gatewayError { _ = try await tasks.actor("tasks:Broken") }
                #expect(broken?.code == .remoteException)
                #expect(broken?.remote?.type == "KeyError")
                #expect(try await tasks.actors().contains { $0.id == counter.info.id })

                try await counter.kill()
                let gone = await GatewayFixture.gatewayError { let _: Int = try await counter.call("add") }
                #expect(gone?.code == .unknownActor)
                #expect(try await tasks.actors().contains { $0.id == counter.info.id } == false)
            }
        }

        @Test(
            "The ingress replica killed: refs and actors still work; the owner killed: a named error, then a new owner")
        func ownerOutlivesIngress() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                let ref = try await tasks.put(Data("kept across replicas".utf8))
                let counter = try await tasks.actor("tasks:Counter", 1, resources: .cpus(0))
                let generation = try await tasks.info()["generation"]

                let killed: [String] = try await tasks.call("tasks:kill_ingress_soon", GatewayDeployment.defaultName)
                #expect(killed.count == 1, "\(killed)")
                // Serve notices the dead replica and starts another; until then requests may fail.
                let back = await eventually(timeout: .seconds(120)) {
                    guard let status = try? await cluster.serveStatus(),
                        let app = status.applications[GatewayDeployment.defaultName], app.status == .running,
                        let replicas = app.deployments?["Gateway"]?.replicas, replicas.count == 1,
                        replicas[0].state == "RUNNING", let id = replicas[0].replicaID,
                        !killed.contains(where: { $0.hasSuffix(id) })
                    else { return false }
                    return (try? await tasks.info()) != nil
                }
                #expect(back, "Serve replaced the killed replica")
                #expect(try await tasks.info()["generation"] == generation, "the same owner")
                #expect(try await tasks.get(ref) == Data("kept across replicas".utf8))
                let count: Int = try await counter.call("add")
                #expect(count == 2)

                // A call in flight through the owner (it holds the ref) when the owner dies: a named error.
                let died = await GatewayFixture.gatewayError {
                    let _: Int = try await tasks.call("tasks:kill_owner", ref)
                }
                #expect(died?.code == .ownerDied, "\(String(describing: died))")
                let lost = await GatewayFixture.gatewayError { _ = try await tasks.get(ref) }
                #expect(lost?.code == .ownerDied, "\(String(describing: lost))")
                let lostActor = await GatewayFixture.gatewayError { let _: Int = try await counter.call("add") }
                #expect(lostActor?.code == .ownerDied)
                let fresh: Int = try await tasks.call("tasks:add", 1, 1)
                #expect(fresh == 2)
                #expect(try await tasks.info()["generation"] != generation, "a new owner")
            }
        }

        @Test(
            "The seed's examples from Swift: gpu_task is true with a GPU; a YOLO actor loads the model once and detects per put image"
        )
        func seedExamples() async throws {
            let cluster = try requireCluster()
            try await cluster.withConnection { ray in
                let root = TestEnvironment.packageRoot
                let tasks = try await ray.gateway(
                    workingDirectory: root.appendingPathComponent("examples/gateway/python"),
                    httpPort: cluster.ray.ports.serve)
                let onGPU: Bool = try await tasks.call("gpu:gpu_task", resources: .gpus(1))
                let withoutGPU: Bool = try await tasks.call("gpu:gpu_task")
                #expect(onGPU && !withoutGPU)

                struct Box: Decodable {
                    var class_name: String
                    var score: Double
                }
                let weights = try await tasks.put(
                    Data(contentsOf: root.appendingPathComponent("models/shapes/shapes-yolo11n.pt")))
                let detector = try await tasks.actor("yolo:Detector", weights, resources: .cpus(1))
                let samples = RayClusterTests.Main.DetectionTests.samples
                let names = try FileManager.default.contentsOfDirectory(atPath: samples.path).filter {
                    $0.hasSuffix(".jpg")
                }
                #expect(names.count == 12)
                for name in names {
                    let image = try await tasks.put(Data(contentsOf: samples.appendingPathComponent(name)))
                    let boxes: [Box] = try await detector.call("detect", image)
                    #expect(!boxes.isEmpty, "\(name)")
                    #expect(boxes.allSatisfy { ["circle", "square", "triangle", "star"].contains($0.class_name) })
                    try await tasks.free(image)
                }
                try await detector.kill()
                try await tasks.free(weights)
            }
        }

        @Test("Anonymous and wrong-key requests get 401 on every route but /healthz")
        func needsKey() async throws {
            try await requireCluster().withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                let key = try #require(tasks.endpoint.key)
                #expect(key.value.count >= 32)
                var wrong = tasks.endpoint
                wrong.key = ServiceKey(value: String(repeating: "0", count: 64), source: "a test")
                let body = Data(#"{"function": "tasks:noop"}"#.utf8)
                for endpoint in [tasks.endpoint.anonymous, wrong] {
                    for (method, path) in [
                        ("POST", "/call"), ("POST", "/objects"), ("GET", "/objects"), ("GET", "/actors"),
                        ("DELETE", "/owner"), ("GET", "/nothing-here"),
                    ] {
                        let response = try await cluster.send(
                            .init(rawValue: method), to: endpoint, path, body: method == "GET" ? nil : body)
                        #expect(response.status == 401, "\(method) \(path): \(response.status)")
                    }
                }
                #expect(try await cluster.send(.GET, to: tasks.endpoint.anonymous, "/healthz").status == 200)
                let anonymous = Gateway(cluster: cluster, endpoint: tasks.endpoint.anonymous)
                let refused = await GatewayFixture.gatewayError {
                    let _: JSONValue = try await anonymous.call("tasks:noop")
                }
                #expect(refused?.code == .unauthorized)
                // The owner survived the anonymous DELETE /owner.
                let sum: Int = try await tasks.call("tasks:add", 2, 2)
                #expect(sum == 4)
            }
        }

        @Test("A gateway without a key is refused on a cluster reachable beyond loopback")
        func openRefused() async throws {
            try await requireCluster().withConnection { loopback in
                let lan = RayCluster(
                    address: ClusterAddress(scheme: "http", host: "192.0.2.1", port: loopback.address.port))
                defer { Task { try? await lan.shutdown() } }
                let refused = await GatewayFixture.gatewayError {
                    _ = try await lan.deployGateway(GatewayDeployment(access: .open))
                }
                #expect(refused?.code == .openRefused)
            }
        }

        @Test("raylan call, put, get, task and actor: results as JSON, exit 3 with the traceback, 64 for bad input")
        func cli() async throws {
            let cluster = try requireCluster()
            let address = ["--address", cluster.address.description]
            let directory = ["--working-dir", GatewayFixture.directory.path]
            let call = try await CommandRunner.raylan(["call"] + address + directory + ["--gpus", "1", "tasks:cuda"])
            #expect(call.status == 0, "\(call)")
            #expect(call.stdout.contains(#""cuda_visible_devices" : "0""#), "\(call.stdout)")

            let raised = try await CommandRunner.raylan(["call"] + address + directory + ["tasks:boom", #""bad""#])
            #expect(raised.status == 3, "\(raised)")
            #expect(raised.stderr.contains("Traceback") && raised.stderr.contains("ValueError: bad"), "\(raised)")

            let notJSON = try await CommandRunner.raylan(["call"] + address + directory + ["tasks:add", "hello"])
            #expect(notJSON.status == 64, "\(notJSON)")
            let infeasible = try await CommandRunner.raylan(
                ["call"] + address + directory + ["--gpus", "4", "tasks:noop"])
            #expect(infeasible.status == 64, "\(infeasible)")
            #expect(
                infeasible.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count == 1, "\(infeasible)")

            let file = try TestEnvironment.makeTemporaryDirectory("raylan-gateway-cli")
            defer { try? FileManager.default.removeItem(at: file) }
            let input = file.appendingPathComponent("input.bin")
            let bytes = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            try bytes.write(to: input)
            let put = try await CommandRunner.raylan(["put"] + address + [input.path])
            #expect(put.status == 0, "\(put)")
            let ref = put.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(ref.hasPrefix("ref:"), "\(put)")
            let digest = try await CommandRunner.raylan(["call"] + address + directory + ["tasks:digest", ref])
            #expect(digest.stdout.contains(GatewayFixture.sha256(bytes)), "\(digest)")
            let inline = try await CommandRunner.raylan(
                ["call"] + address + directory + ["tasks:digest", "@" + input.path])
            #expect(inline.stdout.contains(GatewayFixture.sha256(bytes)), "\(inline)")
            let output = file.appendingPathComponent("output.bin")
            let get = try await CommandRunner.raylan(["get"] + address + [ref, "-o", output.path])
            #expect(get.status == 0, "\(get)")
            #expect(try Data(contentsOf: output) == bytes)
            let objects = try await CommandRunner.raylan(["objects", "--json"] + address)
            #expect(objects.stdout.contains(String(ref.dropFirst(4))), "\(objects)")

            let submitted = try await CommandRunner.raylan(
                ["call", "--no-wait"] + address + directory + ["tasks:add", "20", "22"])
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let result = try await CommandRunner.raylan(["task", "result"] + address + [id])
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "42", "\(result)")
            let status = try await CommandRunner.raylan(["task", "status", "--json"] + address + [id])
            #expect(status.stdout.contains(#""state" : "finished""#), "\(status)")

            let create = try await CommandRunner.raylan(
                ["actor", "create"] + address + directory + [
                    "--cpus", "0", "--name", "cli-counter", "tasks:Counter", "5",
                ])
            #expect(create.status == 0, "\(create)")
            let added = try await CommandRunner.raylan(["actor", "call"] + address + ["cli-counter", "add", "2"])
            #expect(added.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "7", "\(added)")
            let listed = try await CommandRunner.raylan(["actor", "list", "--json"] + address)
            #expect(listed.stdout.contains("cli-counter"), "\(listed)")
            let killed = try await CommandRunner.raylan(["actor", "kill"] + address + ["cli-counter"])
            #expect(killed.status == 0, "\(killed)")
            // The kill took effect: the actor no longer answers, and the gateway lists it no more as alive.
            let afterKill = try await CommandRunner.raylan(["actor", "call"] + address + ["cli-counter", "add", "1"])
            #expect(afterKill.status != 0 && afterKill.stdout.isEmpty, "\(afterKill)")
            let actorsLeft = try JSONDecoder().decode(
                [[String: String]].self,
                from: Data(try await CommandRunner.raylan(["actor", "list", "--json"] + address).stdout.utf8))
            #expect(
                !actorsLeft.contains { $0["name"] == "cli-counter" && $0["state"]?.lowercased() == "alive" },
                "\(actorsLeft)")
            let free = try await CommandRunner.raylan(["free"] + address + [ref, id])
            #expect(free.status == 0, "\(free)")
            // Freed: neither the put nor the kept result can be fetched or is listed any more.
            let getFreed = try await CommandRunner.raylan(["get"] + address + [ref, "-o", output.path + ".2"])
            #expect(getFreed.status != 0, "\(getFreed)")
            #expect(!FileManager.default.fileExists(atPath: output.path + ".2"))
            let resultFreed = try await CommandRunner.raylan(["task", "result"] + address + [id])
            #expect(resultFreed.status != 0, "\(resultFreed)")
            let objectsLeft = try await CommandRunner.raylan(["objects", "--json"] + address)
            #expect(objectsLeft.status == 0, "\(objectsLeft)")
            #expect(!objectsLeft.stdout.contains(String(ref.dropFirst(4))), "\(objectsLeft)")

            // Down ends the owner (with what it holds) and removes the application.
            let down = try await CommandRunner.raylan(["gateway", "down"] + address)
            #expect(down.status == 0, "\(down)")
            let serve = try await cluster.withConnection { try await $0.serveStatus() }
            #expect(serve.applications[GatewayDeployment.defaultName] == nil)
        }
    }
}
