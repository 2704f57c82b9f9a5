// Added tokens (tokenizer.json's `added_tokens`: special ones like <s> and <|im_start|>, and
// others), found in the text before the model sees it; and the post-processor, which adds a
// template's special tokens around the ids.

/// One of tokenizer.json's `added_tokens`.
struct AddedToken: Sendable {
    var id: Int
    /// The text as the file gives it.
    var content: [Unicode.Scalar]
    /// Left out by `decode` when skipping special tokens.
    var special: Bool
    /// Whitespace before the token goes with it (and so vanishes from the text).
    var lstrip: Bool
    /// Whitespace after the token goes with it.
    var rstrip: Bool
    /// Found only where neither neighbour is a word character (\w: letters, marks, decimal
    /// digits, connector punctuation, joiners).
    var singleWord: Bool
    /// Found in the normalized text, as its own normalized form (`pattern`); else in the raw
    /// text, as `content`.
    var normalized: Bool
    /// What is looked for: `content`, normalized when `normalized` and there is a normalizer.
    var pattern: [Unicode.Scalar]
}

/// A stretch of the input after added tokens are split out.
enum Segment {
    /// An added token's id.
    case token(Int)
    /// Normalized text, for the pre-tokenizer and the model.
    case text(Piece)
}

/// The added tokens and how they are found (the library's `AddedVocabulary`).
struct AddedVocabulary: Sendable {
    let tokens: [AddedToken]
    /// Content → id.
    let ids: [[Unicode.Scalar]: Int]
    /// Id → the token `decode` and `token(for:)` give: the normalized pattern of a token
    /// marked `normalized` whose normalizer changes it, else its content.
    let decodingForms: [Int: [Unicode.Scalar]]
    /// The contents of special tokens.
    let specialContents: Set<[Unicode.Scalar]>
    /// Tokens looked for in the raw text, and in the normalized text.
    let raw: TokenFinder
    let normalized: TokenFinder

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        var ids: [[Unicode.Scalar]: Int] = [:]
        var forms: [Int: [Unicode.Scalar]] = [:]
        for t in tokens {
            ids[t.content] = t.id
            forms[t.id] = t.normalized ? t.pattern : t.content
        }
        self.ids = ids
        self.decodingForms = forms
        self.specialContents = Set(tokens.filter(\.special).map(\.content))
        self.raw = TokenFinder(tokens.filter { !$0.normalized })
        self.normalized = TokenFinder(tokens.filter(\.normalized))
    }

    var largestID: Int { tokens.map(\.id).max() ?? -1 }

    func id(forContent content: [Unicode.Scalar]) -> Int? { ids[content] }

    func decodingForm(of id: Int) -> String? { decodingForms[id].map { String(scalars: $0) } }

    func isSpecial(_ token: [Unicode.Scalar]) -> Bool { specialContents.contains(token) }

    /// The input as added tokens and normalized text between them: tokens found in the raw
    /// text first; then each stretch between them is normalized and the normalized tokens are
    /// found in it (the library's `extract_and_normalize`). Empty stretches are dropped.
    func segments(of text: [Unicode.Scalar], normalizer: Normalizer?) -> [Segment] {
        var out: [Segment] = []
        for (id, range) in raw.split(text) {
            if let id {
                out.append(.token(id))
                continue
            }
            if range.isEmpty { continue }
            let stretch = Array(text[range])
            let normalizedText = normalizer?.normalize(stretch) ?? stretch
            let atStart = range.lowerBound == 0
            for (id, sub) in normalized.split(normalizedText) {
                if let id {
                    out.append(.token(id))
                } else if !sub.isEmpty {
                    out.append(.text(Piece(scalars: Array(normalizedText[sub]), atStart: atStart && sub.lowerBound == 0)))
                }
            }
        }
        return out
    }
}

/// Finds added tokens in a text: at each place the longest that starts there, leftmost
/// first, the search going on after each one found (Aho–Corasick's leftmost-longest
/// matching, as the library does), with `single_word`, `lstrip` and `rstrip` applied to each.
struct TokenFinder: Sendable {
    let tokens: [AddedToken]
    /// First scalar → indices into `tokens`, longest pattern first.
    let byFirstScalar: [Unicode.Scalar: [Int]]

    init(_ tokens: [AddedToken]) {
        var seen = Set<[Unicode.Scalar]>()
        let distinct = tokens.filter { !$0.pattern.isEmpty && seen.insert($0.pattern).inserted }
        self.tokens = distinct
        var index: [Unicode.Scalar: [Int]] = [:]
        for (i, t) in distinct.enumerated() { index[t.pattern[0], default: []].append(i) }
        self.byFirstScalar = index.mapValues { list in list.sorted { distinct[$0].pattern.count > distinct[$1].pattern.count } }
    }

    /// The text as (added token id, stretch) and (nil, stretch between tokens), covering it
    /// in order (the library's `find_matches`).
    func split(_ text: [Unicode.Scalar]) -> [(id: Int?, range: Range<Int>)] {
        let n = text.count
        guard !byFirstScalar.isEmpty, n > 0 else { return [(nil, 0..<n)] }
        var out: [(id: Int?, range: Range<Int>)] = []
        var covered = 0  // the end of the last token taken
        var i = 0
        while i < n {
            guard let candidates = byFirstScalar[text[i]],
                  let found = candidates.first(where: { matches(tokens[$0].pattern, in: text, at: i) }) else {
                i += 1
                continue
            }
            let token = tokens[found]
            var start = i
            var stop = i + token.pattern.count
            i = stop
            if token.singleWord {
                let spaceBefore = start == 0 || !isWordCharacter(text[start - 1])
                let spaceAfter = stop == n || !isWordCharacter(text[stop])
                if !(spaceBefore && spaceAfter) { continue }
            }
            if token.lstrip {
                var k = start
                while k > 0 && text[k - 1].properties.isWhitespace { k -= 1 }
                start = max(k, covered)
            }
            if token.rstrip {
                while stop < n && text[stop].properties.isWhitespace { stop += 1 }
            }
            if covered < start { out.append((nil, covered..<start)) }
            out.append((token.id, start..<stop))
            covered = stop
        }
        if covered != n { out.append((nil, covered..<n)) }
        return out
    }

    private func matches(_ pattern: [Unicode.Scalar], in text: [Unicode.Scalar], at i: Int) -> Bool {
        i + pattern.count <= text.count && text[i..<(i + pattern.count)].elementsEqual(pattern)
    }
}

/// A word character of Unicode regular expressions (\w, UTS #18): alphabetic, a mark, a
/// decimal digit, connector punctuation, or a joiner.
func isWordCharacter(_ u: Unicode.Scalar) -> Bool {
    let p = u.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

// MARK: Post-processing

/// A post-processor of tokenizer.json (Loading.swift reads it). Only single sequences are
/// encoded here, so only a template's `single` part is kept.
indirect enum PostProcessor: Sendable {
    /// `TemplateProcessing`: the template's special tokens around the sequence ("<s> $A").
    case template([TemplatePart])
    /// `ByteLevel`: only offsets change; the ids are kept.
    case byteLevel
    /// `Sequence`: each in turn.
    case sequence([PostProcessor])

    enum TemplatePart: Sendable {
        /// `$A`: the encoded text.
        case sequence
        /// A special token's ids.
        case special([Int])
    }

    /// The ids with the template's special tokens, when `addSpecialTokens`; else as they are.
    func process(_ ids: [Int], addSpecialTokens: Bool) -> [Int] {
        switch self {
        case .template(let parts):
            return parts.flatMap { part -> [Int] in
                switch part {
                case .sequence: return ids
                case .special(let special): return addSpecialTokens ? special : []
                }
            }
        case .byteLevel:
            return ids
        case .sequence(let processors):
            return processors.reduce(ids) { $1.process($0, addSpecialTokens: addSpecialTokens) }
        }
    }
}
