import Foundation

/// Writing batches: one transaction each, exactly once, without deadlocks between hosts.
extension PostgresStore {
    /// Writes a batch in one transaction, as ``VisitorStore`` does: its rows through `COPY`, its counts
    /// added with `INSERT … ON CONFLICT DO UPDATE`, its unique visitors with `ON CONFLICT DO NOTHING`
    /// (counting the rows that went in), and the journal's progress or the spill file's ID in the same
    /// commit. Answers `false`, writing nothing, for a batch written before.
    ///
    /// A journal's batch first takes a transaction-scoped advisory lock on the journal's ID: two workers
    /// replaying the same ended journal then take turns, and the second finds the span written.
    public func write(_ batch: VisitBatch, at time: Date, spillID: String?) throws -> Bool {
        guard !batch.isEmpty else { return true }
        let lastUpdated = UTCTimestamp.format(time)
        return try onWriter { connection in
            try Self.transaction(connection) {
                if let span = batch.journal, span.end > span.start {
                    try connection.execute("SELECT pg_advisory_xact_lock(1, hashtext($1))", [span.id])
                    let done = Int64(
                        try connection.execute("SELECT written FROM journal_progress WHERE journal = $1", [span.id])
                            .firstInteger ?? 0)
                    if done >= Int64(span.end) { return false }
                    guard done == Int64(span.start) else {
                        throw VisitorStoreError.journalGap(journal: span.id, written: done, batchStart: span.start)
                    }
                    try connection.execute(
                        """
                        INSERT INTO journal_progress (journal, written, updated_at) VALUES ($1, $2, $3)
                        ON CONFLICT (journal) DO UPDATE SET written = excluded.written, updated_at = excluded.updated_at
                        """,
                        [span.id, String(span.end), lastUpdated])
                }
                if let spillID {
                    let inserted = try connection.execute(
                        "INSERT INTO replayed_spills (id, replayed_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                        [spillID, lastUpdated])
                    if inserted.affectedRows != 1 { return false }
                }
                try writeContents(batch, at: time, lastUpdated: lastUpdated, connection)
                return true
            }
        }
    }

    private func writeContents(_ batch: VisitBatch, at time: Date, lastUpdated: String, _ connection: PostgresConnection) throws {
        let today = UTCTimestamp.day(time)
        // Every row is a visit: bots were sorted out when they were buffered (``VisitBuffer/kind(of:)``).
        let counted = batch.visits
        // Keys exist for today, yesterday and tomorrow only, as in SQLite (``DailyKeys``).
        let keyDays = Set(counted.map { UTCTimestamp.day($0.time) }).filter { (today - 1)...(today + 1) ~= $0 }
        let keys = try Self.makeKeys(Array(keyDays), connection)

        var totals = BatchTotals(batch.countsWithoutRows, minutes: batch.minutesWithoutRows)
        var rows: [[String?]] = []
        rows.reserveCapacity(counted.count)
        var hashes = Set<DayHash>()
        for visit in counted {
            let day = UTCTimestamp.day(visit.time)
            let key = keys[day]
            let storedIP = visit.sealed.map(\.storedIP) ?? storeIP.stored(visit.ip, key: key)
            rows.append([storedIP, visit.userAgent, visit.country, visit.countryCode, UTCTimestamp.format(visit.time, milliseconds: true)])
            totals.add(visit, day: day)
            if let hash = visit.sealed?.visitorHash ?? key.map({ VisitorStore.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: $0) }) {
                hashes.insert(DayHash(day: day, hash: hash))
            }
        }
        if !rows.isEmpty {
            try connection.copy(into: "visitors", columns: ["ip", "user_agent", "country", "country_code", "timestamp"], rows: rows)
        }
        if !hashes.isEmpty {
            let sorted = hashes.sorted { ($0.day, Int64(bitPattern: $0.hash)) < ($1.day, Int64(bitPattern: $1.hash)) }
            let inserted = try connection.execute(
                """
                INSERT INTO daily_uniques (date, hash) SELECT * FROM unnest($1::text[], $2::bigint[])
                ON CONFLICT (date, hash) DO NOTHING RETURNING date
                """,
                [
                    PostgresArray.text(sorted.map { UTCTimestamp.dayText($0.day) }),
                    PostgresArray.integers(sorted.map { Int64(bitPattern: $0.hash) }),
                ])
            for row in inserted.rows {
                if let day = row[0].flatMap(UTCTimestamp.parseDay) { totals.days[day, default: (0, 0)].uniques += 1 }
            }
        }
        let oldestMinuteKept = Int((time.timeIntervalSince1970 / 60).rounded(.down)) - VisitorStore.minutesKept
        try Self.add(totals, oldestMinuteKept: oldestMinuteKept, connection)
        try Self.forgetKeys(before: UTCTimestamp.dayText(today - 1), connection)
        let updated = try connection.execute(
            """
            UPDATE visitor_stats SET total_visitors = total_visitors + $1,
                visitors_without_rows = visitors_without_rows + $2, bots = bots + $3, last_updated = $4
            WHERE id = 1
            """,
            [
                String(batch.count - batch.botsWithoutRows), String(batch.visitsWithoutRows),
                String(batch.botsWithoutRows), lastUpdated,
            ])
        guard updated.affectedRows == 1 else { throw VisitorStoreError.missingStatsRow }
    }

    /// Adds a batch's counts, one statement per table, every table's keys in sorted order.
    private static func add(_ totals: BatchTotals, oldestMinuteKept: Int, _ connection: PostgresConnection) throws {
        let countries = totals.countries.sorted { $0.key < $1.key }
        if !countries.isEmpty {
            try connection.execute(
                """
                INSERT INTO visitor_countries (country_code, visitors) SELECT * FROM unnest($1::text[], $2::bigint[])
                ON CONFLICT (country_code) DO UPDATE SET visitors = visitor_countries.visitors + excluded.visitors
                """,
                [PostgresArray.text(countries.map(\.key)), PostgresArray.integers(countries.map(\.value))])
        }
        let minutes = totals.minutes.filter { $0.key > oldestMinuteKept }.sorted { $0.key < $1.key }
        if !minutes.isEmpty {
            try connection.execute(
                """
                INSERT INTO visits_per_minute (minute, visitors) SELECT * FROM unnest($1::bigint[], $2::bigint[])
                ON CONFLICT (minute) DO UPDATE SET visitors = visits_per_minute.visitors + excluded.visitors
                """,
                [PostgresArray.integers(minutes.map(\.key)), PostgresArray.integers(minutes.map(\.value))])
        }
        try connection.execute("DELETE FROM visits_per_minute WHERE minute <= $1", [String(oldestMinuteKept)])
        let days = totals.days.sorted { $0.key < $1.key }
        if !days.isEmpty {
            try connection.execute(
                """
                INSERT INTO daily_visits (date, visitors, unique_visitors)
                    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                ON CONFLICT (date) DO UPDATE SET visitors = daily_visits.visitors + excluded.visitors,
                    unique_visitors = daily_visits.unique_visitors + excluded.unique_visitors
                """,
                [
                    PostgresArray.text(days.map { UTCTimestamp.dayText($0.key) }),
                    PostgresArray.integers(days.map(\.value.visitors)), PostgresArray.integers(days.map(\.value.uniques)),
                ])
        }
        let dayCountries = totals.dayCountries.sorted { ($0.key.day, $0.key.code) < ($1.key.day, $1.key.code) }
        if !dayCountries.isEmpty {
            try connection.execute(
                """
                INSERT INTO daily_countries (date, country_code, visitors)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                ON CONFLICT (date, country_code) DO UPDATE SET visitors = daily_countries.visitors + excluded.visitors
                """,
                [
                    PostgresArray.text(dayCountries.map { UTCTimestamp.dayText($0.key.day) }),
                    PostgresArray.text(dayCountries.map(\.key.code)), PostgresArray.integers(dayCountries.map(\.value)),
                ])
        }
    }
}
