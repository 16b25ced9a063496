/// Coded as the list as it was given (`192.0.2.10,2001:db8::1`), for the worker's configuration.
extension PeerAllowList: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let list = PeerAllowList(argument: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a comma-separated list of IPv4 and IPv6 addresses and ranges")
        }
        self = list
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
