/// An answer as the responder writes it back through FastCGI: a CGI `Status` line, headers and a body.
public struct Response: Sendable, Equatable {
    public var status: Int { didSet { encoded = nil } }
    public var headers: [(name: String, value: String)] { didSet { encoded = nil } }
    public var body: String { didSet { encoded = nil } }
    /// A body that is not text, sent in place of `body`: the gzip copy of the index page.
    public var binaryBody: [UInt8]? { didSet { encoded = nil } }
    /// `false` for a `HEAD` answer: the headers describe `body`, which is not sent.
    public var sendsBody = true
    /// The header block and the body as the bytes that go out, made once by ``prepared()`` for an
    /// answer sent to many requests; any change to the answer drops them.
    public private(set) var encoded: (bytes: [UInt8], headerCount: Int)?
    /// The visit this answer counts (`GET /`). The responder records it once the header block is on its
    /// way: nginx sends a request to another worker only while no header has come back, so a worker
    /// that dies after recording a visit can no longer have the request counted a second time.
    public var visit: Visit?

    public init(status: Int, headers: [(name: String, value: String)], body: String) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// This answer with its bytes made once, for the pages every request is answered from.
    public func prepared() -> Response {
        var copy = self
        let header = Array(headerBlock.utf8)
        copy.encoded = (header + (binaryBody ?? Array(body.utf8)), header.count)
        return copy
    }

    /// The bytes to send: the header block, and the body unless this is a `HEAD` answer.
    public var wireBytes: ArraySlice<UInt8> {
        let (bytes, headerCount) = encoded ?? prepared().encoded!
        return bytes[..<(sendsBody ? bytes.count : headerCount)]
    }

    /// ``wireBytes`` in its two parts: the header block, and the body (empty for a `HEAD` answer).
    public var wireParts: (header: ArraySlice<UInt8>, body: ArraySlice<UInt8>) {
        let (bytes, headerCount) = encoded ?? prepared().encoded!
        return (bytes[..<headerCount], bytes[headerCount..<(sendsBody ? bytes.count : headerCount)])
    }

    public static func == (lhs: Response, rhs: Response) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.binaryBody == rhs.binaryBody
            && lhs.sendsBody == rhs.sendsBody && lhs.visit == rhs.visit
            && lhs.headers.map { "\($0.name): \($0.value)" } == rhs.headers.map { "\($0.name): \($0.value)" }
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The CGI header block: `Status`, the headers with `Content-Length`, and the blank line.
    public var headerBlock: String {
        var text = "Status: \(status) \(Response.reason(status))\r\n"
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        text += "Content-Length: \(binaryBody?.count ?? body.utf8.count)\r\n\r\n"
        return text
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 204: "No Content"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}
