import Crypto
import Foundation
import RayLANCore
import RayLANGateway

/// A local video uploaded to the cluster in pieces (objects the gateway holds), so that an interrupted upload
/// resumes: a record in `~/.raylan/uploads/<sha256>.json` lists the pieces already on the cluster, and only the
/// missing ones are sent again. The pieces are freed after a run that finished.
struct VideoUpload: Sendable {
    /// Bytes per piece.
    static let pieceBytes = 32 * 1024 * 1024

    /// The file's SHA-256 (hex), which the cluster checks after putting the pieces together.
    var sha256: String
    /// The pieces, in order.
    var chunks: [ObjectRef]
    /// The file's name on the cluster.
    var fileName: String
    /// The record of the upload.
    var record: URL

    struct Record: Codable {
        var pieceBytes: Int
        var refs: [String?]

        enum CodingKeys: String, CodingKey {
            case pieceBytes = "piece_bytes"
            case refs
        }
    }

    /// Uploads `file` (what the cluster does not hold already); `progress` gets bytes on the cluster and the size.
    static func upload(
        _ file: URL, via gateway: Gateway, home: String = RayLANHome.path(), pieceBytes: Int = pieceBytes,
        progress: (Int, Int) -> Void
    ) async throws -> VideoUpload {
        let size = try Self.size(of: file)
        let digest = try Self.sha256(of: file)
        let folder = URL(fileURLWithPath: home).appendingPathComponent("uploads")
        try RayLANHome.makePrivateFolder(folder.path)
        let recordURL = folder.appendingPathComponent("\(digest).json")
        let count = max(1, (size + pieceBytes - 1) / pieceBytes)
        var record = Record(pieceBytes: pieceBytes, refs: Array(repeating: nil, count: count))
        if let data = try? Data(contentsOf: recordURL),
            let earlier = try? JSONDecoder().decode(Record.self, from: data),
            earlier.pieceBytes == pieceBytes, earlier.refs.count == count
        {
            let held = Set(try await gateway.objects().map(\.id))
            record.refs = earlier.refs.map { $0.flatMap { held.contains($0) ? $0 : nil } }
        }
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var done = record.refs.enumerated().reduce(0) { sum, item in
            sum + (item.element == nil ? 0 : min(pieceBytes, size - item.offset * pieceBytes))
        }
        progress(done, size)
        for index in 0..<count where record.refs[index] == nil {
            try Task.checkCancellation()
            try handle.seek(toOffset: UInt64(index * pieceBytes))
            let piece = try handle.read(upToCount: pieceBytes) ?? Data()
            record.refs[index] = try await gateway.put(piece).id
            try JSONEncoder().encode(record).write(to: recordURL, options: .atomic)
            done += piece.count
            progress(done, size)
        }
        return VideoUpload(
            sha256: digest, chunks: record.refs.compactMap { $0.map(ObjectRef.init(id:)) },
            fileName: "input." + (file.pathExtension.isEmpty ? "mp4" : file.pathExtension), record: recordURL)
    }

    /// Frees the pieces on the cluster and forgets the record; never throws.
    func release(via gateway: Gateway) async {
        for chunk in chunks { try? await gateway.free(chunk) }
        try? FileManager.default.removeItem(at: record)
    }

    static func size(of file: URL) throws -> Int {
        guard let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int else {
            throw OnClusterError(.sourceNotFound, "Cannot read the size of \(file.path)")
        }
        return size
    }

    static func sha256(of file: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let piece = try handle.read(upToCount: 4 << 20), !piece.isEmpty { hasher.update(data: piece) }
        return hasher.finalize().hexString
    }
}
