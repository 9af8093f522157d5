import ArgumentParser

/// The three ways `raylan detect` runs, chosen by its paths and `--on-cluster`.
enum DetectMode: String, CaseIterable, Sendable {
    /// Image files on this machine, sent to the detection service.
    case images
    /// Image files on the cluster's disks, read and detected there with Ray Data (`--on-cluster`).
    case imagesOnCluster
    /// Videos and live streams, decoded on the cluster (a local file uploaded first).
    case videos

    /// How the mode is named in messages and in the table's header.
    var title: String {
        switch self {
        case .images: "images"
        case .imagesOnCluster: "--on-cluster images"
        case .videos: "videos/streams"
        }
    }
}

/// One option of `raylan detect` that applies to some modes only, and whether a command line gave it.
struct DetectModeOption: Sendable {
    /// As typed: `--format`.
    var name: String
    /// The modes it applies to.
    var modes: Set<DetectMode>
    /// Whether `command` was given it.
    var given: @Sendable (DetectCommand) -> Bool
}

extension DetectCommand {
    /// The mode these paths and flags ask for.
    var mode: DetectMode {
        if isVideo { return .videos }
        return onCluster ? .imagesOnCluster : .images
    }

    /// Every option that applies to some modes only. Options not listed (the model, `--conf`, `--iou`,
    /// `--classes`, `--out`, `--annotate`, `--gpus-per-replica`, `--imgsz`, `--backend`, `--port`, `--json`, the
    /// cluster's address and token) apply to every mode; `DetectModeTests` holds that list too, and fails on an
    /// option that is in neither.
    static let modeOptions: [DetectModeOption] = [
        DetectModeOption(name: "--format", modes: [.images, .imagesOnCluster, .videos]) { $0.format != nil },
        DetectModeOption(name: "--report", modes: [.images, .imagesOnCluster, .videos]) { $0.report },
        DetectModeOption(name: "--concurrency", modes: [.images]) { $0.concurrency != nil },
        DetectModeOption(name: "--images-per-request", modes: [.images]) { $0.imagesPerRequest != nil },
        DetectModeOption(name: "--max-side", modes: [.images]) { $0.shrink.maxSide != nil },
        DetectModeOption(name: "--resume", modes: [.images, .imagesOnCluster]) { $0.resume },
        DetectModeOption(name: "--force", modes: [.images]) { $0.force },
        DetectModeOption(name: "--no-deploy", modes: [.images, .videos]) { $0.noDeploy },
        DetectModeOption(name: "--cluster-out", modes: [.imagesOnCluster, .videos]) { $0.clusterOut != nil },
        DetectModeOption(name: "--batch-size", modes: [.imagesOnCluster, .videos]) { $0.batchSize != nil },
        DetectModeOption(name: "--lease", modes: [.imagesOnCluster, .videos]) { $0.lease != nil },
        DetectModeOption(name: "--view", modes: [.images, .imagesOnCluster, .videos]) { $0.viewing.view },
        DetectModeOption(name: "--open", modes: [.images, .imagesOnCluster, .videos]) { $0.viewing.open },
        DetectModeOption(name: "--view-fps", modes: [.videos]) { $0.viewFPS != nil },
        DetectModeOption(name: "--vid-stride", modes: [.videos]) { $0.vidStride != nil },
        DetectModeOption(name: "--track", modes: [.videos]) { $0.track != nil },
        DetectModeOption(name: "--reconnect-attempts", modes: [.videos]) { $0.reconnectAttempts != nil },
        DetectModeOption(name: "--actors", modes: [.imagesOnCluster]) { $0.actors != nil },
        DetectModeOption(name: "--gpus-per-actor", modes: [.imagesOnCluster]) { $0.gpusPerActor != nil },
        DetectModeOption(name: "--cpus-per-actor", modes: [.imagesOnCluster]) { $0.cpusPerActor != nil },
        // The detection service's own settings: the Ray Data actors of --on-cluster take the model's input
        // size, backend and GPUs from the deployment, but no service is deployed for them.
        DetectModeOption(name: "--replicas", modes: [.images, .videos]) { $0.deployment.replicas != nil },
        DetectModeOption(name: "--max-batch", modes: [.images, .videos]) { $0.deployment.maxBatch != nil },
        DetectModeOption(name: "--max-queued-requests", modes: [.images, .videos]) {
            $0.deployment.maxQueuedRequests != nil
        },
        DetectModeOption(name: "--max-replicas-per-node", modes: [.images, .videos]) {
            $0.deployment.maxReplicasPerNode != nil
        },
        DetectModeOption(name: "--batch-wait-ms", modes: [.images, .videos]) { $0.deployment.batchWaitMs != nil },
        DetectModeOption(name: "--key-file", modes: [.images, .videos]) { $0.deployment.keyFile != nil },
        DetectModeOption(name: "--public", modes: [.images, .videos]) { $0.deployment.public },
    ]

    /// Refuses, as a usage error, the options given that do not apply to this command's mode, naming them
    /// and the mode.
    func checkOptionsApply() throws {
        let mode = self.mode
        let misplaced = Self.modeOptions.filter { $0.given(self) && !$0.modes.contains(mode) }
        guard let first = misplaced.first else { return }
        let names = misplaced.map(\.name)
        let list = names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + names.last!
        let onlyFor =
            misplaced.count == 1
            ? " (only to " + DetectMode.allCases.filter(first.modes.contains).map(\.title).joined(separator: ", ")
                + ")" : ""
        throw ValidationError(
            "\(list) \(names.count == 1 ? "does" : "do") not apply to \(mode.title)\(onlyFor); leave "
                + "\(names.count == 1 ? "it" : "them") out. 'raylan detect --help' shows which option applies where.")
    }

    /// The options × modes table, as `--help` and docs/video-and-datasets.md show it (Markdown).
    static var modeTable: String {
        let modes = DetectMode.allCases
        let header = "| option | " + modes.map(\.title).joined(separator: " | ") + " |"
        let rule = "|---|" + modes.map { _ in "---|" }.joined()
        let rows = modeOptions.map { option in
            "| `\(option.name)` | " + modes.map { option.modes.contains($0) ? "yes" : "—" }.joined(separator: " | ")
                + " |"
        }
        return ([header, rule] + rows).joined(separator: "\n")
    }
}
