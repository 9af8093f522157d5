import Foundation
import NIOHTTP1
import RayLANCore
import RayLANGateway

extension DetectionClient {
    /// When ``DetectionClient`` sends a request again, and how long it waits first.
    ///
    /// Retried, up to ``attempts`` tries in all:
    /// - 503, 429 and 408 (Serve sheds load with 503; a proxy timeout is 408), after the answer's `Retry-After`
    ///   (seconds or an HTTP date, capped at ``maxRetryAfter``) or else the backoff;
    /// - 500 without the service's own error JSON (`{"error": {"code": …}}`): Serve's proxy answers a bare
    ///   500 when the replica died mid-request, and Serve never replays a request it had accepted;
    /// - 502 and 504 (a gateway in between), and connection loss (refused, reset, nothing received for the
    ///   read timeout), after the backoff.
    ///
    /// Never retried: the service's own answers with its error JSON (400, 401, 413, 422, or a 500 it meant),
    /// any other 4xx, and an answer over the size cap (a retry would run the inference again).
    ///
    /// The backoff doubles from ``initialBackoff`` up to ``maxBackoff``, each wait drawn between half and all
    /// of it, so that clients refused together do not come back together.
    public struct RetryPolicy: Sendable, Hashable {
        /// Tries per request, the first included; 1 never retries. Default 5.
        public var attempts: Int
        /// The wait before the first retry when the answer names none. Default 0.25 s.
        public var initialBackoff: Duration
        /// The longest backoff. Default 8 s.
        public var maxBackoff: Duration
        /// The longest `Retry-After` honoured; a longer one is cut to this. Default 30 s.
        public var maxRetryAfter: Duration
        /// How long a request shed by an overloaded service (503, 429) keeps being retried past ``attempts``,
        /// waits added up: load shedding is the service asking to come back later, not a failure. Default 120 s.
        public var maxShedWait: Duration

        public init(
            attempts: Int = 5, initialBackoff: Duration = .milliseconds(250), maxBackoff: Duration = .seconds(8),
            maxRetryAfter: Duration = .seconds(30), maxShedWait: Duration = .seconds(120)
        ) {
            self.maxShedWait = maxShedWait
            self.attempts = attempts
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.maxRetryAfter = maxRetryAfter
        }

        /// Sends once, never retries.
        public static let never = RetryPolicy(attempts: 1, maxShedWait: .zero)

        /// The wait before trying again after `response` to try number `attempt` (1 for the first), or nil
        /// when the answer is final.
        func delay(after response: RayCluster.Response, attempt: Int, now: Date = Date()) -> Duration? {
            switch response.status {
            case 408, 429, 503:
                if let value = response.headers.first(name: "Retry-After"),
                    let wait = Self.retryAfter(value, now: now)
                {
                    return min(wait, maxRetryAfter)
                }
                return backoff(attempt: attempt)
            case 502, 504:
                return backoff(attempt: attempt)
            case 500:
                return Self.isServiceError(response.body) ? nil : backoff(attempt: attempt)
            default:
                return nil
            }
        }

        /// The backoff after try number `attempt`: doubling from ``initialBackoff``, capped at ``maxBackoff``,
        /// drawn between half and all of it.
        func backoff(attempt: Int) -> Duration {
            var delay = initialBackoff
            for _ in 1..<max(attempt, 1) where delay < maxBackoff { delay *= 2 }
            delay = min(delay, maxBackoff)
            return delay * Double.random(in: 0.5...1)
        }

        /// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3); nil when it is neither.
        static func retryAfter(_ value: String, now: Date) -> Duration? {
            let text = value.trimmingCharacters(in: .whitespaces)
            if let seconds = Double(text), seconds.isFinite {
                return .milliseconds(Int64(max(seconds, 0) * 1000))
            }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
                formatter.dateFormat = format
                if let date = formatter.date(from: text) {
                    return .milliseconds(Int64(max(date.timeIntervalSince(now), 0) * 1000))
                }
            }
            return nil
        }

        /// Whether `body` is the detection service's own error answer, `{"error": {"code": "…", …}}`.
        static func isServiceError(_ body: Data) -> Bool {
            struct Answer: Decodable {
                struct Failure: Decodable { var code: String }
                var error: Failure
            }
            return (try? JSONDecoder().decode(Answer.self, from: body)) != nil
        }
    }
}

extension DetectionError.Code {
    /// The service's answer was larger than the client accepts (not retried: a retry would run the inference
    /// again).
    public static let responseTooLarge = Self(rawValue: "response_too_large")
}

extension DetectionError {
    /// A failure to get an answer, as a detection error: an answer over the size cap keeps its own code,
    /// everything else (connection loss after every retry) is `unavailable`.
    init(transport error: any Error) {
        if let error = error as? DetectionError {
            self = error
        } else if let error = error as? ClusterError, error.code == .responseTooLarge {
            self.init(.responseTooLarge, error.message)
        } else {
            self.init(.unavailable, "\(error)")
        }
    }
}
