/// An answer as the responder writes it back through FastCGI: a CGI `Status` line, headers and a body.
public struct Response: Sendable, Equatable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: String
    /// `false` for a `HEAD` answer: the headers describe `body`, which is not sent.
    public var sendsBody = true

    public init(status: Int, headers: [(name: String, value: String)], body: String) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func == (lhs: Response, rhs: Response) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.sendsBody == rhs.sendsBody
            && lhs.headers.map { "\($0.name): \($0.value)" } == rhs.headers.map { "\($0.name): \($0.value)" }
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The CGI header block: `Status`, the headers with `Content-Length`, and the blank line.
    public var headerBlock: String {
        var text = "Status: \(status) \(Response.reason(status))\r\n"
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        text += "Content-Length: \(body.utf8.count)\r\n\r\n"
        return text
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}
