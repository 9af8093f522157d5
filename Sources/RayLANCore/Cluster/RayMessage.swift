import Foundation

/// Pulls the human part out of a Ray error body: a JSON `message`/`msg`/`detail`, the last line of a
/// Python traceback, or the text itself folded onto one line.
package enum RayMessage {
    package static func extract(from body: String, limit: Int = 500) -> String {
        let trimmed = body.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return "(empty response)" }
        if let data = trimmed.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            for key in ["message", "msg", "detail", "error"] {
                if let text = object[key] as? String, !text.isEmpty { return fold(text, limit: limit) }
            }
        }
        let lines = trimmed.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        if lines.first?.hasPrefix("Traceback") == true, let last = lines.last(where: { !$0.isEmpty }) {
            return fold(last, limit: limit)
        }
        return fold(trimmed, limit: limit)
    }

    static func fold(_ text: String, limit: Int) -> String {
        let oneLine = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
        return oneLine.count > limit ? String(oneLine.prefix(limit)) + "…" : oneLine
    }
}

/// What RayLAN acts on in Ray's error answers that Ray gives only as text. Ray's Jobs API answers these
/// cases with a status shared by other failures and a message, with no code or field to tell them apart, and
/// Serve reports a fault in the cluster's set-up only as a traceback in an application's message, so their
/// wording is matched here, in one place, and nowhere else (RayLAN's own errors are matched by their typed
/// codes).
enum RaySays {
    /// `POST /api/jobs/` for a submission id that exists: 500 "Job with submission_id … already exists".
    static func jobExists(_ body: String) -> Bool { body.contains("already exists") }
    /// `POST /api/jobs/` before the head's job agent registered: 500/503 "No available agent to submit job".
    static func noJobAgent(_ body: String) -> Bool { body.contains("No available agent") }
    /// `DELETE /api/jobs/{id}` for a job still running: "… is not in a terminal state".
    static func jobNotTerminal(_ body: String) -> Bool { body.contains("terminal") }
    /// `PUT /api/serve/applications/` that starts Serve, on a slow host: 500 with the dashboard's traceback of
    /// `serve_start_async` when a proxy it waited for was not ready in time (Serve's controller marks it
    /// unhealthy, kills it and starts another: `ActorDiedError`), or not up within Serve's proxy timeout
    /// ("HTTP proxies not available"). Serve goes on starting; the config was not applied.
    static func serveStartInterrupted(_ body: String) -> Bool {
        body.contains("serve_start_async")
            && (body.contains("ActorDiedError") || body.contains("HTTP proxies not available"))
    }

    /// Faults in a cluster's set-up that Ray reports only inside a message (a Python exception in a Serve
    /// application's or deployment's `message`): what Ray says, and the fault it means. Each row has a test that
    /// feeds it Ray's own recorded text (Tests/Fixtures/ray-says/).
    static let knownFaults: [(says: String, fault: ClusterFault)] = [
        // Ray 2.45's Serve controller with protobuf 7, in a DEPLOY_FAILED application's message:
        // "AttributeError: 'google._upb._message.FieldDescriptor' object has no attribute 'label'" (protobuf's
        // C backend; its pure-Python one says "'FieldDescriptor' object …").
        ("FieldDescriptor' object has no attribute 'label'", .protobufTooNew)
    ]

    /// The known fault that `text` (Ray's message, a traceback) reports, if any; see ``knownFaults``.
    static func knownFault(in text: String) -> ClusterFault? {
        knownFaults.first { text.contains($0.says) }?.fault
    }
}
