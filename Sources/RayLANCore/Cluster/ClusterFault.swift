/// A fault in how a cluster is set up that Ray reports only as text (a Python exception inside a message), with
/// what causes it and what fixes it. Recognised by ``RaySays/knownFault(in:)``, from the table there, and
/// nowhere else.
///
/// Where RayLAN meets one (a Serve deploy that fails, `raylan doctor`'s serve check), its remedy replaces the
/// generic one ("fix the cause Ray gives"): Ray's traceback names a line of Ray's own code, not the fix.
package struct ClusterFault: Sendable, Hashable, CustomStringConvertible {
    /// Which fault this is.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        package var description: String { name }

        /// Ray 2.45's Serve with protobuf 7: Serve reads `FieldDescriptor.label`, which protobuf 7 removed, so
        /// every deploy fails (`AttributeError: '…FieldDescriptor' object has no attribute 'label'`).
        static let protobufTooNew = Code("protobuf_too_new")
    }

    package let code: Code
    /// What is wrong, in one sentence.
    package let cause: String
    /// What fixes it, as the user does it.
    package let remedy: String

    /// The cause, then the remedy.
    package var description: String { sentence(cause, remedy: remedy) }

    /// See ``Code/protobufTooNew``. Installing protobuf<7 is not enough on a running cluster: Serve's controller
    /// keeps the protobuf it loaded (a redeploy then fails the same way), so Ray is restarted too.
    static let protobufTooNew = ClusterFault(
        code: .protobufTooNew,
        cause:
            "The cluster's Python has protobuf 7, which Ray 2.45's Serve cannot use: it reads FieldDescriptor.label, "
            + "which protobuf 7 removed, so every Serve deploy fails",
        remedy:
            "Install protobuf<7 in the Python that Ray runs from on every node (pip install \"protobuf<7\"; "
            + "cluster/requirements-ray245.txt pins it), restart Ray on each node so that Serve loads it "
            + "('raylan down', then 'raylan up' again, where RayLAN started it), then deploy again ('raylan serve deploy')."
    )
}
