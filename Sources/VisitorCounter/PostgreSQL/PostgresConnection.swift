import CLibPQ
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One connection to PostgreSQL through libpq, opened from a libpq connection string or URI.
///
/// Everything libpq users expect comes from libpq itself: several hosts with
/// `target_session_attrs=read-write`, `sslmode`, `~/.pgpass`, service files and the `PG*` environment
/// variables.
///
/// libpq allows one thread at a time per connection, so this type is deliberately not `Sendable`: the
/// thread that opens a connection keeps it, as the writer thread does with its SQLite connection. Every
/// call blocks; none is ever made on a request thread.
public final class PostgresConnection {
    private let connection: OpaquePointer
    /// Where the connection points, for messages: hosts, port, database and user, never the password.
    public let target: String

    public init(uri: String) throws(PostgresError) {
        target = try Self.describe(uri: uri)
        guard let connection = PQconnectdb(uri) else {
            throw .connection(target: target, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.message(ofConnection: connection)
            PQfinish(connection)
            throw .connection(target: target, message: message)
        }
        // The server's notices (`NOTICE: relation already exists, skipping`, a shutdown's `WARNING`) would go
        // to standard error line by line; what matters of them comes back as the statement's error.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        self.connection = connection
    }

    deinit { PQfinish(connection) }

    /// Whether libpq still takes the connection for open. It learns that the server went away only when a
    /// statement fails, so this is no health check: after a transient error, open a new connection.
    public var isOpen: Bool { PQstatus(connection) == CONNECTION_OK }

    /// Runs `sql` with `parameters` bound to `$1`, `$2`, … as text (`nil` is `NULL`), and returns what it
    /// answered. Several statements in one string are allowed only without parameters.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        let result: OpaquePointer?
        if parameters.isEmpty {
            result = PQexec(connection, sql)
        } else {
            let copies = parameters.map { $0.flatMap { strdup($0) } }
            defer { copies.forEach { free($0) } }
            let values = copies.map { $0.map { UnsafePointer($0) } }
            result = PQexecParams(connection, sql, Int32(values.count), nil, values, nil, nil, 0)
        }
        return try rows(of: result, sql: sql)
    }

    /// Sends `rows` to `COPY table (columns) FROM STDIN` in PostgreSQL's text format and returns how many
    /// rows went in. Much faster than single inserts for a batch of raw visits: one statement, one round
    /// trip, and the rows streamed in 64 KiB messages.
    @discardableResult
    public func copy(into table: String, columns: [String], rows: some Sequence<[String?]>) throws(PostgresError) -> Int {
        let sql = "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN"
        let start = PQexec(connection, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try self.rows(of: start, sql: sql)
            throw .lost(message: "the server did not start COPY", sql: sql)
        }
        PQclear(start)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        var sendFailed = false
        for row in rows where !sendFailed {
            Self.appendCopyLine(row, to: &buffer)
            if buffer.count >= 1 << 16 {
                sendFailed = !send(&buffer)
            }
        }
        if !sendFailed { sendFailed = !send(&buffer) }
        if PQputCopyEnd(connection, sendFailed ? "the client could not send its rows" : nil) != 1 {
            throw .lost(message: Self.message(ofConnection: connection), sql: sql)
        }
        // The COPY's own result, then nil; a failed COPY answers its error here.
        var answer: PostgresRows?
        var failure: PostgresError?
        while let result = PQgetResult(connection) {
            do throws(PostgresError) {
                let rows = try self.rows(of: result, sql: sql)
                answer = answer ?? rows
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
        guard let answer else { throw .lost(message: Self.message(ofConnection: connection), sql: sql) }
        return answer.affectedRows
    }

    /// Sends what `buffer` holds as one CopyData message and empties it; false when libpq could not.
    private func send(_ buffer: inout [UInt8]) -> Bool {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard !buffer.isEmpty else { return true }
        return buffer.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) == 1 }
        }
    }

    /// One row in COPY's text format: tab-separated, `\N` for `NULL`, and a backslash before the
    /// characters that would otherwise end a field, a row or an escape.
    static func appendCopyLine(_ row: [String?], to buffer: inout [UInt8]) {
        for (index, value) in row.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: "\t")) }
            guard let value else {
                buffer += [UInt8(ascii: "\\"), UInt8(ascii: "N")]
                continue
            }
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): buffer += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
                case UInt8(ascii: "\t"): buffer += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
                case UInt8(ascii: "\n"): buffer += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
                case UInt8(ascii: "\r"): buffer += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
                default: buffer.append(byte)
                }
            }
        }
        buffer.append(UInt8(ascii: "\n"))
    }

    /// The rows of `result`, which this frees, or the error it carries.
    private func rows(of result: OpaquePointer?, sql: String) throws(PostgresError) -> PostgresRows {
        guard let result else { throw .lost(message: Self.message(ofConnection: connection), sql: sql) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            let columns = PQnfields(result)
            let rows = (0..<PQntuples(result)).map { row in
                (0..<columns).map { column -> String? in
                    PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                }
            }
            return PostgresRows(rows: rows, affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0)
        default:
            // PG_DIAG_SQLSTATE is the character 'C', a macro that Swift does not import.
            guard let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))) else {
                throw .lost(message: Self.message(ofConnection: connection), sql: sql)
            }
            throw .statement(sqlState: String(cString: state), message: Self.message(ofResult: result), sql: sql)
        }
    }

    private static func message(ofConnection connection: OpaquePointer) -> String {
        trimmed(PQerrorMessage(connection).map { String(cString: $0) } ?? "")
    }

    private static func message(ofResult result: OpaquePointer) -> String {
        trimmed(PQresultErrorMessage(result).map { String(cString: $0) } ?? "")
    }

    /// libpq's messages end in a line break and may span lines; one line reads better in a log.
    private static func trimmed(_ message: String) -> String {
        let lines = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        return lines.isEmpty ? "no message from libpq" : lines.joined(separator: "; ")
    }

    /// The hosts, port, database and user that `uri` names, for messages: libpq parses it as it will
    /// when connecting, and the password is left out.
    static func describe(uri: String) throws(PostgresError) -> String {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(uri, &error) else {
            let message = error.map { String(cString: $0) } ?? "libpq could not parse it"
            PQfreemem(error)
            throw .invalidURI(message: trimmed(message))
        }
        defer { PQconninfoFree(options) }
        var parts: [String] = []
        var option = options
        while let keyword = option.pointee.keyword {
            let name = String(cString: keyword)
            if ["host", "hostaddr", "port", "dbname", "user"].contains(name), let value = option.pointee.val {
                parts.append("\(name)=\(String(cString: value))")
            }
            option += 1
        }
        return parts.isEmpty ? "libpq's defaults (PGHOST, PGPORT, …)" : parts.joined(separator: " ")
    }
}
