import Foundation
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

@Suite("Ray versions and request gating")
struct RayVersionTests {
    @Test("Parsing and ordering")
    func parsing() throws {
        #expect(RayVersion("2.60.0") == RayVersion(2, 60, 0))
        #expect(RayVersion("2.45") == RayVersion(2, 45, 0))
        #expect(RayVersion("2.61.0.dev0") == RayVersion(2, 61, 0))
        #expect(RayVersion("nonsense") == nil)
        #expect(try #require(RayVersion("2.9.3")) < RayVersion(2, 45, 0))
        #expect(RayVersion(2, 45, 0) < RayVersion(2, 60, 0))
    }

    @Test("Supported range is 2.45.0 to 2.60.0")
    func range() {
        #expect(!RayVersion(2, 44, 9).isSupported)
        #expect(RayVersion(2, 45, 0).isSupported)
        #expect(!RayVersion(2, 60, 0).isNewerThanTested)
        #expect(RayVersion(2, 61, 0).isNewerThanTested)
        #expect(!RayVersion(2, 45, 0).supportsTokenAuthentication)
        #expect(RayVersion(2, 52, 0).supportsTokenAuthentication)
        #expect(!RayVersion(2, 45, 0).supportsEntrypointLabelSelector)
    }

    @Test("The submit body carries only set fields, memory only where Ray knows it")
    func submitBody() throws {
        var spec = JobSpec(entrypoint: "python main.py", submissionID: "my-id")
        spec.resources = .init(cpus: 1, gpus: 0.5, memoryBytes: 1_000_000, custom: ["special": 1])
        spec.environment = ["FOO": "bar"]
        spec.pipPackages = ["requests"]
        let new = RayCluster.submitBody(
            spec, workingDirectoryURI: "gcs://_ray_pkg_0.zip", version: RayVersion(2, 60, 0))
        #expect(new["entrypoint"] as? String == "python main.py")
        #expect(new["submission_id"] as? String == "my-id")
        #expect(new["entrypoint_num_gpus"] as? Double == 0.5)
        #expect(new["entrypoint_memory"] as? Int == 1_000_000)
        #expect((new["entrypoint_resources"] as? [String: Double])?["special"] == 1)
        let env = try #require(new["runtime_env"] as? [String: Any])
        #expect(env["working_dir"] as? String == "gcs://_ray_pkg_0.zip")
        #expect((env["env_vars"] as? [String: String])?["FOO"] == "bar")
        #expect(env["pip"] as? [String] == ["requests"])
        #expect(new["entrypoint_label_selector"] == nil)

        let old = RayCluster.submitBody(spec, workingDirectoryURI: nil, version: RayVersion(2, 7, 0))
        #expect(old["entrypoint_memory"] == nil)

        let bare = RayCluster.submitBody(
            JobSpec(entrypoint: "echo hi"), workingDirectoryURI: nil, version: RayVersion(2, 45, 0))
        #expect(Set(bare.keys) == ["entrypoint"])
    }

    @Test(
        "Invalid specs are refused before any traffic",
        arguments: [
            JobSpec(entrypoint: "  "),
            JobSpec(entrypoint: "x", resources: .init(gpus: -1)),
            JobSpec(entrypoint: "x", resources: .init(cpus: .nan)),
            JobSpec(entrypoint: "x", resources: .init(memoryBytes: -5)),
            JobSpec(entrypoint: "x", resources: .init(custom: ["": 1])),
            JobSpec(entrypoint: "x", environment: ["": "v"]),
        ])
    func invalidSpecs(spec: JobSpec) throws {
        let error = try #require(throws: JobError.self) { try spec.validate() }
        #expect(error.code == .invalidSpec)
        #expect(error.isUsageError)
    }
}
