/// PostgreSQL's text forms of arrays and `bytea`, for values passed and read as text: a batch's
/// counts go to the server as a few arrays (`unnest($1::text[], $2::bigint[])`), one statement per
/// table rather than one per key.
enum PostgresArray {
    /// `{"a","b"}`, every element quoted, `"` and `\` escaped. Built from UTF-8 bytes rather than
    /// `Character`s: a batch's unique visitors send one date each, a thousand per batch.
    static func text(_ values: [String]) -> String {
        var result: [UInt8] = [UInt8(ascii: "{")]
        result.reserveCapacity(values.reduce(2) { $0 + $1.utf8.count + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { result.append(UInt8(ascii: ",")) }
            result.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { result.append(UInt8(ascii: "\\")) }
                result.append(byte)
            }
            result.append(UInt8(ascii: "\""))
        }
        result.append(UInt8(ascii: "}"))
        return String(decoding: result, as: UTF8.self)
    }

    /// `{1,2,3}`.
    static func integers(_ values: some Sequence<some BinaryInteger>) -> String {
        "{" + values.map { String($0) }.joined(separator: ",") + "}"
    }

    /// The bytes of a `bytea` in its hex output form, `\x0a1b…`; `nil` for any other form.
    static func bytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count >= 2, digits[0] == UInt8(ascii: "\\"), digits[1] == UInt8(ascii: "x"), digits.count % 2 == 0 else {
            return nil
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((digits.count - 2) / 2)
        var index = 2
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
