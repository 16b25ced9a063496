/// SipHash-2-4 (Aumasson and Bernstein), a keyed hash: without the 16-byte key, its outputs tell
/// nothing about its inputs and cannot be recomputed. It makes the daily visitor IDs and the hashed
/// addresses; its key is replaced every day.
public struct SipHash {
    public static func hash(_ message: some Sequence<UInt8>, key: [UInt8]) -> UInt64 {
        precondition(key.count == 16, "SipHash takes a 16-byte key")
        let k0 = key[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        let k1 = key[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1

        func round() {
            v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
            v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
        }
        func compress(_ word: UInt64) {
            v3 ^= word
            round()
            round()
            v0 ^= word
        }

        var word: UInt64 = 0
        var length = 0
        for byte in message {
            word |= UInt64(byte) << (8 * UInt64(length % 8))
            length += 1
            if length % 8 == 0 {
                compress(word)
                word = 0
            }
        }
        compress(word | UInt64(length & 0xff) << 56)
        v2 ^= 0xff
        for _ in 0..<4 { round() }
        return v0 ^ v1 ^ v2 ^ v3
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
