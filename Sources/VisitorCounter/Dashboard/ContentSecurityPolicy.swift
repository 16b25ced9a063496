import Foundation

/// The `Content-Security-Policy` of the index page, worked out once from its template: nothing loads
/// or runs but the template's own inline `<style>` and `<script>` elements, each allowed by its
/// SHA-256, and the script's requests to this site. Since the hashes come from the template and not
/// from a rendered page, an element that a figure smuggled into the page would not match any of them.
public enum ContentSecurityPolicy {
    /// The policy for `template`; `nil` when an inline style or script holds a Mustache tag, so that
    /// its text, and with it its hash, would change with the figures.
    public static func forTemplate(_ template: String) -> String? {
        let styles = inlineContents(of: "style", in: template)
        let scripts = inlineContents(of: "script", in: template)
        guard !(styles + scripts).contains(where: { $0.contains("{{") }) else { return nil }
        return policy(styles: styles, scripts: scripts)
    }

    /// The policy of a page that may run and style nothing of its own.
    public static let strictest = policy(styles: [], scripts: [])

    private static func policy(styles: [String], scripts: [String]) -> String {
        var directives = ["default-src 'none'"]
        if !styles.isEmpty { directives.append("style-src " + sources(styles)) }
        if !scripts.isEmpty {
            directives.append("script-src " + sources(scripts))
            directives.append("connect-src 'self'")
        }
        directives += ["base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]
        return directives.joined(separator: "; ")
    }

    private static func sources(_ contents: [String]) -> String {
        Set(contents.map { "'sha256-\(SHA256.base64($0))'" }).sorted().joined(separator: " ")
    }

    /// The text of every `<name …>…</name>` element without a `src` attribute, as the browser hashes
    /// it (line breaks must already be `\n`). Comments are skipped; a `>` inside a quoted attribute
    /// value does not end the tag.
    static func inlineContents(of name: String, in html: String) -> [String] {
        let text = Array(html.utf8)
        let open = Array("<\(name)".utf8)
        let close = Array("</\(name)".utf8)
        var contents: [String] = []
        var index = 0
        while index < text.count {
            if text.starts(with: "<!--", at: index) {
                index = text.firstIndex(of: Array("-->".utf8), from: index + 4).map { $0 + 3 } ?? text.count
                continue
            }
            guard text.startsCaseInsensitive(with: open, at: index) else {
                index += 1
                continue
            }
            let afterName = index + open.count
            // `<styles>` or `<scripted>` are other elements.
            guard afterName < text.count, [UInt8(ascii: ">"), UInt8(ascii: "/")].contains(text[afterName])
                || text[afterName] == 0x20 || (0x09...0x0D).contains(text[afterName])
            else {
                index = afterName
                continue
            }
            var tagEnd = afterName
            var quote: UInt8?
            while tagEnd < text.count {
                let byte = text[tagEnd]
                if let open = quote {
                    if byte == open { quote = nil }
                } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                    quote = byte
                } else if byte == UInt8(ascii: ">") {
                    break
                }
                tagEnd += 1
            }
            guard tagEnd < text.count, let end = text.firstIndexCaseInsensitive(of: close, from: tagEnd + 1) else { break }
            let attributes = String(decoding: text[afterName..<tagEnd], as: UTF8.self)
            if attributes.range(of: #"(^|\s)src\s*="#, options: [.regularExpression, .caseInsensitive]) == nil {
                contents.append(String(decoding: text[(tagEnd + 1)..<end], as: UTF8.self))
            }
            index = end + close.count
        }
        return contents
    }
}

extension Array where Element == UInt8 {
    fileprivate func starts(with prefix: String, at index: Int) -> Bool {
        index + prefix.utf8.count <= count && self[index..<(index + prefix.utf8.count)].elementsEqual(prefix.utf8)
    }

    fileprivate func startsCaseInsensitive(with prefix: [UInt8], at index: Int) -> Bool {
        guard index + prefix.count <= count else { return false }
        for offset in 0..<prefix.count where Self.lower(self[index + offset]) != Self.lower(prefix[offset]) {
            return false
        }
        return true
    }

    fileprivate func firstIndex(of needle: [UInt8], from start: Int) -> Int? {
        guard start <= count - needle.count else { return nil }
        return (start...(count - needle.count)).first { self[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    fileprivate func firstIndexCaseInsensitive(of needle: [UInt8], from start: Int) -> Int? {
        guard start <= count - needle.count else { return nil }
        return (start...(count - needle.count)).first { startsCaseInsensitive(with: needle, at: $0) }
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        (0x41...0x5A).contains(byte) ? byte + 0x20 : byte
    }
}
