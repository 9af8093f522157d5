import ArgumentParser
import Foundation
import RayLAN

struct JobSubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit a job, upload its working directory, and follow its log until it ends.",
        discussion: """
            Example: raylan job submit --working-dir . --gpus 1 -- python main.py

            The working directory is zipped and uploaded as Ray's SDK does (same gcs://_ray_pkg_….zip URI, \
            .gitignore and .rayignore honoured, .git/.venv/venv/__pycache__ left out, 100 MiB cap), and only \
            when the cluster does not have it yet. Without --no-wait the job's log streams to stdout (stderr \
            with --json) until it ends, without terminal control sequences unless --raw. Ctrl-C asks whether to \
            stop the job (or stops it with --stop-on-interrupt; without a terminal it leaves the job running). \
            The submission id is made before sending (unless --id gives one), so a submission whose answer was \
            lost is sent again without a second job, and Ctrl-C while submitting prints the id to look the job up \
            with 'raylan job status ID'.

            Exit codes: \(ExitCodes.summary)
            """)

    @OptionGroup var cluster: ClusterOptions

    @OptionGroup var runtime: RuntimeOptions

    @Option(
        name: .long, help: ArgumentHelp("Your own submission id (default: a new raysubmit_… id).", valueName: "id"))
    var id: String?

    @Flag(name: .long, help: "Print the submission id and return at once.") var noWait = false
    @Flag(name: .long, help: "On Ctrl-C, stop the job without asking.") var stopOnInterrupt = false
    @OptionGroup var log: JobLogOptions
    @OptionGroup var output: OutputOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run, after '--'.", valueName: "entrypoint"))
    var entrypoint: [String] = []

    /// The spec, checked without touching the network (every bad input is a usage error, exit 64).
    func makeSpec() throws -> JobSpec {
        guard !entrypoint.isEmpty, !entrypoint.joined().trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError(
                "The entrypoint is missing. Put the command after '--', e.g. 'raylan job submit -- python main.py'.")
        }
        var spec = JobSpec(entrypoint: Self.shellJoin(entrypoint), submissionID: id)
        spec.resources = try runtime.resources()
        spec.environment = try runtime.environment()
        spec.pipPackages = runtime.pip
        spec.packageOptions = runtime.packageOptions
        spec.workingDirectory = try runtime.workingDirectory()
        if let id, id.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--id is empty. Give an id or leave --id out.")
        }
        try spec.validate()
        return spec
    }

    func validate() throws {
        _ = try makeSpec()
    }

    func run() async throws {
        try await reportingErrors {
            var spec = try makeSpec()
            spec.submissionID = spec.submissionID ?? JobSpec.makeSubmissionID()
            try await Connection.with(cluster) { cluster in
                try await warnAboutMissingResources(spec, cluster)
                let submission = try await submit(spec, cluster)
                let id = submission.submissionID
                if let upload = submission.workingDirectory {
                    Terminal.error(
                        upload.uploaded
                            ? "Uploaded \(spec.workingDirectory?.path ?? "") as \(upload.uri) (\(Formatting.bytes(Double(upload.bytes))))."
                            : "The cluster already has \(spec.workingDirectory?.path ?? "") as \(upload.uri); nothing uploaded."
                    )
                }
                if noWait {
                    if output.json { try Terminal.json(submission) } else { Terminal.out(id) }
                    return
                }
                Terminal.error("Submitted job \(id); following its log (Ctrl-C to stop following).")
                let info = try await follow(id, cluster)
                try finish(info)
            }
        }
    }

    /// Submits `spec` (which has its id); on Ctrl-C stops waiting and prints the id, since the job may have
    /// reached Ray already.
    func submit(_ spec: JobSpec, _ cluster: RayCluster) async throws -> JobSubmission {
        let id = spec.submissionID ?? ""
        let (result, pressed) = await Interrupt.shared.run { try await cluster.submit(spec) }
        guard pressed else { return try result.get() }
        if case .success = result {
            Terminal.error(
                "\nSubmitted job \(id); not following it. Follow it with 'raylan job logs \(id) --follow'; "
                    + "stop it with 'raylan job stop \(id)'.")
        } else {
            Terminal.error(
                "\nInterrupted while submitting job \(id); it may have reached the cluster. "
                    + "Look it up with 'raylan job status \(id)'.")
        }
        throw ExitCode(ExitCodes.interrupted)
    }

    /// Streams the log until the job ends; on Ctrl-C asks whether to stop the job.
    func follow(_ id: String, _ cluster: RayCluster) async throws -> JobInfo {
        let json = output.json
        let log = log
        let (result, pressed) = await Interrupt.shared.run {
            for try await line in cluster.logLines(of: id, follow: true) {
                let printable = log.printable(line)
                if json { Terminal.error(printable) } else { Terminal.out(printable) }
            }
        }
        if pressed {
            if stopOnInterrupt || Terminal.confirm("\nStop job \(id)?") {
                try await cluster.stopJob(id)
                let info = try await cluster.waitForCompletion(of: id, timeout: .seconds(60))
                Terminal.error("Stopped job \(id) (\(info.status)).")
            } else {
                Terminal.error(
                    "\nJob \(id) keeps running. Follow it with 'raylan job logs \(id) --follow'; stop it with 'raylan job stop \(id)'."
                )
            }
            throw ExitCode(ExitCodes.interrupted)
        }
        try result.get()
        return try await cluster.waitForCompletion(of: id)
    }

    /// Prints the outcome and exits with the documented code.
    func finish(_ info: JobInfo) throws {
        if output.json { try Terminal.json(info) }
        let seconds = info.startTime.flatMap { start in info.endTime.map { Double($0 - start) / 1000 } }
        let took = seconds.map { String(format: " in %.1f s", $0) } ?? ""
        switch info.status {
        case .succeeded:
            Terminal.error("Job \(info.id) SUCCEEDED\(took).")
        case .stopped:
            Terminal.error("Job \(info.id) was STOPPED\(took).")
            throw ExitCode(ExitCodes.jobStopped)
        default:
            let type = info.errorType.map { " [\($0)]" } ?? ""
            Terminal.error("Job \(info.id) \(info.status)\(type)\(took): \(info.message ?? "no message from Ray")")
            throw ExitCode(ExitCodes.jobFailed)
        }
    }

    /// Says so up front when no node offers what the job asks for (Ray would keep it PENDING).
    func warnAboutMissingResources(_ spec: JobSpec, _ cluster: RayCluster) async throws {
        var wanted: [(String, Double)] = spec.resources.custom.map { ($0.key, $0.value) }
        if let gpus = spec.resources.gpus, gpus > 0 { wanted.append(("GPU", gpus)) }
        if let cpus = spec.resources.cpus, cpus > 0 { wanted.append(("CPU", cpus)) }
        guard !wanted.isEmpty, let nodes = try? await cluster.nodes() else { return }
        for (name, amount) in wanted {
            let best =
                nodes.filter(\.isAlive).map { node -> Double in
                    switch name {
                    case "GPU": return node.gpus.total
                    case "CPU": return node.cpus.total
                    default: return node.customResources[name]?.total ?? 0
                    }
                }.max() ?? 0
            if best < amount {
                Terminal.error(
                    "Warning: no node offers \(Terminal.number(amount)) \(name) (the most any node has is \(Terminal.number(best))); "
                        + "the job will wait until such a node joins. Check with 'raylan status'.")
            }
        }
    }

    /// Joins arguments into one shell command, quoting where needed; a single argument is taken as is.
    static func shellJoin(_ arguments: [String]) -> String {
        if arguments.count == 1 { return arguments[0] }
        let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=:,+@%"))
        return arguments.map { argument in
            if !argument.isEmpty && argument.unicodeScalars.allSatisfy({ safe.contains($0) }) { return argument }
            return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
