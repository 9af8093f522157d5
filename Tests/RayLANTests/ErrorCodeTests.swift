import Foundation
import RayLANTesting
import Testing

/// One convention for every error's code: snake_case, the Swift name's words (`noFreeGPU` is `no_free_gpu`); and
/// every code the cluster code sends (`contracts/error_codes.json`, which `cluster/tests/test_contract.py`
/// checks against the Python sources) named by the Swift error type that carries it.
@Suite("Error codes: one spelling, shared with the cluster code")
struct ErrorCodeTests {
    /// Every `static let name = Code("raw")` (or `Code(rawValue:)`, `Self(…)`) in the library's targets (`Sources/`),
    /// by file.
    static func declaredCodes() throws -> [(file: String, name: String, raw: String)] {
        let root = TestEnvironment.packageRoot.appendingPathComponent("Sources")
        let pattern = try NSRegularExpression(
            pattern: #"static let ([A-Za-z]+) = (?:Code|Self)\((?:rawValue: )?"([^"]+)""#)
        var found: [(String, String, String)] = []
        let files = FileManager.default.enumerator(atPath: root.path)?.compactMap { $0 as? String } ?? []
        for file in files where file.hasSuffix(".swift") {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let name = String(text[Range(match.range(at: 1), in: text)!])
                let raw = String(text[Range(match.range(at: 2), in: text)!])
                found.append((file, name, raw))
            }
        }
        return found
    }

    /// `noFreeGPU` → `no_free_gpu`, `pathNotOnEveryNode` → `path_not_on_every_node`.
    static func snakeCase(_ name: String) -> String {
        var words: [String] = []
        var current = ""
        let characters = Array(name)
        for (index, character) in characters.enumerated() {
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            let startsWord =
                character.isUppercase
                && (characters[max(index - 1, 0)].isLowercase || (next?.isLowercase ?? false))
            if startsWord && !current.isEmpty {
                words.append(current)
                current = ""
            }
            current.append(character)
        }
        words.append(current)
        return words.map { $0.lowercased() }.joined(separator: "_")
    }

    @Test("Every error code in the library is the snake_case of its Swift name")
    func snakeCaseEverywhere() throws {
        let codes = try Self.declaredCodes()
        #expect(codes.count >= 100, "\(codes.count) codes found")
        for code in codes {
            #expect(code.raw == Self.snakeCase(code.name), "\(code.file): \(code.name) is spelt \"\(code.raw)\"")
        }
        #expect(Self.snakeCase("noFreeGPU") == "no_free_gpu" && Self.snakeCase("notAFile") == "not_a_file")
    }

    @Test("Every code the cluster code sends is named by the Swift error type that carries it")
    func clusterCodesNamed() throws {
        let data = try Data(
            contentsOf: TestEnvironment.packageRoot.appendingPathComponent("contracts/error_codes.json"))
        let sent = try JSONDecoder().decode([String: [String]].self, from: data)
        let declared = try Self.declaredCodes()
        let root = TestEnvironment.packageRoot.appendingPathComponent("Sources")
        for (type, codes) in sent {
            // The file that declares the type.
            let file = try #require(
                Set(declared.map(\.file)).first { file in
                    let text = (try? String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)) ?? ""
                    return text.contains("public struct \(type):")
                }, "no file declares \(type)")
            let named = Set(declared.filter { $0.file == file }.map(\.raw))
            for code in codes {
                #expect(named.contains(code), "\(type) (\(file)) names no code \"\(code)\"")
            }
        }
        #expect(Set(sent.keys) == ["DetectionError", "OnClusterError", "GatewayError"])
    }
}
