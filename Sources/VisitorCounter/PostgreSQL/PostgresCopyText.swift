/// Rows in the text format of `COPY … FROM STDIN`, built straight into one byte buffer: fields
/// separated by tabs, rows ended by a line break, `\N` for `NULL`, and a backslash before the
/// characters that would otherwise end a field, a row or an escape.
///
/// The writer encodes a whole batch this way without making a `String` or an array per row or per
/// field (profiling showed those allocations among the writer's largest costs); a value with nothing to
/// escape, as nearly every user agent is, is copied in one piece.
public struct PostgresCopyText {
    /// The encoded rows so far.
    public private(set) var bytes: [UInt8] = []
    private var atRowStart = true

    public init(reservingCapacity capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// Appends one field: `value` escaped, or `\N` for `nil`.
    public mutating func append(_ value: String?) {
        separate()
        guard var value else {
            bytes.append(UInt8(ascii: "\\"))
            bytes.append(UInt8(ascii: "N"))
            return
        }
        value.withUTF8 { appendEscaped($0) }
    }

    /// Appends one field whose bytes need no escape: ASCII digits and punctuation, written by the caller
    /// with `write` (a timestamp, a number).
    public mutating func appendPlain(_ write: (inout [UInt8]) -> Void) {
        separate()
        write(&bytes)
    }

    /// Ends the row.
    public mutating func endRow() {
        bytes.append(UInt8(ascii: "\n"))
        atRowStart = true
    }

    /// Forgets the rows and keeps the buffer's memory, for the next chunk.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        atRowStart = true
    }

    private mutating func separate() {
        if !atRowStart { bytes.append(UInt8(ascii: "\t")) }
        atRowStart = false
    }

    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        var plainStart = 0
        for index in 0..<utf8.count {
            let escaped: UInt8
            switch utf8[index] {
            case UInt8(ascii: "\\"): escaped = UInt8(ascii: "\\")
            case UInt8(ascii: "\t"): escaped = UInt8(ascii: "t")
            case UInt8(ascii: "\n"): escaped = UInt8(ascii: "n")
            case UInt8(ascii: "\r"): escaped = UInt8(ascii: "r")
            default: continue
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainStart..<index]))
            bytes.append(UInt8(ascii: "\\"))
            bytes.append(escaped)
            plainStart = index + 1
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainStart...]))
    }
}
