import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Visit {
    /// Upper-cases a GeoIP country code and keeps it only if it is two letters A-Z.
    ///
    /// GeoIP's pseudo-codes with digits (`A1` anonymous proxy, `A2` satellite, `O1` other) become `XX`.
    public static func normalisedCountryCode(_ raw: String?) -> String {
        guard let raw, raw.utf8.count == 2 else { return unknownCountryCode }
        // nginx's codes are upper case already: keep the string rather than build another.
        if raw.utf8.allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) { return raw }
        var upper = (UInt8(0), UInt8(0))
        for (index, byte) in raw.utf8.enumerated() {
            let letter: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): letter = byte
            case UInt8(ascii: "a")...UInt8(ascii: "z"): letter = byte - 32
            default: return unknownCountryCode
            }
            if index == 0 { upper.0 = letter } else { upper.1 = letter }
        }
        return String(decoding: [upper.0, upper.1], as: UTF8.self)
    }

    /// The GeoIP name when it is present and sane, else the name known for the code, else `Unknown`.
    ///
    /// A sane name is 1 to 64 characters of letters, spaces and the punctuation real country names use
    /// (`Korea, Republic of`, `Cote D'Ivoire`, `Bosnia and Herzegovina`, `Saint Kitts & Nevis`).
    public static func countryName(code: String, geoIPName: String?) -> String {
        let known = CountryNames.name(forCode: code)
        // The usual case, GeoIP's name is the one known for the code: no need to look at its characters.
        if let known, geoIPName == known { return known }
        if let name = geoIPName?.trimmingCharacters(in: .whitespaces), isSaneCountryName(name) {
            return name
        }
        return known ?? unknownCountryName
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
        IPAddress(raw)?.description
    }
}
