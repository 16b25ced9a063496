import Foundation

/// A JSON value, written as the text every route, export and command of the counter answers with.
///
/// Written by hand rather than with `JSONEncoder`: the members come out in the order given (clients
/// and tests read `{"total_visitors": …, "countries": {…}, "last_updated": …}` in that order), with
/// `", "` between items and `": "` after keys, and the stats page costs no encoder per refresh.
public indirect enum JSON: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([JSON])
    /// Members in the order given; a dictionary literal keeps its order too.
    case object([(key: String, value: JSON)])

    /// `date` as `"YYYY-MM-DDTHH:MM:SSZ"`, or `null` when there is none.
    public static func timestamp(_ date: Date?) -> JSON {
        date.map { .string(UTCTimestamp.format($0)) } ?? .null
    }

    /// `value` as a string, or `null` when there is none.
    public static func string(orNull value: String?) -> JSON {
        value.map { .string($0) } ?? .null
    }

    /// `counts` as an object, the largest count first and ties in key order, as the stats show countries.
    public static func counts(_ counts: [String: Int]) -> JSON {
        .object(
            counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .map { (key: $0.key, value: .int($0.value)) })
    }

    /// The value as JSON text, on one line.
    public var text: String {
        var text = ""
        write(to: &text)
        return text
    }

    /// Appends the value's text to `text`, so that nested values and long exports build one string.
    public func write(to text: inout String) {
        switch self {
        case .null: text += "null"
        case .bool(let value): text += value ? "true" : "false"
        case .int(let value): text += String(value)
        case .string(let value): Self.quote(value, into: &text)
        case .array(let items):
            text += "["
            for (index, item) in items.enumerated() {
                if index > 0 { text += ", " }
                item.write(to: &text)
            }
            text += "]"
        case .object(let members):
            text += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { text += ", " }
                Self.quote(member.key, into: &text)
                text += ": "
                member.value.write(to: &text)
            }
            text += "}"
        }
    }

    /// `value` as a JSON string literal: quotes, backslashes and control characters escaped (RFC 8259
    /// section 7), everything else, non-ASCII included, as it is in UTF-8.
    public static func quoted(_ value: String) -> String {
        var text = ""
        quote(value, into: &text)
        return text
    }

    private static func quote(_ value: String, into text: inout String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(elements.map { (key: $0.0, value: $0.1) }) }
    public init(nilLiteral: ()) { self = .null }
}
