import GRDB

extension SQLiteStore {
    /// The schema's versions, oldest first; a file's `PRAGMA user_version` says how many it has applied.
    ///
    /// Never edit a shipped migration: add one. All of them run in one `BEGIN IMMEDIATE` transaction
    /// that first reads the version, so workers opening a new file at once apply each exactly once.
    static let migrations: [String] = [
        // 1: the original design's schema, per-country counts in a JSON column.
        """
            CREATE TABLE visitors (
                id INTEGER PRIMARY KEY,
                ip TEXT,
                user_agent TEXT NOT NULL,
                country TEXT NOT NULL,
                country_code TEXT NOT NULL,
                timestamp TEXT NOT NULL
            );
            CREATE INDEX visitors_timestamp ON visitors(timestamp);
            CREATE INDEX visitors_country_code ON visitors(country_code);
            CREATE TABLE visitor_stats (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                total_visitors INTEGER NOT NULL DEFAULT 0,
                countries TEXT NOT NULL DEFAULT '{}',
                last_updated TEXT
            );
            INSERT INTO visitor_stats (id) VALUES (1);
        """,
        // 2: per-country counts in a table of their own, so a batch updates a few small rows instead of
        // rewriting a JSON document, and the stats read stays a read of at most ~250 rows.
        """
            CREATE TABLE visitor_countries (
                country_code TEXT PRIMARY KEY,
                visitors INTEGER NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO visitor_countries (country_code, visitors)
                SELECT key, value FROM visitor_stats, json_each(visitor_stats.countries)
                WHERE visitor_stats.id = 1 AND value > 0;
            ALTER TABLE visitor_stats DROP COLUMN countries;
        """,
        // 3: visits counted while a worker's buffer was at its bound, which have no row in `visitors`;
        // and the spill files already replayed, so a replay is never counted twice.
        """
            ALTER TABLE visitor_stats ADD COLUMN visitors_without_rows INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE replayed_spills (
                id TEXT PRIMARY KEY,
                replayed_at TEXT NOT NULL
            ) WITHOUT ROWID;
        """,
        // 4: requests from bots, counted apart from visitors; and visits per minute over the last
        // 24 hours, for the recent windows.
        """
            ALTER TABLE visitor_stats ADD COLUMN bots INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE visits_per_minute (
                minute INTEGER PRIMARY KEY,
                visitors INTEGER NOT NULL
            );
        """,
        // 5: the daily rollup (never pruned), the daily keys of the visitor hash, and the hashes that
        // tell today's and yesterday's visitors apart. Days already in `visitors` are rolled up here;
        // their unique visitors cannot be told any more and stay 0. And the rows deleted by retention.
        """
            ALTER TABLE visitor_stats ADD COLUMN visitors_deleted INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE daily_visits (
                date TEXT PRIMARY KEY,
                visitors INTEGER NOT NULL,
                unique_visitors INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE daily_countries (
                date TEXT NOT NULL,
                country_code TEXT NOT NULL,
                visitors INTEGER NOT NULL,
                PRIMARY KEY (date, country_code)
            ) WITHOUT ROWID;
            CREATE TABLE daily_keys (
                date TEXT PRIMARY KEY,
                key BLOB NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE daily_uniques (
                date TEXT NOT NULL,
                hash INTEGER NOT NULL,
                PRIMARY KEY (date, hash)
            ) WITHOUT ROWID;
            INSERT INTO daily_visits (date, visitors, unique_visitors)
                SELECT substr(timestamp, 1, 10), count(*), 0 FROM visitors GROUP BY 1;
            INSERT INTO daily_countries (date, country_code, visitors)
                SELECT substr(timestamp, 1, 10), country_code, count(*) FROM visitors GROUP BY 1, 2;
        """,
        // 6: how far each worker's visit journal has been written, updated in every batch's transaction,
        // so that a journal's replay writes exactly what is not in the database yet.
        """
            CREATE TABLE journal_progress (
                journal TEXT PRIMARY KEY,
                written INTEGER NOT NULL,
                updated_at TEXT NOT NULL
            ) WITHOUT ROWID;
        """,
        // 7: the owner's requests (`--ignore-ips`, the opt-out cookie), counted apart from all else.
        """
            ALTER TABLE visitor_stats ADD COLUMN ignored INTEGER NOT NULL DEFAULT 0;
        """,
        // 8: the sum of `visits_per_minute`, kept beside it by every batch: the last day's window is
        // then that sum less the few minutes outside the window, where it was a sum over 1,440 rows in
        // every stats read.
        """
            ALTER TABLE visitor_stats ADD COLUMN minute_visitors INTEGER NOT NULL DEFAULT 0;
            UPDATE visitor_stats SET minute_visitors = (SELECT coalesce(sum(visitors), 0) FROM visits_per_minute);
        """,
        // 9: settings of the database that every process must agree on: `time_zone`, the zone its days
        // are in (``RecordedTimeZone``). A database with days already has UTC days; a new one records the
        // zone of the first counter that opens it.
        """
            CREATE TABLE settings (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO settings (name, value) SELECT 'time_zone', 'UTC' WHERE EXISTS (SELECT 1 FROM daily_visits);
        """,
        // 10: every page of the site, and the sites its visitors come from: the page and the referrer's
        // host on each row, and their counts all time and per day (bounded: ``BatchPlan/maxKeysPerDay``).
        // Visits before it were all of the index page, `/`.
        """
            ALTER TABLE visitors ADD COLUMN path TEXT NOT NULL DEFAULT '/';
            ALTER TABLE visitors ADD COLUMN referrer TEXT;
            CREATE TABLE visitor_pages (
                path TEXT PRIMARY KEY,
                visitors INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE visitor_referrers (
                host TEXT PRIMARY KEY,
                visitors INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE daily_pages (
                date TEXT NOT NULL,
                path TEXT NOT NULL,
                visitors INTEGER NOT NULL,
                PRIMARY KEY (date, path)
            ) WITHOUT ROWID;
            CREATE TABLE daily_referrers (
                date TEXT NOT NULL,
                host TEXT NOT NULL,
                visitors INTEGER NOT NULL,
                PRIMARY KEY (date, host)
            ) WITHOUT ROWID;
            INSERT INTO visitor_pages (path, visitors)
                SELECT '/', total_visitors FROM visitor_stats WHERE id = 1 AND total_visitors > 0;
            INSERT INTO daily_pages (date, path, visitors) SELECT date, '/', visitors FROM daily_visits WHERE visitors > 0;
        """,
    ]

    /// The version this build writes.
    public static var schemaVersion: Int { migrations.count }

    /// The first version with `settings`, where the zone of the days is recorded.
    static let settingsVersion = 9

    /// The zone of the database's days, as ``RecordedTimeZone/settle(recorded:given:)`` decides; records
    /// `given` in a database that records none. A database older than ``settingsVersion`` (tests) has
    /// UTC days.
    static func settleTimeZone(_ pool: DatabasePool, given: LocalCalendar?, schemaVersion: Int) throws -> LocalCalendar {
        guard schemaVersion >= settingsVersion else { return .utc }
        let read = { (db: Database) in
            try String.fetchOne(db, sql: "SELECT value FROM settings WHERE name = ?", arguments: [RecordedTimeZone.setting])
        }
        let settled = try RecordedTimeZone.settle(recorded: try pool.read(read), given: given)
        guard settled.record, let given else { return settled.calendar }
        // Workers opening a new file at once: the first records its zone, the others compare with it.
        return try pool.writeWithoutTransaction { db in
            var calendar = given
            try db.inTransaction(.immediate) {
                try db.execute(
                    sql: "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                    arguments: [RecordedTimeZone.setting, given.identifier])
                calendar = try RecordedTimeZone.settle(recorded: try read(db), given: given).calendar
                return .commit
            }
            return calendar
        }
    }

    /// Brings the file up to ``schemaVersion``, applying the missing migrations in one transaction.
    ///
    /// A file already up to date is only read, so opening it works while another process holds the
    /// write lock, or when the file or its disk cannot be written.
    static func migrate(_ db: Database, upTo target: Int = schemaVersion) throws {
        let found = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        guard found > migrations.count || found < target else { return }
        try db.inTransaction(.immediate) {
            let current = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            guard current <= migrations.count else {
                throw StoreError.schemaTooNew(found: current, known: migrations.count)
            }
            guard current < target else { return .commit }
            for migration in migrations[current..<target] {
                try db.execute(sql: migration)
            }
            try db.execute(sql: "PRAGMA user_version = \(target)")
            return .commit
        }
    }
}
