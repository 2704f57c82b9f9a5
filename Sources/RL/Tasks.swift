// Tasks with exact, programmatic rewards: addition, string reversal, digit sorting.
//
// Every task writes its prompts and answers in the lab's standard vocabulary, so one model
// (`LlamaConfig.labDefault`, 48 tokens) can learn all of them. Each task uses a small
// subset of it:
//
//   addition   <bos> 4 7 3 + 2 9 = | 5 0 2 <eos>       digits, +, =      (answer: the sum)
//   reversal   <bos> r : k q z a = | a z q k <eos>     letters, :, =     (answer: reversed)
//   sorting    <bos> s : 3 1 3 0 = | 0 1 3 3 <eos>     digits, s, :, =   (answer: ascending)
//
// The part before `|` is the prompt; the response the model must produce comes after it.
// A task's size (operand digits, string length) sets the response length: from 2 tokens up
// to 129 (`TaskKind.largestSize`), so long-rollout effects can be studied.
//
// With notes (`task reversal --size 8 --notes 64`), a response first writes free notes and
// then a `|` token before the answer; the reward reads only what follows the first `|`:
//
//   reversal, notes 6   <bos> r : k q z = | ( . ? - , ( | z q k <eos>
//
// The demonstrations' notes are note tokens (`NoteTokens`) drawn uniformly, so a model that
// learned them keeps ln 7 ≈ 1.95 nats of entropy at every note position: free choices that
// the reward does not pin down, as the many free tokens of reasoning text are.

import Model
import Numerics

/// The built-in tasks.
public enum TaskKind: String, CaseIterable, Sendable, Codable, Hashable {
    case addition, reversal, sorting

    /// What a task's size counts.
    public var sizeName: String {
        switch self {
        case .addition: return "digits"
        case .reversal, .sorting: return "length"
        }
    }

    /// The largest size whose prompt and longest response fit in the default model's 256
    /// positions with room to spare for overlong responses.
    public var largestSize: Int {
        switch self {
        case .addition: return 64     // prompt 2·64+3, answer ≤ 65 digits + <eos>
        case .reversal, .sorting: return 96
        }
    }

    /// One line for `help task`.
    public var summary: String {
        switch self {
        case .addition: return "add two N-digit numbers: <bos> 4 7 3 + 2 9 = -> 5 0 2 <eos>"
        case .reversal: return "reverse N letters: <bos> r : k q z = -> z q k <eos>"
        case .sorting: return "sort N digits ascending: <bos> s : 3 1 0 = -> 0 1 3 <eos>"
        }
    }

    public static func parse(_ text: String) throws(NumericsError) -> TaskKind {
        let word = text.lowercased()
        switch word {
        case "add", "addition": return .addition
        case "reverse", "reversal": return .reversal
        case "sort", "sorting": return .sorting
        default:
            let names = TaskKind.allCases.map(\.rawValue)
            let hint = closestMatch(to: word, among: names).map { "; did you mean \($0)?" } ?? ""
            throw .invalidArgument("unknown task '\(text)'\(hint) tasks: \(names.joined(separator: " "))")
        }
    }
}

/// A task and its difficulty: each problem's size is drawn uniformly from
/// `minSize...maxSize` (operand digits for addition, string length otherwise).
public struct TaskSpec: Sendable, Hashable, Codable {
    public var kind: TaskKind
    public var minSize: Int
    public var maxSize: Int
    /// Free note tokens the demonstrations write before `|` and the answer (0: none, and no
    /// `|`: the task as it always was).
    public var notes: Int = 0

    public init(kind: TaskKind, minSize: Int, maxSize: Int, notes: Int = 0) throws(NumericsError) {
        self.kind = kind
        self.minSize = minSize
        self.maxSize = maxSize
        self.notes = notes
        try validate()
    }

    public init(kind: TaskKind, size: Int, notes: Int = 0) throws(NumericsError) {
        try self.init(kind: kind, minSize: size, maxSize: size, notes: notes)
    }

    /// The most notes a task may ask for.
    public static let largestNotes = 512

    private enum CodingKeys: String, CodingKey { case kind, minSize, maxSize, notes }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(TaskKind.self, forKey: .kind)
        minSize = try c.decode(Int.self, forKey: .minSize)
        maxSize = try c.decode(Int.self, forKey: .maxSize)
        notes = try c.decodeIfPresent(Int.self, forKey: .notes) ?? 0
    }

    /// Writes `notes` only when there are some, so files of tasks without notes are as before.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(minSize, forKey: .minSize)
        try c.encode(maxSize, forKey: .maxSize)
        if notes != 0 { try c.encode(notes, forKey: .notes) }
    }

    /// The lab's default task: addition of two 3-digit numbers (responses of 4–5 tokens).
    public static let `default` = try! TaskSpec(kind: .addition, size: 3)

    public func validate() throws(NumericsError) {
        guard minSize >= 1 else { throw .invalidArgument("task \(kind.rawValue): \(kind.sizeName) must be at least 1 (got \(minSize))") }
        guard maxSize >= minSize else {
            throw .invalidArgument("task \(kind.rawValue): the largest \(kind.sizeName) (\(maxSize)) is below the smallest (\(minSize))")
        }
        guard maxSize <= kind.largestSize else {
            throw .invalidArgument("task \(kind.rawValue): \(kind.sizeName) at most \(kind.largestSize) (got \(maxSize))")
        }
        guard (0...TaskSpec.largestNotes).contains(notes) else {
            throw .invalidArgument("task \(kind.rawValue): notes must be in 0…\(TaskSpec.largestNotes) (got \(notes))")
        }
    }

    /// Tokens of the longest correct response, <eos> included (with notes: the
    /// demonstrations' notes and `|` too).
    public var longestAnswer: Int {
        let marker = notes > 0 ? notes + 1 : 0
        switch kind {
        case .addition: return marker + maxSize + 2
        case .reversal, .sorting: return marker + maxSize + 1
        }
    }

    /// Tokens of the longest prompt, <bos> and `=` included.
    public var longestPrompt: Int {
        switch kind {
        case .addition: return 2 * maxSize + 3
        case .reversal, .sorting: return maxSize + 4
        }
    }

    /// The default response-length limit: the longest answer and 4 more tokens, so a
    /// wrong, overlong answer is cut off (and rewarded 0) soon after a right one would end.
    public var defaultMaxResponse: Int { longestAnswer + 4 }

    /// How many distinct prompts the task has (saturating), to bound the prompt sets.
    public var promptSpace: Double {
        var total = 0.0
        for n in minSize...maxSize {
            switch kind {
            case .addition:
                let operands = n == 1 ? 10.0 : 9 * powD(10, Double(n - 1))
                total += operands * operands
            case .reversal: total += powD(26, Double(n))
            case .sorting: total += powD(10, Double(n))
            }
        }
        return total
    }

    /// `addition digits=3`, `reversal length=4..8`, `reversal length=8 notes=64`.
    public var description: String {
        let size = minSize == maxSize ? "\(minSize)" : "\(minSize)..\(maxSize)"
        return "\(kind.rawValue) \(kind.sizeName)=\(size)" + (notes > 0 ? " notes=\(notes)" : "")
    }
}

/// One problem: the prompt the model sees and the exact answer it must produce.
public struct Problem: Sendable, Hashable, Codable {
    /// `<bos> … =`.
    public var prompt: [Int32]
    /// The answer tokens, <eos> included.
    public var answer: [Int32]

    public init(prompt: [Int32], answer: [Int32]) {
        self.prompt = prompt
        self.answer = answer
    }

    /// The whole demonstration: prompt then answer.
    public var demonstration: [Int32] { prompt + answer }
}

/// Token ids of the standard vocabulary that the tasks use.
enum TaskTokens {
    static let vocabulary = Vocabulary.standard
    static let bos = vocabulary.bos
    static let eos = vocabulary.eos
    static func id(_ s: String) -> Int32 { vocabulary.id(of: s)! }
    static let digits: [Int32] = (0...9).map { id(String($0)) }
    static let letters: [Int32] = "abcdefghijklmnopqrstuvwxyz".map { id(String($0)) }
    static let plus = id("+"), equals = id("="), colon = id(":"), r = id("r"), s = id("s")
    /// Ends a response's notes; the answer follows.
    static let endOfNotes = id("|")
}

/// The tokens notes are written in: symbols no task uses elsewhere.
public enum NoteTokens {
    public static let ids: [Int32] = ["(", ")", ",", ".", "?", "-", "*"].map { TaskTokens.id($0) }
}

extension TaskSpec {
    /// A random problem from the stream (sizes uniform in the range, then digits or letters
    /// uniform; addition operands have no leading zero unless they are one digit long).
    /// With notes, the answer starts with `notes` note tokens drawn uniformly, then `|`.
    public func randomProblem(_ rng: inout RandomStream) -> Problem {
        let plain = randomPlainProblem(&rng)
        guard notes > 0 else { return plain }
        let written = (0..<notes).map { _ in NoteTokens.ids[Int(rng.next() % UInt64(NoteTokens.ids.count))] }
        return Problem(prompt: plain.prompt, answer: written + [TaskTokens.endOfNotes] + plain.answer)
    }

    private func randomPlainProblem(_ rng: inout RandomStream) -> Problem {
        let n = minSize + Int(rng.next() % UInt64(maxSize - minSize + 1))
        let t = TaskTokens.self
        switch kind {
        case .addition:
            func number() -> [Int] {
                (0..<n).map { i in i == 0 && n > 1 ? 1 + Int(rng.next() % 9) : Int(rng.next() % 10) }
            }
            let a = number(), b = number()
            return Problem(prompt: [t.bos] + a.map { t.digits[$0] } + [t.plus] + b.map { t.digits[$0] } + [t.equals],
                           answer: TaskSpec.sum(a, b).map { t.digits[$0] } + [t.eos])
        case .reversal:
            let letters = (0..<n).map { _ in t.letters[Int(rng.next() % 26)] }
            return Problem(prompt: [t.bos, t.r, t.colon] + letters + [t.equals], answer: letters.reversed() + [t.eos])
        case .sorting:
            let digits = (0..<n).map { _ in Int(rng.next() % 10) }
            return Problem(prompt: [t.bos, t.s, t.colon] + digits.map { t.digits[$0] } + [t.equals],
                           answer: digits.sorted().map { t.digits[$0] } + [t.eos])
        }
    }

    /// Decimal digits (most significant first) of a + b, without leading zeros.
    static func sum(_ a: [Int], _ b: [Int]) -> [Int] {
        var out: [Int] = []
        var carry = 0
        var i = a.count - 1, j = b.count - 1
        while i >= 0 || j >= 0 || carry > 0 {
            let s = (i >= 0 ? a[i] : 0) + (j >= 0 ? b[j] : 0) + carry
            out.append(s % 10)
            carry = s / 10
            i -= 1
            j -= 1
        }
        while out.count > 1 && out.last == 0 { out.removeLast() }
        return out.reversed()
    }

    /// The answer to a prompt written in this task's format, computed from the prompt
    /// alone (<eos> included; with notes, `|` first and no notes); nil if the prompt is not
    /// one of this task's.
    public func solve(_ prompt: [Int32]) -> [Int32]? {
        guard let answer = solvePlain(prompt) else { return nil }
        return notes > 0 ? [TaskTokens.endOfNotes] + answer : answer
    }

    private func solvePlain(_ prompt: [Int32]) -> [Int32]? {
        let t = TaskTokens.self
        guard prompt.count >= 3, prompt.first == t.bos, prompt.last == t.equals else { return nil }
        let body = Array(prompt[1..<(prompt.count - 1)])
        func digitValues(_ ids: ArraySlice<Int32>) -> [Int]? {
            let v = ids.compactMap { t.digits.firstIndex(of: $0) }
            return v.count == ids.count && !v.isEmpty ? v : nil
        }
        switch kind {
        case .addition:
            guard let plus = body.firstIndex(of: t.plus), let a = digitValues(body[..<plus]),
                  let b = digitValues(body[(plus + 1)...]) else { return nil }
            return TaskSpec.sum(a, b).map { t.digits[$0] } + [t.eos]
        case .reversal:
            guard body.count >= 3, body[0] == t.r, body[1] == t.colon,
                  body[2...].allSatisfy({ t.letters.contains($0) }) else { return nil }
            return body[2...].reversed() + [t.eos]
        case .sorting:
            guard body.count >= 3, body[0] == t.s, body[1] == t.colon, let d = digitValues(body[2...]) else { return nil }
            return d.sorted().map { t.digits[$0] } + [t.eos]
        }
    }

    /// Reward of a response: 1 when it is exactly the answer and ended with <eos> (a
    /// response cut off by the length limit gets 0), else 0. When the answer has notes
    /// (holds `|`), only what follows the first `|` is compared: the notes are free, and a
    /// response without `|` gets 0.
    public static func reward(response: [Int32], finished: Bool, answer: [Int32]) -> Double {
        guard finished else { return 0 }
        guard let mark = answer.firstIndex(of: TaskTokens.endOfNotes) else { return response == answer ? 1 : 0 }
        guard let responseMark = response.firstIndex(of: TaskTokens.endOfNotes) else { return 0 }
        return response[(responseMark + 1)...] == answer[(mark + 1)...] ? 1 : 0
    }
}

/// The prompts of a task: a held-out evaluation set and a training pool, both fixed by the
/// seed, never sharing a prompt; pretraining demonstrations avoid the held-out prompts too.
public struct TaskData: Sendable {
    public let spec: TaskSpec
    public let seed: UInt64
    /// Evaluation prompts, never trained on.
    public let heldOut: [Problem]
    /// The pool the sanity set is filtered from (and RL draws from when there is none).
    public let trainPool: [Problem]
    let heldOutPrompts: Set<[Int32]>

    /// Draws the sets: `heldOutCount` distinct prompts from the stream "task/heldout", then
    /// `poolCount` distinct others from "task/train". For tasks with few distinct prompts
    /// the held-out set is limited to a quarter of them and the pool to the rest.
    public init(spec: TaskSpec, seed: UInt64, heldOutCount: Int = 256, poolCount: Int = 2048) throws(NumericsError) {
        try spec.validate()
        guard heldOutCount >= 1, poolCount >= 1 else {
            throw .invalidArgument("task sets need at least one prompt each (held-out \(heldOutCount), pool \(poolCount))")
        }
        self.spec = spec
        self.seed = seed
        let space = spec.promptSpace
        let heldTarget = Int(min(Double(heldOutCount), (space / 4).rounded(.down)))
        guard heldTarget >= 1 else {
            throw .invalidArgument("task \(spec.description) has only \(Int(space)) distinct prompts: too few for a held-out set; use a larger size")
        }
        var rng = RandomStream(seed: seed, name: "task/heldout")
        var held: [Problem] = [], seen = Set<[Int32]>()
        var attempts = 0
        while held.count < heldTarget && attempts < 50 * heldTarget {
            let p = spec.randomProblem(&rng)
            attempts += 1
            if seen.insert(p.prompt).inserted { held.append(p) }
        }
        let poolTarget = Int(min(Double(poolCount), space - Double(held.count)))
        rng = RandomStream(seed: seed, name: "task/train")
        var pool: [Problem] = []
        attempts = 0
        while pool.count < poolTarget && attempts < 50 * max(poolTarget, 1) {
            let p = spec.randomProblem(&rng)
            attempts += 1
            if seen.insert(p.prompt).inserted { pool.append(p) }
        }
        guard !pool.isEmpty else { throw .invalidArgument("task \(spec.description): no training prompts left after the held-out set") }
        heldOut = held
        trainPool = pool
        heldOutPrompts = Set(held.map(\.prompt))
    }

    /// Whether a prompt belongs to the held-out set.
    public func isHeldOut(_ prompt: [Int32]) -> Bool { heldOutPrompts.contains(prompt) }

    /// `count` training demonstrations for pretraining step `step`: fresh problems from the
    /// stream "pretrain/STEP", held-out prompts skipped.
    public func demonstrations(step: Int, count: Int) -> [Problem] {
        var rng = RandomStream(seed: seed, name: "pretrain/\(step)")
        var out: [Problem] = []
        var attempts = 0
        while out.count < count {
            let p = spec.randomProblem(&rng)
            attempts += 1
            // A space nearly all held out would loop forever; the pool always exists.
            if !isHeldOut(p.prompt) { out.append(p) } else if attempts > 100 * count { out.append(trainPool[out.count % trainPool.count]) }
        }
        return out
    }
}
