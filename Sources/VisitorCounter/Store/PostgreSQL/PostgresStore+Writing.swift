import Foundation

/// Writing batches: one transaction each, exactly once, without deadlocks between hosts.
///
/// A batch costs seven round trips to the server whatever its size (`BEGIN`; the journal's check, the
/// spill's mark and any missing day keys in one pipeline; `COPY`'s start and its rows; the unique
/// visitors; every count and the stats row in one pipeline; `COMMIT`), where a statement at a time
/// took sixteen, nineteen with a journal's span; on a loaded machine every round trip is a wait for the scheduler as well as for the
/// server. The rows are encoded straight into `COPY` text (``PostgresCopyText``), without a `String`
/// per field.
extension PostgresStore {
    /// What the writer's connection has learnt that later batches can reuse: the day keys it has read
    /// or made (a key never changes once made, so reading it again each batch is wasted), the visitors'
    /// hashes it has seen committed, and the last day before which it deleted the old keys and hashes.
    ///
    /// A hash committed for yesterday, today or tomorrow stays in `daily_uniques` until that day is
    /// before yesterday, so inserting it again can only conflict and count nothing: the writer leaves it
    /// out, which spares the server the index probe that was a quarter of its time (a visitor loads
    /// several pages a day). At most ``knownHashesLimit`` are kept; past that they are dropped and
    /// learnt again. Valid only for the connection whose
    /// ``PostgresConnection/serial`` it holds: after a reconnect, perhaps to a promoted standby that lost
    /// a key made just before the failover, it is read again from the database.
    struct WriterState: Sendable {
        var connection: Int?
        var keys: [Int: [UInt8]] = [:]
        var forgottenBefore: Int?
        var knownHashes = Set<DayHash>()
    }

    /// About 6 MiB of hashes per writer.
    static let knownHashesLimit = 1 << 18

    /// Writes a batch in one transaction, as ``SQLiteStore`` does: its rows through `COPY`, its counts
    /// added with `INSERT … ON CONFLICT DO UPDATE`, its unique visitors with `ON CONFLICT DO NOTHING`
    /// (counting the rows that went in), and the journal's progress or the spill file's ID in the same
    /// commit. Answers `false`, writing nothing, for a batch written before.
    ///
    /// A journal's batch first takes a transaction-scoped advisory lock on the journal's ID: two workers
    /// replaying the same ended journal then take turns, and the second finds the span written.
    public func write(_ batch: VisitBatch, at time: Date, spillID: String?) throws -> Bool {
        guard !batch.isEmpty else { return true }
        return try onWriter { connection in
            let serial = connection.serial
            // Taken out, not copied, so that adding to its hashes does not copy them all. A batch that is
            // rolled back or fails leaves it empty, to be learnt again.
            var state = writerState.withLock { state in
                let taken = state.connection == serial ? state : WriterState(connection: serial)
                state = WriterState()
                return taken
            }
            let written = try Self.transaction(connection) {
                try writeInTransaction(batch, at: time, spillID: spillID, state: &state, connection)
            }
            // Only now are the keys made and the hashes sent in this transaction certainly the database's.
            if written { writerState.withLock { [state] in $0 = state } }
            return written
        }
    }

    private func writeInTransaction(
        _ batch: VisitBatch, at time: Date, spillID: String?, state: inout WriterState, _ connection: PostgresConnection
    ) throws -> Bool {
        let today = calendar.day(time)
        // Keys exist for today, yesterday and tomorrow only, as in SQLite (``DailyKeys``).
        state.keys = state.keys.filter { BatchPlan.keyedDays(around: today) ~= $0.key }
        if state.forgottenBefore != today - 1 { state.knownHashes = state.knownHashes.filter { BatchPlan.keyedDays(around: today) ~= $0.day } }
        let missingKeys = BatchPlan.keyDays(of: batch, at: time, calendar: calendar).filter { state.keys[$0] == nil }

        // The guards' statements and the missing keys, in one round trip; the plan needs the keys.
        let opened = try Self.opening(batch, at: time, spillID: spillID, missingKeys: missingKeys).run(connection)
        if let readKeys = opened[.readKeys] { state.keys.merge(Self.keys(from: readKeys)) { _, read in read } }

        let plan = BatchPlan(batch, at: time, keys: state.keys, storeIP: storeIP, spillID: spillID, calendar: calendar)
        if let span = plan.journal {
            let done = Int64(opened[.journalProgress]?.firstInteger ?? 0)
            if done >= Int64(span.end) { return false }
            guard done == Int64(span.start) else {
                throw StoreError.journalGap(journal: span.id, written: done, batchStart: span.start)
            }
        }
        if plan.spillID != nil, opened[.spillMark]?.affectedRows != 1 { return false }

        try Self.copy(plan.rows, connection)
        // Not `subtracting`, which walks the argument: the known hashes, tens of thousands, in every batch.
        let newHashes = plan.uniqueCandidates.filter { !state.knownHashes.contains($0) }
        let uniques = try Self.insertUniques(newHashes, connection)

        var counts = Pipeline<Count>()
        Self.addRollups(plan, uniques: uniques, to: &counts)
        // The old keys and hashes go once a day, and in any batch that brought hashes of older days
        // (a journal replayed late), as SQLite's writer does in every batch.
        if state.forgottenBefore != plan.forgetBefore || plan.uniqueCandidates.contains(where: { $0.day < plan.forgetBefore }) {
            let before = UTCTimestamp.dayText(plan.forgetBefore)
            counts.append(.forgetKeys, "DELETE FROM daily_keys WHERE date < $1", [before])
            counts.append(.forgetHashes, "DELETE FROM daily_uniques WHERE date < $1", [before])
            state.forgottenBefore = plan.forgetBefore
        }
        // Committed with this batch, every hash of these days is in the table, inserted now or before.
        if state.knownHashes.count + newHashes.count > Self.knownHashesLimit { state.knownHashes = [] }
        state.knownHashes.formUnion(newHashes.lazy.filter { BatchPlan.keyedDays(around: today) ~= $0.day })
        counts.append(
            .stats,
            """
            UPDATE visitor_stats SET total_visitors = total_visitors + $1,
                visitors_without_rows = visitors_without_rows + $2, bots = bots + $3, ignored = ignored + $5,
                minute_visitors = minute_visitors + $6, last_updated = $4
            WHERE id = 1
            """,
            [
                String(plan.stats.total), String(plan.stats.withoutRows), String(plan.stats.bots), plan.stats.lastUpdated,
                String(plan.stats.ignored), String(plan.stats.minuteVisitors),
            ])
        // Step 8: what this transaction deleted, not a sum read beforehand, is taken off; a row another
        // host deleted first is not deleted (nor taken off) twice.
        counts.append(
            .oldMinutes,
            """
            WITH gone AS (DELETE FROM visits_per_minute WHERE minute <= $1 RETURNING visitors)
            UPDATE visitor_stats SET minute_visitors = minute_visitors - (SELECT coalesce(sum(visitors), 0) FROM gone)
            WHERE id = 1
            """,
            [String(plan.oldestMinuteKept)])
        guard try counts.run(connection)[.stats]?.affectedRows == 1 else { throw StoreError.missingStatsRow }
        return true
    }

    /// The statements of a batch's first pipeline.
    private enum Opening: Hashable { case journalLock, journalProgress, journalAdvance, spillMark, makeKeys, readKeys }
    /// The statements of a batch's last pipeline.
    private enum Count: Hashable {
        case countries, minutes, oldMinutes, days, dayCountries, pages, referrers, dayPages, dayReferrers, forgetKeys
        case forgetHashes, stats
    }

    /// The batch's first pipeline: the journal's lock, progress and advance, the spill's mark, and the
    /// missing keys made and read.
    private static func opening(_ batch: VisitBatch, at time: Date, spillID: String?, missingKeys: [Int]) -> Pipeline<Opening> {
        let lastUpdated = UTCTimestamp.format(time)
        var opening = Pipeline<Opening>()
        if let span = batch.journal, span.end > span.start {
            opening.append(.journalLock, "SELECT pg_advisory_xact_lock(1, hashtext($1))", [span.id])
            opening.append(.journalProgress, "SELECT written FROM journal_progress WHERE journal = $1", [span.id])
            // Updated before the plan's guard is checked: returning false or throwing rolls it back.
            opening.append(
                .journalAdvance,
                """
                INSERT INTO journal_progress (journal, written, updated_at) VALUES ($1, $2, $3)
                ON CONFLICT (journal) DO UPDATE SET written = excluded.written, updated_at = excluded.updated_at
                """,
                [span.id, String(span.end), lastUpdated])
        }
        if let spillID {
            opening.append(
                .spillMark, "INSERT INTO replayed_spills (id, replayed_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                [spillID, lastUpdated])
        }
        if !missingKeys.isEmpty {
            let statements = makeKeysStatements(missingKeys)
            opening.append(.makeKeys, statements[0].sql, statements[0].parameters)
            opening.append(.readKeys, statements[1].sql, statements[1].parameters)
        }
        return opening
    }

    /// Step 3 of ``BatchPlan``: the rows through `COPY`, encoded without a `String` per field.
    private static func copy(_ rows: [BatchPlan.Row], _ connection: PostgresConnection) throws {
        guard !rows.isEmpty else { return }
        var text = PostgresCopyText(reservingCapacity: rows.count * 192)
        for row in rows {
            text.append(row.ip)
            text.append(row.userAgent)
            text.append(row.country)
            text.append(row.countryCode)
            text.append(row.timestamp)
            text.append(row.path)
            text.append(row.referrer)
            text.endRow()
        }
        try connection.copy(into: "visitors", columns: ["ip", "user_agent", "country", "country_code", "timestamp", "path", "referrer"], text: text)
    }

    /// Step 4 of ``BatchPlan``: `hashes` into `daily_uniques` in one statement; the ones that went in,
    /// per day.
    private static func insertUniques(_ hashes: [DayHash], _ connection: PostgresConnection) throws -> [Int: Int] {
        guard !hashes.isEmpty else { return [:] }
        let inserted = try connection.execute(
            """
            INSERT INTO daily_uniques (date, hash) SELECT * FROM unnest($1::text[], $2::bigint[])
            ON CONFLICT (date, hash) DO NOTHING RETURNING date
            """,
            [PostgresArray.text(dayTexts(hashes.map(\.day))), PostgresArray.integers(hashes.map { Int64(bitPattern: $0.hash) })])
        var uniques: [Int: Int] = [:]
        for row in inserted.rows {
            if let day = row[0].flatMap(UTCTimestamp.parseDay) { uniques[day, default: 0] += 1 }
        }
        return uniques
    }

    /// `days` as `YYYY-MM-DD`, each formatted once: a batch's hashes fall on one or two days.
    private static func dayTexts(_ days: [Int]) -> [String] {
        var texts: [Int: String] = [:]
        return days.map { day in
            if let text = texts[day] { return text }
            let text = UTCTimestamp.dayText(day)
            texts[day] = text
            return text
        }
    }

    /// Step 5 of ``BatchPlan``: one statement per rollup table, its keys in the plan's sorted order.
    private static func addRollups(_ plan: BatchPlan, uniques: [Int: Int], to counts: inout Pipeline<Count>) {
        if !plan.countries.isEmpty {
            counts.append(
                .countries,
                """
                INSERT INTO visitor_countries (country_code, visitors) SELECT * FROM unnest($1::text[], $2::bigint[])
                ON CONFLICT (country_code) DO UPDATE SET visitors = visitor_countries.visitors + excluded.visitors
                """,
                [PostgresArray.text(plan.countries.map(\.key)), PostgresArray.integers(plan.countries.map(\.visitors))])
        }
        if !plan.minutes.isEmpty {
            counts.append(
                .minutes,
                """
                INSERT INTO visits_per_minute (minute, visitors) SELECT * FROM unnest($1::bigint[], $2::bigint[])
                ON CONFLICT (minute) DO UPDATE SET visitors = visits_per_minute.visitors + excluded.visitors
                """,
                [PostgresArray.integers(plan.minutes.map(\.key)), PostgresArray.integers(plan.minutes.map(\.visitors))])
        }
        if !plan.days.isEmpty {
            counts.append(
                .days,
                """
                INSERT INTO daily_visits (date, visitors, unique_visitors)
                    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                ON CONFLICT (date) DO UPDATE SET visitors = daily_visits.visitors + excluded.visitors,
                    unique_visitors = daily_visits.unique_visitors + excluded.unique_visitors
                """,
                [
                    PostgresArray.text(plan.days.map { UTCTimestamp.dayText($0.key) }),
                    PostgresArray.integers(plan.days.map(\.visitors)),
                    PostgresArray.integers(plan.days.map { uniques[$0.key] ?? 0 }),
                ])
        }
        if !plan.dayCountries.isEmpty {
            counts.append(
                .dayCountries,
                """
                INSERT INTO daily_countries (date, country_code, visitors)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                ON CONFLICT (date, country_code) DO UPDATE SET visitors = daily_countries.visitors + excluded.visitors
                """,
                [
                    PostgresArray.text(plan.dayCountries.map { UTCTimestamp.dayText($0.key.day) }),
                    PostgresArray.text(plan.dayCountries.map(\.key.code)), PostgresArray.integers(plan.dayCountries.map(\.visitors)),
                ])
        }
        for (name, table, key, additions) in [
            (Count.pages, "visitor_pages", "path", plan.pages), (.referrers, "visitor_referrers", "host", plan.referrers),
        ] where !additions.isEmpty {
            counts.append(
                name, boundedAllTime(table: table, key: key),
                [PostgresArray.text(additions.map(\.key)), PostgresArray.integers(additions.map(\.visitors))])
        }
        for (name, table, key, additions) in [
            (Count.dayPages, "daily_pages", "path", plan.dayPages), (.dayReferrers, "daily_referrers", "host", plan.dayReferrers),
        ] where !additions.isEmpty {
            counts.append(
                name, boundedDaily(table: table, key: key),
                [
                    PostgresArray.text(dayTexts(additions.map(\.key.day))), PostgresArray.text(additions.map(\.key.key)),
                    PostgresArray.integers(additions.map(\.visitors)),
                ])
        }
    }

    /// Adds to `table`'s keys as ``BatchPlan`` bounds them, in one statement: a key already there is
    /// added to; a new one goes in while the table holds fewer than ``BatchPlan/maxKeysAllTime`` keys
    /// (counting the batch's new keys in key order), else its visitors go to ``BatchPlan/otherKey``.
    /// Added up per key first, since `ON CONFLICT DO UPDATE` may touch a row once per statement. Two
    /// hosts' batches at once may each see room for their new keys: the bound is then passed by at most
    /// one batch's keys.
    private static func boundedAllTime(table: String, key: String) -> String {
        """
        INSERT INTO \(table) (\(key), visitors)
        SELECT key, sum(visitors) FROM (
            SELECT CASE WHEN e.\(key) IS NOT NULL
                    OR (SELECT count(*) FROM \(table)) + row_number() OVER (PARTITION BY e.\(key) IS NULL ORDER BY i.key)
                        <= \(BatchPlan.maxKeysAllTime)
                THEN i.key ELSE '\(BatchPlan.otherKey)' END AS key, i.visitors
            FROM unnest($1::text[], $2::bigint[]) AS i(key, visitors)
            LEFT JOIN \(table) e ON e.\(key) = i.key
        ) bounded GROUP BY key ORDER BY key
        ON CONFLICT (\(key)) DO UPDATE SET visitors = \(table).visitors + excluded.visitors
        """
    }

    /// The same per day, with ``BatchPlan/maxKeysPerDay`` keys a day; each day's keys are counted
    /// once, not once per key of the batch.
    private static func boundedDaily(table: String, key: String) -> String {
        """
        INSERT INTO \(table) (date, \(key), visitors)
        SELECT date, key, sum(visitors) FROM (
            SELECT i.date, CASE WHEN e.\(key) IS NOT NULL
                    OR held.keys + row_number() OVER (PARTITION BY i.date, e.\(key) IS NULL ORDER BY i.key)
                        <= \(BatchPlan.maxKeysPerDay)
                THEN i.key ELSE '\(BatchPlan.otherKey)' END AS key, i.visitors
            FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(date, key, visitors)
            JOIN (
                SELECT day.date, (SELECT count(*) FROM \(table) c WHERE c.date = day.date) AS keys
                FROM (SELECT DISTINCT unnest($1::text[]) AS date) day
            ) held ON held.date = i.date
            LEFT JOIN \(table) e ON e.date = i.date AND e.\(key) = i.key
        ) bounded GROUP BY date, key ORDER BY date, key
        ON CONFLICT (date, \(key)) DO UPDATE SET visitors = \(table).visitors + excluded.visitors
        """
    }
}

/// Statements sent in one pipeline, each under a name, so that its answer is read by that name rather
/// than by a position that one more statement would shift.
struct Pipeline<Name: Hashable> {
    private(set) var statements: [(sql: String, parameters: [String?])] = []
    private var positions: [Name: Int] = [:]

    mutating func append(_ name: Name, _ sql: String, _ parameters: [String?]) {
        precondition(positions[name] == nil, "a pipeline sends each statement once")
        positions[name] = statements.count
        statements.append((sql, parameters))
    }

    /// Sends the statements in one round trip; the answers by the statements' names.
    func run(_ connection: PostgresConnection) throws -> Answers {
        Answers(rows: try connection.pipeline(statements), positions: positions)
    }

    struct Answers {
        fileprivate let rows: [PostgresRows]
        fileprivate let positions: [Name: Int]

        /// The answer to the statement `name`; `nil` for a statement that was not sent.
        subscript(_ name: Name) -> PostgresRows? { positions[name].map { rows[$0] } }
    }
}
