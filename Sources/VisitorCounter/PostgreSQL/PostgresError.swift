/// Why a PostgreSQL connection or statement failed, with what libpq and the server said.
public enum PostgresError: Error, CustomStringConvertible {
    /// libpq could not open a connection to `target` (the URI's hosts, port, database and user, never
    /// its password).
    case connection(target: String, message: String)
    /// The connection string itself is malformed.
    case invalidURI(message: String)
    /// The server answered `sql` with an error; `sqlState` is its five-character SQLSTATE code.
    case statement(sqlState: String, message: String, sql: String)
    /// The connection broke, or libpq failed before the server could answer `sql`.
    case lost(message: String, sql: String)

    public var description: String {
        switch self {
        case .connection(let target, let message):
            "cannot connect to PostgreSQL at \(target): \(message)"
        case .invalidURI(let message):
            "the PostgreSQL connection URI is not valid: \(message)"
        case .statement(let sqlState, let message, let sql):
            "PostgreSQL refused the statement (SQLSTATE \(sqlState)): \(message); statement: \(sql)"
        case .lost(let message, let sql):
            "the PostgreSQL connection failed during a statement: \(message); statement: \(sql)"
        }
    }

    /// Whether the same work can succeed if it is tried again later, on a new connection where needed:
    /// a lost or refused connection, a server shutting down or starting (class 57P), too many connections
    /// (53300), a read-only standby after a failover (25006), a serialization failure or deadlock
    /// (class 40). An error in the statement itself (a constraint, a syntax error) is not.
    public var isTransient: Bool {
        switch self {
        case .connection, .lost: true
        case .invalidURI: false
        case .statement(let sqlState, _, _):
            sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") || sqlState.hasPrefix("40")
                || sqlState == "53300" || sqlState == "25006"
        }
    }
}
