import Foundation
import RayLANCore

/// An object on the cluster: bytes from ``Gateway/put(_:)``, or a call's result kept there
/// (``Gateway/submit(_:_:keywords:resources:timeout:maxRetries:)``). Pass it as an argument and the function
/// gets the object's value, fetched on the cluster: the data crosses the LAN once however often it is used.
///
/// Encodes as `{"$ref": "<id>"}`, the gateway's form of a reference, also when nested in your own `Codable` values.
public struct ObjectRef: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The gateway's id: `<owner generation>-<Ray's object id>`.
    public var id: String

    public init(id: String) { self.id = id }

    /// Parses `ref:<id>` (the CLI's form) or a bare id.
    public init?(parsing text: String) {
        let id = text.hasPrefix("ref:") ? String(text.dropFirst(4)) : text
        guard !id.isEmpty, id.allSatisfy({ $0.isHexDigit || $0 == "-" }) else { return nil }
        self.id = id
    }

    private enum CodingKeys: String, CodingKey { case id = "$ref" }

    /// `ref:<id>`.
    public var description: String { "ref:\(id)" }
}

/// A value as the gateway carries it: JSON, or raw bytes (`{"$bytes": base64}` inside JSON).
public enum RemoteValue: Sendable, Hashable {
    case json(JSONValue)
    case bytes(Data)

    /// The JSON form: bytes as `{"$bytes": base64}`.
    public var json: JSONValue {
        switch self {
        case .json(let value): return value
        case .bytes(let data): return .object(["$bytes": .string(data.base64EncodedString())])
        }
    }

    /// A JSON value from the gateway, `{"$bytes": …}` read as bytes.
    init(wire value: JSONValue) {
        if case .object(let fields) = value, fields.count == 1, let text = fields["$bytes"]?.stringValue,
            let data = Data(base64Encoded: text)
        {
            self = .bytes(data)
        } else {
            self = .json(value)
        }
    }

    /// The value as `T`: `Data` from bytes, ``JSONValue`` or `RemoteValue` as they are, anything else decoded
    /// from the JSON.
    /// - Throws: ``GatewayError`` (`invalidArgument`) when it does not decode as `T`.
    func decoded<T: Decodable>(as type: T.Type, what: String) throws -> T {
        if let value = self as? T { return value }
        switch self {
        case .bytes(let data):
            if let value = data as? T { return value }
            throw GatewayError(
                .invalidArgument, "\(what) is \(data.count) bytes, not a \(T.self)",
                remedy: "Ask for Data (or RemoteValue).")
        case .json(let value):
            if let value = value as? T { return value }
            do {
                return try JSONDecoder().decode(T.self, from: JSONEncoder().encode(value))
            } catch {
                throw GatewayError(
                    .invalidArgument, "\(what) does not decode as \(T.self): \(error)",
                    remedy: "Ask for the type the function returns, or for JSONValue.")
            }
        }
    }
}

/// One argument of a remote call.
public enum RemoteArgument: Sendable, Hashable {
    /// A JSON value.
    case json(JSONValue)
    /// Raw bytes (sent inline, base64 in the request; for large data, ``Gateway/put(_:)`` and pass the ref).
    case bytes(Data)
    /// An object on the cluster, resolved there.
    case ref(ObjectRef)

    /// An argument from any `Encodable`: `Data` as bytes, ``ObjectRef`` as a reference, ``JSONValue`` and
    /// ``RemoteArgument`` as they are, anything else through `JSONEncoder`.
    /// - Throws: ``GatewayError`` (`invalidArgument`) when it does not encode.
    public init(_ value: any Encodable) throws {
        switch value {
        case let argument as RemoteArgument: self = argument
        case let data as Data: self = .bytes(data)
        case let ref as ObjectRef: self = .ref(ref)
        case let json as JSONValue: self = .json(json)
        default:
            do {
                self = .json(try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value)))
            } catch {
                throw GatewayError(
                    .invalidArgument, "The argument \(type(of: value)) does not encode as JSON: \(error)",
                    remedy: "Pass JSON values, Codable types, Data or an ObjectRef.")
            }
        }
    }

    /// The gateway's JSON form.
    package var wire: JSONValue {
        switch self {
        case .json(let value): return value
        case .bytes(let data): return RemoteValue.bytes(data).json
        case .ref(let ref): return .object(["$ref": .string(ref.id)])
        }
    }
}

extension RemoteArgument: Encodable {
    public func encode(to encoder: any Encoder) throws { try wire.encode(to: encoder) }
}

/// Where a remote call stands.
public struct RemoteTask: Sendable, Hashable, Decodable {
    /// A task's state: running (waiting for resources or running), then one of the four ends.
    public struct State: StringValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let running = State(rawValue: "running")
        public static let finished = State(rawValue: "finished")
        public static let failed = State(rawValue: "failed")
        public static let cancelled = State(rawValue: "cancelled")
        public static let timedOut = State(rawValue: "timed_out")

        /// Whether the task has ended.
        public var isFinal: Bool { self != .running }
    }

    /// The task's id; its result is the object with the same id (``ref``).
    public var id: String
    /// `module:function`, or `module:Class.method` for an actor's method.
    public var function: String
    public var state: State
    /// Seconds since 1970 when it was submitted.
    public var submitted: Double
    /// Seconds since 1970 when it ended.
    public var ended: Double?
    /// Why it failed.
    public var error: GatewayError?

    /// The task's result as an object on the cluster (for ``Gateway/get(_:)`` or as another call's argument).
    public var ref: ObjectRef { ObjectRef(id: id) }

    private enum CodingKeys: String, CodingKey { case id, function, state, submitted, ended, error }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        function = try container.decode(String.self, forKey: .function)
        state = try container.decode(State.self, forKey: .state)
        submitted = try container.decode(Double.self, forKey: .submitted)
        ended = try container.decodeIfPresent(Double.self, forKey: .ended)
        error = try container.decodeIfPresent(GatewayError.Wire.self, forKey: .error)?.error
    }
}

/// An object the gateway holds.
public struct ObjectInfo: Sendable, Hashable, Codable {
    /// Its id (``ObjectRef/id``).
    public var id: String
    /// Bytes on the wire; nil for a result not ready yet.
    public var size: Int?
    /// `put`, or `result` (a call's result).
    public var kind: String
    /// Seconds since 1970.
    public var created: Double
    /// For a result: its function and the task's state.
    public var function: String?
    public var state: RemoteTask.State?

    public var ref: ObjectRef { ObjectRef(id: id) }
}

/// An actor the gateway created.
public struct ActorInfo: Sendable, Hashable, Decodable {
    /// An actor's state: starting (waiting for resources, or in its constructor), alive, or failed.
    public struct State: StringValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let starting = State(rawValue: "starting")
        public static let alive = State(rawValue: "alive")
        public static let failed = State(rawValue: "failed")
    }

    public var id: String
    /// `module:Class`.
    public var className: String
    /// Its name, for others to find it (``Gateway/actor(named:)``, Ray's `ray.get_actor(name,
    /// namespace="raylan_gateway")`).
    public var name: String?
    public var state: State
    public var created: Double
    /// Ray's options it holds (`num_cpus`, `num_gpus`, `memory`, `resources`).
    public var resources: JSONValue?
    /// Why it failed.
    public var error: GatewayError?

    private enum CodingKeys: String, CodingKey {
        case id, className = "class", name, state, created, resources, error
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        className = try container.decode(String.self, forKey: .className)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        state = try container.decode(State.self, forKey: .state)
        created = try container.decode(Double.self, forKey: .created)
        resources = try container.decodeIfPresent(JSONValue.self, forKey: .resources)
        error = try container.decodeIfPresent(GatewayError.Wire.self, forKey: .error)?.error
    }
}

extension GatewayError {
    /// The gateway's error object: `{"code", "message", "type", "traceback"}`.
    struct Wire: Decodable {
        var code: String
        var message: String
        var type: String?
        var traceback: String?
        /// What to do, where the gateway says (`store_full`).
        var remedy: String?

        var error: GatewayError {
            let code = Code(rawValue: code)
            var remote: RemoteException?
            if let type, !type.isEmpty {
                remote = RemoteException(type: type, message: message, traceback: traceback ?? "")
            }
            return GatewayError(code, message, remedy: remedy ?? Self.remedy(for: code), remote: remote)
        }

        static func remedy(for code: Code) -> String? {
            switch code {
            case .missingModule:
                "Pass the folder that holds the module as the working directory (--working-dir), or install it with --pip."
            case .ownerDied: "Put the objects and create the actors again; new calls start a new owner."
            case .outOfMemory: "Ask for memory (--memory) so Ray places the call on a node that has it, or use less."
            case .unauthorized: "Use the gateway's key (read from its deployed config), or redeploy it."
            default: nil
            }
        }
    }
}

extension RemoteArgument {
    /// An argument as the CLI takes it: `ref:<id>` an object on the cluster, `@FILE` the file's bytes, anything
    /// else a JSON value (`3`, `"text"`, `[1, 2]`, `{"k": true}`).
    /// - Throws: ``GatewayError`` (`invalidArgument`, a usage error) for an unreadable file or text that is not JSON.
    public init(parsing text: String) throws {
        if text.hasPrefix("ref:") {
            guard let ref = ObjectRef(parsing: text) else {
                throw GatewayError(
                    .invalidArgument, "'\(text)' is not an object ref",
                    remedy: "Pass ref: and the id 'raylan put' or 'raylan objects' printed.")
            }
            self = .ref(ref)
        } else if text.hasPrefix("@") {
            let path = String(text.dropFirst())
            guard let data = FileManager.default.contents(atPath: path) else {
                throw GatewayError(
                    .invalidArgument, "Cannot read the file '\(path)' given as \(text)",
                    remedy: "Pass @ and a readable file; for large files, 'raylan put FILE' once and pass the ref.")
            }
            self = .bytes(data)
        } else {
            do {
                self = .json(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)))
            } catch {
                throw GatewayError(
                    .invalidArgument, "The argument '\(text.prefix(80))' is not JSON",
                    remedy:
                        "Quote strings as JSON, e.g. '\"hello\"'; pass @FILE for a file's bytes, ref:ID for an object.")
            }
        }
    }
}
