import Foundation
import Testing

@testable import VisitorCounter

/// libpq through `PostgresConnection`, against a cluster of the suite's own.
@Suite(.serialized, .tags(.postgres)) final class PostgresConnectionTests {
    let cluster: PostgresCluster

    init() async throws { cluster = try await PostgresCluster() }

    @Test func statementsTakeTextParametersAndAnswerRows() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE t (id integer PRIMARY KEY, name text)")
        let inserted = try connection.execute(
            "INSERT INTO t VALUES ($1, $2), ($3, $4)", ["1", "it's \"quoted\"\t\\", "2", nil])
        #expect(inserted.affectedRows == 2)
        let rows = try connection.execute("SELECT id, name FROM t ORDER BY id")
        #expect(rows.rows == [["1", "it's \"quoted\"\t\\"], ["2", nil]])
        #expect(try connection.execute("SELECT count(*) FROM t").firstInteger == 2)
    }

    @Test func copyStreamsRowsWithEveryCharacterThatNeedsAnEscape() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE c (n integer, agent text)")
        let awkward = "tab\there, line\nbreak, return\r, back\\slash, \\N, ünïcödé"
        let rows = (0..<100_000).map { [String($0), $0 == 7 ? awkward : ($0 == 8 ? nil : "agent \($0)")] }
        #expect(try connection.copy(into: "c", columns: ["n", "agent"], rows: rows) == 100_000)
        #expect(try connection.execute("SELECT agent FROM c WHERE n = 7").rows == [[awkward]])
        #expect(try connection.execute("SELECT agent FROM c WHERE n = 8").rows == [[nil]])
        #expect(try connection.execute("SELECT sum(n) FROM c").firstInteger == (0..<100_000).reduce(0, +))
    }

    @Test func aFailedCopyWritesNothingAndSaysWhy() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE d (n integer NOT NULL)")
        #expect {
            try connection.copy(into: "d", columns: ["n"], rows: [["1"], [nil]])
        } throws: { error in
            guard case PostgresError.statement(let state, _, _) = error else { return false }
            return state == "23502"
        }
        #expect(try connection.execute("SELECT count(*) FROM d").firstInteger == 0)
        #expect(connection.isOpen)
    }

    @Test func aServerErrorCarriesItsSQLStateAndTheStatement() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE u (id integer PRIMARY KEY)")
        try connection.execute("INSERT INTO u VALUES (1)")
        do {
            try connection.execute("INSERT INTO u VALUES ($1)", ["1"])
            Issue.record("a duplicate key was accepted")
        } catch {
            guard case .statement(let state, let message, let sql) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(state == "23505")
            #expect(message.contains("duplicate key"))
            #expect(sql == "INSERT INTO u VALUES ($1)")
            #expect(!error.isTransient)
        }
    }

    @Test func aConnectionFailureNamesTheTargetButNotThePassword() throws {
        let uri = "postgresql://postgres:s3cret@/postgres?host=\(cluster.socketDirectory)&port=1&connect_timeout=2"
        do {
            _ = try PostgresConnection(uri: uri)
            Issue.record("connected to a port nobody listens on")
        } catch {
            #expect(error.isTransient)
            #expect(error.description.contains("port=1"))
            #expect(error.description.contains("host=\(cluster.socketDirectory)"))
            #expect(!error.description.contains("s3cret"))
        }
        #expect(throws: PostgresError.self) { try PostgresConnection(uri: "postgresql://[::1") }
    }

    @Test func aServerThatGoesAwayIsATransientErrorAndANewConnectionWorksWhenItIsBack() async throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try cluster.stop(mode: .immediate)
        do {
            try connection.execute("SELECT 1")
            Issue.record("a statement succeeded on a stopped server")
        } catch {
            #expect(error.isTransient, "\(error)")
        }
        try await cluster.start()
        #expect(try PostgresConnection(uri: cluster.uri()).execute("SELECT 1").firstInteger == 1)
    }

    @Test(arguments: [
        ([nil, "plain"], "\\N\tplain\n"),
        (["a\\b", "c\td\ne\rf"], "a\\\\b\tc\\td\\ne\\rf\n"),
        ([""], "\n"),
    ] as [([String?], String)])
    func copyLinesEscapeWhatPostgresReadsAsSyntax(row: [String?], line: String) {
        var buffer: [UInt8] = []
        PostgresConnection.appendCopyLine(row, to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == line)
    }
}
