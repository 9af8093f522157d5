import Foundation

/// What to run as a Ray job: the entrypoint command, its working directory and its resources.
///
/// ```swift
/// var spec = JobSpec(entrypoint: "python train.py")
/// spec.workingDirectory = URL(fileURLWithPath: "./project")
/// spec.resources.gpus = 1
/// let job = try await cluster.submit(spec)
/// ```
public struct JobSpec: Sendable, Hashable {
    /// Resources the entrypoint (the driver) reserves; Ray places it on a node that has them. With 1 GPU on a
    /// one-GPU host, tasks that also ask for a GPU wait forever: request GPUs in the job's tasks instead where the
    /// job starts them.
    public typealias Resources = ResourceRequest

    /// The shell command Ray runs, e.g. `python main.py --epochs 3`.
    public var entrypoint: String
    /// Your own id (`submission_id`). When nil, ``RayCluster/submit(_:)`` makes one of Ray's own form
    /// (``makeSubmissionID()``) before sending, so that a POST whose answer was lost can be sent again without
    /// a second job. Default nil.
    public var submissionID: String?
    /// A local folder uploaded as the job's working directory. Default nil.
    public var workingDirectory: URL?
    /// What goes into the working-directory package. Default ``PackageOptions/init(excludes:defaultExcludes:honorsGitignore:maxPackageBytes:)``.
    public var packageOptions: PackageOptions
    /// Resources reserved for the entrypoint. Default none.
    public var resources: Resources
    /// Environment variables for the job (runtime_env `env_vars`). Default none.
    public var environment: [String: String]
    /// pip packages installed for the job (runtime_env `pip`). Default none.
    public var pipPackages: [String]
    /// String metadata shown by Ray. Default none.
    public var metadata: [String: String]

    public init(
        entrypoint: String, submissionID: String? = nil, workingDirectory: URL? = nil,
        packageOptions: PackageOptions = PackageOptions(), resources: Resources = Resources(),
        environment: [String: String] = [:], pipPackages: [String] = [], metadata: [String: String] = [:]
    ) {
        self.entrypoint = entrypoint
        self.submissionID = submissionID
        self.workingDirectory = workingDirectory
        self.packageOptions = packageOptions
        self.resources = resources
        self.environment = environment
        self.pipPackages = pipPackages
        self.metadata = metadata
    }

    /// A new submission id of the form Ray itself makes: `raysubmit_` and 16 random letters and digits, the
    /// easily confused `I`, `l`, `o`, `O` and `0` left out.
    public static func makeSubmissionID() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz123456789")
        var generator = SystemRandomNumberGenerator()
        return "raysubmit_" + String((0..<16).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// Checks the spec without touching the network.
    ///
    /// - Throws: ``JobError`` (`invalidSpec`) naming the bad field and what to do.
    public func validate() throws {
        if entrypoint.trimmingCharacters(in: .whitespaces).isEmpty {
            throw JobError.invalidSpec(
                "The entrypoint is empty", remedy: "Give the command to run, e.g. 'python main.py'.")
        }
        if let problem = resources.problem {
            throw JobError.invalidSpec(problem.message, remedy: problem.remedy)
        }
        for name in environment.keys where name.isEmpty || name.contains("=") {
            throw JobError.invalidSpec("The environment variable name '\(name)' is invalid", remedy: "Use K=V.")
        }
    }
}
