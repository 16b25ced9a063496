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

    /// Writes a batch in one transaction, as ``VisitorStore`` does: its rows through `COPY`, its counts
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
        let lastUpdated = UTCTimestamp.format(time)
        let today = UTCTimestamp.day(time)

        // Every row is a visit: bots were sorted out when they were buffered (``VisitBuffer/kind(of:)``).
        let counted = batch.visits

        // Keys exist for today, yesterday and tomorrow only, as in SQLite (``DailyKeys``).
        state.keys = state.keys.filter { (today - 1)...(today + 1) ~= $0.key }
        if state.forgottenBefore != today - 1 { state.knownHashes = state.knownHashes.filter { (today - 1)...(today + 1) ~= $0.day } }
        var keyDays = Set<Int>()
        for visit in counted {
            let day = UTCTimestamp.day(visit.time)
            if (today - 1)...(today + 1) ~= day { keyDays.insert(day) }
        }
        let missingKeys = keyDays.filter { state.keys[$0] == nil }.sorted()

        var opening: [(sql: String, parameters: [String?])] = []
        if let span = batch.journal, span.end > span.start {
            opening.append(("SELECT pg_advisory_xact_lock(1, hashtext($1))", [span.id]))
            opening.append(("SELECT written FROM journal_progress WHERE journal = $1", [span.id]))
            opening.append(
                (
                    """
                    INSERT INTO journal_progress (journal, written, updated_at) VALUES ($1, $2, $3)
                    ON CONFLICT (journal) DO UPDATE SET written = excluded.written, updated_at = excluded.updated_at
                    """,
                    [span.id, String(span.end), lastUpdated]
                ))
        }
        if let spillID {
            opening.append(
                ("INSERT INTO replayed_spills (id, replayed_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", [spillID, lastUpdated]))
        }
        if !missingKeys.isEmpty { opening += Self.makeKeysStatements(missingKeys) }
        let answers = try connection.pipeline(opening)
        var answer = 0
        if let span = batch.journal, span.end > span.start {
            let done = Int64(answers[1].firstInteger ?? 0)
            answer = 3
            // The progress row was updated before this check: returning false or throwing rolls it back.
            if done >= Int64(span.end) { return false }
            guard done == Int64(span.start) else {
                throw VisitorStoreError.journalGap(journal: span.id, written: done, batchStart: span.start)
            }
        }
        if spillID != nil {
            if answers[answer].affectedRows != 1 { return false }
            answer += 1
        }
        if !missingKeys.isEmpty { state.keys.merge(Self.keys(from: answers[answer + 1])) { _, read in read } }

        var totals = BatchTotals(batch.countsWithoutRows, minutes: batch.minutesWithoutRows)
        var text = PostgresCopyText(reservingCapacity: counted.count * 192)
        var hashes = Set<DayHash>()
        hashes.reserveCapacity(counted.count)
        for visit in counted {
            let day = UTCTimestamp.day(visit.time)
            let key = state.keys[day]
            text.append(visit.sealed.map(\.storedIP) ?? storeIP.stored(visit.ip, key: key))
            text.append(visit.userAgent)
            text.append(visit.country)
            text.append(visit.countryCode)
            text.appendPlain { UTCTimestamp.appendFormatted(visit.time, milliseconds: true, to: &$0) }
            text.endRow()
            totals.add(visit, day: day)
            if let hash = visit.sealed?.visitorHash ?? key.map({ VisitorStore.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: $0) }) {
                hashes.insert(DayHash(day: day, hash: hash))
            }
        }
        if !counted.isEmpty {
            try connection.copy(into: "visitors", columns: ["ip", "user_agent", "country", "country_code", "timestamp"], text: text)
        }
        // Not `subtracting`, which walks the argument: the known hashes, tens of thousands, in every batch.
        let newHashes = hashes.filter { !state.knownHashes.contains($0) }
        if !newHashes.isEmpty {
            let sorted = newHashes.sorted { ($0.day, Int64(bitPattern: $0.hash)) < ($1.day, Int64(bitPattern: $1.hash)) }
            var dayTexts: [Int: String] = [:]
            let inserted = try connection.execute(
                """
                INSERT INTO daily_uniques (date, hash) SELECT * FROM unnest($1::text[], $2::bigint[])
                ON CONFLICT (date, hash) DO NOTHING RETURNING date
                """,
                [
                    PostgresArray.text(
                        sorted.map { hash in
                            if let text = dayTexts[hash.day] { return text }
                            let text = UTCTimestamp.dayText(hash.day)
                            dayTexts[hash.day] = text
                            return text
                        }),
                    PostgresArray.integers(sorted.map { Int64(bitPattern: $0.hash) }),
                ])
            for row in inserted.rows {
                if let day = row[0].flatMap(UTCTimestamp.parseDay) { totals.days[day, default: (0, 0)].uniques += 1 }
            }
        }

        var counts = Self.addStatements(totals, oldestMinuteKept: UTCTimestamp.minute(time) - VisitorStore.minutesKept)
        // The old keys and hashes go once a day, and in any batch that brought hashes of older days
        // (a journal replayed late), as SQLite's writer does in every batch.
        if state.forgottenBefore != today - 1 || hashes.contains(where: { $0.day < today - 1 }) {
            let yesterday = UTCTimestamp.dayText(today - 1)
            counts.append(("DELETE FROM daily_keys WHERE date < $1", [yesterday]))
            counts.append(("DELETE FROM daily_uniques WHERE date < $1", [yesterday]))
            state.forgottenBefore = today - 1
        }
        // Committed with this batch, every hash of these days is in the table, inserted now or before.
        if state.knownHashes.count + newHashes.count > Self.knownHashesLimit { state.knownHashes = [] }
        state.knownHashes.formUnion(newHashes.filter { (today - 1)...(today + 1) ~= $0.day })
        counts.append(
            (
                """
                UPDATE visitor_stats SET total_visitors = total_visitors + $1,
                    visitors_without_rows = visitors_without_rows + $2, bots = bots + $3, ignored = ignored + $5,
                    last_updated = $4
                WHERE id = 1
                """,
                [
                    String(batch.visits.count + batch.visitsWithoutRows), String(batch.visitsWithoutRows),
                    String(batch.botsWithoutRows), lastUpdated, String(batch.ignored),
                ]
            ))
        let updated = try connection.pipeline(counts)
        guard updated.last?.affectedRows == 1 else { throw VisitorStoreError.missingStatsRow }
        return true
    }

    /// A batch's counts, one statement per table, every table's keys in sorted order.
    private static func addStatements(_ totals: BatchTotals, oldestMinuteKept: Int) -> [(sql: String, parameters: [String?])] {
        var statements: [(sql: String, parameters: [String?])] = []
        let countries = totals.countries.sorted { $0.key < $1.key }
        if !countries.isEmpty {
            statements.append(
                (
                    """
                    INSERT INTO visitor_countries (country_code, visitors) SELECT * FROM unnest($1::text[], $2::bigint[])
                    ON CONFLICT (country_code) DO UPDATE SET visitors = visitor_countries.visitors + excluded.visitors
                    """,
                    [PostgresArray.text(countries.map(\.key)), PostgresArray.integers(countries.map(\.value))]
                ))
        }
        let minutes = totals.minutes.filter { $0.key > oldestMinuteKept }.sorted { $0.key < $1.key }
        if !minutes.isEmpty {
            statements.append(
                (
                    """
                    INSERT INTO visits_per_minute (minute, visitors) SELECT * FROM unnest($1::bigint[], $2::bigint[])
                    ON CONFLICT (minute) DO UPDATE SET visitors = visits_per_minute.visitors + excluded.visitors
                    """,
                    [PostgresArray.integers(minutes.map(\.key)), PostgresArray.integers(minutes.map(\.value))]
                ))
        }
        statements.append(("DELETE FROM visits_per_minute WHERE minute <= $1", [String(oldestMinuteKept)]))
        let days = totals.days.sorted { $0.key < $1.key }
        if !days.isEmpty {
            statements.append(
                (
                    """
                    INSERT INTO daily_visits (date, visitors, unique_visitors)
                        SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                    ON CONFLICT (date) DO UPDATE SET visitors = daily_visits.visitors + excluded.visitors,
                        unique_visitors = daily_visits.unique_visitors + excluded.unique_visitors
                    """,
                    [
                        PostgresArray.text(days.map { UTCTimestamp.dayText($0.key) }),
                        PostgresArray.integers(days.map(\.value.visitors)), PostgresArray.integers(days.map(\.value.uniques)),
                    ]
                ))
        }
        let dayCountries = totals.dayCountries.sorted { ($0.key.day, $0.key.code) < ($1.key.day, $1.key.code) }
        if !dayCountries.isEmpty {
            statements.append(
                (
                    """
                    INSERT INTO daily_countries (date, country_code, visitors)
                        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                    ON CONFLICT (date, country_code) DO UPDATE SET visitors = daily_countries.visitors + excluded.visitors
                    """,
                    [
                        PostgresArray.text(dayCountries.map { UTCTimestamp.dayText($0.key.day) }),
                        PostgresArray.text(dayCountries.map(\.key.code)), PostgresArray.integers(dayCountries.map(\.value)),
                    ]
                ))
        }
        return statements
    }
}
