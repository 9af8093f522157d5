import Foundation
import RayLANCore
import RayLANGateway

/// `report.html`: per-class counts, timings, and a thumbnail grid (annotated images where present),
/// one self-contained page a person opens in a browser.
public enum DetectionReport {
    /// - Parameters:
    ///   - records: every input's record.
    ///   - imageLink: the relative link to show for a record (an annotated image or the input itself).
    ///   - elapsed: wall time of the run in seconds.
    public static func html(_ records: [DetectionRecord], imageLink: (DetectionRecord) -> String?, elapsed: Double)
        -> String
    {
        let results = records.compactMap(\.result)
        var counts: [String: Int] = [:]
        for result in results { for detection in result.detections { counts[detection.className, default: 0] += 1 } }
        var stageTotals: [String: Double] = [:]
        for result in results { for (stage, ms) in result.timingsMs { stageTotals[stage, default: 0] += ms } }
        let failed = records.filter { !$0.succeeded }
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var html = """
            <!doctype html><html><head><meta charset="utf-8"><title>RayLAN detections</title><style>
            body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
            td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.grid{display:flex;flex-wrap:wrap;gap:12px}
            figure{margin:0;width:260px}img{width:260px;border:1px solid #ddd}figcaption{font-size:12px}
            .error{color:#b00}</style></head><body>
            <h1>RayLAN detections</h1>
            <p>\(records.count) inputs: \(results.count) detected, \(failed.count) failed, \
            \(String(format: "%.1f", elapsed)) s (\(String(format: "%.1f", elapsed > 0 ? Double(records.count) / elapsed : 0)) images/s).</p>
            <h2>Objects per class</h2><table><tr><th>class</th><th>count</th></tr>
            """
        for name in counts.keys.sorted() { html += "<tr><td>\(escape(name))</td><td>\(counts[name]!)</td></tr>" }
        html += "</table><h2>Mean time per image on the service (ms)</h2><table><tr><th>stage</th><th>ms</th></tr>"
        for stage in ["queue", "decode", "preprocess", "inference", "postprocess", "total"]
        where stageTotals[stage] != nil {
            html +=
                "<tr><td>\(stage)</td><td>\(String(format: "%.1f", stageTotals[stage]! / Double(max(results.count, 1))))</td></tr>"
        }
        html += "</table>"
        if !failed.isEmpty {
            html += "<h2>Failed inputs</h2><table><tr><th>input</th><th>error</th></tr>"
            for record in failed {
                html +=
                    "<tr><td>\(escape(record.path))</td><td class=\"error\">\(escape(record.error?.description ?? "?"))</td></tr>"
            }
            html += "</table>"
        }
        html += "<h2>Images</h2><div class=\"grid\">"
        for record in records {
            guard let result = record.result else { continue }
            let summary = Dictionary(grouping: result.detections, by: \.className).map { "\($0.value.count) \($0.key)" }
                .sorted().joined(separator: ", ")
            let link =
                imageLink(record).map { "<a href=\"\(escape($0))\"><img loading=\"lazy\" src=\"\(escape($0))\"></a>" }
                ?? ""
            html +=
                "<figure>\(link)<figcaption>\(escape(record.path)) · \(result.image.width)×\(result.image.height) · \(escape(summary.isEmpty ? "nothing found" : summary))</figcaption></figure>"
        }
        html += "</div></body></html>\n"
        return html
    }
}
