#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation

/// One image file of a detect run: the path as the caller gave it (or as found in a folder), which is what
/// `detections.jsonl` records, and its file URL.
public struct DetectionInput: Sendable, Hashable {
    /// The path as given or found, e.g. `samples/shapes_00.jpg`.
    public var path: String
    /// The file.
    public var url: URL

    public init(path: String) {
        self.path = path
        self.url = URL(fileURLWithPath: path)
    }

    /// The extensions a folder or a glob contributes: `jpg jpeg png webp bmp`.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "bmp"]

    /// Expands paths the way `raylan detect` takes them: a file as given (whatever its extension), a folder
    /// recursively (image extensions only, sorted), a glob (`*`, `?`, `[`) expanded (image extensions only).
    /// The same path reached twice is one input.
    /// - Returns: the inputs in a stable order, and the arguments that matched no image file.
    public static func expand(_ arguments: [String]) -> (inputs: [DetectionInput], unmatched: [String]) {
        var inputs: [DetectionInput] = []
        var seen = Set<String>()
        var unmatched: [String] = []
        let fileManager = FileManager.default
        for argument in arguments {
            var found: [String] = []
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: argument, isDirectory: &isDirectory) {
                if isDirectory.boolValue {
                    let enumerator = fileManager.enumerator(atPath: argument)
                    while let relative = enumerator?.nextObject() as? String {
                        if isImage(relative) { found.append((argument as NSString).appendingPathComponent(relative)) }
                    }
                    found.sort()
                } else {
                    found.append(argument)  // a named file is always tried, whatever its extension
                }
            } else if argument.contains(where: { "*?[".contains($0) }) {
                found = glob(argument).filter(isImage)
            }
            if found.isEmpty { unmatched.append(argument) }
            for path in found where seen.insert(path).inserted {
                inputs.append(DetectionInput(path: path))
            }
        }
        return (inputs, unmatched)
    }

    static func isImage(_ path: String) -> Bool {
        imageExtensions.contains((path as NSString).pathExtension.lowercased())
    }

    static func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Foundation.glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { index in
            result.gl_pathv[index].map { String(cString: $0) }
        }.sorted()
    }
}
