import Foundation
import Testing

@testable import VisitorCounter

struct JSONTests {
    @Test(arguments: [
        ("plain", #""plain""#),
        (#"say "hi""#, #""say \"hi\"""#),
        (#"C:\dir"#, #""C:\\dir""#),
        ("a\nb\rc\td", #""a\nb\rc\td""#),
        ("\u{0}\u{1}\u{1f}", #""\u0000\u0001\u001f""#),
        ("\u{7f}", "\"\u{7f}\""),
        ("Zürich, 東京, 🇺🇸", "\"Zürich, 東京, 🇺🇸\""),
        ("</script>", #""</script>""#),
    ])
    func quotesAsRFC8259Asks(value: String, expected: String) throws {
        #expect(JSON.quoted(value) == expected)
        #expect(JSON.string(value).text == expected)
        // What a real parser reads back is the value itself.
        let parsed = try JSONSerialization.jsonObject(with: Data("[\(expected)]".utf8)) as? [String]
        #expect(parsed == [value])
    }

    @Test func objectsKeepTheirOrderAndNest() {
        let value: JSON = [
            "z": 1, "a": [true, false, nil], "m": ["k": "v"], "e": [], "o": .object([]), "n": .int(-3),
        ]
        #expect(value.text == #"{"z": 1, "a": [true, false, null], "m": {"k": "v"}, "e": [], "o": {}, "n": -3}"#)
    }

    @Test func keysAreEscapedLikeValues() {
        let value: JSON = ["a\"b\n": "x"]
        #expect(value.text == #"{"a\"b\n": "x"}"#)
    }

    @Test func countsComeLargestFirstAndTiesInKeyOrder() {
        #expect(JSON.counts(["GB": 2, "US": 5, "DE": 2, "XX": 0]).text == #"{"US": 5, "DE": 2, "GB": 2, "XX": 0}"#)
        #expect(JSON.counts([:]).text == "{}")
    }

    @Test func timestampsAndMissingValuesAreNull() {
        #expect(JSON.timestamp(nil).text == "null")
        #expect(JSON.timestamp(Date(timeIntervalSince1970: 1_800_000_000)).text == #""2027-01-15T08:00:00Z""#)
        #expect(JSON.string(orNull: nil).text == "null")
        #expect(JSON.string(orNull: "1.2.3.4").text == #""1.2.3.4""#)
    }
}
