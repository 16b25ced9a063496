import CFastCGI

#if canImport(Glibc)
import Glibc
#endif

/// Writes an answer to nginx as FastCGI records, straight to the connection in one `writev` per part,
/// where libfcgi's `out` stream copies it through an 8 KiB buffer and writes each buffer-full: the
/// index page (17 KiB) took four writes that way (the flushed header block, two full buffers, the rest
/// with the end records) and takes two now (the header block; the body with the end records). Each
/// write is a system call of the worker and a wake-up of nginx, on the same cores.
///
/// The last part carries the stream's end (an empty `FCGI_STDOUT`) and `FCGI_END_REQUEST`, and libfcgi's
/// `out` stream is then marked closed, so `FCGX_Finish_r` writes nothing more; it still closes the
/// connection when nginx did not keep it, or when a write failed (the error is left on the stream, as
/// libfcgi's own writes leave it). libfcgi's `err` stream, never written, ends without a record.
enum FastCGIAnswer {
    /// The most content one record takes: its length field is 16 bits, and a multiple of 8 needs no
    /// padding.
    static let maxRecordContent = 0xFFF8

    /// Linux's `IOV_MAX` (`<limits.h>` has it only as a macro Swift does not import).
    private static let maxParts = 1024
    private static let headerLength = 8
    private static let stdout: UInt8 = 6
    private static let endRequest: UInt8 = 3

    /// Writes `bytes` as the answer's stdout, and with `ending` the stream's end and the request's end
    /// after them; `false` when the connection failed, and then every later part is refused too.
    static func write(_ bytes: ArraySlice<UInt8>, ending: Bool, to request: UnsafeMutablePointer<FCGX_Request>) -> Bool {
        guard let out = request.pointee.out, out.pointee.FCGI_errno == 0, out.pointee.isClosed == 0 else { return false }
        let records = Self.records(bytes.count, ending: ending, requestID: UInt16(truncatingIfNeeded: request.pointee.requestId))
        let error = records.withUnsafeBytes { headers in
            bytes.withUnsafeBytes { body in
                var parts: [iovec] = []
                parts.reserveCapacity(2 * (bytes.count / maxRecordContent + 1) + 1)
                var offset = 0
                var header = 0
                while offset < body.count {
                    let count = min(maxRecordContent, body.count - offset)
                    parts.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: headers.baseAddress! + header), iov_len: headerLength))
                    parts.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress! + offset), iov_len: count))
                    offset += count
                    header += headerLength
                }
                if header < headers.count {
                    parts.append(
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: headers.baseAddress! + header), iov_len: headers.count - header))
                }
                return writeAll(request.pointee.ipcFd, &parts)
            }
        }
        if let error {
            out.pointee.FCGI_errno = error
            out.pointee.isClosed = 1
            out.pointee.wasFCloseCalled = 1
            return false
        }
        if ending {
            out.pointee.isClosed = 1
            out.pointee.wasFCloseCalled = 1
        }
        return true
    }

    /// The record headers of `count` bytes of stdout, one per ``maxRecordContent``, then with `ending`
    /// the empty stdout record and the whole `FCGI_END_REQUEST` record (status 0, request complete).
    static func records(_ count: Int, ending: Bool, requestID: UInt16) -> [UInt8] {
        var headers: [UInt8] = []
        headers.reserveCapacity((count / maxRecordContent + 1) * headerLength + 24)
        func append(_ type: UInt8, _ length: Int) {
            headers += [1, type, UInt8(requestID >> 8), UInt8(requestID & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF), 0, 0]
        }
        var left = count
        while left > 0 {
            append(stdout, min(left, maxRecordContent))
            left -= min(left, maxRecordContent)
        }
        if ending {
            append(stdout, 0)
            append(endRequest, 8)
            headers += [0, 0, 0, 0, 0, 0, 0, 0]
        }
        return headers
    }

    /// Writes all of `parts` to `descriptor`, going on after short writes; the `errno` of a failure.
    private static func writeAll(_ descriptor: Int32, _ parts: inout [iovec]) -> Int32? {
        var first = 0
        while first < parts.count {
            let written = parts.withUnsafeMutableBufferPointer { parts in
                writev(descriptor, parts.baseAddress! + first, Int32(min(parts.count - first, maxParts)))
            }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            var left = written
            while left > 0, first < parts.count {
                if left >= parts[first].iov_len {
                    left -= parts[first].iov_len
                    first += 1
                } else {
                    parts[first].iov_base += left
                    parts[first].iov_len -= left
                    left = 0
                }
            }
            // Parts of no length at the end (an empty body's) are done as well.
            while first < parts.count, parts[first].iov_len == 0 { first += 1 }
        }
        return nil
    }
}
