import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Visit {
    /// Upper-cases a GeoIP country code and keeps it only if it is two letters A-Z.
    ///
    /// GeoIP's pseudo-codes with digits (`A1` anonymous proxy, `A2` satellite, `O1` other) become `XX`.
    public static func normalisedCountryCode(_ raw: String?) -> String {
        guard let raw else { return unknownCountryCode }
        let bytes = Array(raw.utf8)
        guard bytes.count == 2 else { return unknownCountryCode }
        var result: [UInt8] = []
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): result.append(byte)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): result.append(byte - 32)
            default: return unknownCountryCode
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// The GeoIP name when it is present and sane, else the name known for the code, else `Unknown`.
    ///
    /// A sane name is 1 to 64 characters of letters, spaces and the punctuation real country names use
    /// (`Korea, Republic of`, `Cote D'Ivoire`, `Bosnia and Herzegovina`, `Saint Kitts & Nevis`).
    public static func countryName(code: String, geoIPName: String?) -> String {
        if let name = geoIPName?.trimmingCharacters(in: .whitespaces), isSaneCountryName(name) {
            return name
        }
        return CountryNames.name(forCode: code) ?? unknownCountryName
    }

    static func isSaneCountryName(_ name: String) -> Bool {
        guard (1...64).contains(name.count) else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || " ,.'()-&".unicodeScalars.contains(scalar)
        }
    }

    /// Repairs invalid UTF-8, drops control characters and cuts to ``maxUserAgentBytes`` bytes
    /// without splitting a character.
    public static func normalisedUserAgent<Bytes: Collection<UInt8>>(_ raw: Bytes) -> String {
        // Nearly every real user agent is short printable ASCII: keep it as it is without walking characters.
        if raw.count <= maxUserAgentBytes, raw.allSatisfy({ (0x20...0x7E).contains($0) }) {
            return String(decoding: raw, as: UTF8.self)
        }
        let decoded = String(decoding: raw, as: UTF8.self)
        var result = ""
        result.reserveCapacity(min(decoded.utf8.count, maxUserAgentBytes))
        var bytes = 0
        for character in decoded {
            if character.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                continue
            }
            let size = character.utf8.count
            if bytes + size > maxUserAgentBytes { break }
            bytes += size
            result.append(character)
        }
        return result
    }

    /// The address in canonical text form if it parses as IPv4 or IPv6, else `nil`.
    public static func canonicalIP(_ raw: String) -> String? {
        // Room for either address family; inet_pton writes 4 or 16 bytes.
        var address = in6_addr()
        for family in [AF_INET, AF_INET6] where inet_pton(family, raw, &address) == 1 {
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(family, &address, &text, socklen_t(text.count)) != nil else { return nil }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return nil
    }
}
