#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// A tiny HTTP/1.1 server in Python (the project's venv) that answers requests from a plan and records each
/// request's arrival time. A fake only for what is not Ray: misbehaving servers and networks (a body that
/// stalls, an answer over the cap, a proxy that loses an answer).
final class FakeHTTPServer: Sendable {
    /// One planned answer; the last one repeats.
    struct Answer: Encodable, Sendable {
        var status: Int
        var headers: [String: String] = [:]
        var body: String = ""
        /// Sent as Content-Length instead of the body's length (to promise more than is sent).
        var contentLength: Int?
        /// Bytes of filler sent after `body`, without a Content-Length, then the connection is closed.
        var streamedBytes: Int?
        /// Stop after the head and `body`, and send nothing more.
        var stall = false
        /// Seconds to wait before answering.
        var delay: Double?

        enum CodingKeys: String, CodingKey {
            case status, headers, body, stall, delay
            case contentLength = "content_length"
            case streamedBytes = "streamed_bytes"
        }
    }

    /// A request as the server saw it.
    struct Request: Decodable, Sendable {
        /// Seconds since 1970, when its head and body had arrived.
        var t: Double
        var method: String
        var path: String
        var body: String
        /// The requests received and not yet answered when this one arrived, itself included.
        var inFlight: Int

        enum CodingKeys: String, CodingKey {
            case t, method, path, body
            case inFlight = "in_flight"
        }
    }

    let process: RunningCommand
    let port: Int
    let directory: URL

    private init(process: RunningCommand, port: Int, directory: URL) {
        self.process = process
        self.port = port
        self.directory = directory
    }

    var address: ClusterAddress { ClusterAddress(host: "127.0.0.1", port: port) }

    /// The requests so far, in arrival order.
    var requests: [Request] {
        let text = (try? String(contentsOf: directory.appendingPathComponent("requests.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Request.self, from: Data($0.utf8)) }
    }

    /// Starts a server that answers with `plan` (on `port`, default a free one), runs `body`, and stops the
    /// server.
    static func with<R: Sendable>(
        _ plan: [Answer], port: Int? = nil, _ body: (FakeHTTPServer) async throws -> R
    ) async throws -> R {
        try await start("serve", try JSONEncoder().encode(plan), port: port, body)
    }

    /// Starts a proxy to `upstream` that forwards everything but never delivers the answer to the first
    /// request whose head starts with `losing` (`close`: closes the client's connection once the upstream
    /// answered; `hold`: keeps it open and silent).
    static func withProxy<R: Sendable>(
        to upstream: ClusterAddress, losing: String, mode: String, _ body: (FakeHTTPServer) async throws -> R
    ) async throws -> R {
        let spec = ["upstream": "\(upstream.host):\(upstream.port)", "losing": losing, "mode": mode]
        return try await start("proxy", try JSONEncoder().encode(spec), body)
    }

    private static func start<R: Sendable>(
        _ mode: String, _ configuration: Data, port: Int? = nil, _ body: (FakeHTTPServer) async throws -> R
    ) async throws -> R {
        let directory = try TestEnvironment.makeTemporaryDirectory("raylan-fake")
        let config = directory.appendingPathComponent("config.json")
        try configuration.write(to: config)
        let python = try TestEnvironment.environment(.current).python
        let process = try RunningCommand(
            python, ["-c", script, mode, config.path, directory.path],
            environment: ["RAYLAN_FAKE_PORT": port.map(String.init)])
        let portFile = directory.appendingPathComponent("port")
        let started = await eventually(timeout: .seconds(30), every: .milliseconds(50)) {
            FileManager.default.fileExists(atPath: portFile.path)
        }
        guard started, let port = Int((try String(contentsOf: portFile, encoding: .utf8)).trimmed) else {
            kill(process.pid, SIGKILL)
            let result = await process.wait(timeout: .seconds(5))
            throw FakeServerError(message: "the fake server did not start: \(result)")
        }
        let server = FakeHTTPServer(process: process, port: port, directory: directory)
        func stop() async {
            kill(process.pid, SIGKILL)
            _ = await process.wait(timeout: .seconds(5))
            try? FileManager.default.removeItem(at: directory)
        }
        do {
            let result = try await body(server)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    struct FakeServerError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static let script = #"""
        import json, os, socket, sys, threading, time
        mode, config, folder = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
        log = open(os.path.join(folder, "requests.jsonl"), "a", buffering=1)
        lock = threading.Lock()
        count = [0]
        in_flight = [0]

        def read_request(conn, buf):
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return None, buf
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            length = int(headers.get("content-length", "0"))
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return None, buf
                buf += chunk
            return (head + b"\r\n\r\n", lines[0], buf[:length]), buf[length:]

        def record(first_line, body):
            method, path = first_line.split(" ")[:2]
            with lock:
                index = count[0]
                count[0] += 1
                in_flight[0] += 1
                entry = {"t": time.time(), "method": method, "path": path, "body": body.decode("utf-8", "replace"),
                         "in_flight": in_flight[0]}
                log.write(json.dumps(entry) + "\n")
            return index

        def serve(conn):
            with conn:
                buf = b""
                while True:
                    request, buf = read_request(conn, buf)
                    if request is None:
                        return
                    index = record(request[1], request[2])
                    answer = config[min(index, len(config) - 1)]
                    if answer.get("delay"):
                        time.sleep(answer["delay"])
                    body = answer.get("body", "").encode()
                    head = f"HTTP/1.1 {answer['status']} Answer\r\n"
                    for key, value in answer.get("headers", {}).items():
                        head += f"{key}: {value}\r\n"
                    streamed = answer.get("streamed_bytes")
                    if streamed is None:
                        head += f"Content-Length: {answer.get('content_length', len(body))}\r\n"
                    else:
                        head += "Connection: close\r\n"
                    with lock:  # before the answer leaves, so that no later request can overlap this one
                        in_flight[0] -= 1
                    conn.sendall(head.encode() + b"\r\n" + body)
                    if answer.get("stall"):
                        time.sleep(3600)
                    if streamed is not None:
                        block = b"x" * 65536
                        try:
                            for _ in range(streamed // len(block)):
                                conn.sendall(block)
                        except OSError:
                            pass
                        return

        def pump(source, target, on_data=None):
            try:
                while True:
                    data = source.recv(65536)
                    if not data:
                        break
                    if on_data and not on_data(data):
                        return
                    target.sendall(data)
            except OSError:
                pass
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        lost = [False]

        def proxy(conn):
            host, port = config["upstream"].rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            losing = [False]

            def from_client(data):
                first = data.split(b"\r\n", 1)[0].decode("latin-1")
                if " HTTP/1." in first:
                    record(first, b"")
                    with lock:
                        if first.startswith(config["losing"]) and not lost[0]:
                            lost[0] = True
                            losing[0] = True
                return True

            def from_upstream(data):
                if not losing[0]:
                    return True
                if config["mode"] == "hold":
                    time.sleep(3600)
                for s in (conn, upstream):
                    try:
                        s.shutdown(socket.SHUT_RDWR)  # close() alone waits for the other thread's recv
                    except OSError:
                        pass
                    s.close()
                return False

            threading.Thread(target=pump, args=(conn, upstream, from_client), daemon=True).start()
            pump(upstream, conn, from_upstream)

        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(os.environ.get("RAYLAN_FAKE_PORT") or 0)))
        server.listen(64)
        with open(os.path.join(folder, "port.tmp"), "w") as f:
            f.write(str(server.getsockname()[1]))
        os.rename(os.path.join(folder, "port.tmp"), os.path.join(folder, "port"))
        while True:
            client, _ = server.accept()
            threading.Thread(target=serve if mode == "serve" else proxy, args=(client,), daemon=True).start()
        """#
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// Runs `body`, failing the test (instead of hanging it) when it takes longer than `limit`; then calls
/// `onTimeout` (e.g. to stop the server that `body` waits on). Not a timing assertion: the limit only bounds a
/// wait for something that must end.
func withTimeLimit<R: Sendable>(
    _ limit: Duration, sourceLocation: SourceLocation = #_sourceLocation,
    onTimeout: @escaping @Sendable () -> Void = {}, _ body: @escaping @Sendable () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            Issue.record("still running after \(limit)", sourceLocation: sourceLocation)
            onTimeout()
            throw CancellationError()
        }
        return result
    }
}
