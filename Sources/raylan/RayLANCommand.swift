import ArgumentParser
import Foundation
import RayLAN

@main
struct RayLANCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raylan",
        abstract: "Use the GPUs of a Ray cluster on your LAN from this machine, over Ray's HTTP interfaces.",
        discussion: """
            The cluster is the one at --address, else RAYLAN_ADDRESS, else a private local Ray that RayLAN \
            starts on this machine and keeps running until 'raylan down'. Addresses: HOST, HOST:PORT, \
            https://HOST:PORT or http://HOST:PORT of the Ray dashboard (port 8265 by default); a HOST beyond \
            loopback is reached over TLS, its certificate pinned by --fingerprint (as 'raylan up --head' prints \
            it) or by the pin recorded at the first connection (~/.raylan/known_hosts). The token for Ray's token \
            authentication comes from --token-file, else RAY_AUTH_TOKEN, else ~/.ray/auth_token.

            Exit codes: \(ExitCodes.summary)
            """,
        version: RayLANVersion.current,
        subcommands: [
            StatusCommand.self, JobCommand.self, ServeCommand.self, DetectCommand.self, ViewCommand.self,
            CallCommand.self, PutCommand.self, GetCommand.self, ObjectsCommand.self, FreeCommand.self,
            ActorCommand.self, TaskCommand.self, GatewayCommand.self, BenchCommand.self, UpCommand.self,
            DownCommand.self, DoctorCommand.self, TLSFrontCommand.self,
        ]
    )

    /// Like ArgumentParser's own `main()`, but a usage error is one line (`Error: …`), exit 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // An ExitCode(64) was thrown after its message was printed (a library's usage error): exit with it.
            if !(error is ExitCode), exitCode(for: error) == .validationFailure {
                let message = message(for: error).split(separator: "\n").joined(separator: " ")
                Terminal.error("Error: \(message)")
                Foundation.exit(ExitCodes.usage)
            }
            exit(withError: error)
        }
    }
}
