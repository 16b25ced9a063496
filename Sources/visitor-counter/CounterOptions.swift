import ArgumentParser
import Foundation
import VisitorCounter

/// The options of `serve` that its workers use: ``workerConfiguration()`` turns them into the one value
/// every worker gets, so an option is a field here and its use there.
struct CounterOptions: ParsableArguments {
    @Option(help: "The SQLite database file, or a PostgreSQL connection URI (postgresql://…) shared by several hosts. (default: $STATE_DIRECTORY/visitors.sqlite under systemd, else ./visitors.sqlite)")
    var database: String?

    @Option(help: "With a PostgreSQL --database: this host's folder for its journals and audit log. (default: $STATE_DIRECTORY)")
    var stateDirectory: String?

    @Option(parsing: .unconditional, help: "Request threads per worker: the requests a worker answers at once. Idle connections nginx keeps open take no thread.")
    var threads: Int = 16

    @Option(parsing: .unconditional, help: "Seconds between writes of the buffered visits; a write also happens when a batch is full.")
    var flushInterval: Double = 2

    @Option(
        parsing: .unconditional,
        help: "Visits per batch: a worker writes as soon as it holds this many, and up to ten times as many at once when batches wait.")
    var batchSize: Int = VisitRecorder.Configuration.defaultBatchSize

    @Option(parsing: .unconditional, help: "Seconds the stats and the index page are served from each worker's cache.")
    var statsCache: Int = 2

    @Option(
        parsing: .unconditional,
        help: """
            Visit rows each worker holds in memory while the database cannot be written (about 1 KiB each at \
            most). Beyond it visits are still counted, without their rows.
            """)
    var bufferLimit: Int = VisitRecorder.Configuration.defaultBufferLimit

    @Option(
        parsing: .unconditional,
        help: "Seconds a worker may hold an unwritten visit before /api/sys/health answers 503.")
    var healthThreshold: Int = 60

    @Option(
        parsing: .unconditional,
        help: """
            Seconds a worker may go without a request thread free to take requests before the main process kills \
            and replaces it (its journal keeps its visits).
            """)
    var hangTimeout: Int = 30

    @Option(
        parsing: .unconditional,
        help: "Days since the GeoIP country database's build after which /api/sys/health answers 503; 0 never.")
    var geoipMaxAgeDays: Int = 45

    @Flag(help: "Count requests from crawlers, monitors and HTTP libraries as visits, instead of apart as bots.")
    var countBots = false

    @Option(
        help: ArgumentHelp(
            "The owner's addresses and CIDR ranges, comma-separated (IPv4 and IPv6, as nginx passes them after realip): their requests are answered and counted only in 'ignored'.",
            valueName: "address-or-range,..."))
    var ignoreIps: String?

    /// `--ignore-ips` parsed; ``validate()`` has refused a bad entry.
    var ignoredAddresses: PeerAllowList? { ignoreIps.flatMap(PeerAllowList.init(argument:)) }

    @Option(help: "What of each address to store: full, truncated (last IPv4 octet, last 80 IPv6 bits zeroed), hashed (the day's keyed hash) or none.")
    var storeIp: StoreIPMode = .full

    @Option(parsing: .unconditional, help: "Delete raw visit rows older than this many days; 0 keeps them all. Totals are never reduced.")
    var retentionDays: Int = 0

    @Option(
        help: ArgumentHelp(
            "The IANA time zone whose days are counted (Europe/Berlin, Asia/Kolkata): the daily rollup, unique visitors, the page's today. The database records it, and refuses another.",
            valueName: "zone"))
    var timeZone: String = "UTC"

    /// `--time-zone`; ``validate()`` has refused a name the system does not know.
    var calendar: LocalCalendar { LocalCalendar(identifier: timeZone) ?? .utc }

    @Option(help: "A Mustache template to render the index page with instead of the built-in one (see `visitor-counter template`).")
    var indexTemplate: String?

    @Option(help: "The Content-Security-Policy header of the index page, in place of the one worked out from the page.")
    var indexCsp: String?

    @Option(
        help: ArgumentHelp(
            "With --listen HOST:PORT: the only peer addresses (or CIDR ranges) that may connect, comma-separated (nginx's). Needed to listen on an address other machines reach. (default: $FCGI_WEB_SERVER_ADDRS)",
            valueName: "address,..."))
    var allowedClients: PeerAllowList?

    /// `--allowed-clients`, else libfcgi's `FCGI_WEB_SERVER_ADDRS` (comma-separated there too).
    var allowList: PeerAllowList? {
        allowedClients ?? ProcessInfo.processInfo.environment["FCGI_WEB_SERVER_ADDRS"].flatMap(PeerAllowList.init(argument:))
    }

    func validate() throws {
        // The environment is no argument ArgumentParser sees: its value is checked here.
        if allowedClients == nil, let list = ProcessInfo.processInfo.environment["FCGI_WEB_SERVER_ADDRS"],
            PeerAllowList(argument: list) == nil
        {
            throw ValidationError("FCGI_WEB_SERVER_ADDRS must be IPv4 or IPv6 addresses or ranges separated by commas, not '\(list)'")
        }
        if let ignoreIps {
            do {
                _ = try PeerAllowList(parsing: ignoreIps)
            } catch {
                throw ValidationError("--ignore-ips: \(error)")
            }
        }
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be from 1 to 1024") }
        // Workers count the interval in whole milliseconds: less than one would be 0, which they refuse.
        guard flushInterval >= 0.001, flushInterval <= 3600 else {
            throw ValidationError("--flush-interval must be from 0.001 to 3600 seconds")
        }
        guard batchSize >= 1, batchSize <= 1_000_000 else { throw ValidationError("--batch-size must be from 1 to 1000000") }
        guard statsCache >= 1, statsCache <= 3600 else { throw ValidationError("--stats-cache must be from 1 to 3600 seconds") }
        guard bufferLimit >= batchSize, bufferLimit <= 100_000_000 else {
            throw ValidationError("--buffer-limit must be from --batch-size (\(batchSize)) to 100000000")
        }
        guard healthThreshold >= 1, healthThreshold <= 86400 else {
            throw ValidationError("--health-threshold must be from 1 to 86400 seconds")
        }
        guard hangTimeout >= 15, hangTimeout <= 86400 else {
            // Request threads beat between requests, and a request may take up to its 10 s deadline.
            throw ValidationError("--hang-timeout must be from 15 to 86400 seconds")
        }
        guard geoipMaxAgeDays >= 0, geoipMaxAgeDays <= 3650 else {
            throw ValidationError("--geoip-max-age-days must be from 0 (never) to 3650")
        }
        guard LocalCalendar(identifier: timeZone) != nil else {
            throw ValidationError(
                "--time-zone: '\(timeZone)' is not an IANA time zone this system knows, such as Europe/Berlin (see /usr/share/zoneinfo, package tzdata)")
        }
        guard retentionDays >= 0, retentionDays <= 100_000 else { throw ValidationError("--retention-days must be from 0 to 100000") }
        if let indexCsp, indexCsp.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) || indexCsp.isEmpty {
            throw ValidationError("--index-csp must be one line of text, such as \"default-src 'self'\"")
        }
        _ = try storeLocation()
        guard Double(healthThreshold) > flushInterval else {
            throw ValidationError("--health-threshold must be longer than --flush-interval (\(flushInterval) s)")
        }
    }

    /// The database path: `--database`, else under systemd's state directory, else the current directory.
    var databasePath: String {
        if let database { return database }
        if let state = Self.systemdStateDirectory { return "\(state)/visitors.sqlite" }
        return "visitors.sqlite"
    }

    /// `--state-directory`, else systemd's `$STATE_DIRECTORY` (its first folder).
    var stateDirectoryPath: String? { stateDirectory ?? Self.systemdStateDirectory }

    static var systemdStateDirectory: String? {
        ProcessInfo.processInfo.environment["STATE_DIRECTORY"]?.split(separator: ":").first.map(String.init)
    }

    /// Where the counts go; a PostgreSQL URI without a state directory is refused with what to do.
    func storeLocation() throws -> StoreLocation {
        do {
            return try StoreLocation(database: databasePath, stateDirectory: stateDirectoryPath)
        } catch {
            throw ValidationError("--database: \(error)")
        }
    }

    /// How the index page is rendered. `serve` reads and parses `--index-template` here, so a template
    /// with a mistake stops it before anything starts; the workers get the text it read (``Supervisor``).
    func indexPage() throws -> IndexPage {
        guard let indexTemplate else { return IndexPage(contentSecurityPolicy: indexCsp) }
        let template: IndexTemplate
        do {
            template = try IndexTemplate(contentsOf: indexTemplate)
        } catch {
            throw CommandError(error.description)
        }
        if template.contentSecurityPolicy == nil && indexCsp == nil {
            throw CommandError(
                "index template \(indexTemplate): an inline <script> or <style> holds a Mustache tag, so no fixed hash "
                    + "can allow it in the Content-Security-Policy. Pass the figures in data- attributes instead, "
                    + "or give the whole policy with --index-csp")
        }
        return IndexPage(template: template, contentSecurityPolicy: indexCsp)
    }

    /// What every worker gets, whole: the supervisor sets each one's number and descriptors.
    func workerConfiguration() -> WorkerProcess.Configuration {
        WorkerProcess.Configuration(
            database: databasePath, stateDirectory: stateDirectoryPath,
            recorder: VisitRecorder.Configuration(
                batchSize: batchSize, flushInterval: .milliseconds(Int64((flushInterval * 1000).rounded())),
                bufferLimit: bufferLimit, sorting: VisitSorting(countsBots: countBots), storeIP: storeIp),
            threads: threads, statsCache: .seconds(statsCache), healthThreshold: .seconds(healthThreshold),
            retentionDays: retentionDays, indexTemplate: indexTemplate.map { URL(fileURLWithPath: $0).path },
            indexCSP: indexCsp, geoipMaxAge: geoipMaxAgeDays == 0 ? nil : .seconds(geoipMaxAgeDays * 86_400),
            allowList: allowList, ignoredAddresses: ignoredAddresses, timeZone: calendar.identifier)
    }
}
