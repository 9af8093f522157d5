import Foundation
import RayLANCore

/// A remote call, object or actor that did not give a value: the remote function raised, the cluster could not
/// run it, or the gateway refused the request.
///
/// Match on ``code`` (`error.code == .remoteException`); a Python exception's type, message and traceback are in
/// ``remote``.
public struct GatewayError: RayLANError, Sendable, Hashable {
    /// What kind of failure this is: the gateway's error codes, open so that one a newer gateway adds still
    /// decodes. Encodes as its string (`remote_exception`).
    public struct Code: StringValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The remote function (or actor method, or constructor) raised; ``GatewayError/remote`` has the traceback.
        public static let remoteException = Code(rawValue: "remote_exception")
        /// The module is not in the working directory or the cluster's Python.
        public static let missingModule = Code(rawValue: "missing_module")
        /// The module has no such function, class or method.
        public static let missingFunction = Code(rawValue: "missing_function")
        /// The result is neither JSON, bytes nor a NumPy array.
        public static let unserializableResult = Code(rawValue: "unserializable_result")
        /// The call ran past its timeout and was cancelled.
        public static let timeout = Code(rawValue: "timeout")
        /// The call was cancelled.
        public static let cancelled = Code(rawValue: "cancelled")
        /// Ray's memory monitor killed the worker (the node ran out of memory).
        public static let outOfMemory = Code(rawValue: "out_of_memory")
        /// The worker process running the call died.
        public static let workerDied = Code(rawValue: "worker_died")
        /// The node running the call died.
        public static let nodeDied = Code(rawValue: "node_died")
        /// The actor died (killed, crashed, or its node died).
        public static let actorDied = Code(rawValue: "actor_died")
        /// An object was lost with the node that held it.
        public static let objectLost = Code(rawValue: "object_lost")
        /// The gateway's owner actor died: the objects, results and actors it held are lost.
        public static let ownerDied = Code(rawValue: "owner_died")
        /// The call's runtime environment (working directory, pip packages) could not be set up.
        public static let runtimeEnvFailed = Code(rawValue: "runtime_env_failed")
        /// Another of Ray's failures.
        public static let rayError = Code(rawValue: "ray_error")
        /// No alive node has the resources asked for: the call would wait forever.
        public static let infeasible = Code(rawValue: "infeasible")
        /// The gateway refused the request as malformed (a bad function name, argument or option).
        public static let badRequest = Code(rawValue: "bad_request")
        /// No such object (freed, or never put).
        public static let unknownObject = Code(rawValue: "unknown_object")
        /// No such task (its result was collected or freed, or it never existed).
        public static let unknownTask = Code(rawValue: "unknown_task")
        /// No such actor (killed, or never created).
        public static let unknownActor = Code(rawValue: "unknown_actor")
        /// An actor with that name exists already.
        public static let nameTaken = Code(rawValue: "name_taken")
        /// The request body is over the gateway's limit.
        public static let bodyTooLarge = Code(rawValue: "body_too_large")
        /// The gateway refused the service key (HTTP 401).
        public static let unauthorized = Code(rawValue: "unauthorized")
        /// The gateway could not be reached, or answered with something other than its JSON.
        public static let unavailable = Code(rawValue: "unavailable")
        /// The gateway's answer could not be understood.
        public static let badResponse = Code(rawValue: "bad_response")
        /// An argument could not be encoded, or a value not decoded as the type asked for (a usage error).
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// An answer larger than the caller's limit.
        public static let responseTooLarge = Code(rawValue: "response_too_large")
        /// A gateway without a key on a cluster that listens beyond loopback (a usage error).
        public static let openRefused = Code(rawValue: "open_refused")
        /// The gateway holds as many bytes of objects and kept results as its cap allows (`max_held_bytes`): free
        /// some (``Gateway/free(_:)``) or raise the cap.
        public static let storeFull = Code(rawValue: "store_full")
        /// A request from a web browser (an `Origin` header) to a gateway: refused, so that no web page can
        /// drive it.
        public static let browserRefused = Code(rawValue: "browser_refused")
        /// A request body of a type the route does not take.
        public static let unsupportedMediaType = Code(rawValue: "unsupported_media_type")
    }

    /// A Python exception raised on the cluster.
    public struct RemoteException: Sendable, Hashable, Codable, CustomStringConvertible {
        /// Its type, e.g. `ValueError` or `mypackage.errors.BadInput`.
        public var type: String
        /// Its message.
        public var message: String
        /// Python's traceback, the gateway's own frames left out.
        public var traceback: String

        public var description: String { traceback.isEmpty ? "\(type): \(message)" : traceback }
    }

    public var code: Code
    public var message: String
    public var remedy: String?
    /// The Python exception, for ``Code/remoteException`` (and Ray's exception type for Ray's failures).
    public var remote: RemoteException?

    public init(_ code: Code, _ message: String, remedy: String? = nil, remote: RemoteException? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.remote = remote
    }

    public var description: String { sentence("\(code): \(message)", remedy: remedy) }

    public var isUsageError: Bool {
        [.invalidArgument, .openRefused, .badRequest, .missingModule, .missingFunction, .infeasible].contains(code)
    }

    /// Whether the remote work itself failed (it ran, or was set up to run, and ended without a value), as
    /// opposed to a refused request or an unreachable gateway.
    public var isRemoteFailure: Bool {
        [
            .remoteException, .missingModule, .missingFunction, .unserializableResult, .timeout, .cancelled,
            .outOfMemory, .workerDied, .nodeDied, .actorDied, .objectLost, .runtimeEnvFailed, .rayError,
        ].contains(code)
    }
}
