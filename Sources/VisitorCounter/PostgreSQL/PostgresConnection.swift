import CLibPQ
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One connection to PostgreSQL through libpq, opened from a libpq connection string or URI.
///
/// Everything libpq users expect comes from libpq itself: several hosts with
/// `target_session_attrs=read-write`, `sslmode`, `~/.pgpass`, service files and the `PG*` environment
/// variables.
///
/// Every connection notices a server that is gone within about half a minute (``defaultSettings``,
/// ``defaultStatementTimeout``), unless the URI sets those settings itself.
///
/// libpq allows one thread at a time per connection, so this type is deliberately not `Sendable`: the
/// thread that opens a connection keeps it, as the writer thread does with its SQLite connection. Every
/// call blocks; none is ever made on a request thread.
public final class PostgresConnection {
    private let connection: OpaquePointer
    /// Where the connection points, for messages: hosts, port, database and user, never the password.
    public let target: String
    /// Different for every connection this process opens, so that what a caller learnt on one
    /// connection (the writer's day keys) is not taken for true on the next, which may reach a promoted
    /// standby; an object's address can be reused, this number cannot.
    public let serial: Int

    private static let opened = Atomic(0)

    /// libpq's settings that make a connection notice a server gone without a word (a host that lost
    /// power, a network that drops everything), given to every connection unless its URI or connection
    /// string sets them. Without them libpq sets no timeout at all: a statement in flight when the server
    /// vanished waits for the kernel's retransmissions, about 15 minutes, and an idle connection forever.
    ///
    /// - `keepalives_idle`, `keepalives_interval`, `keepalives_count`: an idle connection probes after
    ///   10 s of silence and is given up after 3 unanswered probes 5 s apart, 25 s in all.
    /// - `tcp_user_timeout`: data sent and not acknowledged for 30 s ends the connection (a statement
    ///   sent to a host that is gone; keepalives do not cover that case).
    /// - `connect_timeout`: 10 s per host to connect, so a failover list moves on to the next host (left
    ///   out when `PGCONNECT_TIMEOUT` is set, which it would override).
    ///
    /// Over a unix socket libpq ignores them all.
    public static let defaultSettings: [(keyword: String, value: String)] = [
        ("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "30000"), ("connect_timeout", "10"),
    ]

    /// The server's `statement_timeout` each connection sets unless something else set it already (the
    /// URI's `options=-c statement_timeout=…`, `PGOPTIONS`, `ALTER ROLE` or `ALTER DATABASE … SET`, the
    /// server's configuration): no statement of the counter's takes more than a second or two, so 30 s
    /// is a statement that waits on something wrong, such as a lock held by a session that hangs.
    /// Migrations, which may rewrite a large table once, run without it.
    public static let defaultStatementTimeout = "30s"

    /// Opens a connection: the settings of ``defaultSettings`` first, then `uri`, which libpq expands in
    /// their place so that whatever it sets wins; then ``defaultStatementTimeout`` unless set otherwise.
    public init(uri: String) throws(PostgresError) {
        target = try Self.describe(uri: uri)
        serial = Self.opened.add(1, ordering: .relaxed).newValue
        let settings = Self.defaultSettings.filter { keyword, _ in
            !(keyword == "connect_timeout" && ProcessInfo.processInfo.environment["PGCONNECT_TIMEOUT"] != nil)
        } + [("dbname", uri)]
        let keywords = settings.map { strdup($0.keyword) }
        let values = settings.map { strdup($0.value) }
        defer { (keywords + values).forEach { free($0) } }
        // Both arrays end in NULL; expand_dbname = 1 reads the last `dbname` as the URI itself.
        let connection = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { keywords in
            (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { values in
                PQconnectdbParams(keywords.baseAddress, values.baseAddress, 1)
            }
        }
        guard let connection else {
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
        // Only where the setting is still the server's built-in default: anyone else's choice wins.
        try execute(
            """
            SELECT set_config('statement_timeout', $1, false) FROM pg_settings
            WHERE name = 'statement_timeout' AND source = 'default'
            """,
            [Self.defaultStatementTimeout])
    }

    /// The connection's socket, for a look at its options.
    var socket: Int32 { PQsocket(connection) }

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

    /// Runs `statements` in one round trip through libpq's pipeline mode and answers what each
    /// answered, in order. Each statement is sent as ``execute(_:_:)`` would send it, but none waits for
    /// the one before: a batch's dozen statements cost one wait for the server instead of twelve. After
    /// the first statement that fails the server skips the rest; that failure is thrown.
    ///
    /// Statements in a pipeline are not a transaction of their own: run it inside `BEGIN` … `COMMIT`
    /// when they must stand or fall together.
    @discardableResult
    public func pipeline(_ statements: [(sql: String, parameters: [String?])]) throws(PostgresError) -> [PostgresRows] {
        guard !statements.isEmpty else { return [] }
        let described = statements.map(\.sql).joined(separator: "; ")
        guard PQenterPipelineMode(connection) == 1 else {
            throw .lost(message: Self.message(ofConnection: connection), sql: described)
        }
        var failure: PostgresError?
        for statement in statements where failure == nil {
            let copies = statement.parameters.map { $0.flatMap { strdup($0) } }
            defer { copies.forEach { free($0) } }
            let values = copies.map { $0.map { UnsafePointer($0) } }
            if PQsendQueryParams(connection, statement.sql, Int32(values.count), nil, values, nil, nil, 0) != 1 {
                failure = .lost(message: Self.message(ofConnection: connection), sql: statement.sql)
            }
        }
        guard failure == nil, PQpipelineSync(connection) == 1 else {
            // Nothing can be read back in order now; the caller's next step is a new connection.
            throw failure ?? .lost(message: Self.message(ofConnection: connection), sql: described)
        }
        // Each statement's result, then nil; then the sync's own result.
        var answers: [PostgresRows] = []
        answers.reserveCapacity(statements.count)
        for statement in statements {
            guard let result = PQgetResult(connection) else {
                throw .lost(message: Self.message(ofConnection: connection), sql: statement.sql)
            }
            if PQresultStatus(result) == PGRES_PIPELINE_ABORTED {
                PQclear(result)
            } else {
                do throws(PostgresError) {
                    answers.append(try rows(of: result, sql: statement.sql))
                } catch {
                    failure = failure ?? error
                }
            }
            while let extra = PQgetResult(connection) { PQclear(extra) }
        }
        guard let sync = PQgetResult(connection), PQresultStatus(sync) == PGRES_PIPELINE_SYNC else {
            throw failure ?? .lost(message: Self.message(ofConnection: connection), sql: described)
        }
        PQclear(sync)
        guard PQexitPipelineMode(connection) == 1 else {
            throw failure ?? .lost(message: Self.message(ofConnection: connection), sql: described)
        }
        if let failure { throw failure }
        return answers
    }

    /// Sends `rows` to `COPY table (columns) FROM STDIN` in PostgreSQL's text format and returns how many
    /// rows went in. Much faster than single inserts for a batch of raw visits: one statement, one round
    /// trip, and the rows streamed in 64 KiB messages.
    @discardableResult
    public func copy(into table: String, columns: [String], rows: some Sequence<[String?]>) throws(PostgresError) -> Int {
        var text = PostgresCopyText()
        for row in rows {
            for value in row { text.append(value) }
            text.endRow()
        }
        return try copy(into: table, columns: columns, text: text)
    }

    /// Sends rows already in COPY's text format (``PostgresCopyText``) to `COPY table (columns) FROM STDIN`
    /// and returns how many rows went in.
    @discardableResult
    public func copy(into table: String, columns: [String], text: PostgresCopyText) throws(PostgresError) -> Int {
        let sql = "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN"
        let start = PQexec(connection, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try self.rows(of: start, sql: sql)
            throw .lost(message: "the server did not start COPY", sql: sql)
        }
        PQclear(start)
        // 64 KiB messages: libpq and the server handle them without copying a batch's rows whole again.
        let sent = text.bytes.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                var offset = 0
                while offset < chars.count {
                    let length = min(1 << 16, chars.count - offset)
                    guard PQputCopyData(connection, chars.baseAddress! + offset, Int32(length)) == 1 else { return false }
                    offset += length
                }
                return true
            }
        }
        if PQputCopyEnd(connection, sent ? nil : "the client could not send its rows") != 1 {
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
