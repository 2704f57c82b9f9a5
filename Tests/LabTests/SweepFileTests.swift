import Foundation
import Testing
import Lab

/// Numbered lines of a sweep file written inline.
func sweepLines(_ text: String) -> [ScriptLine] {
    text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map {
        ScriptLine(number: $0.offset + 1, text: String($0.element))
    }
}

/// Parses a sweep file written inline, named `s.sweep`.
func sweep(_ text: String) throws(LabError) -> SweepFile { try SweepFile(lines: sweepLines(text), name: "s.sweep") }

/// The message a bad sweep file is refused with ("" when it is accepted).
func sweepError(_ text: String, allowMany: Bool = false) -> String {
    do {
        let file = try sweep(text)
        let points = try file.points(allowMany: allowMany)
        try file.validate(points, registry: .standard)
        return ""
    } catch { return error.message }
}

/// Sweep files: the grid, tied values, exclusions, placeholders, names, and every refusal.
@Suite struct SweepFileTests {
    @Test func axesMultiplyInTheOrderWrittenTheFirstSlowest() throws {
        let file = try sweep("""
        # sweep: preset = bf16, fp16, fp32
        # sweep: algo = grpo, token-tis
        # sweep: seed = 1, 2
        precision preset {preset}
        set algo {algo}
        seed {seed}
        step 3 --json
        """)
        #expect(file.keys == ["preset", "algo", "seed"])
        let points = try file.points()
        #expect(points.count == 12)
        #expect(points.map(\.index) == Array(0..<12))
        #expect(points[0].name == "preset-bf16_algo-grpo_seed-1")
        #expect(points[1].name == "preset-bf16_algo-grpo_seed-2")
        #expect(points[2].name == "preset-bf16_algo-token-tis_seed-1")
        #expect(points[11].name == "preset-fp32_algo-token-tis_seed-2")
        #expect(points[4].described == "preset = fp16, algo = grpo, seed = 1")
        #expect(points[4].value(of: "algo") == "grpo")
        #expect(points[4].value(of: "lr") == nil)
        #expect(Set(points.map(\.name)).count == 12)
    }

    @Test func aPointsSessionKeepsTheLineNumbersAndComments() throws {
        let file = try sweep("""
        # compare presets {not a placeholder here}
        # sweep: preset = bf16, fp16

        precision preset {preset}
        step 5 --json   # {preset} in a trailing comment is replaced too
        step
        """)
        let point = try file.points()[1]
        #expect(file.session(for: point) == [
            "# compare presets {not a placeholder here}",
            "# sweep: preset = bf16, fp16",
            "",
            "precision preset fp16",
            "step 5 --json   # fp16 in a trailing comment is replaced too",
            "step",
            "# sweep point preset-fp16: preset = fp16",
        ])
        #expect(file.steps(for: point) == 6)
    }

    @Test func tiedValuesAreOneAxis() throws {
        let file = try sweep("""
        # sweep: (preset, lr) = (bf16, 1e-4), (fp16, 3e-4)
        # sweep: seed = 1, 2
        precision preset {preset}
        set lr {lr}
        seed {seed}
        """)
        let points = try file.points()
        #expect(points.map(\.name) == ["preset-bf16_lr-1e-4_seed-1", "preset-bf16_lr-1e-4_seed-2",
                                       "preset-fp16_lr-3e-4_seed-1", "preset-fp16_lr-3e-4_seed-2"])
        #expect(file.axes[0].keys == ["preset", "lr"])
        #expect(file.session(for: points[2])[3] == "set lr 3e-4")
    }

    @Test func exclusionsDropThePointsMatchingAllTheirConditions() throws {
        let file = try sweep("""
        # sweep: preset = bf16, fp16, fp32
        # sweep: algo = grpo, seq-mis
        # sweep-exclude: preset = fp32, algo = seq-mis
        # sweep-exclude: preset = fp16
        precision preset {preset}
        set algo {algo}
        """)
        #expect(try file.points().map(\.name) == ["preset-bf16_algo-grpo", "preset-bf16_algo-seq-mis", "preset-fp32_algo-grpo"])
        #expect(try file.points().map(\.index) == [0, 1, 2])
    }

    @Test func quotedValuesMayHoldCommasAndParentheses() throws {
        let file = try sweep("""
        # sweep: note = "a, b", "(c)", plain
        # sweep: (x, y) = ("1,2", 3), (4, " 5 ")
        run {note}-{x}-{y}
        """)
        let points = try file.points()
        #expect(points.map { $0.value(of: "note")! } == ["a, b", "a, b", "(c)", "(c)", "plain", "plain"])
        #expect(points[0].value(of: "x") == "1,2")
        #expect(points[1].value(of: "y") == " 5 ")
        #expect(points[0].name == "note-a__b_x-1_2_y-3")
    }

    @Test func namesAreFileSafeAndUniqueIgnoringCase() {
        let names = SweepFile.names(for: [
            [("v", "a/b")], [("v", "a_b")], [("v", "A_B")], [("v", "x y*z")], [("v", String(repeating: "q", count: 300))],
        ])
        #expect(names == ["v-a_b", "v-a_b-2", "v-A_B-3", "v-x_y_z", "v-" + String(repeating: "q", count: 118)])
    }

    @Test func everyRefusalNamesTheFileTheLineAndWhatIsAccepted() {
        let cases: [(String, String)] = [
            ("set algo grpo", "s.sweep:1: no grid: a sweep file declares its axes in header lines such as '# sweep: preset = bf16, fp16'"),
            ("# sweep: preset = bf16, fp16\nprecision preset {prest}",
             "s.sweep:2: unknown placeholder '{prest}'; did you mean '{preset}'? (the grid's keys: {preset}; a key is declared by '# sweep: KEY = V1, V2')"),
            ("# sweep: preset = bf16\n# sweep: seed = 1, 2\nprecision preset {preset}",
             "s.sweep:2: key 'seed' is never used: no command line holds {seed}; use it in a command, or remove it from the grid"),
            ("# sweep: preset =\nprecision preset {preset}", "s.sweep:1: 'preset' has no values; write '# sweep: KEY = V1, V2'"),
            ("# sweep: preset = bf16, , fp16\nprecision preset {preset}", "s.sweep:1: an empty value (value 2); every value needs text"),
            ("# sweep: preset = bf16\n# sweep: preset = fp16\nprecision preset {preset}",
             "s.sweep:2: key 'preset' is already on line 1; a key has one axis (list all its values there, or tie it)"),
            ("# sweep: (a, a) = (1, 2)\nx {a}", "s.sweep:1: key 'a' appears twice in the tie"),
            ("# sweep: preset = bf16, bf16\nprecision preset {preset}", "s.sweep:1: the value 'bf16' is listed twice"),
            ("# sweep: (preset, lr) = (bf16, 1e-4), (fp16)\nprecision preset {preset}\nset lr {lr}",
             "s.sweep:1: (fp16) has 1 value; (preset, lr) needs 2"),
            ("# sweep: (preset, lr) = bf16, 1e-4\nprecision preset {preset}\nset lr {lr}",
             "s.sweep:1: tied values are written in parentheses, one per key: (preset, lr) = (…), (…)"),
            ("# sweep: preset = (bf16, fp16)\nprecision preset {preset}", "s.sweep:1: parentheses tie values of several keys"),
            ("# sweep: (preset) = (bf16)\nprecision preset {preset}", "s.sweep:1: tie two keys or more"),
            ("# sweep: 2x = 1, 2\nx {2x}", "s.sweep:1: '2x' is not a key: a key is letters, digits and '_', starting with a letter"),
            ("# sweep: preset bf16\nx", "s.sweep:1: expected '# sweep: KEY = V1, V2' or '# sweep: (K1, K2) = (A1, A2), (B1, B2)'"),
            ("# sweeps: preset = bf16\nx", "s.sweep:1: unknown header '# sweeps:'; did you mean '# sweep:'?"),
            ("# sweep: preset = \"bf16\nx {preset}", "s.sweep:1: a quoted value is written \"…\" as a whole; found \"bf16"),
            ("# sweep: preset = bf16, fp16\n# sweep-exclude: presett = bf16\nprecision preset {preset}",
             "s.sweep:2: the exclusion names an unknown key, 'presett'; did you mean 'preset'? (the grid's keys: preset)"),
            ("# sweep: preset = bf16, fp16\n# sweep-exclude: preset = bf61\nprecision preset {preset}",
             "s.sweep:2: preset has no value 'bf61'; did you mean 'bf16'? (its values: bf16, fp16)"),
            ("# sweep: (preset, lr) = (bf16, 1), (fp16, 2)\n# sweep-exclude: preset = bf16, lr = 2\nprecision preset {preset}\nset lr {lr}",
             "s.sweep:2: this exclusion matches no point of the grid"),
            ("# sweep: preset = bf16\n# sweep-exclude: preset = bf16\nprecision preset {preset}", "s.sweep:1: every point of the grid is excluded"),
            ("# sweep: preset = bf16\n# sweep-exclude: preset\nprecision preset {preset}", "s.sweep:2: expected '# sweep-exclude: KEY = VALUE, KEY = VALUE'"),
            ("# sweep: preset = bf16, bf17\nprecision preset {preset}",
             "s.sweep:2: in point preset-bf17: precision preset: NAME must be one of"),
            ("# sweep: seed = 1, 2\nseed {seed}\nstepp 3", "s.sweep:3: in point seed-1: unknown command 'stepp'; did you mean 'step'?"),
            // A count mistyped: refused when planned, not read as a text prompt at run time.
            ("# sweep: n = 8, 6a4\nrollout {n}",
             "s.sweep:2: in point n-6a4: rollout: N must be an integer in 1…4096, or a quoted text"),
        ]
        for (text, expected) in cases {
            let message = sweepError(text)
            #expect(message.hasPrefix(expected), "\(text)\ngot: \(message)")
        }
    }

    @Test func moreThanTheLimitOfPointsNeedsYes() throws {
        let values = (1...26).map(String.init).joined(separator: ", ")
        let text = "# sweep: a = \(values)\n# sweep: b = \(values)\nx {a} {b}"
        let file = try sweep(text)
        #expect(throws: LabError.self) { try file.points() }
        do { _ = try file.points() } catch {
            #expect(error.message == "s.sweep:1: 676 points (26 × 26) is more than 500; pass --yes to plan them all, or make the grid smaller")
        }
        #expect(try file.points(allowMany: true).count == 676)
    }

    @Test func theSourceIsTheFilesText() throws {
        #expect(try sweep("# sweep: a = 1\nx {a}").source == "# sweep: a = 1\nx {a}\n")
    }
}

/// The shipped sweep files: each parses, plans within the point limit, names a seed axis
/// (a finding is reported over seeds), passes the registry's check of every command line
/// of every point, and loads only checkpoints that are in the repository.
@Suite struct ShippedSweepFileTests {
    @Test func everySweepInSessionsIsARunnableGridOverSeeds() throws {
        let directory = packageRoot.appendingPathComponent("sessions")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sweep") }.sorted()
        #expect(names.count >= 4, "the sweep demo and the stories")
        for name in names {
            let text = try String(contentsOfFile: directory.appendingPathComponent(name).path, encoding: .utf8)
            let file = try SweepFile(lines: sweepLines(text), name: name)
            let points = try file.points()
            #expect(points.count >= 2, "\(name)")
            #expect(file.keys.contains("seed"), "\(name): its grid has no seed axis")
            try file.validate(points, registry: .standard)
            for point in points {
                for line in file.session(for: point) where line.hasPrefix("model load ") {
                    let path = String(line.dropFirst("model load ".count)).trimmingCharacters(in: .whitespaces)
                    #expect(FileManager.default.fileExists(atPath: packageRoot.appendingPathComponent(path + "/config.json").path),
                            "\(name): point \(point.name) loads \(path), which is not a checkpoint in the repository")
                }
            }
        }
    }
}
