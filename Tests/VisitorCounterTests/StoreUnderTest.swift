import Foundation
import GRDB

@testable import VisitorCounter

/// Which ``CounterStore`` a parametrized test runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgresql

    var description: String { rawValue }
}

/// A fresh, empty database of one kind for one test: a SQLite file in a temporary folder, or a
/// throw-away PostgreSQL cluster of the test's own (``PostgresCluster``). Opens any number of stores
/// on it (as several workers or hosts would) and reads it with plain SQL for the checks.
final class StoreUnderTest {
    let kind: StoreKind
    let directory: TemporaryDirectory
    let cluster: PostgresCluster?

    init(_ kind: StoreKind) async throws {
        self.kind = kind
        directory = try TemporaryDirectory()
        cluster = kind == .postgresql ? try await PostgresCluster() : nil
    }

    var sqlitePath: String { directory.path("store.sqlite") }

    /// A store on this test's database; each call opens a new one, with connections of its own.
    func open(storeIP: StoreIPMode = .full, timeZone: LocalCalendar? = .utc) throws -> any CounterStore {
        switch kind {
        case .sqlite: try SQLiteStore(path: sqlitePath, storeIP: storeIP, timeZone: timeZone)
        case .postgresql:
            try PostgresStore(
                uri: cluster!.uri(), stateDirectory: directory.url.path, storeIP: storeIP, timeZone: timeZone)
        }
    }

    /// Makes the database as an earlier version left it, schema version `sqlite` or `postgresql`, and
    /// runs `sql` on it (no store of this build opens it before the test does).
    func makeVersion(sqlite: Int, postgresql: Int, then sql: String) throws {
        switch kind {
        case .sqlite:
            _ = try SQLiteStore(path: sqlitePath, busyTimeout: 1, schemaVersion: sqlite)
            let queue = try DatabaseQueue(path: sqlitePath)
            try queue.write { db in try db.execute(sql: sql) }
            try queue.close()
        case .postgresql:
            let connection = try PostgresConnection(uri: cluster!.uri())
            try PostgresStore.migrate(connection, upTo: postgresql)
            try connection.execute(sql)
        }
    }

    /// The first column of what `sql` (no parameters) answers, as text; `nil` for `NULL`.
    func column(_ sql: String) throws -> [String?] {
        switch kind {
        case .sqlite:
            try SQLiteStore(path: sqlitePath, timeZone: nil).read { db in
                try Row.fetchAll(db, sql: sql).map { row -> String? in
                    switch (row[0] as DatabaseValue).storage {
                    case .null: nil
                    case .int64(let value): String(value)
                    case .double(let value): String(value)
                    case .string(let value): value
                    case .blob(let value): value.map { String(format: "%02x", $0) }.joined()
                    }
                }
            }
        case .postgresql:
            try PostgresConnection(uri: cluster!.uri()).execute(sql).rows.map { $0[0] }
        }
    }

    /// The first column of what `sql` answers, as integers.
    func integers(_ sql: String) throws -> [Int] { try column(sql).map { $0.flatMap { Int($0) } ?? -1 } }

    /// `total_visitors == count(visitors) + visitors_without_rows + visitors_deleted == sum(countries)`.
    func invariant() throws -> (total: Int, rows: Int, countries: Int) {
        let total = try integers("SELECT total_visitors FROM visitor_stats").first ?? -1
        let rows = try integers(
            "SELECT (SELECT count(*) FROM visitors) + visitors_without_rows + visitors_deleted FROM visitor_stats").first ?? -1
        let countries = try integers("SELECT coalesce(sum(visitors), 0) FROM visitor_countries").first ?? -1
        return (total, rows, countries)
    }
}
