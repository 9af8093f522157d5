import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

extension RayClusterTests.Main {
    @Suite("doctor and a failed deployment")
    struct DoctorServeTests {
        @Test("Check 8 shows Ray's error for a DEPLOY_FAILED application and does not blame the firewall")
        func deployFailedIsNotTheFirewall() async throws {
            let cluster = try requireCluster()
            let name = "doctor-bad-model"
            let failure = await #expect(throws: ServeError.self) {
                try await cluster.withConnection { ray in
                    try await ray.deploy(
                        DetectionDeployment(model: "no-such-doctor-model.pt", name: name),
                        httpPort: cluster.ray.ports.serve)
                }
            }
            #expect(failure?.code == .deployFailed)
            let report = await Doctor(Doctor.Configuration(address: cluster.address.description)).run()
            _ = try? await cluster.withConnection { try await $0.deleteServeApplication(name) }
            let serve = try #require(report[.serve])
            #expect(serve.status == .fail, "\(serve)")
            #expect(serve.summary.contains("'\(name)' is DEPLOY_FAILED"), "\(serve.summary)")
            #expect(
                serve.summary.contains(DetectionTests.missingWeightsText), "Ray's error is missing: \(serve.summary)")
            #expect(serve.remedy?.contains("firewall") == false, "\(serve.remedy ?? "")")
            #expect(report[.ports]?.status != .fail, "\(report[.ports].map(\.summary) ?? "")")
        }
    }
}
