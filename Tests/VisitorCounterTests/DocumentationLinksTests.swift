import Foundation
import Testing

/// The README and the pages in `docs/` link to each other by file and heading, and `--help`, the units
/// and the scripts name the pages. A page moved or a heading renamed must fail here, not leave a link
/// that leads nowhere.
struct DocumentationLinksTests {
    /// The README and every page in `docs/`, as paths from the repository's top folder.
    static func pages() throws -> [String] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("docs").path)
        return ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/\($0)" }
    }

    static func text(of path: String) throws -> String {
        try String(contentsOf: repositoryRoot.appendingPathComponent(path), encoding: .utf8)
    }

    /// The lines outside fenced code blocks, where a `#` starts a heading and `](…)` is a link.
    static func prose(_ markdown: String) -> [Substring] {
        var inCode = false
        return markdown.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            if line.hasPrefix("```") { inCode.toggle(); return false }
            return !inCode
        }
    }

    /// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens.
    static func anchor(_ heading: some StringProtocol) -> String {
        String(heading.lowercased().unicodeScalars.compactMap { scalar -> Character? in
            if scalar == " " { return "-" }
            if scalar == "-" || scalar == "_" || CharacterSet.alphanumerics.contains(scalar) { return Character(scalar) }
            return nil
        })
    }

    /// Every heading's anchor; a repeated heading gets `-1`, `-2`, … as on GitHub.
    static func anchors(in markdown: String) -> Set<String> {
        var seen: [String: Int] = [:]
        var anchors: Set<String> = []
        for line in prose(markdown) {
            guard let match = line.wholeMatch(of: #/#{1,6} (.+)/#) else { continue }
            let base = anchor(match.output.1)
            let count = seen[base, default: 0]
            anchors.insert(count == 0 ? base : "\(base)-\(count)")
            seen[base] = count + 1
        }
        return anchors
    }

    /// The targets of the Markdown links and `<img src>` outside code, except those to other sites.
    static func links(in markdown: String) -> [String] {
        prose(markdown).flatMap { line -> [String] in
            let text = line.replacing(#/`[^`]*`/#, with: "")
            let targets = text.matches(of: #/\]\(([^)\s]+)\)/#).map { String($0.output.1) }
                + text.matches(of: #/src="([^"]+)"/#).map { String($0.output.1) }
            return targets.filter { !$0.contains("://") && !$0.hasPrefix("mailto:") }
        }
    }

    /// Why `target`, linked from the page at `page`, leads nowhere; nil when it leads to a file and, for
    /// a page, to one of its headings. A path in `target` is relative to the page's folder.
    static func problem(with target: String, from page: String) throws -> String? {
        let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
        let file = parts[0].isEmpty
            ? page : URL(fileURLWithPath: page).deletingLastPathComponent().appendingPathComponent(String(parts[0])).path
        let path = URL(fileURLWithPath: file, relativeTo: repositoryRoot).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: path) else { return "\(target): no file \(path)" }
        guard parts.count == 2 else { return nil }
        let anchors = anchors(in: try String(contentsOfFile: path, encoding: .utf8))
        return anchors.contains(String(parts[1])) ? nil : "\(target): no heading with that anchor"
    }

    @Test func everyLinkLeadsToAFileAndAHeading() throws {
        var checked = 0
        var broken: [String] = []
        for page in try Self.pages() {
            for target in Self.links(in: try Self.text(of: page)) {
                checked += 1
                if let problem = try Self.problem(with: target, from: page) { broken.append("\(page): \(problem)") }
            }
        }
        #expect(checked > 20, "found only \(checked) links: the link pattern no longer matches the pages")
        #expect(broken.isEmpty, "\(broken.joined(separator: "\n"))")
    }

    @Test func theREADMELinksEveryPage() throws {
        let linked = Set(Self.links(in: try Self.text(of: "README.md")).map { String($0.split(separator: "#")[0]) })
        let pages = try Self.pages().dropFirst()
        #expect(!pages.isEmpty)
        for page in pages { #expect(linked.contains(page), "the README does not link \(page)") }
    }

    /// `--help`'s discussions, the units, the scripts and the nginx site name pages as `docs/NAME.md`,
    /// and some a heading as `docs/NAME.md under "Heading"`.
    @Test func everyPageNamedOutsideTheDocsExists() throws {
        let folders = ["Sources/visitor-counter", "Sources/VisitorCounter", "scripts", "systemd", "deploy"]
        var named = 0
        for folder in folders {
            let enumerator = FileManager.default.enumerator(atPath: repositoryRoot.appendingPathComponent(folder).path)
            while let file = enumerator?.nextObject() as? String {
                let path = "\(folder)/\(file)"
                guard let text = try? Self.text(of: path) else { continue }
                for match in text.matches(of: #/docs/([A-Za-z0-9_-]+\.md)(?: under \\?"([^"\\]+)\\?")?/#) {
                    named += 1
                    let target = "docs/\(match.output.1)" + (match.output.2.map { "#\(Self.anchor($0))" } ?? "")
                    // Named from the top folder, as README.md links them.
                    let problem = try Self.problem(with: target, from: "README.md")
                    #expect(problem == nil, "\(path): \(problem ?? "")")
                }
            }
        }
        #expect(named > 5, "found only \(named) names of pages: the pattern no longer matches")
    }

    /// `scripts/bench.sh` rewrites the table between the markers of the page it names.
    @Test func theBenchmarkTableHasItsMarkers() throws {
        let script = try Self.text(of: "scripts/bench.sh")
        let page = try #require(script.firstMatch(of: #/\nresults_page=(\S+)\n/#)?.output.1, "bench.sh sets no results_page")
        let text = try Self.text(of: String(page))
        let begin = try #require(text.range(of: "<!-- bench:begin -->"), "\(page) has no <!-- bench:begin -->")
        let end = try #require(text.range(of: "<!-- bench:end -->"), "\(page) has no <!-- bench:end -->")
        #expect(begin.upperBound < end.lowerBound)
    }
}
