/// A period's visits beside the period before it, as the index page says it: "+12% on the previous 7
/// days", "−8% on yesterday", "same as yesterday", or "new" when the period before had none.
public struct PeriodChange: Sendable, Equatable {
    public enum Trend: String, Sendable {
        case up, down, same
        /// Visits now, none in the period before: no percentage means anything.
        case new
    }

    public var visitors: Int
    public var previous: Int
    public var trend: Trend
    /// The change in whole percent of `previous`, rounded half away from zero; `nil` when ``trend`` is
    /// ``Trend/new``.
    public var percent: Int?

    public init(visitors: Int, previous: Int) {
        self.visitors = visitors
        self.previous = previous
        if visitors == previous {
            trend = .same
            percent = 0
        } else if previous == 0 {
            trend = .new
            percent = nil
        } else {
            trend = visitors > previous ? .up : .down
            percent = Int((Double(visitors - previous) * 100 / Double(previous)).rounded(.toNearestOrAwayFromZero))
        }
    }

    /// The change as the page writes it, with `before` the name of the period before ("yesterday",
    /// "the previous 7 days"). A change that rounds to 0% is "+<1%" or "−<1%", never "+0%". The minus is
    /// U+2212, as in print.
    public func text(before: String) -> String {
        switch trend {
        case .same: return "same as \(before)"
        case .new: return "new: none \(before.hasPrefix("the ") ? "in " : "")\(before)"
        case .up, .down:
            let sign = trend == .up ? "+" : "\u{2212}"
            let size = percent.map { $0 == 0 ? "<1" : String($0.magnitude) } ?? ""
            return "\(sign)\(size)% on \(before)"
        }
    }
}
