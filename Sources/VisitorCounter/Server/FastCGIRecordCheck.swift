/// What a worker decides about the FastCGI records waiting on a connection before it lets libfcgi read them.
///
/// libfcgi allocates `nameLength + valueLength + 2` bytes for each param with a C `int` sum and
/// `assert`s that the allocation worked, so a peer that sends two lengths adding up to about 2^31 aborts
/// the whole worker (Debian's fix for CVE-2025-23016 rejects only one of the overflows). The worker
/// peeks at the records with `MSG_PEEK`, walks their name-value length prefixes without taking the
/// bytes, and closes the connection when a param is longer than ``maxParamBytes``: libfcgi never sees it.
public enum FastCGIRecordCheck: Equatable, Sendable {
    /// The records up to the end of the next request's params are here, and every length is sane.
    case acceptable
    /// The params have not all arrived yet.
    case incomplete
    /// The connection must be closed: why, in words for the log.
    case rejected(String)

    /// The longest name plus value a param may have. nginx sends headers as params and keeps a
    /// request's headers within its `large_client_header_buffers` (4 x 8 KiB by default), so a
    /// megabyte leaves room for any configuration and is far from the sizes libfcgi cannot allocate.
    public static let maxParamBytes = 1 << 20

    static let headerLength = 8
    static let beginRequest: UInt8 = 1
    static let params: UInt8 = 4
    static let getValues: UInt8 = 9

    /// Checks the records at the start of `bytes`: any records before the request's params are
    /// skipped, `FCGI_GET_VALUES` records (which libfcgi also parses as params) are checked, and the
    /// check ends at the empty `FCGI_PARAMS` record that ends a request's params.
    public static func check(_ bytes: UnsafeRawBufferPointer) -> FastCGIRecordCheck {
        var offset = 0
        var paramLengths = ParamLengths()
        while true {
            guard offset + headerLength <= bytes.count else { return .incomplete }
            let version = bytes[offset]
            let type = bytes[offset + 1]
            let contentLength = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let paddingLength = Int(bytes[offset + 6])
            guard version == 1 else { return .rejected("a record of FastCGI version \(version), not 1") }
            let contentStart = offset + headerLength
            let available = min(contentLength, bytes.count - contentStart)
            let content = UnsafeRawBufferPointer(rebasing: bytes[contentStart..<contentStart + max(available, 0)])
            switch type {
            case params:
                if contentLength == 0 { return .acceptable }
                if let reason = paramLengths.feed(content) { return .rejected(reason) }
            case getValues:
                var values = ParamLengths()
                if let reason = values.feed(content) { return .rejected(reason) }
            case beginRequest:
                paramLengths = ParamLengths()
            default:
                break
            }
            guard available == contentLength else { return .incomplete }
            offset = contentStart + contentLength + paddingLength
        }
    }
}

/// The name-value pairs of a params stream, read a piece at a time: only the length prefixes are
/// decoded (one byte below 128, else four bytes with the top bit set); names and values are skipped.
struct ParamLengths {
    /// Bytes of the prefix being read, when it spans two records.
    private var prefix: [UInt8] = []
    private var nameLength: Int?
    /// Name and value bytes still to skip.
    private var skip = 0

    /// Reads `content`; answers why the stream is refused, or `nil` while it is fine.
    mutating func feed(_ content: UnsafeRawBufferPointer) -> String? {
        var index = 0
        while index < content.count {
            if skip > 0 {
                let step = min(skip, content.count - index)
                skip -= step
                index += step
                continue
            }
            prefix.append(content[index])
            index += 1
            guard prefix[0] & 0x80 == 0 || prefix.count == 4 else { continue }
            let length =
                prefix.count == 1
                ? Int(prefix[0]) : Int(prefix[0] & 0x7f) << 24 | Int(prefix[1]) << 16 | Int(prefix[2]) << 8 | Int(prefix[3])
            prefix.removeAll(keepingCapacity: true)
            guard let name = nameLength else {
                nameLength = length
                continue
            }
            nameLength = nil
            guard name + length <= FastCGIRecordCheck.maxParamBytes else {
                return "a param of \(name) + \(length) bytes, more than \(FastCGIRecordCheck.maxParamBytes)"
            }
            skip = name + length
        }
        return nil
    }
}
