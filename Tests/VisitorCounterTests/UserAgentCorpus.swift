import Foundation
import Testing

/// The user agents of one of the YAML files in `../shared/bots/` (isbot's fixtures, beside the
/// checkout in CI): top-level keys, each with a list of user agents, plain or in double or single
/// quotes. Only that much YAML is read; any other line fails the test that reads the file.
struct UserAgentCorpus {
    /// The folder, beside the repository's top folder.
    static let folder = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/bots")

    let name: String
    let userAgents: [String]

    init(_ name: String) throws {
        self.name = name
        let path = Self.folder.appendingPathComponent(name).path
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            Issue.record("the corpus \(path) is missing: CI puts shared/ beside the checkout; a test of the bot check needs it")
            throw CocoaError(.fileNoSuchFile)
        }
        var userAgents: [String] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("  - ") {
                userAgents.append(Self.scalar(line.dropFirst(4)))
            } else if !line.hasPrefix(" "), line.hasSuffix(":") {
                continue
            } else {
                Issue.record("\(name):\(number + 1) is neither a key nor an item of a list: \(line)")
                throw CocoaError(.fileReadCorruptFile)
            }
        }
        self.userAgents = userAgents
    }

    /// A YAML scalar as these files write it: plain, or quoted when it holds `: `, `#` or a quote.
    private static func scalar(_ text: Substring) -> String {
        if text.count >= 2, text.first == "\"", text.last == "\"" {
            var result = ""
            var escaped = false
            for character in text.dropFirst().dropLast() {
                if escaped {
                    result.append(character == "n" ? "\n" : character == "t" ? "\t" : character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    result.append(character)
                }
            }
            return result
        }
        if text.count >= 2, text.first == "'", text.last == "'" {
            return text.dropFirst().dropLast().replacingOccurrences(of: "''", with: "'")
        }
        return String(text)
    }
}
