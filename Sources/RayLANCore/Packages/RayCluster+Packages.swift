import Foundation
import NIOHTTP1

/// The result of ``RayCluster/uploadIfNeeded(_:options:)``.
public struct PackageUpload: Sendable, Hashable, Codable {
    /// `gcs://_ray_pkg_<16 hex>.zip`.
    public var uri: String
    /// False when the cluster already had the package (nothing was sent).
    public var uploaded: Bool
    /// Bytes sent (0 when not uploaded).
    public var bytes: Int
}

extension RayCluster {
    /// Whether the cluster already holds `package` (`GET /api/packages/gcs/<name>`; this also pins it on
    /// the cluster for 10 minutes).
    public func hasPackage(_ package: WorkingDirectoryPackage) async throws -> Bool {
        try await hasPackage(named: package.name)
    }

    /// ``hasPackage(_:)`` by the package's name, `_ray_pkg_<hash>.zip`.
    func hasPackage(named name: String) async throws -> Bool {
        let path = "/api/packages/gcs/\(name)"
        let check = try await send(.GET, path)
        switch check.status {
        case 200: return true
        case 404: return false
        default: throw ClusterError.server("GET \(path)", status: check.status, body: check.text)
        }
    }

    /// Uploads a working directory the way Ray's Python SDK does: `GET /api/packages/gcs/<name>`, then
    /// `PUT` the zip only when the cluster does not have it. The GET also pins the package for 10 minutes,
    /// so call this right before the submission that uses it.
    ///
    /// - Throws: ``PackageError`` (`tooLarge` before anything is sent, `uploadFailed`) or ``ClusterError``.
    public func uploadIfNeeded(_ package: WorkingDirectoryPackage, options: PackageOptions = PackageOptions())
        async throws -> PackageUpload
    {
        if try await hasPackage(package) {
            return PackageUpload(uri: package.uri, uploaded: false, bytes: 0)
        }
        let path = "/api/packages/gcs/\(package.name)"
        let zip = try package.makeZip(options: options)
        let put = try await send(
            .PUT, path, body: zip, contentType: "application/octet-stream", timeout: configuration.timeouts.upload)
        guard put.status == 200 else {
            throw PackageError(
                .uploadFailed,
                "Uploading '\(package.directory.path)' (\(WorkingDirectoryPackage.mebibytes(zip.count))) to \(address.host):\(address.port) failed: HTTP \(put.status): \(RayMessage.extract(from: put.text))",
                remedy:
                    "Check the head node's disk space and the dashboard log (dashboard.log in the session's logs folder)."
            )
        }
        return PackageUpload(uri: package.uri, uploaded: true, bytes: zip.count)
    }
}
