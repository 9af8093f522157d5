/// What goes into a working-directory package, with the defaults of Ray 2.60's Python SDK.
public struct PackageOptions: Sendable, Hashable {
    /// Ray's upload cap: the dashboard refuses bodies of 100 MiB or more.
    public static let rayUploadCap = 100 << 20

    /// Extra gitwildmatch patterns relative to the directory (runtime_env `excludes`). Default none.
    public var excludes: [String]
    /// Always excluded, as Ray 2.60's SDK does (`RAY_RUNTIME_ENV_DEFAULT_EXCLUDES`).
    /// Default `.git`, `.venv`, `venv`, `__pycache__`.
    public var defaultExcludes: [String]
    /// Honour `.gitignore` files in every folder, as Ray does unless `RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1`.
    /// `.rayignore` files are always honoured. Default true.
    public var honorsGitignore: Bool
    /// The largest zipped package accepted. Default ``rayUploadCap``.
    public var maxPackageBytes: Int

    public init(
        excludes: [String] = [], defaultExcludes: [String] = [".git", ".venv", "venv", "__pycache__"],
        honorsGitignore: Bool = true, maxPackageBytes: Int = PackageOptions.rayUploadCap
    ) {
        self.excludes = excludes
        self.defaultExcludes = defaultExcludes
        self.honorsGitignore = honorsGitignore
        self.maxPackageBytes = maxPackageBytes
    }
}
