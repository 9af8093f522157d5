import Foundation

/// A list of gitwildmatch patterns (`.gitignore` syntax), matched exactly as the `pathspec` copy that Ray
/// vendors (`ray/_private/thirdparty/pathspec`, the same in Ray 2.45 and 2.60) matches them, so that RayLAN
/// excludes the same files as Ray's Python SDK and computes the same package hash.
///
/// The last matching pattern decides; `!pattern` re-includes.
struct IgnoreRules: Sendable {
    private struct Rule: @unchecked Sendable {
        let regex: NSRegularExpression
        let include: Bool
    }

    private let rules: [Rule]

    /// Compiles `lines` (one pattern each; blank lines and `#` comments are ignored).
    init(lines: [String]) {
        rules = lines.compactMap { line in
            guard let (pattern, include) = Self.regex(for: line),
                let regex = try? NSRegularExpression(pattern: pattern)
            else { return nil }
            return Rule(regex: regex, include: include)
        }
    }

    var isEmpty: Bool { rules.isEmpty }

    /// Whether `path` (relative, `/`-separated; `.` for the base directory itself) is matched.
    func matches(_ path: String) -> Bool {
        let file = path.hasPrefix("./") ? String(path.dropFirst(2)) : path
        let range = NSRange(file.startIndex..., in: file)
        var matched = false
        for rule in rules where rule.regex.firstMatch(in: file, options: [.anchored], range: range) != nil {
            matched = rule.include
        }
        return matched
    }

    /// pathspec's `GitWildMatchPattern.pattern_to_regex`, as vendored by Ray.
    static func regex(for line: String) -> (String, Bool)? {
        var pattern = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if pattern.isEmpty || pattern.hasPrefix("#") || pattern == "/" { return nil }
        var include = true
        if pattern.hasPrefix("!") {
            include = false
            pattern.removeFirst()
        }
        if pattern.hasPrefix("\\") { pattern.removeFirst() }
        var segments = pattern.components(separatedBy: "/")
        if segments[0].isEmpty {
            segments.removeFirst()
        } else if segments.count == 1 || (segments.count == 2 && segments[1].isEmpty) {
            if segments[0] != "**" { segments.insert("**", at: 0) }
        }
        if segments.count > 1, segments[segments.count - 1].isEmpty {
            segments[segments.count - 1] = "**"
        }
        var output = "^"
        var needSlash = false
        let end = segments.count - 1
        for (index, segment) in segments.enumerated() {
            if segment == "**" {
                if index == 0 && index == end {
                    output += ".+"
                } else if index == 0 {
                    output += "(?:.+/)?"
                    needSlash = false
                } else if index == end {
                    output += "/.*"
                } else {
                    output += "(?:/.+)?"
                    needSlash = true
                }
            } else if segment == "*" {
                if needSlash { output += "/" }
                output += "[^/]+"
                needSlash = true
            } else {
                if needSlash { output += "/" }
                output += translateSegmentGlob(segment)
                if index == end && include { output += "(?:/.*)?" }
                needSlash = true
            }
        }
        output += "$"
        return (output, include)
    }

    /// pathspec's `_translate_segment_glob`: `*`, `?`, `[...]` and `\` escapes within one path segment.
    static func translateSegmentGlob(_ pattern: String) -> String {
        let chars = Array(pattern)
        var regex = ""
        var escape = false
        var i = 0
        let end = chars.count
        while i < end {
            let char = chars[i]
            i += 1
            if escape {
                escape = false
                regex += NSRegularExpression.escapedPattern(for: String(char))
            } else if char == "\\" {
                escape = true
            } else if char == "*" {
                regex += "[^/]*"
            } else if char == "?" {
                regex += "[^/]"
            } else if char == "[" {
                var j = i
                if j < end && chars[j] == "!" { j += 1 }
                if j < end && chars[j] == "]" { j += 1 }
                while j < end && chars[j] != "]" { j += 1 }
                if j < end {
                    j += 1
                    var expr = "["
                    if chars[i] == "!" {
                        expr += "^"
                        i += 1
                    } else if chars[i] == "^" {
                        expr += "\\^"
                        i += 1
                    }
                    expr += String(chars[i..<j]).replacingOccurrences(of: "\\", with: "\\\\")
                    regex += expr
                    i = j
                } else {
                    regex += "\\["
                }
            } else {
                regex += NSRegularExpression.escapedPattern(for: String(char))
            }
        }
        return regex
    }
}
