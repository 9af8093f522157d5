import Foundation
import NIOHTTP1
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
@testable import RayLANDoctor

extension RayClusterTests.Main {
    /// The detection service on a shared LAN: a key on every route, the proxy's binding, bad requests that
    /// harm nobody else, and bounded memory.
    @Suite("Detection service security")
    struct ServiceSecurityTests {
        static let samples = DetectionTests.samples
        static let service = "shapes-yolo11n"

        /// The service's endpoint with the key it was deployed with.
        static func endpoint(_ cluster: TestCluster, _ name: String = service) async throws -> ServeEndpoint {
            try await cluster.withConnection { try await $0.serveEndpoint(for: name) }
        }

        static func errorCode(_ response: RayCluster.Response) -> String? {
            struct Failure: Decodable { struct Inner: Decodable { var code: String }; var error: Inner }
            return try? JSONDecoder().decode(Failure.self, from: response.body).error.code
        }

        @Test("Every route but /healthz wants the deployment's key: anonymous and wrong keys get 401, the key gets 200")
        func keyOnEveryRoute() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let endpoint = try await Self.endpoint(cluster)
            let key = try #require(endpoint.key, "the deployment keeps a service key")
            #expect(key.value.count >= 32)
            let image = try Data(contentsOf: Self.samples.appendingPathComponent("shapes_00.jpg"))
            var frame = Data()
            withUnsafeBytes(of: UInt32(image.count).bigEndian) { frame.append(contentsOf: $0) }
            frame.append(image)
            var wrong = endpoint
            wrong.key = ServiceKey(value: String(repeating: "0", count: 64), source: "a test")

            try await cluster.withConnection { ray in
                let requests: [(method: HTTPMethod, path: String, body: Data?)] = [
                    (.POST, "/detect", image), (.POST, "/detect/batch", frame), (.GET, "/models", nil),
                    (.GET, "/no-such-route", nil), (.POST, "/models", nil),
                ]
                for request in requests {
                    for caller in [endpoint.anonymous, wrong] {
                        let answer = try await ray.send(
                            request.method, to: caller, request.path, body: request.body,
                            contentType: "application/octet-stream")
                        #expect(answer.status == 401, "\(request.path) with \(caller.key?.description ?? "no key")")
                        #expect(Self.errorCode(answer) == "unauthorized", "\(answer.text)")
                        #expect(!answer.text.contains(key.value))
                    }
                }
                for request in requests.prefix(3) {
                    let answer = try await ray.send(
                        request.method, to: endpoint, request.path, body: request.body,
                        contentType: "application/octet-stream")
                    #expect(answer.status == 200, "\(request.path): \(answer.text)")
                }
                let health = try await ray.send(.GET, to: endpoint.anonymous, "/healthz")
                #expect(health.status == 200, "\(health.text)")

                // /models names the model, never a path on the cluster.
                let models = try await ray.send(.GET, to: endpoint, "/models")
                let listed = try JSONDecoder().decode(JSONValue.self, from: models.body)
                let sources =
                    (listed["models"].map { value -> [JSONValue] in
                        if case .array(let items) = value { return items } else { return [] }
                    } ?? []).compactMap { $0["source"]?.stringValue }
                #expect(!sources.isEmpty)
                #expect(sources.allSatisfy { !$0.contains("/") }, "\(sources)")
            }
        }

        @Test("--public opens a service, and doctor FAILs it; a keyed service PASSes doctor's anonymous probe")
        func publicAndDoctor() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let address = cluster.address.description
            let deployed = try await CommandRunner.raylan([
                "serve", "deploy", "--address", address, "--model", DetectionTests.ptModel, "--name", "shapes-public",
                "--public", "--gpus-per-replica", "0", "--replicas", "1", "--port", String(cluster.ray.ports.serve),
            ])
            #expect(deployed.status == 0, "\(deployed)")
            #expect(deployed.stderr.contains("--public"))
            let open = try await Self.endpoint(cluster, "shapes-public")
            #expect(open.key == nil)
            let models = try await cluster.withConnection { try await $0.send(.GET, to: open.anonymous, "/models") }
            #expect(models.status == 200)

            func authentication() async throws -> DoctorCheck {
                let report = await Doctor(Doctor.Configuration(address: address)).run()
                return try #require(report[.authentication])
            }
            let withPublic = try await authentication()
            #expect(withPublic.status == .fail, "\(withPublic)")
            #expect(withPublic.summary.contains("'shapes-public'") && withPublic.summary.contains("anonymous"))

            _ = try await cluster.withConnection { try await $0.deleteServeApplication("shapes-public") }
            let keyed = try await authentication()
            #expect(keyed.status == .pass, "\(keyed)")
            #expect(
                keyed.summary.contains("'\(Self.service)'") && keyed.summary.contains("refused an anonymous request"),
                "\(keyed.summary)")
        }

        @Test("A cluster reached through loopback gets Serve's proxy on loopback only")
        func proxyOnLoopback() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let port = try await cluster.withConnection { try await $0.serveStatus().httpOptions?.port }
            let listening = try await CommandRunner.run(
                "/usr/bin/env", ["ss", "-ltnH", "sport = :\(try #require(port))"])
            try #require(listening.status == 0, "\(listening)")
            let local = listening.stdout.split(separator: "\n").compactMap {
                $0.split(separator: " ").dropFirst(3).first
            }
            #expect(!local.isEmpty, "nothing listens on \(port!)")
            #expect(local.allSatisfy { $0.hasPrefix("127.0.0.1:") }, "\(local)")
        }

        @Test("One client's invalid values never fail another client's images in the same batch")
        func badClientHarmsNobody() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.samples.path).filter {
                $0.hasSuffix(".jpg")
            }
            .sorted().map { Self.samples.appendingPathComponent($0) }
            try await cluster.withConnection { ray in
                let client = try await DetectionClient(cluster: ray, application: Self.service)
                let image = try Data(contentsOf: files[0])
                let bad = Task {
                    var codes: [DetectionError.Code] = []
                    for index in 0..<40 {
                        let options = [
                            DetectionOptions(confidence: 5), DetectionOptions(confidence: .nan),
                            DetectionOptions(iou: -1), DetectionOptions(classes: [Int(Int32.max) + 1]),
                        ][index % 4]
                        do {
                            _ = try await client.detect(image, options: options)
                            codes.append(DetectionError.Code(rawValue: "answered"))
                        } catch let error as DetectionError {
                            codes.append(error.code)
                        }
                    }
                    return codes
                }
                var failures: [String] = []
                var answered = 0
                for await (file, result) in client.results(for: files + files + files, concurrency: 6) {
                    switch result {
                    case .success: answered += 1
                    case .failure(let error): failures.append("\(file.lastPathComponent): \(error)")
                    }
                }
                let codes = try await bad.value
                #expect(failures.isEmpty, "\(failures)")
                #expect(answered == 3 * files.count)
                #expect(codes.count == 40 && codes.allSatisfy { $0 == .badRequest }, "\(codes)")
            }
        }
    }
}

/// Which credential goes to which server, against two plain HTTP servers that record the `Authorization`
/// header they get (stand-ins for the dashboard and Serve's proxy: what is checked is RayLAN's client).
@Suite("Credentials per server")
struct CredentialRoutingTests {
    @Test("The dashboard gets only the cluster's token, Serve's proxy only the service key")
    func eachServerItsOwnCredential() async throws {
        let python = try TestEnvironment.environment(.current).python
        let ports = try FreePort.pick(2)
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-headers")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = """
            import http.server, sys
            log = open(sys.argv[2], "a", buffering=1)
            class Recorder(http.server.BaseHTTPRequestHandler):
                def answer(self):
                    log.write(repr(self.headers.get("Authorization")) + "\\n")
                    body = b'{"version": "4", "ray_version": "2.60.0"}'
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                do_GET = do_POST = answer
                def log_message(self, *args): pass
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Recorder).serve_forever()
            """
        let logs = ["dashboard", "proxy"].map { folder.appendingPathComponent($0 + ".log").path }
        let servers = try zip(ports, logs).map { port, log in
            try RunningCommand(python, ["-c", script, String(port), log])
        }
        defer {
            servers.forEach {
                kill(-$0.pid, SIGKILL); kill($0.pid, SIGKILL)
            }
        }

        let token = AuthToken(value: "dashboard-token-1234", source: .inline("a test"))
        let key = ServiceKey(value: "service-key-abcdefgh", source: "a test")
        let dashboard = ClusterAddress(host: "127.0.0.1", port: ports[0])
        let endpoint = ServeEndpoint(address: dashboard, port: ports[1], routePrefix: "/raylan/x", key: key)
        try await RayCluster.withConnection(to: dashboard, configuration: .init(token: token)) { cluster in
            let ready = await eventually(timeout: .seconds(30)) {
                let dashboardUp = (try? await cluster.send(.GET, "/api/version").status) == 200
                let proxyUp = (try? await cluster.send(.GET, to: endpoint, "/models").status) == 200
                return dashboardUp && proxyUp
            }
            try #require(ready, "the recording servers did not start")
            _ = try await cluster.send(.GET, "/api/serve/applications/")
            _ = try await cluster.send(.POST, to: endpoint, "/detect", body: Data([1, 2, 3]))
            _ = try await cluster.send(.GET, to: endpoint.anonymous, "/healthz")
        }
        let seen = try logs.map {
            try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n").map(String.init)
        }
        #expect(!seen[0].isEmpty && seen[0].allSatisfy { $0 == "'Bearer dashboard-token-1234'" }, "\(seen[0])")
        #expect(seen[1].filter { $0 == "'Bearer service-key-abcdefgh'" }.count >= 2, "\(seen[1])")
        #expect(seen[1].allSatisfy { $0 == "'Bearer service-key-abcdefgh'" || $0 == "None" }, "\(seen[1])")
        #expect(seen[1].last == "None", "the anonymous endpoint sent a key: \(seen[1])")
    }
}
