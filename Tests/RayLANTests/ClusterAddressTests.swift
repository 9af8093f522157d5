import Foundation
import RayLAN
import Testing

@Suite("Cluster addresses")
struct ClusterAddressTests {
    @Test(
        "Accepted forms",
        arguments: [
            // Beyond loopback, TLS unless http:// is written out; on loopback, plain HTTP (the embedded cluster).
            ("192.168.1.130", "https", "192.168.1.130", 8265),
            ("192.168.1.130:9000", "https", "192.168.1.130", 9000),
            ("gpu-box", "https", "gpu-box", 8265),
            ("http://gpu-box:8265", "http", "gpu-box", 8265),
            ("https://gpu-box", "https", "gpu-box", 8265),
            ("http://10.0.0.2:8265/#/overview", "http", "10.0.0.2", 8265),
            ("  10.0.0.2  ", "https", "10.0.0.2", 8265),
            ("[fe80::1]:8300", "https", "fe80::1", 8300),
            ("fe80::1", "https", "fe80::1", 8265),
            ("127.0.0.1:9000", "http", "127.0.0.1", 9000),
            ("localhost", "http", "localhost", 8265),
            ("[::1]:8265", "http", "::1", 8265),
            ("https://127.0.0.1:9000", "https", "127.0.0.1", 9000),
        ])
    func accepted(input: String, scheme: String, host: String, port: Int) throws {
        let address = try ClusterAddress(parsing: input)
        #expect(address.scheme == scheme)
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.notes.isEmpty)
    }

    @Test("The seed's ray://HOST:6379 is rewritten to the dashboard and explained")
    func rayClientAddress() throws {
        let address = try ClusterAddress(parsing: "ray://192.168.1.130:6379")
        #expect(address.host == "192.168.1.130")
        #expect(address.port == 8265)
        #expect(address.url.absoluteString == "https://192.168.1.130:8265")
        let note = try #require(address.notes.first)
        #expect(note.contains("Ray Client"))
        #expect(note.contains("10001"))
        #expect(note.contains("6379 is the GCS"))
        #expect(note.contains("https://192.168.1.130:8265"))
    }

    @Test(
        "Rejected forms name the problem",
        arguments: [
            ("", "empty"),
            ("host:99999", "not a port"),
            ("host:abc", "not a port"),
            ("host:", "not a port"),
            ("ftp://host", "not supported"),
            (":8265", "host is missing"),
            ("[fe80::1", "closing"),
        ])
    func rejected(input: String, reason: String) throws {
        let error = try #require(throws: ClusterError.self) { try ClusterAddress(parsing: input) }
        #expect(error.code == .invalidAddress)
        #expect(error.isUsageError)
        #expect(error.description.contains(reason))
        #expect(error.description.contains("'\(input)'"))
    }
}
