#if canImport(Glibc)
import Glibc
#endif

/// Tells crawlers, monitors, feed readers, scanners, link previews, headless browsers and HTTP
/// libraries from people, by their user agent.
///
/// A user agent is a bot when it is empty, when it has a shape no browser sends (``Shape``), or when
/// it holds one of ``markers`` where the marker says, compared without regard to ASCII case. The
/// markers are the words bots name themselves with, by kind, rather than the names of single bots:
/// a crawler not seen before still calls itself a bot, a spider or a crawler, links to a page about
/// itself, or is a library that names itself and its version and nothing else.
///
/// The request thread asks for every visit, before it takes the buffer's lock: the markers are
/// found in one pass by an automaton built once (``MarkerAutomaton``), and the shapes look at the
/// first and last few bytes; no regular expression runs.
public enum BotClassifier {
    /// Which check this is, kept in each journal's header: rows a journal holds were sorted by the
    /// check of its version, and a replay sorts them again when that is not this one. Raise it when a
    /// change makes the check call other user agents bots. Journals before it hold 0.
    public static let version: UInt32 = 2

    /// Why a user agent is a bot.
    public enum Finding: Sendable, Equatable, CustomStringConvertible {
        /// No user agent at all: browsers always send one.
        case empty
        case shape(Shape)
        /// The marker's notation (see ``MarkerAutomaton/Marker``).
        case marker(String)

        public var description: String {
            switch self {
            case .empty: "empty"
            case .shape(let shape): "shape \(shape)"
            case .marker(let notation): "marker \(notation)"
            }
        }
    }

    /// Whole user agents no browser sends; each case names the shape isbot's pattern for it has.
    public enum Shape: String, Sendable, CaseIterable {
        /// Starts with `<`, `(` or `;`: a template or a fragment, not a product.
        case startsWithPunctuation
        /// Starts with a number followed by no letter: `123`, `1.0 …`.
        case startsWithNumber
        /// Ends with `; word;`.
        case endsWithBareComment
        /// 50 bytes or more without a space: a token, a key, an encoded blob.
        case longWithoutSpace
        /// Only words, with at most one version after a slash, up to a comma or the end:
        /// `curl/8.5.0`, `python-requests/2.32`, `Go-http-client/1.1`, `Some Tool`.
        case bareProduct
        /// One word, a slash and one more word: `Dalvik/abc`, `node/undici`.
        case productAndToken
        /// One word, a version, and one word in parentheses: `Tool/1.0 (me@example)`.
        case productAndComment
        /// `Mozilla/5.0` followed by one word: `Mozilla/5.0 Jorgee`.
        case mozillaAndWord
        /// `Mozilla/5.0 (compatible; Name/1.0)` and nothing else: no platform, no engine.
        case mozillaCompatibleOnly
        /// An address of mail: `@` followed by a name and a dot.
        case mailAddress
    }

    /// Whether `userAgent` is a bot's: see ``finding(_:)``.
    public static func isBot(_ userAgent: String) -> Bool {
        var userAgent = userAgent
        return userAgent.withUTF8 { finding(in: $0) != nil }
    }

    /// Why `userAgent` is a bot's, or `nil` when it is taken for a person's browser.
    public static func finding(_ userAgent: String) -> Finding? {
        var userAgent = userAgent
        return userAgent.withUTF8 { finding(in: $0) }
    }

    /// ``finding(_:)`` over the user agent's bytes.
    public static func finding(in text: UnsafeBufferPointer<UInt8>) -> Finding? {
        if text.isEmpty { return .empty }
        if let shape = shape(of: text) { return .shape(shape) }
        if let found = openingAutomaton.firstMarker(in: text, limit: openingLength) {
            return .marker(openingAutomaton.markers[found].notation)
        }
        return automaton.firstMarker(in: text).map { .marker(automaton.markers[$0].notation) }
    }

    /// The markers that must open the user agent, looked for in its first bytes only, apart from the
    /// others: in the one automaton, `^read` would be checked at every "read" of every user agent.
    static let openingAutomaton = MarkerAutomaton(markers.filter(\.atStart))
    static let openingLength = markers.filter(\.atStart).map(\.bytes.count).max() ?? 0
    static let automaton = MarkerAutomaton(markers.filter { !$0.atStart })
}

extension BotClassifier {
    /// Which ``Shape`` `text` has, if any. Each looks at a few bytes at the start or the end, and at
    /// most the first word of a browser's user agent (`Mozilla/5.0 (`), so this costs little.
    static func shape(of text: UnsafeBufferPointer<UInt8>) -> Shape? {
        let first = text[0]
        if first == UInt8(ascii: "<") || first == UInt8(ascii: "(") || first == UInt8(ascii: ";") { return .startsWithPunctuation }
        if isDigit(first) {
            var index = 0
            while index < text.count, isDigit(text[index]) { index += 1 }
            if index == text.count || !isWordByte(text[index]) { return .startsWithNumber }
        }
        if endsWithBareComment(text) { return .endsWithBareComment }
        if text.count >= 50, memchr(text.baseAddress!, Int32(UInt8(ascii: " ")), text.count) == nil { return .longWithoutSpace }
        if isBareProduct(text) { return .bareProduct }
        if isProductAndToken(text) { return .productAndToken }
        if isProductAndComment(text) { return .productAndComment }
        if isMozillaAnd(text) { return .mozillaAndWord }
        if isMozillaCompatibleOnly(text) { return .mozillaCompatibleOnly }
        if holdsMailAddress(text) { return .mailAddress }
        return nil
    }

    /// `;\s\w+;$`
    private static func endsWithBareComment(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = text.count - 1
        guard text[index] == UInt8(ascii: ";") else { return false }
        index -= 1
        let wordEnd = index
        while index >= 0, isWordByte(text[index]) { index -= 1 }
        guard index < wordEnd, index >= 1, isSpace(text[index]), text[index - 1] == UInt8(ascii: ";") else { return false }
        return true
    }

    /// `^[\w .\-():%?]+(?:/v?\d+(?:\.\d+)*)?(?:,|$)`
    private static func isBareProduct(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while index < text.count, isProductByte(text[index]) { index += 1 }
        guard index > 0 else { return false }
        if index == text.count || text[index] == UInt8(ascii: ",") { return true }
        guard text[index] == UInt8(ascii: "/") else { return false }
        index += 1
        if index < text.count, text[index] == UInt8(ascii: "v") { index += 1 }
        guard let afterVersion = version(in: text, from: index) else { return false }
        return afterVersion == text.count || text[afterVersion] == UInt8(ascii: ",")
    }

    /// `^[\w\-]+/\w+$` and `^\w+/[\w()]*$`
    private static func isProductAndToken(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        var hasDash = false
        while index < text.count, isWordByte(text[index]) || text[index] == UInt8(ascii: "-") {
            if text[index] == UInt8(ascii: "-") { hasDash = true }
            index += 1
        }
        guard index > 0, index < text.count, text[index] == UInt8(ascii: "/") else { return false }
        index += 1
        let tokenStart = index
        var hasParenthesis = false
        while index < text.count, isWordByte(text[index]) || text[index] == UInt8(ascii: "(") || text[index] == UInt8(ascii: ")") {
            if !isWordByte(text[index]) { hasParenthesis = true }
            index += 1
        }
        guard index == text.count else { return false }
        if hasDash { return !hasParenthesis && index > tokenStart }
        return true
    }

    /// `^\w+/\d\.\d\s\([\w@]+\)$`
    private static func isProductAndComment(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while index < text.count, isWordByte(text[index]) { index += 1 }
        guard index > 0, index + 8 <= text.count, text[index] == UInt8(ascii: "/"), isDigit(text[index + 1]),
            text[index + 2] == UInt8(ascii: "."), isDigit(text[index + 3]), isSpace(text[index + 4]),
            text[index + 5] == UInt8(ascii: "("), text[text.count - 1] == UInt8(ascii: ")")
        else { return false }
        index += 6
        let commentStart = index
        while index < text.count - 1, isWordByte(text[index]) || text[index] == UInt8(ascii: "@") { index += 1 }
        return index == text.count - 1 && index > commentStart
    }

    private static let mozilla: [UInt8] = Array("mozilla/".utf8)

    /// Where what follows `Mozilla/d.d ` starts, or `nil` when `text` does not start so.
    private static func afterMozilla(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
        guard text.count > 12, MarkerAutomaton.matches(mozilla, in: text, at: 0), isDigit(text[8]),
            text[9] == UInt8(ascii: "."), isDigit(text[10]), isSpace(text[11])
        else { return nil }
        return 12
    }

    /// `^mozilla/\d\.\d\s[\w.-]+$`
    private static func isMozillaAnd(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        guard var index = afterMozilla(text) else { return false }
        while index < text.count, isWordByte(text[index]) || text[index] == UInt8(ascii: ".") || text[index] == UInt8(ascii: "-") {
            index += 1
        }
        return index == text.count
    }

    private static let compatible: [UInt8] = Array("(compatible;".utf8)

    /// `^mozilla/\d\.\d\s\((?:compatible;)?(?:\s?[\w.-]+/\d+\.\d+)?\)$`
    private static func isMozillaCompatibleOnly(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        guard var index = afterMozilla(text), text[text.count - 1] == UInt8(ascii: ")"), text[index] == UInt8(ascii: "(") else {
            return false
        }
        if MarkerAutomaton.matches(compatible, in: text, at: index) { index += compatible.count } else { index += 1 }
        let end = text.count - 1
        if index == end { return true }
        if isSpace(text[index]) { index += 1 }
        let nameStart = index
        while index < end, isWordByte(text[index]) || text[index] == UInt8(ascii: ".") || text[index] == UInt8(ascii: "-") {
            index += 1
        }
        guard index > nameStart, index < end, text[index] == UInt8(ascii: "/") else { return false }
        index += 1
        var digits = 0
        while index < end, isDigit(text[index]) { index += 1; digits += 1 }
        guard digits > 0, index < end, text[index] == UInt8(ascii: ".") else { return false }
        index += 1
        digits = 0
        while index < end, isDigit(text[index]) { index += 1; digits += 1 }
        return digits > 0 && index == end
    }

    /// `@[a-z][\w-]+\.`
    private static func holdsMailAddress(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var from = 0
        while from < text.count, let at = memchr(text.baseAddress! + from, Int32(UInt8(ascii: "@")), text.count - from) {
            var index = text.baseAddress!.distance(to: at.assumingMemoryBound(to: UInt8.self)) + 1
            from = index
            guard index < text.count, isLetter(text[index]) else { continue }
            index += 1
            let nameStart = index
            while index < text.count, isWordByte(text[index]) || text[index] == UInt8(ascii: "-") { index += 1 }
            if index > nameStart, index < text.count, text[index] == UInt8(ascii: ".") { return true }
        }
        return false
    }

    /// Where a version (`\d+(?:\.\d+)?(?:\.\d{1,10})*`) that starts at `start` ends, or `nil` when
    /// none starts there. A third part of more than 10 digits is a build's date and time, which
    /// browsers put there (`MozacFetch/49.0.20200702190156`).
    private static func version(in text: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var index = start
        var part = 0
        while true {
            let partStart = index
            while index < text.count, isDigit(text[index]) { index += 1 }
            guard index > partStart, part < 2 || index - partStart <= 10 else { return part > 0 ? partStart - 1 : nil }
            part += 1
            guard index + 1 < text.count, text[index] == UInt8(ascii: "."), isDigit(text[index + 1]) else { return index }
            index += 1
        }
    }

    @inline(__always) private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    @inline(__always) private static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A }
    /// `\w`: a letter, a digit or `_`.
    @inline(__always) private static func isWordByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "_")
    }
    /// `\s`
    @inline(__always) private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }
    /// `[\w .\-():%?]`
    @inline(__always) private static func isProductByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: " "), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: ":"), UInt8(ascii: "%"), UInt8(ascii: "?"):
            true
        default: isWordByte(byte)
        }
    }
}
