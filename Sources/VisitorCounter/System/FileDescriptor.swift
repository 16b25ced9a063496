#if canImport(Glibc)
import Glibc
#endif

/// Whole reads and writes on a descriptor, in as many calls as it takes, for the files the workers
/// share (spill files, the audit log) and the shared memory the supervisor hands them.
enum FileDescriptor {
    /// Writes all of `bytes` from the descriptor's offset; `subject` names it in an error.
    static func writeAll(_ bytes: [UInt8], to descriptor: Int32, subject: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = try bytes.withUnsafeBytes { buffer in
                try systemCall("write", subject) { write(descriptor, buffer.baseAddress! + offset, buffer.count - offset) }
            }
            offset += written
        }
    }

    /// Reads the whole file from the start, whatever the descriptor's offset; `subject` names it in an error.
    static func readAll(_ descriptor: Int32, subject: String) throws -> [UInt8] {
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let count = try chunk.withUnsafeMutableBytes { buffer in
                try systemCall("pread", subject) { pread(descriptor, buffer.baseAddress, buffer.count, offset) }
            }
            if count == 0 { return contents }
            contents += chunk[0..<count]
            offset += off_t(count)
        }
    }
}
