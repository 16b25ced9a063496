/// What one statement answered: its rows as text, as PostgreSQL's text format gives them, and how many
/// rows it inserted, updated or deleted.
///
/// The values are copied out of libpq's result, so the rows outlive it; the statements that read them
/// (the totals, the countries, a day's figures) answer a few hundred rows at most.
public struct PostgresRows: Sendable, Equatable {
    /// The rows, each a value per column; `nil` is SQL `NULL`.
    public let rows: [[String?]]
    /// The count in the command tag (`INSERT 0 5` gives 5); 0 for a statement that has none.
    public let affectedRows: Int

    /// The first column of the first row as an integer, for `SELECT count(*)` and the like.
    public var firstInteger: Int? { rows.first?.first.flatMap { $0 }.flatMap { Int($0) } }
}
