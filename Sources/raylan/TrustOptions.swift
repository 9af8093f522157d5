import ArgumentParser
import Foundation
import RayLAN

/// `--fingerprint`, `--trust-on-first-use`: which certificate of a head to trust. Shared by every command that
/// reaches a cluster (through ``ClusterOptions``), `raylan doctor` and `raylan up --join`.
struct TrustOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The head's certificate fingerprint, as 'raylan up --head' printed it (sha256:…).",
            discussion:
                "Recorded in ~/.raylan/known_hosts: later commands need it no more. Precedence: --fingerprint > RAYLAN_FINGERPRINT.",
            valueName: "sha256:hex"))
    var fingerprint: String?

    @Flag(
        name: .long,
        help: "Trust and record a certificate that is neither pinned nor known yet (as SSH does at a first connection)."
    )
    var trustOnFirstUse = false

    func validate() throws {
        _ = try pin()
    }

    /// `--fingerprint`, else `RAYLAN_FINGERPRINT`, parsed.
    func pin() throws -> CertificatePin? {
        guard
            let text = fingerprint
                ?? ProcessInfo.processInfo.environment["RAYLAN_FINGERPRINT"].flatMap({ $0.isEmpty ? nil : $0 })
        else { return nil }
        do {
            return try CertificatePin(parsing: text)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Which certificates to trust beyond a pin.
    var trust: RayCluster.Configuration.Trust { .init(onFirstUse: trustOnFirstUse) }
}
