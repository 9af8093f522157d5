import ArgumentParser
import Foundation
import RayLAN

/// The exit codes of the gateway's commands.
private let gatewayExitCodes = """
    0 success; 3 the remote call failed (its error, and a Python traceback, on stderr); 1 other failure; \
    \(ExitCodes.common)
    """

/// Connects, deploys the gateway when needed, uploads the working directory, runs `body` with the gateway.
/// Ctrl-C cancels `body` (and with it the remote call) and exits 130.
private func withGateway(
    _ options: ClusterOptions, runtime: RuntimeOptions? = nil,
    _ body: @escaping @Sendable (Gateway) async throws -> Void
) async throws {
    try await reportingErrors {
        let directory = try runtime?.workingDirectory()
        let environment = try runtime?.environment() ?? [:]
        try await Connection.with(options) { (connection: Connection) in
            let gateway = try await connection.cluster.gateway(
                workingDirectory: directory, packageOptions: runtime?.packageOptions ?? PackageOptions(),
                pip: runtime?.pip ?? [], environment: environment, httpPort: connection.defaultServePort,
                progress: { Terminal.error($0) })
            do {
                try await Interrupt.shared.cancelling(saying: "Interrupted; the remote call was cancelled.") {
                    [gateway] in try await body(gateway)
                }
            } catch let error as GatewayError where error.isRemoteFailure && !error.isUsageError {
                // The traceback and message are the remote code's text: no terminal control sequences pass.
                if let remote = error.remote, !remote.traceback.isEmpty {
                    Terminal.error(TerminalText.strippingControls(from: remote.traceback))
                }
                Terminal.error(TerminalText.strippingControls(from: "Error: \(error)"))
                throw ExitCode(ExitCodes.jobFailed)
            }
        }
    }
}

/// Prints a value: JSON on stdout; bytes to `file`, else as `{"$bytes": base64}` (raw with `raw` when stdout is
/// not a terminal).
private func printValue(_ value: RemoteValue, to file: String?, raw: Bool = false) throws {
    switch value {
    case .bytes(let data) where file != nil || (raw && !Terminal.stdoutIsTerminal):
        if let file {
            try data.write(to: URL(fileURLWithPath: file))
            Terminal.error("Wrote \(Formatting.bytes(Double(data.count))) to \(file).")
        } else {
            FileHandle.standardOutput.write(data)
        }
    default:
        try Terminal.json(value.json)
    }
}

/// Tells a terminal that a call still runs, once per round of waiting.
@Sendable private func stillRunning(_ task: RemoteTask) {
    guard Terminal.stderrIsTerminal else { return }
    let seconds = Date().timeIntervalSince1970 - task.submitted
    Terminal.error("\(task.function) still running (\(Int(seconds)) s; Ctrl-C cancels it)…")
}

struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a Python function on the cluster and print its result as JSON.",
        discussion: """
            Example: raylan call --working-dir . --gpus 1 tasks:gpu_task
                     raylan call --working-dir . tasks:length @photo.jpg
                     raylan call --working-dir . tasks:length ref:1a2b3c4d-…

            MODULE:FUNCTION names a function in the working directory (uploaded as Ray's SDK does, only when \
            the cluster lacks it) or in the cluster's Python. Each ARG is JSON (quote strings: '"text"'), \
            @FILE for the file's bytes, or ref:ID for an object on the cluster ('raylan put'), resolved there. \
            The call runs as a Ray task with the resources asked for; a request no node could ever satisfy \
            (--gpus 1 on a CPU-only cluster) is refused at once. RayLAN's gateway (a Ray Serve application \
            with a key) is deployed on first use. Ctrl-C cancels the remote call. With --no-wait the task id is \
            printed and the result stays on the cluster: 'raylan task result ID', or pass ref:ID to other calls.

            Exit codes: \(gatewayExitCodes)
            """)

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: ArgumentHelp("Cancel the call after this many seconds.", valueName: "s"))
    var timeout: Double?

    @Option(name: .long, help: ArgumentHelp("Ray's retries after a worker or node failure.", valueName: "n"))
    var maxRetries: Int?

    @Option(name: [.short, .long], help: ArgumentHelp("Write a bytes result to this file.", valueName: "file"))
    var output: String?

    @Flag(name: .long, help: "Print the task id and return at once; the result stays on the cluster.")
    var noWait = false

    @OptionGroup var format: OutputOptions

    @Argument(help: ArgumentHelp("The function, as module:function.", valueName: "module:function"))
    var function: String

    @Argument(help: ArgumentHelp("Its arguments: JSON, @FILE or ref:ID.", valueName: "arg"))
    var arguments: [String] = []

    func validate() throws {
        guard function.split(separator: ":", omittingEmptySubsequences: false).count == 2,
            !function.hasPrefix(":"), !function.hasSuffix(":")
        else {
            throw ValidationError("'\(function)' is not module:function. Example: raylan call tasks:gpu_task.")
        }
        try OptionCheck.positive(timeout, "--timeout", unit: "seconds")
        for argument in arguments { _ = try parse(argument) }
    }

    func parse(_ argument: String) throws -> RemoteArgument {
        do {
            return try RemoteArgument(parsing: argument)
        } catch let error as GatewayError {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        let resources = try runtime.resources()
        let arguments = try arguments.map(parse)
        let timeout = timeout.map { Duration.milliseconds(Int64($0 * 1000)) }
        try await withGateway(cluster, runtime: runtime) { [self] gateway in
            if noWait {
                let task = try await gateway.submit(
                    function, arguments: arguments, resources: resources, timeout: timeout, maxRetries: maxRetries)
                if format.json { try Terminal.json(TaskView(task)) } else { Terminal.out(task.id) }
                return
            }
            let value = try await gateway.call(
                function, arguments: arguments, resources: resources, timeout: timeout, maxRetries: maxRetries,
                waiting: stillRunning)
            try printValue(value, to: output)
        }
    }
}

struct PutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Store a file's bytes on the cluster and print its ref.",
        discussion: """
            Example: ref=$(raylan put photo.jpg); raylan call --working-dir . tasks:length $ref

            The object stays on the cluster until 'raylan free'; pass it to calls as ref:ID and it crosses the \
            LAN once, however often it is used.

            Exit codes: \(gatewayExitCodes)
            """)

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var format: OutputOptions
    @Argument(help: ArgumentHelp("The file to store.", valueName: "file")) var file: String

    func validate() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ValidationError("'\(file)' is not a readable file. Pass the file whose bytes to store.")
        }
    }

    func run() async throws {
        try await withGateway(cluster) { [self] gateway in
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: file), options: .mappedIfSafe)
            } catch {
                throw GatewayError(.invalidArgument, "Cannot read '\(file)': \(error.localizedDescription)")
            }
            if Terminal.stderrIsTerminal && data.count > 8 << 20 {
                Terminal.error("Sending \(Formatting.bytes(Double(data.count)))…")
            }
            let ref = try await gateway.put(data)
            if format.json {
                try Terminal.json(["ref": ref.description, "id": ref.id, "size": String(data.count)])
            } else {
                Terminal.out(ref.description)
            }
        }
    }
}

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Fetch an object (a put, or a call's result) from the cluster.",
        discussion: """
            Bytes go to --output, or raw to stdout when it is not a terminal; JSON values are printed. A result \
            whose call still runs is waited for.

            Exit codes: \(gatewayExitCodes)
            """)

    @OptionGroup var cluster: ClusterOptions
    @Option(name: [.short, .long], help: ArgumentHelp("Write bytes to this file.", valueName: "file"))
    var output: String?
    @Argument(help: ArgumentHelp("The object, as ref:ID or ID.", valueName: "ref")) var ref: String

    func validate() throws {
        guard ObjectRef(parsing: ref) != nil else {
            throw ValidationError(
                "'\(ref)' is not an object ref. Pass ref:ID as 'raylan put' or 'raylan objects' printed it.")
        }
    }

    func run() async throws {
        let ref = ObjectRef(parsing: ref)!
        try await withGateway(cluster) { [self] gateway in
            try printValue(try await gateway.value(of: ref), to: output, raw: true)
        }
    }
}

struct FreeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "free", abstract: "Free objects on the cluster (puts, or kept results).",
        discussion: "Exit codes: \(gatewayExitCodes)")

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: ArgumentHelp("The objects, as ref:ID or ID.", valueName: "ref")) var refs: [String] = []

    func validate() throws {
        guard !refs.isEmpty else { throw ValidationError("Name the objects to free, e.g. 'raylan free ref:ID'.") }
        for ref in refs where ObjectRef(parsing: ref) == nil {
            throw ValidationError("'\(ref)' is not an object ref. Pass ref:ID as 'raylan objects' prints it.")
        }
    }

    func run() async throws {
        let refs = refs.compactMap(ObjectRef.init(parsing:))
        try await withGateway(cluster) { gateway in
            for ref in refs {
                try await gateway.free(ref)
                Terminal.error("Freed \(ref).")
            }
        }
    }
}

struct ObjectsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objects", abstract: "List the objects the gateway holds, with their sizes.",
        discussion: "Exit codes: \(gatewayExitCodes)")

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var format: OutputOptions

    func run() async throws {
        try await withGateway(cluster) { [self] gateway in
            let objects = try await gateway.objects()
            if format.json { return try Terminal.json(objects) }
            let rows = objects.map { object in
                [
                    object.ref.description, object.kind, object.size.map { Formatting.bytes(Double($0)) } ?? "-",
                    object.function.map { "\($0) (\(object.state?.rawValue ?? ""))" } ?? "",
                ]
            }
            for line in Terminal.table(["REF", "KIND", "SIZE", "FROM"], rows) { Terminal.out(line) }
            let total = objects.reduce(0) { $0 + ($1.size ?? 0) }
            Terminal.error("\(objects.count) objects, \(Formatting.bytes(Double(total))).")
        }
    }
}

/// A task as `--json` prints it.
struct TaskView: Encodable {
    var id: String
    var function: String
    var state: String
    var error: String?
    var traceback: String?

    init(_ task: RemoteTask) {
        id = task.id
        function = task.function
        state = task.state.rawValue
        error = task.error?.description
        traceback = task.error?.remote?.traceback
    }
}

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task", abstract: "Follow calls made with --no-wait: status, result, cancel, list.",
        subcommands: [Status.self, Result.self, Cancel.self, List.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where a task stands.", discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var format: OutputOptions
        @Argument(help: ArgumentHelp("The task id.", valueName: "id")) var id: String

        func run() async throws {
            try await withGateway(cluster) { [self] gateway in
                let task = try await gateway.status(of: id)
                if format.json { return try Terminal.json(TaskView(task)) }
                Terminal.out("\(task.id) \(task.function) \(task.state)")
                if let error = task.error { Terminal.out(error.description) }
            }
        }
    }

    struct Result: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Wait for a task's result and print it (it stays on the cluster until 'raylan free').",
            discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @Option(name: [.short, .long], help: ArgumentHelp("Write a bytes result to this file.", valueName: "file"))
        var output: String?
        @Argument(help: ArgumentHelp("The task id.", valueName: "id")) var id: String

        func run() async throws {
            try await withGateway(cluster) { [self] gateway in
                try printValue(try await gateway.result(of: id, waiting: stillRunning), to: output)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a task (its worker is stopped, its CPUs and GPUs freed).",
            discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var format: OutputOptions
        @Argument(help: ArgumentHelp("The task id.", valueName: "id")) var id: String

        func run() async throws {
            try await withGateway(cluster) { [self] gateway in
                let task = try await gateway.cancel(id)
                if format.json { return try Terminal.json(TaskView(task)) }
                Terminal.out("\(task.id) \(task.state)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The tasks the gateway holds.", discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var format: OutputOptions

        func run() async throws {
            try await withGateway(cluster) { [self] gateway in
                let tasks = try await gateway.tasks()
                if format.json { return try Terminal.json(tasks.map(TaskView.init)) }
                let rows = tasks.map { [$0.id, $0.function, $0.state.rawValue] }
                for line in Terminal.table(["ID", "FUNCTION", "STATE"], rows) { Terminal.out(line) }
            }
        }
    }
}

struct ActorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actor", abstract: "Create Python actors on the cluster, call their methods, kill them.",
        discussion: """
            Example: raylan actor create --working-dir . --gpus 1 --name yolo detector:Detector '"yolo11s.pt"'
                     raylan actor call yolo detect ref:ID
                     raylan actor kill yolo
            """,
        subcommands: [Create.self, Call.self, Kill.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an instance of module:Class and print its id once its constructor has run.",
            discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var runtime: RuntimeOptions
        @Option(name: .long, help: ArgumentHelp("A unique name to find it by.", valueName: "name")) var name: String?
        @OptionGroup var format: OutputOptions
        @Argument(help: ArgumentHelp("The class, as module:Class.", valueName: "module:class")) var className: String
        @Argument(help: ArgumentHelp("Its constructor's arguments: JSON, @FILE or ref:ID.", valueName: "arg"))
        var arguments: [String] = []

        func run() async throws {
            let resources = try runtime.resources()
            let arguments = try arguments.map { try RemoteArgument(parsing: $0) }
            try await withGateway(cluster, runtime: runtime) { [self] gateway in
                let actor = try await gateway.actor(
                    className, arguments: arguments, name: name, resources: resources)
                if format.json {
                    try Terminal.json(["id": actor.info.id, "name": actor.info.name ?? "", "class": className])
                } else {
                    Terminal.out(actor.info.name ?? actor.info.id)
                }
            }
        }
    }

    struct Call: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call a method of an actor (by name or id) and print its result as JSON.",
            discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @Option(name: .long, help: ArgumentHelp("Give up on the call after this many seconds.", valueName: "s"))
        var timeout: Double?
        @Option(name: [.short, .long], help: ArgumentHelp("Write a bytes result to this file.", valueName: "file"))
        var output: String?
        @Argument(help: ArgumentHelp("The actor's name or id.", valueName: "actor")) var actor: String
        @Argument(help: ArgumentHelp("The method.", valueName: "method")) var method: String
        @Argument(help: ArgumentHelp("Its arguments: JSON, @FILE or ref:ID.", valueName: "arg"))
        var arguments: [String] = []

        func validate() throws { try OptionCheck.positive(timeout, "--timeout", unit: "seconds") }

        func run() async throws {
            let arguments = try arguments.map { try RemoteArgument(parsing: $0) }
            let timeout = timeout.map { Duration.milliseconds(Int64($0 * 1000)) }
            try await withGateway(cluster) { [self] gateway in
                let value = try await gateway.callActor(
                    actor, method: method, arguments: arguments, timeout: timeout, waiting: stillRunning)
                try printValue(value, to: output)
            }
        }
    }

    struct Kill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Kill an actor (by name or id); its resources are freed.",
            discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @Argument(help: ArgumentHelp("The actor's name or id.", valueName: "actor")) var actor: String

        func run() async throws {
            try await withGateway(cluster) { [self] gateway in
                try await gateway.kill(actor: actor)
                Terminal.error("Killed \(actor).")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The actors the gateway created.", discussion: "Exit codes: \(gatewayExitCodes)")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var format: OutputOptions

        func run() async throws {
            try await withGateway(cluster) { [self] gateway in
                let actors = try await gateway.actors()
                if format.json {
                    return try Terminal.json(
                        actors.map {
                            ["id": $0.id, "class": $0.className, "name": $0.name ?? "", "state": $0.state.rawValue]
                        })
                }
                let rows = actors.map { [$0.name ?? "-", $0.id, $0.className, $0.state.rawValue] }
                for line in Terminal.table(["NAME", "ID", "CLASS", "STATE"], rows) { Terminal.out(line) }
            }
        }
    }
}

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "RayLAN's gateway for remote calls: its status, or remove it.",
        subcommands: [Status.self, Down.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy the gateway if needed and print where it answers and what its owner holds.")
        @OptionGroup var cluster: ClusterOptions

        func run() async throws {
            try await withGateway(cluster) { gateway in
                Terminal.out(
                    "Gateway at \(gateway.endpoint) (\(gateway.endpoint.key == nil ? "open" : "needs its key"))")
                try Terminal.json(try await gateway.info())
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End the gateway's owner (every object, result and actor it holds) and remove the gateway.")
        @OptionGroup var cluster: ClusterOptions

        func run() async throws {
            try await reportingErrors {
                try await Connection.with(cluster) { (cluster: RayCluster) in
                    let removed = try await cluster.removeGateway()
                    Terminal.error(removed ? "Removed the gateway." : "No gateway was deployed.")
                }
            }
        }
    }
}
