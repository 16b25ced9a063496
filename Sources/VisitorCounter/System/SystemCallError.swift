#if canImport(Glibc)
import Glibc
#endif

/// A failed C call: which call, on what, and the `errno` it left.
public struct SystemCallError: Error, CustomStringConvertible {
    public let call: String
    public let subject: String?
    public let errno: Int32

    public var description: String {
        let reason = strerror(errno).map { String(cString: $0) } ?? "unknown error"
        return "\(call)\(subject.map { " \($0)" } ?? "") failed: \(reason) (errno \(errno))"
    }
}

/// Runs a C call that answers -1 on failure, retrying on `EINTR`, and throws ``SystemCallError`` otherwise.
@discardableResult
func systemCall(_ name: String, _ subject: String? = nil, _ body: () -> Int32) throws -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = errno
        if error == EINTR { continue }
        throw SystemCallError(call: name, subject: subject, errno: error)
    }
}
