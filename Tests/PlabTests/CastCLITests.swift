import Testing

/// `plab cast` as scripts use it (README "Exit status" and "--json").
@Suite struct CastCLITests {
    /// A `PLAB_THREADS` that is not a positive integer, or far more than the processors, is
    /// named on standard error; the command still runs, with the threads said.
    @Test func aBadThreadSettingIsNamed() throws {
        let bad = try runPlab(["cast", "--to", "bf16"], input: "1\n", environment: ["PLAB_THREADS": "abc"])
        #expect(bad.status == 0 && bad.stdout == "1.0\n")
        #expect(bad.stderr.contains("plab: PLAB_THREADS='abc' is not a positive integer; using"), "\(bad.stderr)")
        let many = try runPlab(["cast", "--to", "bf16"], input: "1\n", environment: ["PLAB_THREADS": "40000"])
        #expect(many.stderr.contains("plab: PLAB_THREADS=40000 is more than"), "\(many.stderr)")
        let fine = try runPlab(["cast", "--to", "bf16"], input: "1\n", environment: ["PLAB_THREADS": "1"])
        #expect(fine.stderr.isEmpty)
    }

    /// An option given twice on the command line is refused before anything runs, as in the
    /// shell; a list option (`--sizes`) may repeat.
    @Test func anOptionGivenTwiceIsRefused() throws {
        let r = try runPlab(["cast", "--to", "bf16", "--to=fp16"], input: "1.00390625\n")
        #expect(r.status == 64)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "plab: --to is given twice; give it once\n", "\(r.stderr)")
        let seeds = try runPlab(["run", "/nonexistent.plab", "--seed", "1", "--seed", "2"], input: "")
        #expect(seeds.status == 64 && seeds.stderr.contains("--seed is given twice"))
        let afterDashes = try runPlab(["cast", "--to", "bf16", "--", "--to"], input: "")
        #expect(!afterDashes.stderr.contains("given twice"), "nothing after -- is an option: \(afterDashes.stderr)")
    }

    @Test func roundsEachLine() throws {
        let r = try runPlab(["cast", "--to", "bf16"], input: "1.00390625\n1.01171875\n0x3f800001\n-0\n1e40\nnan\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines == ["1.0", "1.015625", "1.0", "-0.0", "inf", "nan"])
    }

    @Test func e4m3OverflowFollowsMlDtypesOrSaturates() throws {
        let input = "464\n465\n-1000\ninf\n0.0009765625\n"
        let plain = try runPlab(["cast", "--to", "e4m3", "--bits"], input: input)
        #expect(plain.lines == ["0x7e", "0x7f", "0xff", "0x7f", "0x00"])
        let sat = try runPlab(["cast", "--to", "e4m3", "--saturate"], input: input)
        #expect(sat.lines == ["448.0", "448.0", "-448.0", "448.0", "0.0"])
    }

    @Test func outputParsesBackToTheSameFloat32() throws {
        var inputs: [String] = []
        var x: UInt32 = 0x1234_5678
        for _ in 0..<500 { x = x &* 1_664_525 &+ 1_013_904_223; inputs.append("0x" + String(x, radix: 16)) }
        let r = try runPlab(["cast", "--to", "fp32"], input: inputs.joined(separator: "\n") + "\n")
        #expect(r.status == 0)
        for (input, output) in zip(inputs, r.lines) {
            let bits = UInt32(input.dropFirst(2), radix: 16)!
            let original = Float(bitPattern: bits)
            if original.isNaN { #expect(output.hasSuffix("nan")); continue }
            #expect(Float(output)?.bitPattern == bits, "\(input) printed as \(output)")
        }
    }

    @Test func stochasticIsSeeded() throws {
        let input = String(repeating: "1.001\n", count: 64)
        let a = try runPlab(["cast", "--to", "bf16", "--rounding", "stochastic", "--seed", "7"], input: input)
        let b = try runPlab(["cast", "--to", "bf16", "--rounding", "stochastic", "--seed", "7"], input: input)
        let c = try runPlab(["cast", "--to", "bf16", "--rounding", "stochastic", "--seed", "8"], input: input)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout != c.stdout)
        #expect(Set(a.lines) == ["1.0", "1.0078125"])
    }

    @Test func badInputPrintsNothingAndFails() throws {
        let r = try runPlab(["cast", "--to", "fp16"], input: "1.5\nabc\n2\n")
        #expect(r.status != 0)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("line 2: 'abc' is not a number"))
        let f = try runPlab(["cast", "--to", "bf61"], input: "1\n")
        #expect(f.status != 0)
        #expect(f.stderr.contains("unknown format 'bf61'; did you mean bf16?"))
        let range = try runPlab(["cast", "--to", "e9m30"], input: "1\n")
        #expect(range.status != 0 && range.stderr.contains("X in 2…8 and Y in 0…23"))
        let mode = try runPlab(["cast", "--to", "bf16", "--rounding", "up"], input: "1\n")
        #expect(mode.status != 0 && mode.stderr.contains("accepted: nearest zero stochastic"))
    }

    @Test func formatsListsTheTable() throws {
        let r = try runPlab(["formats"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("e4m3       8  1/4/3      7          448.0"))
    }

    @Test func shellAcceptsCastAndQuitFromAPipe() throws {
        let r = try runPlab([], input: "cast e4m3 500 0.3 --saturate\nquit\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines == ["500 -> 448.0", "0.3 -> 0.3125"])
    }
}
