import Foundation

/// One visit as a ``VisitJournal`` stores it: a 32-byte header, then the country code, the country
/// name, the address and the user agent, then for a visit (a row, or one counted without a row) its
/// page: the path's length (UInt16), the referrer's length (UInt8), the path and the referrer; padded
/// to 8 bytes.
///
/// The page is there when the flags say so (``hasPage``): records of the versions before pages were
/// counted have no such flag and are read as visits of `/` with no referrer, and those versions read
/// a record with the page as they read their own, the page's bytes being past what they take.
///
/// The address is kept as `--store-ip` allows: in full, or already in its stored form (truncated,
/// hashed, or none) together with the visitor's hash for the day (``Visit/Sealed``), so that a journal
/// never holds more of an address than the database would.
///
/// Header: length (UInt32), kind (UInt8), flags (UInt8), code length (UInt8), name length (UInt8),
/// user agent length (UInt16), address length (UInt8), the low 40 bits of the record's position in
/// the journal (5 bytes), time in milliseconds since 1970 (Int64), visitor hash (UInt64); all
/// little-endian.
///
/// The position tells a record from one left at the same place in the ring by an earlier lap: after
/// a power cut, the journal's `end` can be on disk while the pages of its last records are not. 40
/// bits are enough, since two laps' records at one place are a multiple of the ring's size apart.
public struct JournalRecord: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        /// A visit with its row.
        case row = 1
        /// A visit counted without a row, because the buffer was at its bound: its day, minute and country.
        case withoutRow = 2
        /// A bot's request (without `--count-bots`): counted in `bots`, never with a row. Journals of
        /// version 2 and before used it only at the buffer's bound, and wrote other bots as rows.
        case botWithoutRow = 3
        /// A request of the owner (`--ignore-ips`, the opt-out cookie): counted in `ignored` only, never
        /// with a row. Versions before it do not know the kind and take such a journal for damaged.
        case ignored = 4
    }

    public var kind: Kind
    public var visit: Visit

    static let headerLength = 32
    private static let hasAddress: UInt8 = 1
    private static let sealed: UInt8 = 2
    private static let hasVisitorHash: UInt8 = 4
    private static let hasPage: UInt8 = 8
    /// The page's lengths: path (UInt16) and referrer (UInt8).
    private static let pageLengthsSize = 3

    /// Whether the record keeps the visit's page: those that count as visits.
    private var keepsPage: Bool { kind == .row || kind == .withoutRow }

    public init(kind: Kind, visit: Visit) {
        self.kind = kind
        self.visit = visit
    }

    /// The address's bytes as stored: the sealed form when there is one, else the address.
    private var address: String? { visit.sealed.map(\.storedIP) ?? visit.ip }

    var encodedLength: Int {
        var length = Self.headerLength + min(visit.countryCode.utf8.count, 255)
        if kind == .row {
            length += min(visit.country.utf8.count, 255) + min(address?.utf8.count ?? 0, 255)
                + min(visit.userAgent.utf8.count, Int(UInt16.max))
        }
        if keepsPage {
            length += Self.pageLengthsSize + min(visit.path.utf8.count, Int(UInt16.max))
                + min(visit.referrer?.utf8.count ?? 0, 255)
        }
        return (length + 7) & ~7
    }

    static let positionMask: UInt64 = (1 << 40) - 1

    /// Writes the record, which goes at `position` in the journal, into `buffer`, which holds
    /// ``encodedLength`` bytes.
    func encode(into buffer: UnsafeMutableRawBufferPointer, position: UInt64) {
        let length = encodedLength
        var flags: UInt8 = 0
        var code = visit.countryCode
        var name = kind == .row ? visit.country : ""
        var ip = kind == .row ? address ?? "" : ""
        var userAgent = kind == .row ? visit.userAgent : ""
        if kind == .row, address != nil { flags |= Self.hasAddress }
        if visit.sealed != nil { flags |= Self.sealed }
        if visit.sealed?.visitorHash != nil { flags |= Self.hasVisitorHash }
        if keepsPage { flags |= Self.hasPage }
        // Rounded down: rounded to the nearest, a visit at 23:59:59.9996 would come back the next day.
        let milliseconds = Int64((visit.time.timeIntervalSince1970 * 1000).rounded(.down))
        buffer.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer[4] = kind.rawValue
        buffer[5] = flags
        buffer.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: milliseconds.littleEndian, toByteOffset: 16, as: Int64.self)
        buffer.storeBytes(of: (visit.sealed?.visitorHash ?? 0).littleEndian, toByteOffset: 24, as: UInt64.self)
        var offset = Self.headerLength
        func put(_ text: inout String, limit: Int) -> Int {
            text.withUTF8 { bytes in
                let count = min(bytes.count, limit)
                if count > 0 { (buffer.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: count) }
                offset += count
                return count
            }
        }
        buffer[6] = UInt8(put(&code, limit: 255))
        buffer[7] = UInt8(put(&name, limit: 255))
        buffer[10] = UInt8(put(&ip, limit: 255))
        buffer.storeBytes(of: UInt16(put(&userAgent, limit: Int(UInt16.max))).littleEndian, toByteOffset: 8, as: UInt16.self)
        if keepsPage {
            var path = visit.path
            var referrer = visit.referrer ?? ""
            let lengths = offset
            offset += Self.pageLengthsSize
            let pathLength = put(&path, limit: Int(UInt16.max))
            buffer.storeBytes(of: UInt16(pathLength).littleEndian, toByteOffset: lengths, as: UInt16.self)
            buffer[lengths + 2] = UInt8(put(&referrer, limit: 255))
        }
        for byte in 0..<5 { buffer[11 + byte] = UInt8(truncatingIfNeeded: position >> (8 * UInt64(byte))) }
        for index in offset..<length { buffer[index] = 0 }
    }

    /// The record in `bytes` (one whole record), or `nil` when it is not one, or when `position` is
    /// given and the record says it was written elsewhere (a journal of an older version has no
    /// positions to check).
    static func decode(_ bytes: UnsafeRawBufferPointer, position: UInt64?) -> JournalRecord? {
        guard bytes.count >= headerLength,
            let kind = Kind(rawValue: bytes[4])
        else { return nil }
        if let position {
            let stored = (0..<5).reduce(UInt64(0)) { $0 | UInt64(bytes[11 + $1]) << (8 * UInt64($1)) }
            guard stored == position & positionMask else { return nil }
        }
        let flags = bytes[5]
        let codeLength = Int(bytes[6])
        let nameLength = Int(bytes[7])
        let userAgentLength = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
        let ipLength = Int(bytes[10])
        guard headerLength + codeLength + nameLength + ipLength + userAgentLength <= bytes.count else { return nil }
        let milliseconds = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: Int64.self))
        let hash = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        var offset = headerLength
        func take(_ count: Int) -> String {
            defer { offset += count }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]), as: UTF8.self)
        }
        let code = take(codeLength)
        let name = take(nameLength)
        let ip = take(ipLength)
        let userAgent = take(userAgentLength)
        var page: (path: String, referrer: String?)?
        if flags & Self.hasPage != 0 {
            guard offset + pageLengthsSize <= bytes.count else { return nil }
            let pathLength = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            let referrerLength = Int(bytes[offset + 2])
            offset += pageLengthsSize
            guard offset + pathLength + referrerLength <= bytes.count else { return nil }
            let path = take(pathLength)
            page = (path, referrerLength > 0 ? take(referrerLength) : nil)
        }
        let hasAddress = flags & Self.hasAddress != 0
        var visit = Visit(
            trustedIP: hasAddress && flags & Self.sealed == 0 ? ip : nil, userAgent: userAgent, country: name,
            countryCode: code, time: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
        if let page {
            visit.path = page.path
            visit.referrer = page.referrer
        }
        if flags & Self.sealed != 0 {
            visit.sealed = Visit.Sealed(storedIP: hasAddress ? ip : nil, visitorHash: flags & Self.hasVisitorHash != 0 ? hash : nil)
        }
        return JournalRecord(kind: kind, visit: visit)
    }
}
