import Foundation

/// The counter as a badge: a label and the total visitors in an SVG shaped like shields.io's flat
/// badges (two rectangles, two `<text>` elements, widths from the text), so an owner can show the
/// count on another page or in a README with a plain `<img>`.
///
/// The label comes from the request (`?label=`), so it is decoded, stripped of control characters,
/// cut to ``maxLabelCharacters`` and escaped; the number is the stats cache's, and nothing is counted.
public struct Badge: Sendable, Equatable {
    public let label: String
    public let count: Int

    public static let defaultLabel = "visitors"
    /// A longer label is cut: the badge stays a badge, and the answer's size stays bounded.
    public static let maxLabelCharacters = 40

    /// - Parameter label: the query's `label` as it came (percent-encoded, `+` for a space); the
    ///   default when it is absent or empty.
    public init(label: String?, count: Int) {
        let decoded = label.map { ($0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? $0) } ?? ""
        let printable = String(String.UnicodeScalarView(decoded.unicodeScalars.filter { $0.properties.generalCategory != .control }))
            .trimmingCharacters(in: .whitespaces)
        self.label = printable.isEmpty ? Self.defaultLabel : String(printable.prefix(Self.maxLabelCharacters))
        self.count = count
    }

    /// The SVG, with the count alone in the second `<text>`.
    public var svg: String {
        let value = "\(count)"
        let labelWidth = Self.width(of: label)
        let valueWidth = Self.width(of: value)
        let total = labelWidth + valueWidth
        let title = HTML.escape("\(label): \(value)")
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(total)" height="20" role="img" aria-label="\(title)">\
            <title>\(title)</title>\
            <linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>\
            <stop offset="1" stop-opacity=".1"/></linearGradient>\
            <clipPath id="r"><rect width="\(total)" height="20" rx="3" fill="#fff"/></clipPath>\
            <g clip-path="url(#r)"><rect width="\(labelWidth)" height="20" fill="#555"/>\
            <rect x="\(labelWidth)" width="\(valueWidth)" height="20" fill="#007ec6"/>\
            <rect width="\(total)" height="20" fill="url(#s)"/></g>\
            <g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">\
            <text x="\(labelWidth / 2)" y="14">\(HTML.escape(label))</text>\
            <text x="\(labelWidth + valueWidth / 2)" y="14">\(value)</text></g></svg>
            """
    }

    /// The width a text takes at Verdana 11px, from rough classes of glyph widths, plus 5 px each side.
    static func width(of text: String) -> Int {
        let tenths = text.reduce(0) { sum, character in
            sum + (narrow.contains(character) ? 40 : wide.contains(character) ? 100 : character.isUppercase ? 78 : 68)
        }
        return (tenths + 9) / 10 + 10
    }

    private static let narrow = Set("ijlrtfI.,:;'!|()[] ")
    private static let wide = Set("mwMW@%")
}
