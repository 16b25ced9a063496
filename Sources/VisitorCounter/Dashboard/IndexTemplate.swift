import Foundation
import Mustache

/// The template `GET /` is rendered with: the built-in dashboard, or a site owner's Mustache file
/// (`--index-template`) given the same figures (``Dashboard/context``). A file is parsed once, at start,
/// so a template with a mistake stops the service with the line and column instead of serving a
/// broken page.
public struct IndexTemplate: Sendable {
    /// `built-in`, or the file's path.
    public let source: String
    /// The template's text, with its line breaks made `\n` as a browser makes them before it hashes an
    /// inline element.
    public let text: String
    /// The page's policy (``ContentSecurityPolicy/forTemplate(_:)``); `nil` when an inline style or
    /// script holds a Mustache tag, which only `--index-csp` can allow.
    public let contentSecurityPolicy: String?
    private let template: MustacheTemplate

    /// The built-in dashboard. Its text is parsed by a test, so the `try!` cannot fail at run time.
    public static let standard = try! IndexTemplate(text: standardText, source: "built-in")

    /// The built-in template's text (`visitor-counter template` prints it).
    public static var standardText: String { StandardIndexTemplate.text }

    public init(text: String, source: String) throws(IndexTemplateError) {
        self.source = source
        self.text = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        self.contentSecurityPolicy = ContentSecurityPolicy.forTemplate(self.text)
        do {
            template = try MustacheTemplate(string: self.text)
        } catch let error as MustacheTemplate.ParserError {
            throw IndexTemplateError(
                source: source, reason: Self.reason(error.error),
                position: (line: error.context.lineNumber, column: error.context.columnNumber, text: error.context.line))
        } catch {
            throw IndexTemplateError(source: source, reason: "\(error)", position: nil)
        }
    }

    /// Reads and parses the file at `path`.
    public init(contentsOf path: String) throws(IndexTemplateError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw IndexTemplateError(source: path, reason: "does not exist", position: nil)
        }
        guard !isDirectory.boolValue else { throw IndexTemplateError(source: path, reason: "is a directory", position: nil) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IndexTemplateError(source: path, reason: "cannot be read by this user", position: nil)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw IndexTemplateError(source: path, reason: "is not UTF-8 text", position: nil)
        }
        guard !text.allSatisfy(\.isWhitespace) else {
            throw IndexTemplateError(source: path, reason: "is empty", position: nil)
        }
        try self.init(text: text, source: path)
    }

    public func render(_ dashboard: Dashboard) -> String {
        template.render(dashboard.context)
    }

    private static func reason(_ error: any Error) -> String {
        guard let error = error as? MustacheTemplate.Error else { return "\(error)" }
        switch error {
        case .sectionCloseNameIncorrect: return "a section is closed with another name than it was opened with"
        case .unfinishedName: return "a tag is not finished (a missing }} or a bad name)"
        case .expectedSectionEnd: return "a section is opened but never closed (a {{#…}} or {{^…}} without its {{/…}})"
        case .invalidSetDelimiter: return "a set-delimiter tag is malformed"
        case .transformAppliedToInheritanceSection: return "a transform is applied to an inheritance section"
        case .illegalTokenInsideInheritSection, .textInsideInheritSection:
            return "a partial's inherit section holds something other than blocks"
        case .invalidConfigVariableSyntax: return "a pragma tag is malformed"
        case .unrecognisedConfigVariable: return "a pragma tag names an unknown setting"
        }
    }
}

/// A template that cannot be used, and where: `index template FILE, line 3, column 9: … | the line`.
public struct IndexTemplateError: Error, CustomStringConvertible {
    public let source: String
    public let reason: String
    public let position: (line: Int, column: Int, text: String)?

    public var description: String {
        guard let position else { return "index template \(source) \(reason)" }
        let line = position.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = line.isEmpty ? "" : ": \(line)"
        return "index template \(source), line \(position.line), column \(position.column): \(reason)\(shown)"
    }
}
