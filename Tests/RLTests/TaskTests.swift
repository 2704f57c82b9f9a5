import Foundation
import Model
import Numerics
import RL
import Testing

func tokens(_ text: String) -> [Int32] {
    try! Vocabulary.standard.encode(text.split(separator: " ").map(String.init))
}

@Suite struct TaskTests {
    @Test func additionAnswersAndRewards() throws {
        let spec = try TaskSpec(kind: .addition, size: 3)
        #expect(spec.solve(tokens("<bos> 9 9 9 + 1 = ")) == tokens("1 0 0 0 <eos>"))
        #expect(spec.solve(tokens("<bos> 4 7 3 + 2 9 =")) == tokens("5 0 2 <eos>"))
        #expect(spec.solve(tokens("<bos> 0 + 0 =")) == tokens("0 <eos>"))
        let answer = tokens("5 0 2 <eos>")
        #expect(TaskSpec.reward(response: answer, finished: true, answer: answer) == 1)
        #expect(TaskSpec.reward(response: tokens("5 0 3 <eos>"), finished: true, answer: answer) == 0)
        #expect(TaskSpec.reward(response: tokens("5 0 2 1 <eos>"), finished: true, answer: answer) == 0)
        #expect(TaskSpec.reward(response: tokens("5 0"), finished: false, answer: answer) == 0)
        // Cut off by the length limit right before <eos>: 0 even though the digits are right.
        #expect(TaskSpec.reward(response: tokens("5 0 2"), finished: false, answer: answer) == 0)
    }

    /// With notes, only what follows the first `|` is compared: right after any notes, wrong,
    /// truncated, without `|`, with a second `|`.
    @Test func notesAreFreeAndOnlyTheAnswerAfterTheMarkerCounts() throws {
        let spec = try TaskSpec(kind: .reversal, size: 3, notes: 4)
        let answer = tokens("( . ? - | z q k <eos>")
        #expect(spec.solve(tokens("<bos> r : k q z =")) == tokens("| z q k <eos>"))
        func reward(_ response: String, finished: Bool = true) -> Double {
            TaskSpec.reward(response: tokens(response), finished: finished, answer: answer)
        }
        #expect(reward("( . ? - | z q k <eos>") == 1)
        #expect(reward("* * | z q k <eos>") == 1)        // other notes, fewer of them
        #expect(reward("| z q k <eos>") == 1)            // no notes at all
        #expect(reward("a b c d e f | z q k <eos>") == 1) // notes in any tokens
        #expect(reward("( . ? - | z q a <eos>") == 0)
        #expect(reward("( . ? - z q k <eos>") == 0)      // no marker
        #expect(reward("( | . | z q k <eos>") == 0)      // the answer follows the first marker
        #expect(reward("( . ? - | z q k", finished: false) == 0)
        #expect(reward("( . ? - | z q k <eos>", finished: false) == 0)
        // Generated problems: the notes are note tokens, then the marker and the answer.
        var rng = RandomStream(seed: 1, name: "t")
        for _ in 0..<50 {
            let p = spec.randomProblem(&rng)
            #expect(p.answer.count == 4 + 1 + 4 && p.answer.count == spec.longestAnswer)
            #expect(p.answer.prefix(4).allSatisfy { NoteTokens.ids.contains($0) })
            #expect(Array(p.answer.dropFirst(4)) == spec.solve(p.prompt))
        }
        #expect(spec.description == "reversal length=3 notes=4")
        // Saved with the trainer's state: notes only when there are some, so older files read.
        let plain = try TaskSpec(kind: .reversal, size: 3)
        #expect(!String(decoding: try JSONEncoder().encode(plain), as: UTF8.self).contains("notes"))
        #expect(try JSONDecoder().decode(TaskSpec.self, from: JSONEncoder().encode(spec)) == spec)
        #expect(try JSONDecoder().decode(TaskSpec.self, from: Data(#"{"kind":"reversal","minSize":3,"maxSize":3}"#.utf8)) == plain)
        #expect(throws: NumericsError.self) { try TaskSpec(kind: .reversal, size: 3, notes: TaskSpec.largestNotes + 1) }
    }

    @Test func reversalAndSorting() throws {
        let rev = try TaskSpec(kind: .reversal, size: 4)
        #expect(rev.solve(tokens("<bos> r : k q z a =")) == tokens("a z q k <eos>"))
        #expect(rev.solve(tokens("<bos> s : 3 1 =")) == nil)
        let sort = try TaskSpec(kind: .sorting, size: 5)
        #expect(sort.solve(tokens("<bos> s : 3 1 3 0 9 =")) == tokens("0 1 3 3 9 <eos>"))
        #expect(sort.solve(tokens("<bos> 1 + 2 =")) == nil)
    }

    /// Generated problems are well formed, their answers are what `solve` computes, and
    /// responses have the lengths the size promises.
    @Test(arguments: TaskKind.allCases)
    func generatedProblemsAreConsistent(kind: TaskKind) throws {
        for (lo, hi) in [(1, 1), (2, 5), (64, 64)] {
            let spec = try TaskSpec(kind: kind, minSize: lo, maxSize: hi)
            var rng = RandomStream(seed: 3, name: "t")
            for _ in 0..<200 {
                let p = spec.randomProblem(&rng)
                #expect(p.prompt.first == Vocabulary.standard.bos && p.prompt.last == Vocabulary.standard.id(of: "="))
                #expect(spec.solve(p.prompt) == p.answer)
                #expect(p.answer.last == Vocabulary.standard.eos)
                #expect(p.answer.count <= spec.longestAnswer && p.prompt.count <= spec.longestPrompt)
                #expect(p.answer.count >= lo + 1)
            }
        }
        // Long responses are possible: 64 digits or letters and more.
        #expect(try TaskSpec(kind: kind, size: 64).longestAnswer >= 65)
    }

    @Test func promptSetsAreSeededAndDisjoint() throws {
        let a = try TaskData(spec: .default, seed: 5, heldOutCount: 100, poolCount: 500)
        let b = try TaskData(spec: .default, seed: 5, heldOutCount: 100, poolCount: 500)
        let c = try TaskData(spec: .default, seed: 6, heldOutCount: 100, poolCount: 500)
        #expect(a.heldOut == b.heldOut && a.trainPool == b.trainPool)
        #expect(a.heldOut != c.heldOut)
        #expect(a.heldOut.count == 100 && a.trainPool.count == 500)
        let held = Set(a.heldOut.map(\.prompt))
        #expect(held.count == 100)
        #expect(a.trainPool.allSatisfy { !held.contains($0.prompt) })
        #expect(Set(a.trainPool.map(\.prompt)).count == 500)
        // Pretraining demonstrations never show a held-out prompt.
        for step in 0..<20 { #expect(a.demonstrations(step: step, count: 64).allSatisfy { !held.contains($0.prompt) }) }
        // A tiny task (10 sorting prompts) still gets both sets, held-out limited to a quarter.
        let tiny = try TaskData(spec: try TaskSpec(kind: .sorting, size: 1), seed: 1)
        #expect(tiny.heldOut.count == 2 && tiny.trainPool.count == 8)
    }

    @Test func badTasksAreRejected() throws {
        #expect(throws: NumericsError.self) { try TaskSpec(kind: .addition, size: 0) }
        #expect(throws: NumericsError.self) { try TaskSpec(kind: .reversal, minSize: 5, maxSize: 3) }
        #expect(throws: NumericsError.self) { try TaskSpec(kind: .sorting, size: 1000) }
        #expect(throws: NumericsError.self) { try TaskKind.parse("multiplication") }
        #expect(try TaskKind.parse("reverse") == .reversal)
        do { _ = try TaskKind.parse("additon") } catch { #expect("\(error)".contains("did you mean addition")) }
    }
}
