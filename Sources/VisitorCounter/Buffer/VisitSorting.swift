/// How the counter sorts what it records: which requests are visits, and which are set apart as bots'
/// (`--count-bots` counts them as visits). One value, passed whole to every place that sorts: the
/// request thread, the buffer, and the replays of journals and spill files written by earlier
/// versions, which sort their rows again. None of those takes a default, so a path that forgot the
/// setting would not compile, rather than count bots as visits. The owner's own requests
/// (`--ignore-ips`, the opt-out cookie) are sorted out before, by the router, and journaled as such.
public struct VisitSorting: Sendable, Equatable, Codable {
    /// Whether bots' requests count as visits (`--count-bots`).
    public var countsBots: Bool

    /// Bots apart: what `serve` does unless told.
    public static let standard = VisitSorting(countsBots: false)

    public init(countsBots: Bool) {
        self.countsBots = countsBots
    }

    /// Whether `visit` is a bot's request counted apart from the visits: the one place that says so.
    public func setsApart(_ visit: Visit) -> Bool {
        !countsBots && BotClassifier.isBot(visit.userAgent)
    }
}
