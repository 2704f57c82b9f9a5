// The split patterns of byte-level tokenizers, scanned by hand.
//
// tokenizer.json gives a `Split` pre-tokenizer a regular expression, which the library runs
// with Oniguruma over Unicode scalars. The lab does not carry a regular expression engine for
// them: Swift's `Regex` works on grapheme clusters unless told otherwise, spells classes and
// case folding its own way, and is far slower than these scanners. Instead each pattern that
// small open models use is recognised by its exact text and scanned by a hand-written
// function that follows the regular expression's leftmost-first alternation and
// backtracking, alternative by alternative (the comments quote each one). Any other pattern
// is refused when the file is read, naming it (Loading.swift). The scanners are checked
// against the library's own splits on a corpus of accents, combining marks, CJK, emoji
// sequences, unusual spaces, digits and contractions (Tests/TokenizerTests).
//
// Classes are Unicode's, on scalars: \p{L} is the letters (Lu Ll Lt Lm Lo), \p{N} the numbers
// (Nd Nl No), \s the White_Space property (Oniguruma's \s). So "e" + U+0301 is a letter and
// then a mark (not a letter), and 👍🏽 is two scalars, both neither.

/// A `Split` pattern the lab knows.
enum SplitPattern: Sendable, Equatable {
    /// A `String` pattern: the literal text.
    case literal([Unicode.Scalar])
    /// GPT-2's pattern (also the ByteLevel pre-tokenizer's own):
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// Llama 3's pattern, with digits in groups of up to `maxDigits` (3 for Llama 3's
    /// `\p{N}{1,3}`, 1 for Qwen2's `\p{N}`):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3(maxDigits: Int)

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The regular expressions known, with the names an error message gives them.
    static let known: [(name: String, regex: String, pattern: SplitPattern)] = [
        ("GPT-2's", gpt2Regex, .gpt2),
        ("Llama 3's", llama3Regex, .llama3(maxDigits: 3)),
        ("Qwen2's", qwen2Regex, .llama3(maxDigits: 1)),
    ]

    /// The pattern a `Regex` of tokenizer.json spells, if it is one of `known`.
    init?(regex: String) {
        guard let match = Self.known.first(where: { $0.regex == regex }) else { return nil }
        self = match.pattern
    }

    /// The stretches of `text` the pattern matches, in order and not overlapping, as the
    /// library's regular expression finds them one after another.
    func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .literal(let literal):
            return occurrences(of: literal, in: text)
        case .gpt2, .llama3:
            let scanner = Scanner(text)
            var found: [Range<Int>] = []
            var i = 0
            while i < text.count {
                let end: Int?
                if case .llama3(let maxDigits) = self {
                    end = scanner.llama3Match(at: i, maxDigits: maxDigits)
                } else {
                    end = scanner.gpt2Match(at: i)
                }
                if let end {
                    found.append(i..<end)
                    i = end
                } else {
                    i += 1  // never taken: every scalar starts some alternative of both patterns
                }
            }
            return found
        }
    }
}

/// The classes a scalar belongs to, for the patterns.
struct ScalarClass: OptionSet, Sendable {
    let rawValue: UInt8
    /// \p{L}
    static let letter = ScalarClass(rawValue: 1)
    /// \p{N}
    static let number = ScalarClass(rawValue: 2)
    /// \s (White_Space)
    static let space = ScalarClass(rawValue: 4)
    /// [\r\n] (always with `space`)
    static let newline = ScalarClass(rawValue: 8)

    /// [^\s\p{L}\p{N}]: punctuation, symbols, marks, other controls.
    var isOther: Bool { isEmpty }

    static func of(_ u: Unicode.Scalar) -> ScalarClass {
        if u.value < 0x80 { return ascii[Int(u.value)] }
        let properties = u.properties
        if properties.isWhitespace { return .space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return []
        }
    }

    private static let ascii: [ScalarClass] = (0..<128).map { (v: Int) -> ScalarClass in
        switch v {
        case 0x0A, 0x0D: return [.space, .newline]
        case 0x09, 0x0B, 0x0C, 0x20: return .space
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return []
        }
    }
}

/// A text with each scalar's class, and the two patterns' alternatives tried at a position.
/// Each `…Match(at:)` returns where the match starting at `i` ends, or nil.
struct Scanner {
    let text: [Unicode.Scalar]
    let classes: [ScalarClass]
    var count: Int { text.count }

    init(_ text: [Unicode.Scalar]) {
        self.text = text
        self.classes = text.map(ScalarClass.of)
    }

    /// The end of the run of scalars from `i` that satisfy `test`.
    func runEnd(from i: Int, _ test: (ScalarClass) -> Bool) -> Int {
        var k = i
        while k < count && test(classes[k]) { k += 1 }
        return k
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at an apostrophe; `caseInsensitive` as in `(?i:…)`, where
    /// Unicode case folding also lets U+017F ſ stand for s.
    func contraction(at i: Int, caseInsensitive: Bool) -> Int? {
        guard text[i] == "'", i + 1 < count else { return nil }
        func letter(_ k: Int) -> Unicode.Scalar {
            let u = text[k]
            guard caseInsensitive else { return u }
            if ("A"..."Z").contains(u) { return Unicode.Scalar(u.value + 0x20)! }
            if u == "\u{17F}" { return "s" }
            return u
        }
        switch letter(i + 1) {
        case "s", "t", "m", "d": return i + 2
        case "r", "v", "l":
            guard i + 2 < count else { return nil }
            let pair = (letter(i + 1), letter(i + 2))
            if pair == ("r", "e") || pair == ("v", "e") || pair == ("l", "l") { return i + 3 }
            return nil
        default: return nil
        }
    }

    /// The whitespace alternatives both patterns end with, `\s+(?!\S)|\s+`, at a space: the
    /// whole run when it ends the text; else all of it but the last scalar (which goes with
    /// the word after it) when that leaves one or more; else the single scalar.
    func trailingWhitespace(at i: Int) -> Int {
        let end = runEnd(from: i) { $0.contains(.space) }
        if end == count { return end }
        return end - i >= 2 ? end - 1 : end
    }

    /// GPT-2's pattern at `i`.
    func gpt2Match(at i: Int) -> Int? {
        // 's|'t|'re|'ve|'m|'ll|'d
        if let end = contraction(at: i, caseInsensitive: false) { return end }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space is never in the class, so the
        // run starts after a leading space or at `i`.
        let start = text[i] == " " ? i + 1 : i
        if start < count {
            let c = classes[start]
            if c.contains(.letter) { return runEnd(from: start) { $0.contains(.letter) } }
            if c.contains(.number) { return runEnd(from: start) { $0.contains(.number) } }
            if c.isOther { return runEnd(from: start) { $0.isOther } }
        }
        // \s+(?!\S)|\s+
        if classes[i].contains(.space) { return trailingWhitespace(at: i) }
        return nil
    }

    /// Llama 3's pattern at `i` (Qwen2's with `maxDigits` 1).
    func llama3Match(at i: Int, maxDigits: Int) -> Int? {
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if let end = contraction(at: i, caseInsensitive: true) { return end }
        let c = classes[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+: one scalar that is no letter, number or line break, then
        // letters; or letters from `i`.
        if !c.contains(.letter) && !c.contains(.number) && !c.contains(.newline)
            && i + 1 < count && classes[i + 1].contains(.letter) {
            return runEnd(from: i + 1) { $0.contains(.letter) }
        }
        if c.contains(.letter) { return runEnd(from: i) { $0.contains(.letter) } }
        // \p{N}{1,3}
        if c.contains(.number) { return min(runEnd(from: i) { $0.contains(.number) }, i + maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let start = text[i] == " " ? i + 1 : i
        if start < count && classes[start].isOther {
            let end = runEnd(from: start) { $0.isOther }
            return runEnd(from: end) { $0.contains(.newline) }
        }
        guard c.contains(.space) else { return nil }
        // \s*[\r\n]+: greedy \s* gives back scalars until a line break follows, so the match
        // ends just after the last line break of the whitespace run.
        let run = runEnd(from: i) { $0.contains(.space) }
        if let last = (i..<run).last(where: { classes[$0].contains(.newline) }) { return last + 1 }
        // \s+(?!\S)|\s+
        return trailingWhitespace(at: i)
    }
}
