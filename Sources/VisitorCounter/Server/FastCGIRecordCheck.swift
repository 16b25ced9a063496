/// What a worker decides about the FastCGI records waiting on a connection before it lets libfcgi read them.
///
/// libfcgi allocates `nameLength + valueLength + 2` bytes for each param with a C `int` sum and
/// `assert`s that the allocation worked, so a peer that sends two lengths adding up to about 2^31 aborts
/// the whole worker (Debian's fix for CVE-2025-23016 rejects only one of the overflows). It parses
/// params in more places than a request's own: `FCGI_GET_VALUES` management records (request id 0), which
/// it answers wherever they come, and records of any id while it reads a request's input.
///
/// So the worker peeks at the records with `MSG_PEEK` and lets libfcgi read a request only once the
/// whole of it has arrived, in the one order nginx sends it: `FCGI_BEGIN_REQUEST` for a responder, that
/// request's `FCGI_PARAMS` records up to the empty one, its `FCGI_STDIN` records up to the empty one.
/// Any other record (another request id, id 0, a second begin, another type) closes the connection, as
/// does a param longer than ``maxParamBytes`` or a body longer than ``maxInputBytes``. libfcgi then
/// parses nothing the check has not seen, and never waits for bytes that have not come. (It reads the
/// socket a buffer at a time, so bytes a peer sends past the request's end are read and dropped; the
/// next request on that connection then starts mid-stream and is refused. nginx never sends them.)
public enum FastCGIRecordCheck: Equatable, Sendable {
    /// The whole request is here, in order, and every length is sane.
    case acceptable
    /// The request has not all arrived yet.
    case incomplete
    /// The connection must be closed: why, in words for the log.
    case rejected(String)

    /// The longest name plus value a param may have. nginx sends headers as params and keeps a
    /// request's headers within its `large_client_header_buffers` (4 x 8 KiB by default), so a
    /// megabyte leaves room for any configuration and is far from the sizes libfcgi cannot allocate.
    public static let maxParamBytes = 1 << 20
    /// The longest request body taken. The counter reads none (the shipped site passes none), and a
    /// request is let through only once all of it is in the socket's buffer, which a body of
    /// megabytes would never fit: such a request is refused at once rather than hold a thread until
    /// its deadline.
    public static let maxInputBytes = 64 << 10

    static let headerLength = 8
    static let beginRequest: UInt8 = 1
    static let params: UInt8 = 4
    static let stdin: UInt8 = 5
    static let responderRole = 1

    /// Where the walk is in the one order nginx sends a request.
    private enum Stage {
        case begin
        case params(id: Int)
        case stdin(id: Int)
    }

    /// Checks the records at the start of `bytes`, which must start a request.
    public static func check(_ bytes: UnsafeRawBufferPointer) -> FastCGIRecordCheck {
        var offset = 0
        var stage = Stage.begin
        var paramLengths = ParamLengths()
        var inputBytes = 0
        while true {
            guard offset + headerLength <= bytes.count else { return .incomplete }
            let version = bytes[offset]
            let type = bytes[offset + 1]
            let id = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let contentLength = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let paddingLength = Int(bytes[offset + 6])
            guard version == 1 else { return .rejected("a record of FastCGI version \(version), not 1") }
            let contentStart = offset + headerLength
            let available = min(contentLength, bytes.count - contentStart)
            let content = UnsafeRawBufferPointer(rebasing: bytes[contentStart..<contentStart + available])
            let whole = contentStart + contentLength + paddingLength <= bytes.count
            switch stage {
            case .begin:
                guard type == beginRequest else {
                    return .rejected("a record of type \(type) where a request must begin")
                }
                guard id != 0, contentLength == 8 else {
                    return .rejected("a begin record of request id \(id) with \(contentLength) bytes")
                }
                guard whole else { return .incomplete }
                let role = Int(content[0]) << 8 | Int(content[1])
                guard role == responderRole else { return .rejected("a request for role \(role), not a responder") }
                stage = .params(id: id)
            case .params(let request), .stdin(let request):
                guard id == request else {
                    return .rejected("a record of request id \(id) inside request \(request)")
                }
                if case .params = stage {
                    guard type == params else { return .rejected("a record of type \(type) among the params") }
                    if let reason = paramLengths.feed(content) { return .rejected(reason) }
                    guard whole else { return .incomplete }
                    if contentLength == 0 { stage = .stdin(id: id) }
                } else {
                    guard type == stdin else { return .rejected("a record of type \(type) in the request's input") }
                    inputBytes += contentLength
                    guard inputBytes <= maxInputBytes else {
                        return .rejected("a request body of more than \(maxInputBytes) bytes, which the counter does not read")
                    }
                    guard whole else { return .incomplete }
                    if contentLength == 0 { return .acceptable }
                }
            }
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
