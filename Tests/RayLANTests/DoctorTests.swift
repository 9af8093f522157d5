import Foundation
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
@testable import RayLANDoctor

/// The doctor's report and checks without a cluster: numbering, JSON shape, lookup by kind, and how the
/// GPU check picks what its summary shows.
@Suite("Doctor's report and checks")
struct DoctorTests {
    @Test("Checks are numbered 1…8 in the order they run, and named as the JSON has always named them")
    func numbering() {
        #expect(DoctorCheck.Kind.allCases.map(\.number) == Array(1...8))
        #expect(
            DoctorCheck.Kind.allCases.map(\.rawValue)
                == ["address", "ports", "dashboard", "authentication", "versions", "nodes", "gpus", "serve"])
        let check = DoctorCheck(.versions, status: .pass, summary: "ok")
        #expect(check.number == 5 && check.name == "versions")
    }

    @Test("A check encodes number, name, status and findings, without a remedy it lacks, and decodes back")
    func json() throws {
        let check = DoctorCheck(.gpus, status: .warn, summary: "CPU-only", details: ["a", "b"], seconds: 1.5)
        let data = try JSONEncoder().encode(check)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["number", "name", "status", "summary", "details", "seconds"])
        #expect(object["number"] as? Int == 7)
        #expect(object["name"] as? String == "gpus")
        #expect(object["status"] as? String == "WARN")
        #expect(try JSONDecoder().decode(DoctorCheck.self, from: data) == check)

        let withRemedy = DoctorCheck(.serve, status: .fail, summary: "down", remedy: "start it")
        let decoded = try JSONDecoder().decode(DoctorCheck.self, from: JSONEncoder().encode(withRemedy))
        #expect(decoded == withRemedy)
        #expect(decoded.remedy == "start it")
    }

    @Test("A check whose name is not a kind does not decode")
    func unknownName() {
        let json = #"{"number": 9, "name": "toaster", "status": "PASS", "summary": "", "details": [], "seconds": 0}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(DoctorCheck.self, from: Data(json.utf8)) }
    }

    @Test("report[kind] finds that kind's check wherever it sits; a report without it gives nil")
    func subscriptByKind() throws {
        let checks = DoctorCheck.Kind.allCases.reversed().map {
            DoctorCheck($0, status: $0 == .nodes ? .fail : .pass, summary: $0.rawValue)
        }
        let report = DoctorReport(address: "h:8265", checks: checks)
        for kind in DoctorCheck.Kind.allCases {
            #expect(report[kind]?.kind == kind)
            #expect(report[kind]?.summary == kind.rawValue)
        }
        #expect(report[.nodes]?.status == .fail)
        #expect(!report.passed)
        let partial = DoctorReport(address: "h:8265", checks: Array(checks.prefix(2)))
        #expect(partial[.address] == nil)
        let decoded = try JSONDecoder().decode(DoctorReport.self, from: JSONEncoder().encode(report))
        #expect(decoded == report)
    }

    static func probe(_ nodes: [String]) throws -> NodeProbe {
        try JSONDecoder().decode(NodeProbe.self, from: Data(#"{"nodes": [\#(nodes.joined(separator: ","))]}"#.utf8))
    }

    /// A node whose GPU torch used: a PASS finding.
    static let workingGPU = #"""
        {"node_id": "a", "ip": "10.0.0.1", "gpus_declared": 1, "gpus_reserved": 1,
         "nvidia_smi": {"found": true, "gpus": [{"name": "RTX 4090", "memory_total_mib": 24564}]},
         "torch": {"installed": true, "version": "2.5", "available": true, "matmul_ok": true}}
        """#
    /// A node that declares a GPU but has no nvidia-smi: a WARN finding.
    static let logicalGPU = #"""
        {"node_id": "b", "ip": "10.0.0.2", "gpus_declared": 1, "nvidia_smi": {"found": false}}
        """#

    @Test("With a problem, the GPU summary names only the problems; the details keep every node")
    func gpuSummaryShowsProblems() throws {
        let doctor = Doctor(Doctor.Configuration())
        let probe = try Self.probe([Self.workingGPU, Self.logicalGPU])
        let check = doctor.checkGPUs(.failure(CancellationError()), probe: .success(probe))
        #expect(check.kind == .gpus)
        #expect(check.status == .warn)
        #expect(check.summary.contains("10.0.0.2") && check.summary.contains("no nvidia-smi"), "\(check.summary)")
        #expect(!check.summary.contains("10.0.0.1"), "\(check.summary)")
        #expect(check.details.count == 2)
        #expect(check.details.contains { $0.hasPrefix("10.0.0.1:") && $0.contains("RTX 4090") }, "\(check.details)")
    }

    @Test("With every GPU usable, the summary names them all")
    func gpuSummaryAllUsable() throws {
        let doctor = Doctor(Doctor.Configuration())
        let check = doctor.checkGPUs(.failure(CancellationError()), probe: .success(try Self.probe([Self.workingGPU])))
        #expect(check.status == .pass)
        #expect(check.summary.hasPrefix("GPUs usable on 1 node(s): 10.0.0.1: RTX 4090"), "\(check.summary)")
    }

    @Test(
        "Only Serve's 503 'Route table is not populated yet' counts as a proxy up without routes",
        arguments: [
            (503, "Route table is not populated yet", true),
            (503, "Service Unavailable", false),
            (200, "success", false),
            (404, "not populated", false),
        ])
    func emptyRouteTable(status: Int, body: String, expected: Bool) {
        let response = RayCluster.Response(status: status, body: Data(body.utf8))
        #expect(Doctor.isEmptyRouteTable(response) == expected)
    }
}
