/// Where `serve` listens: `--listen unix:/path` or `--listen HOST:PORT`, or the socket systemd or
/// spawn-fcgi hands over as standard input.
public enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16)
    case inherited

    /// Parses the `--listen` value; `nil` when it is neither form.
    public init?(argument: String) {
        if argument.hasPrefix("unix:") {
            let path = String(argument.dropFirst("unix:".count))
            guard path.hasPrefix("/"), path.utf8.count < 108 else { return nil }  // sun_path holds 108 bytes
            self = .unix(path: path)
            return
        }
        guard let colon = argument.lastIndex(of: ":"), let port = UInt16(argument[argument.index(after: colon)...]),
            port > 0
        else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .inherited: "the socket on standard input"
        }
    }
}
