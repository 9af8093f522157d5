import ArgumentParser
import Foundation
import RayLAN

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Run and manage Ray jobs (Ray's Jobs API).",
        subcommands: [
            JobSubmitCommand.self, JobListCommand.self, JobStatusCommand.self, JobLogsCommand.self,
            JobStopCommand.self, JobDeleteCommand.self,
        ])
}

struct JobListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the cluster's jobs, oldest first.",
        discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { cluster in
                let jobs = try await cluster.jobs()
                if output.json {
                    try Terminal.json(jobs)
                } else if jobs.isEmpty {
                    Terminal.out("No jobs.")
                } else {
                    Self.table(jobs).forEach(Terminal.out)
                }
            }
        }
    }

    static func table(_ jobs: [JobInfo]) -> [String] {
        let formatter = ISO8601DateFormatter()
        let rows = jobs.map { job -> [String] in
            [
                job.id, job.status.rawValue,
                job.startTime.map { formatter.string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? "",
                String((job.entrypoint ?? "").prefix(60)),
            ]
        }
        return Terminal.table(["ID", "STATUS", "STARTED", "ENTRYPOINT"], rows)
    }
}

/// The id argument and options that `status`, `logs`, `stop` and `delete` share.
struct JobIDOptions: ParsableArguments {
    @Argument(help: "The job's submission id (or Ray job id).") var id: String
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if id.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("The job id is empty. Pass an id from 'raylan job list'.")
        }
    }
}

/// `--raw`, for the commands that print a job's log.
struct JobLogOptions: ParsableArguments {
    @Flag(
        name: .long,
        help:
            "Print the log as the job wrote it, terminal control sequences included (a job could then rewrite your terminal or set its title). Default: they are removed, and a carriage return starts a new line."
    )
    var raw = false

    /// `line` as it is printed: without terminal controls unless `--raw`.
    func printable(_ line: String) -> String {
        raw ? line : TerminalText.strippingControls(from: line)
    }
}

struct JobStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show one job's state, message and error type.",
        discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var options: JobIDOptions

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(options.cluster) { cluster in
                let job = try await cluster.job(options.id)
                if options.output.json {
                    try Terminal.json(job)
                } else {
                    Terminal.out("\(job.id): \(job.status)")
                    if let entrypoint = job.entrypoint { Terminal.out("  entrypoint: \(entrypoint)") }
                    if let message = job.message, !message.isEmpty { Terminal.out("  message: \(message)") }
                    if let errorType = job.errorType { Terminal.out("  error type: \(errorType)") }
                    if let node = job.driverInfo?.nodeIPAddress { Terminal.out("  driver node: \(node)") }
                }
            }
        }
    }
}

struct JobLogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's log; with --follow, until the job ends.",
        discussion: """
            Terminal control sequences in the log (colours, cursor moves, window titles) are removed and a carriage \
            return starts a new line, so that a job cannot rewrite your terminal; --raw prints the log as written.

            Exit codes: \(ExitCodes.summary)
            """)

    @OptionGroup var options: JobIDOptions
    @Flag(name: .shortAndLong, help: "Keep printing new lines until the job finishes.") var follow = false
    @OptionGroup var log: JobLogOptions

    struct Result: Encodable {
        var id: String
        var lines: [String]
    }

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(options.cluster) { cluster in
                _ = try await cluster.job(options.id)  // a clear error for an unknown id
                var collected: [String] = []
                for try await line in cluster.logLines(of: options.id, follow: follow) {
                    let printable = log.printable(line)
                    if options.output.json {
                        // One element per printed line (a carriage return made a new one).
                        collected += printable.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                    } else {
                        Terminal.out(printable)
                    }
                }
                if options.output.json { try Terminal.json(Result(id: options.id, lines: collected)) }
            }
        }
    }
}

struct JobStopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a running job.", discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var options: JobIDOptions

    struct Result: Encodable {
        var id: String
        var stopped: Bool
    }

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(options.cluster) { cluster in
                let stopped = try await cluster.stopJob(options.id)
                if options.output.json {
                    try Terminal.json(Result(id: options.id, stopped: stopped))
                } else {
                    Terminal.out(stopped ? "Stopping job \(options.id)." : "Job \(options.id) had already finished.")
                }
            }
        }
    }
}

struct JobDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a finished job's record and log.",
        discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var options: JobIDOptions

    struct Result: Encodable {
        var id: String
        var deleted: Bool
    }

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(options.cluster) { cluster in
                let deleted = try await cluster.deleteJob(options.id)
                if options.output.json {
                    try Terminal.json(Result(id: options.id, deleted: deleted))
                } else {
                    Terminal.out(deleted ? "Deleted job \(options.id)." : "Job \(options.id) was not deleted.")
                }
            }
        }
    }
}
