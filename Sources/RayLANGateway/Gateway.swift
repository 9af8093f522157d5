import Foundation
import NIOHTTP1
import RayLANCore

/// Calls Python functions and actors on a Ray cluster, and puts and gets objects there, over RayLAN's gateway
/// (a Ray Serve application in front of one owner actor; Ray Client and pickles are never used).
///
/// ```swift
/// let tasks = try await cluster.gateway(workingDirectory: projectURL)
/// let onGPU: Bool = try await tasks.call("gpu:gpu_task", resources: .gpus(1))
/// let image = try await tasks.put(Data(contentsOf: photo))
/// let model = try await tasks.actor("yolo:Detector", "yolo11s.pt", resources: .gpus(1))
/// let boxes: [Box] = try await model.call("detect", image)
/// ```
///
/// Arguments are `Codable` values, `Data` (bytes) and ``ObjectRef``s (resolved on the cluster); results decode
/// as the type asked for (`Data` for bytes, ``JSONValue`` for anything). Cancelling the Swift task cancels the
/// remote one. A call waits on the cluster in rounds of ``pollWait`` (each well inside the connection's read
/// timeout), so calls may run for hours.
public struct Gateway: Sendable {
    /// What every call and actor runs with.
    public struct Runtime: Sendable, Hashable {
        /// The uploaded working directory (`gcs://_ray_pkg_….zip`). Default nil.
        public var workingDirectoryURI: String?
        /// pip packages (runtime_env `pip`). Default none.
        public var pip: [String]
        /// Environment variables (runtime_env `env_vars`). Default none.
        public var environment: [String: String]

        public init(workingDirectoryURI: String? = nil, pip: [String] = [], environment: [String: String] = [:]) {
            self.workingDirectoryURI = workingDirectoryURI
            self.pip = pip
            self.environment = environment
        }

        var json: JSONValue? {
            var fields: [String: JSONValue] = [:]
            if let workingDirectoryURI { fields["working_dir"] = .string(workingDirectoryURI) }
            if !pip.isEmpty { fields["pip"] = .array(pip.map { .string($0) }) }
            if !environment.isEmpty { fields["env_vars"] = .object(environment.mapValues { .string($0) }) }
            return fields.isEmpty ? nil : .object(fields)
        }
    }

    /// Bytes this gateway client sent and received (request and answer bodies), across its copies.
    public final class Traffic: Sendable {
        private let counts = LockedBox((sent: 0, received: 0))
        init() {}
        public var sent: Int { counts.withLock { $0.sent } }
        public var received: Int { counts.withLock { $0.received } }
        func add(sent: Int, received: Int) { counts.withLock { $0 = ($0.sent + sent, $0.received + received) } }
    }

    public let cluster: RayCluster
    /// Where the gateway answers, with its key.
    public let endpoint: ServeEndpoint
    /// What calls and actors run with.
    public var runtime: Runtime
    /// How long one request waits on the cluster for a result before asking again. Default 20 s.
    public var pollWait: Duration = .seconds(20)
    /// The largest answer accepted (``get(_:)`` of a large object). Default 2 GiB.
    public var maxResponseBytes: Int = 2 << 30
    /// Bytes sent and received so far.
    public let traffic = Traffic()

    public init(cluster: RayCluster, endpoint: ServeEndpoint, runtime: Runtime = Runtime()) {
        self.cluster = cluster
        self.endpoint = endpoint
        self.runtime = runtime
    }

    // MARK: Calls

    /// Calls `module:function` on the cluster and waits for its value.
    ///
    /// - Parameters:
    ///   - function: `module:function` (a dotted name after the colon reaches into classes).
    ///   - arguments: positional arguments: `Codable` values, `Data`, ``ObjectRef``s.
    ///   - keywords: keyword arguments. Default none.
    ///   - resources: what the call reserves (`.gpus(1)`). Default: Ray's (1 CPU).
    ///   - timeout: cancel the call after this long (``GatewayError/Code/timeout``). Default nil: no limit.
    ///   - maxRetries: Ray's retries after a worker or node failure. Default 0.
    /// - Throws: ``GatewayError`` (the remote exception with its traceback, `missingModule`, `infeasible`,
    ///   `timeout`, …), ``ClusterError`` (the gateway cannot be reached), `CancellationError`.
    public func call<T: Decodable>(
        _ function: String, _ arguments: any Encodable..., keywords: [String: any Encodable] = [:],
        resources: ResourceRequest = ResourceRequest(), timeout: Duration? = nil, maxRetries: Int? = nil,
        as type: T.Type = T.self
    ) async throws -> T {
        let value = try await call(
            function, arguments: try arguments.map(RemoteArgument.init),
            keywords: try keywords.mapValues(RemoteArgument.init),
            resources: resources, timeout: timeout, maxRetries: maxRetries)
        return try value.decoded(as: T.self, what: "The result of \(function)")
    }

    /// ``call(_:_:keywords:resources:timeout:maxRetries:as:)`` with arguments already in wire form; `waiting`
    /// is told each time a round of waiting ends with the call still running.
    public func call(
        _ function: String, arguments: [RemoteArgument], keywords: [String: RemoteArgument] = [:],
        resources: ResourceRequest = ResourceRequest(), timeout: Duration? = nil, maxRetries: Int? = nil,
        waiting: @Sendable (RemoteTask) -> Void = { _ in }
    ) async throws -> RemoteValue {
        let id = "call-" + randomHex(bytes: 12)
        var spec = try callSpec(
            function, arguments: arguments, keywords: keywords, resources: resources, timeout: timeout,
            maxRetries: maxRetries)
        spec["wait"] = .number(pollWait.seconds)
        spec["keep"] = .bool(false)
        spec["id"] = .string(id)
        let body = try JSONEncoder().encode(JSONValue.object(spec))
        return try await cancellingRemotely(id) {
            // The id makes the POST safe to send again: the owner answers a known id from the task it started.
            try await follow(try await request(.POST, "/call", body: body, retries: 2), id: id, waiting: waiting)
        }
    }

    /// Submits `module:function` and returns at once; its result stays on the cluster (``RemoteTask/ref``) until
    /// ``free(_:)``. Follow it with ``status(of:)``, ``result(of:as:)`` and ``cancel(_:)``.
    public func submit(
        _ function: String, _ arguments: any Encodable..., keywords: [String: any Encodable] = [:],
        resources: ResourceRequest = ResourceRequest(), timeout: Duration? = nil, maxRetries: Int? = nil
    ) async throws -> RemoteTask {
        try await submit(
            function, arguments: try arguments.map(RemoteArgument.init),
            keywords: try keywords.mapValues(RemoteArgument.init),
            resources: resources, timeout: timeout, maxRetries: maxRetries)
    }

    /// ``submit(_:_:keywords:resources:timeout:maxRetries:)`` with arguments already in wire form.
    public func submit(
        _ function: String, arguments: [RemoteArgument], keywords: [String: RemoteArgument] = [:],
        resources: ResourceRequest = ResourceRequest(), timeout: Duration? = nil, maxRetries: Int? = nil
    ) async throws -> RemoteTask {
        var spec = try callSpec(
            function, arguments: arguments, keywords: keywords, resources: resources, timeout: timeout,
            maxRetries: maxRetries)
        spec["wait"] = .number(0)
        spec["keep"] = .bool(true)
        spec["id"] = .string("submit-" + randomHex(bytes: 12))
        let response = try await request(
            .POST, "/call", body: try JSONEncoder().encode(JSONValue.object(spec)), retries: 2)
        return try decode(RemoteTask.self, response)
    }

    /// Where a task stands.
    public func status(of task: String) async throws -> RemoteTask {
        try decode(RemoteTask.self, try await request(.GET, "/tasks/\(task)"))
    }

    /// Waits for a task's value (its result stays on the cluster until freed).
    /// - Throws: ``GatewayError`` when the task failed, was cancelled or timed out.
    public func result<T: Decodable>(of task: String, as type: T.Type = T.self) async throws -> T {
        try await result(of: task).decoded(as: T.self, what: "The result of \(task)")
    }

    /// A task's value in wire form; `waiting` is told each time a round of waiting ends with it still running.
    public func result(of task: String, waiting: @Sendable (RemoteTask) -> Void = { _ in }) async throws
        -> RemoteValue
    {
        let path = "/tasks/\(task)/result?wait=\(pollWait.seconds)"
        return try await follow(try await request(.GET, path), id: task, waiting: waiting)
    }

    /// Cancels a task: a running call's worker is stopped (its CPUs and GPUs freed at once); an actor's method
    /// that already runs finishes. Returns its state afterwards.
    @discardableResult
    public func cancel(_ task: String) async throws -> RemoteTask {
        try decode(RemoteTask.self, try await request(.POST, "/tasks/\(task)/cancel"))
    }

    /// Every task the gateway holds (kept results, and calls still running).
    public func tasks() async throws -> [RemoteTask] {
        struct List: Decodable { var tasks: [RemoteTask] }
        return try decode(List.self, try await request(.GET, "/tasks")).tasks
    }

    // MARK: Objects

    /// Stores bytes on the cluster; pass the ref to calls instead of the bytes.
    public func put(_ data: Data) async throws -> ObjectRef {
        struct Put: Decodable { var ref: String }
        let response = try await request(
            .POST, "/objects", body: data, contentType: "application/octet-stream",
            timeout: cluster.configuration.timeouts.upload)
        return ObjectRef(id: try decode(Put.self, response).ref)
    }

    /// An object's bytes (a put, or a result that is bytes).
    /// - Throws: ``GatewayError`` (`invalidArgument` when it holds JSON, `unknownObject`), or the task's error for
    ///   a result whose call failed.
    public func get(_ ref: ObjectRef) async throws -> Data {
        try await value(of: ref).decoded(as: Data.self, what: "The object \(ref)")
    }

    /// An object's value as `T` (JSON decoded, or `Data` for bytes).
    public func get<T: Decodable>(_ ref: ObjectRef, as type: T.Type) async throws -> T {
        try await value(of: ref).decoded(as: T.self, what: "The object \(ref)")
    }

    /// An object's value in wire form; a call's result is waited for.
    public func value(of ref: ObjectRef) async throws -> RemoteValue {
        let path = "/objects/\(ref.id)?wait=\(pollWait.seconds)"
        let timeout = cluster.configuration.timeouts.upload
        return try await follow(try await request(.GET, path, timeout: timeout), what: "The object \(ref)") {
            try await request(.GET, path, timeout: timeout)
        }
    }

    /// Frees an object (a put or a kept result); Ray deletes it once no call uses it.
    public func free(_ ref: ObjectRef) async throws {
        _ = try await request(.DELETE, "/objects/\(ref.id)")
    }

    /// The objects the gateway holds, with their sizes.
    public func objects() async throws -> [ObjectInfo] {
        struct List: Decodable { var objects: [ObjectInfo] }
        return try decode(List.self, try await request(.GET, "/objects")).objects
    }

    // MARK: Actors

    /// Creates an instance of `module:Class` on the cluster and waits until its constructor has run.
    /// - Parameters:
    ///   - name: a name others find it by (``actor(named:)``); unique. Default nil.
    ///   - resources: what the actor reserves for its lifetime (`.gpus(1)`). Default: 1 CPU.
    /// - Throws: ``GatewayError`` (the constructor's exception, `missingModule`, `infeasible`, `nameTaken`).
    public func actor(
        _ className: String, _ arguments: any Encodable..., keywords: [String: any Encodable] = [:],
        name: String? = nil, resources: ResourceRequest = ResourceRequest()
    ) async throws -> RemoteActor {
        try await actor(
            className, arguments: try arguments.map(RemoteArgument.init),
            keywords: try keywords.mapValues(RemoteArgument.init),
            name: name, resources: resources)
    }

    /// ``actor(_:_:keywords:name:resources:)`` with arguments already in wire form.
    public func actor(
        _ className: String, arguments: [RemoteArgument], keywords: [String: RemoteArgument] = [:],
        name: String? = nil, resources: ResourceRequest = ResourceRequest()
    ) async throws -> RemoteActor {
        var spec = try callSpec(
            className, arguments: arguments, keywords: keywords, resources: resources, timeout: nil, maxRetries: nil)
        spec["class"] = spec.removeValue(forKey: "function")
        if let name { spec["name"] = .string(name) }
        spec["wait"] = .number(pollWait.seconds)
        var info = try decode(
            ActorInfo.self,
            try await request(.POST, "/actors", body: try JSONEncoder().encode(JSONValue.object(spec))))
        while info.state == .starting {
            info = try decode(
                ActorInfo.self, try await request(.GET, "/actors/\(info.id)?wait=\(pollWait.seconds)"))
        }
        if info.state == .failed {
            throw info.error ?? GatewayError(.rayError, "The actor \(className) failed to start")
        }
        return RemoteActor(gateway: self, info: info)
    }

    /// A running actor by name or id.
    public func actor(named name: String) async throws -> RemoteActor {
        RemoteActor(gateway: self, info: try decode(ActorInfo.self, try await request(.GET, "/actors/\(name)")))
    }

    /// The actors the gateway created.
    public func actors() async throws -> [ActorInfo] {
        struct List: Decodable { var actors: [ActorInfo] }
        return try decode(List.self, try await request(.GET, "/actors")).actors
    }

    /// Calls a method of actor `actor` (name or id); see ``RemoteActor/call(_:_:keywords:timeout:as:)``.
    public func callActor(
        _ actor: String, method: String, arguments: [RemoteArgument], keywords: [String: RemoteArgument] = [:],
        timeout: Duration? = nil, waiting: @Sendable (RemoteTask) -> Void = { _ in }
    ) async throws -> RemoteValue {
        let id = "call-" + randomHex(bytes: 12)
        var spec: [String: JSONValue] = [
            "method": .string(method), "args": .array(arguments.map(\.wire)),
            "kwargs": .object(keywords.mapValues(\.wire)), "wait": .number(pollWait.seconds), "keep": .bool(false),
            "id": .string(id),
        ]
        if let timeout { spec["timeout"] = .number(timeout.seconds) }
        let body = try JSONEncoder().encode(JSONValue.object(spec))
        return try await cancellingRemotely(id) {
            try await follow(
                try await request(.POST, "/actors/\(actor)/call", body: body, retries: 2), id: id, waiting: waiting)
        }
    }

    /// Kills actor `actor` (name or id).
    public func kill(actor: String) async throws {
        _ = try await request(.DELETE, "/actors/\(actor)")
    }

    // MARK: The gateway itself

    /// The owner's generation (it changes when the owner is replaced) and what it holds.
    public func info() async throws -> JSONValue {
        try decode(JSONValue.self, try await request(.GET, "/info"))
    }

    // MARK: Plumbing

    private func callSpec(
        _ function: String, arguments: [RemoteArgument], keywords: [String: RemoteArgument],
        resources: ResourceRequest, timeout: Duration?, maxRetries: Int?
    ) throws -> [String: JSONValue] {
        let parts = function.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw GatewayError(
                .invalidArgument, "'\(function)' is not module:name",
                remedy: "Name a function or class as module:name, e.g. tasks:gpu_task.")
        }
        if let problem = resources.problem {
            throw GatewayError(.invalidArgument, problem.message, remedy: problem.remedy)
        }
        if let timeout, timeout <= .zero {
            throw GatewayError(.invalidArgument, "The timeout must be more than 0 s, not \(timeout)")
        }
        var resourceFields: [String: JSONValue] = [:]
        if let cpus = resources.cpus { resourceFields["cpus"] = .number(cpus) }
        if let gpus = resources.gpus { resourceFields["gpus"] = .number(gpus) }
        if let memory = resources.memoryBytes { resourceFields["memory"] = .number(Double(memory)) }
        if !resources.custom.isEmpty { resourceFields["custom"] = .object(resources.custom.mapValues { .number($0) }) }
        var spec: [String: JSONValue] = [
            "function": .string(function), "args": .array(arguments.map(\.wire)),
            "kwargs": .object(keywords.mapValues(\.wire)), "resources": .object(resourceFields),
        ]
        if let environment = runtime.json { spec["runtime_env"] = environment }
        if let timeout { spec["timeout"] = .number(timeout.seconds) }
        if let maxRetries { spec["max_retries"] = .number(Double(maxRetries)) }
        return spec
    }

    /// Runs `body`; when the Swift task is cancelled, cancels call `id` on the cluster before throwing
    /// `CancellationError`.
    private func cancellingRemotely(_ id: String, _ body: () async throws -> RemoteValue) async throws
        -> RemoteValue
    {
        do {
            let value = try await body()
            try Task.checkCancellation()
            return value
        } catch {
            guard Task.isCancelled else { throw error }
            // An unstructured task is not cancelled with this one: the cancel reaches the cluster before we return.
            let gateway = self
            _ = await Task { try? await gateway.cancel(id) }.value
            throw CancellationError()
        }
    }

    /// Follows a call's answers until it ends (polling `/tasks/<id>/result`): its value, or its error thrown.
    private func follow(
        _ first: RayCluster.Response, id: String, waiting: @Sendable (RemoteTask) -> Void
    ) async throws -> RemoteValue {
        try await follow(first, what: id, waiting: waiting) {
            try await request(.GET, "/tasks/\(id)/result?wait=\(pollWait.seconds)")
        }
    }

    /// Follows answers about a task or an object until one holds a value (raw bytes, or `value`) or an end
    /// without one (thrown as its error); `next` asks again while the task runs.
    private func follow(
        _ first: RayCluster.Response, what: String, waiting: @Sendable (RemoteTask) -> Void = { _ in },
        next: () async throws -> RayCluster.Response
    ) async throws -> RemoteValue {
        var response = first
        while true {
            if response.headers.first(name: "content-type") == "application/octet-stream" {
                return .bytes(response.body)
            }
            let answer = try decode(Answer.self, response)
            switch answer.state {
            case .running?: answer.task.map(waiting)
            case nil, .finished?:
                if let value = answer.value { return value }
                throw GatewayError(.badResponse, "The gateway's answer for \(what) holds no value")
            case let state?:
                throw answer.error ?? GatewayError(.rayError, "\(what) ended \(state) without an error")
            }
            try Task.checkCancellation()
            response = try await next()
        }
    }

    /// One answer about a task or an object, decoded once: its state, its value once finished (JSON `null`
    /// included), its error, and the task itself when the answer describes one.
    private struct Answer: Decodable {
        var state: RemoteTask.State?
        var value: RemoteValue?
        var error: GatewayError?
        var task: RemoteTask?

        private enum CodingKeys: String, CodingKey { case state, value, error }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            state = try container.decodeIfPresent(RemoteTask.State.self, forKey: .state)
            if container.contains(.value) {
                value = RemoteValue(wire: try container.decode(JSONValue.self, forKey: .value))
            }
            error = try container.decodeIfPresent(GatewayError.Wire.self, forKey: .error)?.error
            task = try? RemoteTask(from: decoder)
        }
    }

    /// Decodes a 2xx answer; a refusal (`{"error": …}`) is thrown as its ``GatewayError``.
    private func decode<T: Decodable>(_ type: T.Type, _ response: RayCluster.Response) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: response.body)
        } catch {
            throw GatewayError(
                .badResponse,
                "The gateway's answer (HTTP \(response.status)) is not what RayLAN expects: "
                    + "\(response.text.prefix(200))")
        }
    }

    /// Sends one request to the gateway; answers other than 2xx are thrown as ``GatewayError``s. Connection
    /// failures are retried `retries` times (only for requests that are safe to send again).
    private func request(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String = "application/json",
        timeout: Duration? = nil, retries: Int = 0
    ) async throws -> RayCluster.Response {
        var attempt = 0
        while true {
            do {
                let response = try await cluster.send(
                    method, to: endpoint, path, body: body, contentType: contentType,
                    timeout: timeout ?? pollWait + cluster.configuration.timeouts.request,
                    maxResponseBytes: maxResponseBytes)
                traffic.add(sent: body?.count ?? 0, received: response.body.count)
                guard (200..<300).contains(response.status) else { throw refusal(response) }
                return response
            } catch let error as ClusterError where error.code == .unreachable && attempt < retries {
                attempt += 1
                try await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
    }

    /// A refusal's ``GatewayError``: the gateway's own `{"error": …}`, else Serve's or a proxy's answer.
    private func refusal(_ response: RayCluster.Response) -> GatewayError {
        struct Refusal: Decodable { var error: GatewayError.Wire }
        if let refusal = try? JSONDecoder().decode(Refusal.self, from: response.body) { return refusal.error.error }
        if response.status == 404 {
            return GatewayError(
                .unavailable, "Serve answered 404 at \(endpoint.url("")): the gateway is not deployed there",
                remedy: "Let raylan deploy it (any 'raylan call' does), or check the address.")
        }
        return GatewayError(
            .unavailable, "The gateway at \(endpoint) answered HTTP \(response.status): \(response.text.prefix(200))",
            remedy: "See 'raylan serve status' for the gateway's replicas.")
    }
}

/// An actor on the cluster, made by ``Gateway/actor(_:_:keywords:name:resources:)``.
public struct RemoteActor: Sendable {
    public let gateway: Gateway
    /// The actor as it was when this handle was made.
    public let info: ActorInfo

    /// Calls one of its methods and waits for the value.
    /// - Throws: ``GatewayError`` (the method's exception, `actorDied`, `timeout`), `CancellationError`.
    public func call<T: Decodable>(
        _ method: String, _ arguments: any Encodable..., keywords: [String: any Encodable] = [:],
        timeout: Duration? = nil, as type: T.Type = T.self
    ) async throws -> T {
        let value = try await gateway.callActor(
            info.id, method: method, arguments: try arguments.map(RemoteArgument.init),
            keywords: try keywords.mapValues(RemoteArgument.init), timeout: timeout)
        return try value.decoded(as: T.self, what: "The result of \(info.className).\(method)")
    }

    /// Kills the actor (its resources are freed).
    public func kill() async throws {
        try await gateway.kill(actor: info.id)
    }
}
