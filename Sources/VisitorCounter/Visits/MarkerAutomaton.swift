/// Finds which of many markers occur in a text, in one pass over its bytes, without regard to ASCII
/// case: an Aho-Corasick automaton, built once, whose transitions are a dense table.
///
/// Each byte costs two table look-ups, its class and the next state. The bytes that occur in no
/// marker share one class, so the table has a row per state and a column per class (about 50) rather
/// than 256. A state where a marker ends carries a flag in its table entries; only there are the
/// marker's conditions checked.
struct MarkerAutomaton: Sendable {
    /// One piece of text to look for, and where it must stand to count.
    ///
    /// Written as its lower-case text with `^` before it when it must open the text, `$` after it
    /// when it must close it, and `\b` on either side when a letter or digit must not stand there.
    struct Marker: Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
        let bytes: [UInt8]
        var atStart = false
        var atEnd = false
        var wordStart = false
        var wordEnd = false
        /// Texts that must not stand right before it (`(?<!…)`).
        var unlessAfter: [[UInt8]] = []
        /// Texts that must not stand right after it (`(?!…)`).
        var unlessBefore: [[UInt8]] = []
        /// Whether only letters, digits and `_` may stand before it (`^\w*…`).
        var inFirstWord = false
        let notation: String

        init(_ notation: String, unlessAfter: [String] = [], unlessBefore: [String] = [], inFirstWord: Bool = false) {
            var text = Substring(notation)
            if text.hasPrefix("^") {
                atStart = true
                text = text.dropFirst()
            } else if text.hasPrefix("\\b") {
                wordStart = true
                text = text.dropFirst(2)
            }
            if text.hasSuffix("$") {
                atEnd = true
                text = text.dropLast()
            } else if text.hasSuffix("\\b") {
                wordEnd = true
                text = text.dropLast(2)
            }
            bytes = Array(text.utf8)
            precondition(!bytes.isEmpty, "empty marker \(notation)")
            precondition(bytes.allSatisfy { $0 < 0x80 && !($0 >= 0x41 && $0 <= 0x5A) }, "marker \(notation) is not lower-case ASCII")
            self.unlessAfter = unlessAfter.map { Array($0.utf8) }
            self.unlessBefore = unlessBefore.map { Array($0.utf8) }
            self.inFirstWord = inFirstWord
            self.notation = inFirstWord ? "^\\w*" + notation : notation
        }

        init(stringLiteral notation: String) { self.init(notation) }

        var description: String { notation }

        /// Whether the marker, found in `text` ending before `end`, stands where it must.
        func holds(in text: UnsafeBufferPointer<UInt8>, end: Int) -> Bool {
            let start = end - bytes.count
            if atStart, start != 0 { return false }
            if atEnd, end != text.count { return false }
            if wordStart, start > 0, MarkerAutomaton.isLetterOrDigit(text[start - 1]) { return false }
            if wordEnd, end < text.count, MarkerAutomaton.isLetterOrDigit(text[end]) { return false }
            for piece in unlessAfter where start >= piece.count && MarkerAutomaton.matches(piece, in: text, at: start - piece.count) {
                return false
            }
            for piece in unlessBefore where MarkerAutomaton.matches(piece, in: text, at: end) { return false }
            if inFirstWord {
                for index in 0..<start where !MarkerAutomaton.isLetterOrDigit(text[index]) && text[index] != UInt8(ascii: "_") {
                    return false
                }
            }
            return true
        }
    }

    let markers: [Marker]
    /// The tables, made once and never freed: the automata live as long as the process (they are
    /// static), and raw storage spares the request thread the reference counting of arrays.
    private let tables: Tables

    /// `@unchecked Sendable`: written only in ``MarkerAutomaton/init(_:)``, before it is shared, and
    /// only read after.
    private final class Tables: @unchecked Sendable {
        /// The class of each byte: upper-case letters share their lower-case letter's.
        let classes: UnsafeMutableBufferPointer<UInt8>
        /// `next[row + class]`, where `row` is a state's first entry (`state * classCount`): the next
        /// state's row, with ``endsMarker`` set when a marker ends there.
        let next: UnsafeMutableBufferPointer<UInt32>
        /// The markers that end in each state, its own and its suffixes':
        /// `ending[endingStart[state]..<endingStart[state + 1]]`.
        let endingStart: UnsafeMutableBufferPointer<Int32>
        let ending: UnsafeMutableBufferPointer<Int32>
        let classCount: Int

        init(classes: [UInt8], next: [UInt32], endingStart: [Int32], ending: [Int32], classCount: Int) {
            func copy<Element>(_ array: [Element]) -> UnsafeMutableBufferPointer<Element> {
                let buffer = UnsafeMutableBufferPointer<Element>.allocate(capacity: max(array.count, 1))
                _ = buffer.initialize(from: array)
                return buffer
            }
            self.classes = copy(classes)
            self.next = copy(next)
            self.endingStart = copy(endingStart)
            self.ending = copy(ending)
            self.classCount = classCount
        }
    }

    private static let endsMarker: UInt32 = 1 << 31

    init(_ markers: [Marker]) {
        self.markers = markers
        var classes = [UInt8](repeating: 0, count: 256)
        var classCount = 1
        for byte in Set(markers.flatMap(\.bytes)).sorted() {
            classes[Int(byte)] = UInt8(classCount)
            if byte >= 0x61 && byte <= 0x7A { classes[Int(byte) - 32] = UInt8(classCount) }
            classCount += 1
        }
        precondition(classCount <= 256)

        // The trie: `goto[state][class]`, and the markers that end at each state.
        var goto: [[Int32]] = [[Int32](repeating: -1, count: classCount)]
        var own: [[Int32]] = [[]]
        for (index, marker) in markers.enumerated() {
            var state = 0
            for byte in marker.bytes {
                let column = Int(classes[Int(byte)])
                if goto[state][column] < 0 {
                    goto[state][column] = Int32(goto.count)
                    goto.append([Int32](repeating: -1, count: classCount))
                    own.append([])
                }
                state = Int(goto[state][column])
            }
            own[state].append(Int32(index))
        }
        let stateCount = goto.count

        // Breadth first, so that a state's failure state is complete before the state itself.
        var failure = [Int](repeating: 0, count: stateCount)
        var table = [Int](repeating: 0, count: stateCount * classCount)
        var endings = own
        var queue: [Int] = []
        for column in 0..<classCount {
            let child = Int(goto[0][column])
            if child > 0 {
                table[column] = child
                queue.append(child)
            }
        }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            endings[state] += endings[failure[state]]
            for column in 0..<classCount {
                let child = Int(goto[state][column])
                if child > 0 {
                    failure[child] = table[failure[state] * classCount + column]
                    table[state * classCount + column] = child
                    queue.append(child)
                } else {
                    table[state * classCount + column] = table[failure[state] * classCount + column]
                }
            }
        }

        var endingStart: [Int32] = [0]
        var ending: [Int32] = []
        for state in 0..<stateCount {
            ending += endings[state]
            endingStart.append(Int32(ending.count))
        }
        precondition(stateCount * classCount < Int(Self.endsMarker), "too many states")
        tables = Tables(
            classes: classes,
            next: table.map { target in UInt32(target * classCount) | (endings[target].isEmpty ? 0 : Self.endsMarker) },
            endingStart: endingStart, ending: ending, classCount: classCount)
    }

    /// The first marker, in the text's order, that stands where it must in the first `limit` bytes
    /// of `text`; `nil` when none does.
    func firstMarker(in text: UnsafeBufferPointer<UInt8>, limit: Int = .max) -> Int? {
        let classes = tables.classes
        let next = tables.next
        let classCount = UInt32(tables.classCount)
        var row: UInt32 = 0
        for index in 0..<min(text.count, limit) {
            let entry = next[Int(row &+ UInt32(classes[Int(text[index])]))]
            row = entry & ~Self.endsMarker
            if entry & Self.endsMarker != 0, let found = marker(endingIn: Int(row / classCount), in: text, end: index + 1) {
                return found
            }
        }
        return nil
    }

    private func marker(endingIn state: Int, in text: UnsafeBufferPointer<UInt8>, end: Int) -> Int? {
        for slot in Int(tables.endingStart[state])..<Int(tables.endingStart[state + 1]) {
            let index = Int(tables.ending[slot])
            if markers[index].holds(in: text, end: end) { return index }
        }
        return nil
    }

    /// Whether `text` holds `piece` (lower case) at `start`, without regard to ASCII case.
    static func matches(_ piece: [UInt8], in text: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        guard start >= 0, start + piece.count <= text.count else { return false }
        for offset in piece.indices where lowered(text[start + offset]) != piece[offset] { return false }
        return true
    }

    @inline(__always) static func lowered(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    @inline(__always) static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        let letter = byte | 0x20
        return (letter >= 0x61 && letter <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
    }
}
