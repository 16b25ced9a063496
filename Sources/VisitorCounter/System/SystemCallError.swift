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
/// Generic over the result's type, as swift-nio's `syscall` is, so that `write`'s `Int` or `lseek`'s
/// `off_t` come back whole; signed, since -1 is the failure.
@discardableResult
func systemCall<Result: FixedWidthInteger & SignedInteger>(
    _ name: String, _ subject: String? = nil, _ body: () -> Result
) throws -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = errno
        if error == EINTR { continue }
        throw SystemCallError(call: name, subject: subject, errno: error)
    }
}

/// Runs a C call that answers its error number instead of setting `errno` (`posix_spawn` and its
/// helpers, `posix_fallocate`), and throws ``SystemCallError`` when that number is not 0.
func systemCallReturningError(_ name: String, _ subject: String? = nil, _ body: () -> Int32) throws {
    let error = body()
    guard error == 0 else { throw SystemCallError(call: name, subject: subject, errno: error) }
}
