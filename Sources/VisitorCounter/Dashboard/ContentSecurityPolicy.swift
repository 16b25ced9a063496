import Foundation

/// The `Content-Security-Policy` of a rendered page: nothing loads or runs but the page's own inline
/// `<style>` and `<script>` elements, each allowed by its SHA-256, and the script's requests to this
/// site. A style attribute, an injected element or an external file is refused by the browser.
public enum ContentSecurityPolicy {
    public static func forPage(_ html: String) -> String {
        let styles = inlineContents(of: "style", in: html)
        let scripts = inlineContents(of: "script", in: html)
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
        Array(Set(contents.map { "'sha256-\(SHA256.base64($0))'" })).sorted().joined(separator: " ")
    }

    /// The text of every `<name …>…</name>` element without a `src` attribute, exactly as the browser
    /// hashes it.
    static func inlineContents(of name: String, in html: String) -> [String] {
        var contents: [String] = []
        var searchStart = html.startIndex
        while let open = html.range(of: "<\(name)", options: .caseInsensitive, range: searchStart..<html.endIndex) {
            guard let tagEnd = html.range(of: ">", range: open.upperBound..<html.endIndex) else { break }
            // `<styles>` or `<scripted>` are other elements.
            let next = html[open.upperBound]
            guard next == ">" || next.isWhitespace || next == "/" else {
                searchStart = open.upperBound
                continue
            }
            guard let close = html.range(of: "</\(name)", options: .caseInsensitive, range: tagEnd.upperBound..<html.endIndex)
            else { break }
            let attributes = html[open.upperBound..<tagEnd.lowerBound]
            if attributes.range(of: "src", options: .caseInsensitive) == nil {
                contents.append(String(html[tagEnd.upperBound..<close.lowerBound]))
            }
            searchStart = close.upperBound
        }
        return contents
    }
}
