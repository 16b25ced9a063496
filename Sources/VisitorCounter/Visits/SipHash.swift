/// SipHash-2-4 (Aumasson and Bernstein), a keyed hash: without the 16-byte key, its outputs tell
/// nothing about its inputs and cannot be recomputed. It makes the daily visitor IDs and the hashed
/// addresses; its key is replaced every day.
///
/// Fed a byte or a string at a time, so that a message made of several strings (the visitor hash's
/// `visitor\n`, address, `\n`, user agent) is hashed without building it first: that building was a
/// fifteenth of the writer's instructions.
public struct SipHash {
    private var v0: UInt64
    private var v1: UInt64
    private var v2: UInt64
    private var v3: UInt64
    /// The bytes taken since the last whole word, little-endian.
    private var word: UInt64 = 0
    private var length = 0

    public init(key: [UInt8]) {
        precondition(key.count == 16, "SipHash takes a 16-byte key")
        let (k0, k1) = key.withUnsafeBytes {
            (UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)), UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        v0 = 0x736f_6d65_7073_6575 ^ k0
        v1 = 0x646f_7261_6e64_6f6d ^ k1
        v2 = 0x6c79_6765_6e65_7261 ^ k0
        v3 = 0x7465_6462_7974_6573 ^ k1
    }

    public mutating func append(_ byte: UInt8) {
        word |= UInt64(byte) << (8 * UInt64(length & 7))
        length += 1
        if length & 7 == 0 {
            compress(word)
            word = 0
        }
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { append(byte) }
    }

    /// Appends the text's UTF-8 bytes, read in place.
    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            for byte in bytes { append(byte) }
        }
    }

    /// The hash of what was appended.
    public consuming func finalize() -> UInt64 {
        compress(word | UInt64(length & 0xff) << 56)
        v2 ^= 0xff
        for _ in 0..<4 { round() }
        return v0 ^ v1 ^ v2 ^ v3
    }

    private mutating func round() {
        v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
        v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
        v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
        v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
    }

    private mutating func compress(_ word: UInt64) {
        v3 ^= word
        round()
        round()
        v0 ^= word
    }

    public static func hash(_ message: some Sequence<UInt8>, key: [UInt8]) -> UInt64 {
        var hasher = SipHash(key: key)
        hasher.append(message)
        return hasher.finalize()
    }

    /// The hash as 16 lower-case hex digits.
    public static func hex(_ message: some Sequence<UInt8>, key: [UInt8]) -> String {
        let value = hash(message, key: key)
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(_ count: UInt64) -> UInt64 { (self << count) | (self >> (64 - count)) }
}
