import Foundation

/// Everything one batch writes, whatever the engine: made once by a pure function of the batch, the
/// time, the day keys, `--store-ip` and the zone of the days, and only executed by ``SQLiteStore`` and ``PostgresStore``.
/// A new rollup is one change here and one to each schema.
///
/// An executor, in one transaction:
/// 1. reads or makes the keys of ``keyDays(of:at:)`` (the keys live in the database, `daily_keys`,
///    shared by every worker: ``DailyKeys``), then makes the plan with them;
/// 2. checks the guards: ``journal`` (the batch's span must start where the journal's progress is;
///    a span already written means the batch was written before, and nothing is) and ``spillID``
///    (recorded once; a second time means written before);
/// 3. inserts ``rows``;
/// 4. inserts ``uniqueCandidates`` into `daily_uniques`, skipping those already there, and counts the
///    ones that went in per day: how many are new depends on what the database already has, so the
///    plan cannot know it. Those counts go into `daily_visits.unique_visitors` beside ``days``;
/// 5. adds ``countries``, ``minutes``, ``days`` and ``dayCountries``, each in its sorted order
///    (PostgreSQL takes its row locks in that order, so two hosts' batches never wait for each other in
///    a circle); and ``pages``, ``referrers``, ``dayPages`` and ``dayReferrers``, bounded: a key the
///    table does not hold yet goes in only while the table (for its day) holds fewer than
///    ``maxKeysAllTime`` (``maxKeysPerDay``) keys, and past that its visitors are added to ``otherKey``;
/// 6. deletes the keys and hashes of the days before ``forgetBefore``;
/// 7. adds ``stats`` to the one stats row, which must be there;
/// 8. deletes the minutes up to ``oldestMinuteKept`` and takes their visits off the stats row's
///    `minute_visitors`, which stays the sum of `visits_per_minute` (the stats read's last day is that
///    sum less the minutes outside the window, not a sum over a day of minutes).
struct BatchPlan: Equatable {
    /// A row of `visitors`: the address as `--store-ip` stores it, the time as fixed-width text.
    struct Row: Equatable {
        var ip: String?
        var userAgent: String
        var country: String
        var countryCode: String
        /// ``UTCTimestamp/format(_:milliseconds:)`` with milliseconds.
        var timestamp: String
        var path: String
        var referrer: String?
    }

    /// What a batch adds to one key of a rollup table.
    struct Addition<Key: Equatable>: Equatable {
        var key: Key
        var visitors: Int
    }

    /// What the batch adds to the one row of `visitor_stats`.
    struct StatsDelta: Equatable {
        /// Every visit, with a row or without; bots and the owner's requests not.
        var total: Int
        var withoutRows: Int
        var bots: Int
        /// The owner's requests (`--ignore-ips`, the opt-out cookie), counted here and nowhere else.
        var ignored: Int
        /// The visits of ``BatchPlan/minutes``, added to `minute_visitors`.
        var minuteVisitors: Int
        /// The batch's time as fixed-width text: `last_updated`, and the time the guards record.
        var lastUpdated: String
    }

    /// The most distinct pages, and apart from them referrers, the daily rollups keep for one day, and
    /// a batch without rows holds (``VisitBatch/pagesWithoutRows``); past it, visits count under
    /// ``otherKey``. A scanner walking a million paths adds at most this many rows a day.
    static let maxKeysPerDay = 1_000
    /// The most distinct pages, and apart from them referrers, the all-time counts keep.
    static let maxKeysAllTime = 10_000
    /// Where the visits of pages or referrers past the bounds count.
    static let otherKey = "(other)"

    /// How long the per-minute counts are kept: the longest recent window.
    static let minutesKept = 24 * 60

    /// The journal's span this batch holds (only one that holds records): its transaction sets the
    /// journal's progress from its start to its end.
    var journal: JournalSpan?
    /// The spill file the batch was read from: its ID is recorded in the transaction.
    var spillID: String?
    var rows: [Row]
    /// The (day, visitor hash) pairs of the rows whose day has a key, each once, sorted by day and then
    /// by the hash as a signed integer (how both engines store it).
    var uniqueCandidates: [DayHash]
    var countries: [Addition<String>]
    /// Minutes after ``oldestMinuteKept`` only.
    var minutes: [Addition<Int>]
    /// Minutes up to this one are deleted.
    var oldestMinuteKept: Int
    /// Visits per day; the unique visitors are what step 4 of the executor counted.
    var days: [Addition<Int>]
    var dayCountries: [Addition<DayCountry>]
    /// Visits per path and per referrer host, all time and per day, sorted by key (by day, then key).
    var pages: [Addition<String>]
    var referrers: [Addition<String>]
    var dayPages: [Addition<DayKey>]
    var dayReferrers: [Addition<DayKey>]
    /// Keys and hashes of days before this one are deleted: yesterday's.
    var forgetBefore: Int
    var stats: StatsDelta

    /// The days that have a visitor-hash key as of day `today`: yesterday (a batch may still carry its
    /// last visits), today, and tomorrow (a clock a little ahead of the writer's). Both stores keep
    /// keys and hashes for these days only.
    static func keyedDays(around today: Int) -> ClosedRange<Int> { (today - 1)...(today + 1) }

    /// The days whose keys the plan needs: those of the rows, among yesterday, today and tomorrow
    /// (a clock a little ahead of the writer's). Older visits, from a late replay, get no key. Days are
    /// `calendar`'s local days.
    static func keyDays(of batch: VisitBatch, at time: Date, calendar: LocalCalendar = .utc) -> [Int] {
        var localDays = LocalCalendar.Days(calendar)
        let today = localDays.day(time)
        var days = Set<Int>()
        for visit in batch.visits {
            let day = localDays.day(visit.time)
            if Self.keyedDays(around: today) ~= day { days.insert(day) }
        }
        return days.sorted()
    }

    /// The plan of `batch` written at `time`, with `keys` the day keys of ``keyDays(of:at:)`` (a day
    /// missing from it has no key) and `storeIP` what to keep of an address. Visits go on their local
    /// day in `calendar` (per-minute counts stay minutes of Unix time, which need no zone).
    init(
        _ batch: VisitBatch, at time: Date, keys: [Int: [UInt8]], storeIP: StoreIPMode, spillID: String?,
        calendar: LocalCalendar = .utc
    ) {
        var localDays = LocalCalendar.Days(calendar)
        let today = localDays.day(time)
        let lastUpdated = UTCTimestamp.format(time)
        journal = batch.journal.flatMap { $0.end > $0.start ? $0 : nil }
        self.spillID = spillID
        let oldestMinuteKept = UTCTimestamp.minute(time) - Self.minutesKept
        self.oldestMinuteKept = oldestMinuteKept
        forgetBefore = today - 1
        stats = StatsDelta(
            total: batch.visits.count + batch.visitsWithoutRows, withoutRows: batch.visitsWithoutRows,
            bots: batch.botsWithoutRows, ignored: batch.ignored, minuteVisitors: 0,
            lastUpdated: lastUpdated)

        var countries: [String: Int] = [:]
        var minutes = batch.minutesWithoutRows
        var days: [Int: Int] = [:]
        var dayCountries = batch.countsWithoutRows
        var dayPages = batch.pagesWithoutRows
        var dayReferrers = batch.referrersWithoutRows
        for (key, visitors) in batch.countsWithoutRows {
            countries[key.code, default: 0] += visitors
            days[key.day, default: 0] += visitors
        }
        var rows: [Row] = []
        rows.reserveCapacity(batch.visits.count)
        var candidates = Set<DayHash>()
        var timestamps = UTCTimestamp.MillisecondFormatter()
        for visit in batch.visits {
            let day = localDays.day(visit.time)
            let key = keys[day]
            // A visit from a journal that could not keep the address carries what is stored of it.
            rows.append(
                Row(
                    ip: visit.sealed.map(\.storedIP) ?? storeIP.stored(visit.ip, key: key), userAgent: visit.userAgent,
                    country: visit.country, countryCode: visit.countryCode,
                    timestamp: timestamps.format(visit.time), path: visit.path, referrer: visit.referrer))
            // A sealed visit without a hash had no key when it was answered: it counts, but not as a
            // unique visitor (its address is gone, so no hash can be made now).
            let hash = visit.sealed.map(\.visitorHash) ?? key.map { Self.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: $0) }
            if let hash {
                candidates.insert(DayHash(day: day, hash: hash))
            }
            countries[visit.countryCode, default: 0] += 1
            minutes[visit.minute, default: 0] += 1
            days[day, default: 0] += 1
            dayCountries[DayCountry(day: day, code: visit.countryCode), default: 0] += 1
            VisitBatch.add(DayKey(day: day, key: visit.path), to: &dayPages)
            if let referrer = visit.referrer { VisitBatch.add(DayKey(day: day, key: referrer), to: &dayReferrers) }
        }
        self.rows = rows
        uniqueCandidates = candidates.sorted { ($0.day, Int64(bitPattern: $0.hash)) < ($1.day, Int64(bitPattern: $1.hash)) }
        self.countries = countries.sorted { $0.key < $1.key }.map { Addition(key: $0.key, visitors: $0.value) }
        self.minutes = minutes.filter { $0.key > oldestMinuteKept }.sorted { $0.key < $1.key }
            .map { Addition(key: $0.key, visitors: $0.value) }
        stats.minuteVisitors = self.minutes.reduce(0) { $0 + $1.visitors }
        self.days = days.sorted { $0.key < $1.key }.map { Addition(key: $0.key, visitors: $0.value) }
        self.dayPages = Self.sorted(dayPages)
        self.dayReferrers = Self.sorted(dayReferrers)
        self.pages = Self.allTime(dayPages)
        self.referrers = Self.allTime(dayReferrers)
        self.dayCountries = dayCountries.sorted { ($0.key.day, $0.key.code) < ($1.key.day, $1.key.code) }
            .map { Addition(key: $0.key, visitors: $0.value) }
    }

    private static func sorted(_ counts: [DayKey: Int]) -> [Addition<DayKey>] {
        counts.sorted { ($0.key.day, $0.key.key) < ($1.key.day, $1.key.key) }.map { Addition(key: $0.key, visitors: $0.value) }
    }

    /// The days' counts added up per key.
    private static func allTime(_ counts: [DayKey: Int]) -> [Addition<String>] {
        var total: [String: Int] = [:]
        for (key, visitors) in counts { total[key.key, default: 0] += visitors }
        return total.sorted { $0.key < $1.key }.map { Addition(key: $0.key, visitors: $0.value) }
    }

    /// The visitor's hash on a day whose key is `key`: address and user agent, so visitors behind one
    /// address with different browsers count apart. The hash of `visitor\n<address>\n<user agent>`,
    /// fed in pieces rather than built as one string.
    static func visitorHash(ip: String?, userAgent: String, key: [UInt8]) -> UInt64 {
        var hasher = SipHash(key: key)
        hasher.append("visitor\n")
        if let ip { hasher.append(ip) }
        hasher.append(UInt8(ascii: "\n"))
        hasher.append(userAgent)
        return hasher.finalize()
    }
}

/// A visitor's hash on a day: a unique-visitor candidate of a batch, and what PostgreSQL's writer
/// remembers of those committed.
struct DayHash: Hashable {
    var day: Int
    var hash: UInt64
}
