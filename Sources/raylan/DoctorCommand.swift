import ArgumentParser
import Foundation
import RayLAN
import RayLANDoctor

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract:
            "Check a cluster for every LAN pitfall: address, ports, dashboard binding, authentication, versions, nodes, GPUs, Serve.",
        discussion: """
            Runs eight checks in order and prints PASS, WARN or FAIL with a one-line remedy for each. Checks 5 \
            and 7 run a small job with one task on every node (Ray and Python versions; nvidia-smi and \
            torch.cuda on GPU nodes). A CPU-only cluster is a WARN. With no address, the embedded local cluster \
            is checked (and started when none runs).

            Exit codes: 0 nothing FAILed; \(ExitCodes.checksFailed) a check FAILed; 64 bad input.
            """)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The cluster as you would pass it to other commands (default: RAYLAN_ADDRESS, else the embedded local cluster).",
            valueName: "address"))
    var address: String?
    @Option(name: .long, help: ArgumentHelp("A file with the cluster's token.", valueName: "file")) var tokenFile:
        String?
    @OptionGroup var certificate: TrustOptions
    @Flag(name: .long, help: "Also print each check's details (per port, node, GPU).") var verbose = false
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let tokenFile, !FileManager.default.isReadableFile(atPath: tokenFile) {
            throw ValidationError(
                "Cannot read the token file '\(tokenFile)'. Pass the path of a file that holds the cluster's token.")
        }
    }

    func run() async throws {
        var passed = false
        try await reportingErrors {
            let given = ClusterOptions.addressText(address)
            let local = given == nil ? try await ClusterOptions.embedded().ray : nil
            let token = try local.map { try $0.token() } ?? AuthToken.resolve(tokenFile: tokenFile)
            let doctor = Doctor(
                Doctor.Configuration(
                    address: given, token: token, local: local,
                    code: try? ClusterCode.locate(), pin: try certificate.pin(), trust: certificate.trust))
            let json = output.json
            let verbose = self.verbose
            let report = await doctor.run { check in
                guard !json else { return }
                Self.print(check, verbose: verbose)
                if check.kind == .authentication && (check.status == .pass || check.status == .warn) {
                    Terminal.error("      … checks 5–7 run a small job on every node")
                }
            }
            if json {
                try Terminal.json(report)
            } else {
                let counts = [DoctorCheck.Status.pass, .warn, .fail, .skip].map { status in
                    "\(report.checks.filter { $0.status == status }.count) \(status.rawValue)"
                }
                Terminal.out("")
                Terminal.out("Doctor: \(counts.joined(separator: ", ")) for \(report.address).")
            }
            passed = report.passed
        }
        if !passed { throw ExitCode(ExitCodes.checksFailed) }
    }

    static func print(_ check: DoctorCheck, verbose: Bool) {
        let name = check.name.padding(toLength: 14, withPad: " ", startingAt: 0)
        let took = check.seconds >= 0.5 ? String(format: " (%.1f s)", check.seconds) : ""
        let place = "[\(check.number)/\(DoctorCheck.Kind.allCases.count)]"
        Terminal.out("\(place) \(check.status.rawValue)  \(name) \(check.summary)\(took)")
        if let remedy = check.remedy, check.status == .warn || check.status == .fail {
            Terminal.out("      → \(remedy)")
        }
        if verbose {
            check.details.forEach { Terminal.out("      · \($0)") }
        }
    }
}
