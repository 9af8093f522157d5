import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The head's TLS identity: a P-256 key and a self-signed certificate that `raylan up --head` makes once and
/// keeps, mode 0600, in RayLAN's home (`tls/head-key.pem`, `tls/head-cert.pem`). Clients pin the certificate
/// by its fingerprint (``pin``); no certificate authority is involved. The same identity serves the dashboard
/// and Serve, and every later `raylan up --head` on this host, so a pin stays good until the files are removed.
///
/// ```swift
/// let identity = try HeadIdentity.loadOrCreate(in: RayLANHome.path() + "/tls", addresses: ["192.168.1.130"])
/// print(identity.pin)   // sha256:…
/// ```
public struct HeadIdentity: Sendable {
    /// The certificate (PEM).
    public let certificateFile: String
    /// The private key (PEM, PKCS #8).
    public let keyFile: String
    /// The certificate's fingerprint, which clients pin.
    public let pin: CertificatePin

    /// How long a new certificate is valid: 20 years, as a pin stands in for any renewal.
    static let validity: TimeInterval = 20 * 365 * 86_400

    /// Reads the identity kept in `folder`, or makes one when there is none.
    ///
    /// - Parameters:
    ///   - folder: where the key and certificate are kept; made with mode 0700 when missing.
    ///   - addresses: the head's IP addresses, named in a new certificate (clients check the pin, not these).
    /// - Throws: ``TLSError`` `identityUnusable`, naming the file and what to do.
    public static func loadOrCreate(in folder: String, addresses: [String] = []) throws -> HeadIdentity {
        let certificateFile = folder + "/head-cert.pem"
        let keyFile = folder + "/head-key.pem"
        let fileManager = FileManager.default
        if !fileManager.fileExists(atPath: certificateFile) || !fileManager.fileExists(atPath: keyFile) {
            do {
                try RayLANHome.makePrivateFolder(folder)
                let (certificate, key) = try make(addresses: addresses)
                try PrivateFile.write(Array(key.utf8), to: keyFile)
                try PrivateFile.write(Array(certificate.utf8), to: certificateFile)
            } catch {
                throw unusable("Cannot make the head's TLS key and certificate in \(folder): \(error)")
            }
        }
        do {
            guard let certificate = try NIOSSLCertificate.fromPEMFile(certificateFile).first else {
                throw NIOSSLError.failedToLoadCertificate
            }
            // The key must load too, and belong to the certificate: a server that cannot prove it holds the
            // key would fail every handshake later, far from the cause.
            let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            _ = try NIOSSLContext(configuration: configuration)
            return HeadIdentity(
                certificateFile: certificateFile, keyFile: keyFile,
                pin: CertificatePin(certificateDER: try certificate.toDERBytes()))
        } catch {
            throw unusable(
                "The head's TLS key or certificate in \(folder) cannot be used (\(error))",
                remedy:
                    "Remove \(certificateFile) and \(keyFile) to make a new pair; clients must then pin the new fingerprint."
            )
        }
    }

    /// A new key and a self-signed certificate for `addresses`, both PEM.
    static func make(addresses: [String]) throws -> (certificate: String, key: String) {
        let privateKey = P256.Signing.PrivateKey()
        let key = Certificate.PrivateKey(privateKey)
        let name = try DistinguishedName {
            OrganizationName("RayLAN")
            CommonName("RayLAN head \(ProcessInfo.processInfo.hostName)")
        }
        let ipAddresses = addresses.compactMap { address -> GeneralName? in
            var bytes = [UInt8](repeating: 0, count: 16)
            if address.contains(":") {
                guard inet_pton(AF_INET6, address, &bytes) == 1 else { return nil }
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes)))
            }
            guard inet_pton(AF_INET, address, &bytes) == 1 else { return nil }
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes.prefix(4))))
        }
        // Its own authority (path length 0: it signs nothing else): a client that pins it holds it as its only
        // trust root, and TLS libraries accept a self-signed root only when it may sign certificates.
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames([.dnsName(ProcessInfo.processInfo.hostName)] + ipAddresses)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-86_400), notValidAfter: now.addingTimeInterval(validity),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: key)
        return (try certificate.serializeAsPEM().pemString, privateKey.pemRepresentation)
    }

    static func unusable(_ message: String, remedy: String? = nil) -> TLSError {
        TLSError(
            .identityUnusable, message,
            remedy: remedy ?? "Check that RayLAN's home (\(RayLANHome.path())) is writable by this user.")
    }
}
