import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
@testable import RayLANDoctor

/// Faults in a cluster's set-up that Ray reports only as text, fed Ray's own recorded words: recognised in
/// `RaySays` (and nothing else is), and their remedy reaches a failed deploy's `ServeError` and `raylan doctor`'s
/// serve check. No cluster: the recorded answer stands in for Ray.
@Suite("Known cluster faults: Ray's text, the fault, its remedy")
struct KnownFaultTests {
    /// `GET /api/serve/applications/` from Ray 2.45.0 with protobuf 7.36.2 (`pip install
    /// "ray[default,serve]==2.45.0"` today), after a PUT of a one-deployment application: the application
    /// `detect` DEPLOY_FAILED, its message the Serve controller's traceback. Recorded verbatim.
    static func recordedProtobuf7() throws -> ServeStatus {
        let url = TestEnvironment.packageRoot.appendingPathComponent(
            "Tests/Fixtures/ray-says/ray245-protobuf7-serve-applications.json")
        return try JSONDecoder().decode(ServeStatus.self, from: Data(contentsOf: url))
    }

    static func recordedApplication() throws -> ServeStatus.Application {
        try #require(try recordedProtobuf7().applications["detect"])
    }

    /// A failure RayLAN knows no fault in: a model Ultralytics does not have, in the deployment's message.
    static let modelMissing = ServeStatus.Application(
        name: "detect", status: .deployFailed, message: "Failed to update the deployments ['Detector'].",
        deployments: [
            "Detector": ServeStatus.Deployment(
                name: "Detector", status: .deployFailed,
                message:
                    "The deployment failed to start 3 times in a row.\nTraceback (most recent call last):\n"
                    + "FileNotFoundError: [Errno 2] No such file or directory: 'yolo11q.pt'")
        ])

    @Test("Ray 2.45's recorded message with protobuf 7 is the protobuf fault, whose remedy installs protobuf<7")
    func recordedTextIsProtobufFault() throws {
        let app = try Self.recordedApplication()
        #expect(app.status == .deployFailed)
        let message = try #require(app.message)
        #expect(
            message.contains("AttributeError: 'google._upb._message.FieldDescriptor' object has no attribute 'label'"))
        let fault = try #require(RaySays.knownFault(in: message))
        #expect(fault.code == .protobufTooNew)
        #expect(fault.remedy.contains(#"pip install "protobuf<7""#), "\(fault.remedy)")
        #expect(fault.remedy.contains("every node") && fault.remedy.contains("restart Ray"), "\(fault.remedy)")
        #expect(fault.remedy.contains("'raylan serve deploy'"), "\(fault.remedy)")
    }

    @Test(
        "Both of protobuf's backends' words are the protobuf fault; other failures, and near misses, are no known fault",
        arguments: [
            // protobuf 7.36.2's pure-Python backend (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python), reading
            // FieldDescriptor.label as Ray 2.45's Serve does.
            ("AttributeError: 'FieldDescriptor' object has no attribute 'label'", true),
            ("AttributeError: 'google._upb._message.FieldDescriptor' object has no attribute 'label'", true),
            ("AttributeError: 'FieldDescriptor' object has no attribute 'labels'", false),
            ("AttributeError: 'Detector' object has no attribute 'label'", false),
            ("FileNotFoundError: [Errno 2] No such file or directory: 'yolo11q.pt'", false),
            ("", false),
        ])
    func matching(text: String, isProtobufFault: Bool) {
        #expect((RaySays.knownFault(in: text)?.code == .protobufTooNew) == isProtobufFault)
        if !isProtobufFault { #expect(RaySays.knownFault(in: text) == nil) }
    }

    @Test("Every known fault's own words (in the table) are recognised as that fault, with a cause and a remedy")
    func tableIsConsistent() {
        #expect(!RaySays.knownFaults.isEmpty)
        for row in RaySays.knownFaults {
            #expect(RaySays.knownFault(in: "Traceback …\n" + row.says + "\n") == row.fault)
            #expect(!row.fault.cause.isEmpty && !row.fault.remedy.isEmpty)
        }
        #expect(Set(RaySays.knownFaults.map(\.fault.code)).count == RaySays.knownFaults.count)
    }

    @Test("A deploy that fails with the recorded protobuf 7 message throws deployFailed with the protobuf<7 remedy")
    func deployFailureNamesProtobufFix() throws {
        let error = RayCluster.deployFailure("detect", try Self.recordedApplication())
        #expect(error.code == .deployFailed)
        #expect(error.message.contains("'detect' failed to deploy") && error.message.contains("label"), "\(error)")
        let remedy = try #require(error.remedy)
        #expect(remedy.contains(#"pip install "protobuf<7""#) && remedy.contains("protobuf 7"), "\(remedy)")
        #expect(remedy.contains("'raylan serve deploy'"), "\(remedy)")
        #expect(!remedy.contains("model name or path"), "\(remedy)")
        #expect(error.description.hasSuffix(ClusterFault.protobufTooNew.remedy), "\(error)")
        // The exception's line, then the fault's cause and remedy (not a lone "." after Ray's trailing newline).
        #expect(
            error.description.contains(
                "object has no attribute 'label'. \(ClusterFault.protobufTooNew.cause). Install protobuf<7"),
            "\(error)")
    }

    @Test("The fault is found in a deployment's message too (a replica that reads its config), not only the app's")
    func faultInDeploymentMessage() throws {
        let recorded = try #require(try Self.recordedApplication().message)
        var app = Self.modelMissing
        app.deployments?["Detector"]?.message = "The deployment failed to start.\n" + recorded
        #expect(RayCluster.knownFault(app)?.code == .protobufTooNew)
        #expect(RayCluster.deployFailure("detect", app).remedy?.contains("protobuf<7") == true)
    }

    @Test("Any other failed deploy keeps the generic remedy (model name or path, GPUs per replica)")
    func otherDeployFailureKeepsRemedy() {
        #expect(RayCluster.knownFault(Self.modelMissing) == nil)
        let error = RayCluster.deployFailure("detect", Self.modelMissing)
        #expect(error.code == .deployFailed)
        #expect(error.message.contains("yolo11q.pt"), "\(error)")
        #expect(error.remedy?.hasPrefix("Fix the cause above (model name or path, GPUs per replica)") == true)
        #expect(error.remedy?.contains("protobuf") == false)
    }

    @Test(
        "Doctor's serve finding for the recorded application FAILs with the protobuf<7 remedy; others the generic one")
    func doctorFinding() throws {
        let finding = Doctor.serveFinding(try Self.recordedApplication())
        #expect(finding.status == .fail)
        #expect(finding.text.hasPrefix("'detect' is DEPLOY_FAILED: "), "\(finding.text)")
        #expect(finding.remedy == ClusterFault.protobufTooNew.description)

        let other = Doctor.serveFinding(Self.modelMissing)
        #expect(other.status == .fail)
        #expect(other.remedy?.hasPrefix("Fix the cause Ray gives") == true, "\(String(describing: other.remedy))")
    }

    @Test("raylan doctor's serve check on the recorded status FAILs with the protobuf<7 remedy, not the network's")
    func doctorServeCheck() async throws {
        // The recorded status stands in for what check 2 read; nothing listens at the address, so the check's
        // proxy probe fails (connection refused, given up on after the short connect timeout) and the
        // application's remedy must still win over the network's.
        let recorded = try Self.recordedProtobuf7()
        let configuration = RayCluster.Configuration(timeouts: .init(connect: .milliseconds(200)))
        let check = try await ClosedPort.with { port in
            let address = ClusterAddress(host: "127.0.0.1", port: port)
            // The recorded status names the proxy port of the cluster it came from (33569), which the check
            // probes before the one it is given; on this machine another Ray may listen there. The held port
            // stands in for it.
            var serve = recorded
            serve.httpOptions?.port = port
            return try await RayCluster.withConnection(to: address, configuration: configuration) { cluster in
                await Doctor(Doctor.Configuration()).checkServe(
                    address, cluster: cluster,
                    ports: Doctor.Ports(dashboardOpen: true, serve: serve, servePort: address.port))
            }
        }
        #expect(check.kind == .serve)
        #expect(check.status == .fail)
        #expect(check.summary.contains("does not answer"), "\(check.summary)")
        #expect(check.summary.contains("'detect' is DEPLOY_FAILED"), "\(check.summary)")
        let remedy = try #require(check.remedy)
        #expect(remedy == ClusterFault.protobufTooNew.description, "\(remedy)")
        #expect(!remedy.contains("Fix the cause Ray gives"))
    }

    /// Ray 2.60's answer to the `PUT /api/serve/applications/` that started Serve on a busy host (the first
    /// deploy of the demo while a build ran): the proxy missed three health checks, Serve's controller replaced
    /// it, and the PUT that waited for it answered 500 with this traceback. Taken verbatim from the dashboard's
    /// `dashboard_ServeHead.log`, which logs the traceback it sends.
    static func recordedServeStartInterrupted() throws -> String {
        let url = TestEnvironment.packageRoot.appendingPathComponent(
            "Tests/Fixtures/ray-says/ray260-serve-start-proxy-died.txt")
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test("Serve's start interrupted (a proxy replaced) is recognised in Ray's recorded answer, and nothing else is")
    func serveStartInterruptedText() throws {
        let recorded = try Self.recordedServeStartInterrupted()
        #expect(RaySays.serveStartInterrupted(recorded))
        #expect(!RaySays.serveStartInterrupted(try Self.recordedApplication().message ?? ""))
        #expect(!RaySays.serveStartInterrupted("Traceback (most recent call last):\nRuntimeError: boom"))
        #expect(!RaySays.serveStartInterrupted("ray.exceptions.ActorDiedError: The actor died (in deploy_apps)"))
    }

    @Test("A PUT of Serve's config that Serve's start interrupted is sent again, the same config, and then applies")
    func serveStartInterruptedIsRetried() async throws {
        let plan = [
            FakeHTTPServer.Answer(status: 500, body: try Self.recordedServeStartInterrupted()),
            FakeHTTPServer.Answer(status: 200),
        ]
        try await FakeHTTPServer.with(plan) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                try await cluster.writeServeConfig([], http: ("127.0.0.1", 8000), what: "Deploying 'x' to Serve")
            }
            let requests = server.requests
            #expect(requests.map(\.method) == ["PUT", "PUT"])
            #expect(Set(requests.map(\.body)).count == 1 && requests.allSatisfy { $0.body.contains("EveryNode") })
        }
    }

    @Test("Any other 500 to a PUT of Serve's config is not sent again; an interrupted start is given up after 4 tries")
    func serveStartRetriesAreBounded() async throws {
        let other = FakeHTTPServer.Answer(status: 500, body: "Traceback (most recent call last):\nRuntimeError: boom")
        try await FakeHTTPServer.with([other, FakeHTTPServer.Answer(status: 200)]) { server in
            let error = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: server.address) { cluster in
                    try await cluster.writeServeConfig([], http: nil, what: "Deploying 'x' to Serve")
                }
            }
            #expect(error?.description.contains("RuntimeError: boom") == true, "\(String(describing: error))")
            #expect(server.requests.count == 1)
        }
        let interrupted = FakeHTTPServer.Answer(status: 500, body: try Self.recordedServeStartInterrupted())
        try await FakeHTTPServer.with([interrupted]) { server in
            let error = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: server.address) { cluster in
                    try await cluster.writeServeConfig([], http: nil, what: "Deploying 'x' to Serve")
                }
            }
            #expect(
                error?.description.contains("tried \(RayCluster.serveStartTries) times while Serve was starting")
                    == true,
                "\(String(describing: error))")
            #expect(server.requests.count == RayCluster.serveStartTries)
        }
    }
}
