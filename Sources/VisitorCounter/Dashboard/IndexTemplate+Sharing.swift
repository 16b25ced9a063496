import Foundation

/// `serve` reads an owner's template once, at its start, and hands the text to every worker in shared
/// memory, as descriptor ``Supervisor/templateDescriptor``. A worker restarted later renders the same
/// text: an edit of the file takes effect when the service restarts, and an edit that does not parse
/// cannot reach a running service.
extension IndexTemplate {
    /// Copies the text into shared memory (``SharedMemory``), whose descriptor the supervisor hands to
    /// each worker it spawns.
    public func sharedCopy() throws -> Int32 {
        try SharedMemory.create("template", contents: Array(text.utf8))
    }

    /// The template `serve` shared with ``sharedCopy()``; `source` names its file in messages.
    public init(sharedDescriptor descriptor: Int32, source: String) throws {
        let bytes = try FileDescriptor.readAll(descriptor, subject: "the shared template")
        try self.init(text: String(decoding: bytes, as: UTF8.self), source: source)
    }
}
