import Plot
import Testing

/// Nice ticks and their labels, on cases worked out by hand (the rules are in Ticks.swift).
@Suite struct TicksTests {
    let linear = Axis("x")
    let log = Axis("x", scale: .log10)

    @Test func fittedLinearRangesEndOnTicksWhenTheDataCoversThreeQuarters() {
        // Steps 0.1 (11 ticks), 0.2 (6), 0.5 (3): 0.2 encloses 0…0.97 in 0…1, covered at 97 %.
        let t = linear.ticks(for: 0...0.97)
        #expect(t.values == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(t.labels == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(t.range == 0...1)
        #expect(t.values[3] == 0.6)                                  // not 3 × 0.2 = 0.6000000000000001
        #expect(linear.ticks(for: 0...200).values == [0, 50, 100, 150, 200])
        #expect(linear.ticks(for: -0.97...0).values == [-1, -0.8, -0.6, -0.4, -0.2, 0])
        // 0…2500 by 500: thousands take the largest tick's suffix.
        #expect(linear.ticks(for: 0...2500).labels == ["0", "0.5k", "1k", "1.5k", "2k", "2.5k"])
        // Below 1e-3: scientific.
        #expect(linear.ticks(for: 0...8e-4).labels == ["0", "2e-4", "4e-4", "6e-4", "8e-4"])
    }

    /// An axis of counts (steps) ticks at whole numbers only: 1…3 steps are 1, 2, 3, not
    /// 1, 1.2, 1.4, …; wider ranges tick as any axis does.
    @Test func anAxisOfCountsTicksAtWholeNumbers() {
        let steps = Axis("step", integral: true)
        for hi in 2...12 {
            let t = steps.ticks(for: 1...Double(hi))
            #expect(t.values.allSatisfy { $0 == $0.rounded() }, "1…\(hi): \(t.values)")
            #expect(t.values.count >= 2, "1…\(hi): \(t.values)")
        }
        #expect(steps.ticks(for: 1...3).values.contains(2))
        #expect(linear.ticks(for: 1...3).values.contains { $0 != $0.rounded() }, "a plain axis may tick between")
        #expect(steps.ticks(for: 0...200).values == linear.ticks(for: 0...200).values)
    }

    @Test func poorlyCoveredRangesArePaddedInstead() {
        // 0…1.03: by 0.2 the ticks would be 0…1.2 (7, too many); by 0.5, 0…1.5 covers only 69 %.
        // Padded by 4 % (0.0412) at the top, not below 0: 0…1.0712, ticks 0…1 by 0.2.
        let t = linear.ticks(for: 0...1.03)
        #expect(t.values == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(t.range.lowerBound == 0 && abs(t.range.upperBound - 1.0712) < 1e-12)
        // Bin edges −5…5: by 2 → −6…6 (7), by 5 → 3 ticks; padded to −5.4…5.4, ticks by 2.
        let edges = linear.ticks(for: -5...5)
        #expect(edges.values == [-4, -2, 0, 2, 4])
        #expect(edges.labels == ["-4", "-2", "0", "2", "4"])
        #expect(abs(edges.range.lowerBound + 5.4) < 1e-12 && abs(edges.range.upperBound - 5.4) < 1e-12)
    }

    @Test func givenRangesAreKeptWithTicksInside() {
        let t = Axis("x", range: 0.3...0.35).ticks(for: 0...100)
        #expect(t.range == 0.3...0.35)
        #expect(t.values == [0.3, 0.31, 0.32, 0.33, 0.34, 0.35])
        #expect(t.labels == ["0.3", "0.31", "0.32", "0.33", "0.34", "0.35"])
    }

    @Test func singleValuesGetARangeAroundThem() {
        // 5 ± 10 % = 4.5…5.5: by 0.2 → 4.4…5.6 (7), by 0.5 → 3 ticks; padded 4.46…5.54, by 0.2.
        let five = linear.ticks(for: 5...5)
        #expect(five.values == [4.6, 4.8, 5, 5.2, 5.4])
        #expect(five.range.contains(5) && five.range.lowerBound < 4.6 && five.range.upperBound > 5.4)
        #expect(linear.ticks(for: 0...0).values == [-1, -0.5, 0, 0.5, 1])
        #expect(linear.ticks(for: nil).values == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(log.ticks(for: nil).values == [1, 2, 5, 10])
        #expect(log.ticks(for: 1...1).values == [0.5, 1, 2])               // a factor of 2 either side
    }

    @Test func logTicks() {
        // Whole decades enclose 1e-5…3e-3 in 1e-5…1e-2: 2.48 of 3 decades covered.
        let small = log.ticks(for: 1e-5...3e-3)
        #expect(small.values == [1e-5, 1e-4, 1e-3, 1e-2])
        #expect(small.labels == ["1e-5", "1e-4", "1e-3", "1e-2"])
        #expect(small.range == 1e-5...1e-2)
        // Within a decade or so: 1, 2, 5.
        let short = log.ticks(for: 3...40)
        #expect(short.values == [2, 5, 10, 20, 50])
        #expect(short.labels == ["2", "5", "10", "20", "50"])
        // Six decades: 7 whole decades are too many, every second one.
        let long = log.ticks(for: 1...1e6)
        #expect(long.values == [1, 100, 1e4, 1e6])
        #expect(long.labels == ["1", "100", "10k", "1M"])
        #expect(log.ticks(for: 0.01...10).labels == ["0.01", "0.1", "1", "10"])
    }

    @Test func aLogAxisIgnoresARangeThatIsNotPositive() {
        // 1…100: 1-2-5 gives 7 ticks, decades 3; nothing with 4 to 6, so the decades.
        let t = Axis("x", scale: .log10, range: 0...10).ticks(for: 1...100)
        #expect(t.values == [1, 10, 100])
        #expect(t.range == 1...100)
    }

    @Test func fewerTicksWhenAskedFor() {
        #expect(linear.ticks(for: 0...0.97, maxCount: 3).values == [0, 0.5, 1])
        // Whole decades: 4, too many; every second, 1e-6…1e-2, covers 62 %: padded instead.
        #expect(log.ticks(for: 1e-5...3e-3, maxCount: 3).values == [1e-5, 1e-4, 1e-3])
    }

    @Test func axisTitles() {
        #expect(Axis("log π", unit: "nats").title == "log π (nats)")
        #expect(Axis("tokens", scale: .log10).title == "tokens (log scale)")
        #expect(Axis("Δ", unit: "nats", scale: .log10).title == "Δ (nats, log scale)")
        #expect(Axis("step").title == "step")
    }
}
