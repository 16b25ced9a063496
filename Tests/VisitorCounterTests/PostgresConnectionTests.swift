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
        // A literal `\N` is text, not NULL; `\.` alone is no end-of-data marker.
        (["\\N", "\\."], "\\\\N\t\\\\.\n"),
        (["\\", "\t\t", "ünïcödé 🦊"], "\\\\\t\\t\\t\tünïcödé 🦊\n"),
    ] as [([String?], String)])
    func copyTextEscapesWhatPostgresReadsAsSyntax(row: [String?], line: String) {
        var text = PostgresCopyText()
        for value in row { text.append(value) }
        text.endRow()
        #expect(String(decoding: text.bytes, as: UTF8.self) == line)
    }

    @Test func copyTextTakesPlainFieldsAndKeepsRowsApart() {
        var text = PostgresCopyText()
        text.append("a")
        text.appendPlain { UTCTimestamp.appendFormatted(Date(timeIntervalSince1970: 1_800_000_000.25), milliseconds: true, to: &$0) }
        text.endRow()
        text.appendPlain { $0 += Array("7".utf8) }
        text.append(nil)
        text.endRow()
        #expect(String(decoding: text.bytes, as: UTF8.self) == "a\t2027-01-15T08:00:00.250Z\n7\t\\N\n")
        text.removeAll()
        text.append("b")
        text.endRow()
        #expect(text.bytes == Array("b\n".utf8))
    }

    /// Every value a user agent can hold after ``Visit`` has cleaned it, and the ones it cannot (control
    /// characters), read back byte for byte after a real `COPY`.
    @Test func copyTextRoundTripsThroughTheServer() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE r (n integer, agent text)")
        let values: [String?] = [
            "tab\there", "line\nbreak", "return\r", "back\\slash", "\\N", "\\.", "\\t", "", nil, "ünïcödé 🦊",
            Visit(ip: nil, userAgent: [0x4d, 0xff, 0x09, 0x5c, 0xc3], countryCode: nil, countryName: nil, time: Date()).userAgent,
        ]
        var text = PostgresCopyText()
        for (index, value) in values.enumerated() {
            text.appendPlain { $0 += Array(String(index).utf8) }
            text.append(value)
            text.endRow()
        }
        #expect(try connection.copy(into: "r", columns: ["n", "agent"], text: text) == values.count)
        let read = try connection.execute("SELECT agent FROM r ORDER BY n").rows.map { $0[0] }
        #expect(read == values)
    }

    @Test func aPipelineAnswersEachStatementInOrder() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE p (id integer PRIMARY KEY, n integer)")
        let answers = try connection.pipeline([
            ("BEGIN", []),
            ("INSERT INTO p VALUES ($1, $2), ($3, $4)", ["1", "10", "2", nil]),
            ("UPDATE p SET n = n + $1 WHERE id = 1", ["5"]),
            ("SELECT id, n FROM p ORDER BY id", []),
            ("COMMIT", []),
        ])
        #expect(answers.count == 5)
        #expect(answers[1].affectedRows == 2)
        #expect(answers[2].affectedRows == 1)
        #expect(answers[3].rows == [["1", "15"], ["2", nil]])
        // Out of pipeline mode again: plain statements work.
        #expect(try connection.execute("SELECT sum(n) FROM p").firstInteger == 15)
        #expect(try connection.pipeline([]).isEmpty)
    }

    @Test func aFailingStatementInAPipelineStopsTheRestAndSaysWhich() throws {
        let connection = try PostgresConnection(uri: cluster.uri())
        try connection.execute("CREATE TABLE q (id integer PRIMARY KEY)")
        #expect {
            try connection.pipeline([
                ("BEGIN", []),
                ("INSERT INTO q VALUES (1)", []),
                ("INSERT INTO q VALUES ($1)", ["1"]),
                ("INSERT INTO q VALUES (2)", []),
                ("COMMIT", []),
            ])
        } throws: { error in
            guard case PostgresError.statement(let state, _, let sql) = error else { return false }
            return state == "23505" && sql == "INSERT INTO q VALUES ($1)"
        }
        // The transaction is aborted, not committed: roll it back and nothing is there.
        try connection.execute("ROLLBACK")
        #expect(try connection.execute("SELECT count(*) FROM q").firstInteger == 0)
        #expect(connection.isOpen)
    }
}
