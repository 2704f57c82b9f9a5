import Plot

/// Small charts with data written out or computed by exact arithmetic (no library functions),
/// so the golden pictures are the same on every machine.
enum SampleCharts {
    /// Two decaying curves over 0…120: train 1/(1 + x/20), eval 0.2 + 0.9/(1 + x/30).
    static var lines: Chart {
        let x = (0...120).map(Double.init)
        return Chart(title: "loss per step", x: Axis("step"), y: Axis("loss", unit: "nats"),
                     series: [Series("train", x: x, y: x.map { 1 / (1 + $0 / 20) }),
                              Series("eval", x: x, y: x.map { 0.2 + 0.9 / (1 + $0 / 30) })])
    }

    /// 600 tokens' log μ and log π: a dense cluster near 0 and a sparse tail, near y = x.
    static var scatter: Chart {
        var state: UInt64 = 7
        /// A uniform number in [0, 1) from a fixed linear congruential generator.
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / 9007199254740992
        }
        var mu: [Double] = [], pi: [Double] = []
        for _ in 0..<600 {
            let u = uniform()
            let m = -8 * u * u * u                                 // most tokens near 0
            mu.append(m)
            pi.append(m + (uniform() - 0.5) * 0.4 * (1 - m / 8))   // a little off the diagonal
        }
        return Chart(title: "log π against log μ", x: Axis("log μ", unit: "nats"), y: Axis("log π", unit: "nats"),
                     series: [Series("tokens", style: .points, x: mu, y: pi)], diagonal: true,
                     notes: ["fitted slope −1.01 per 1K tokens"])
    }

    /// A histogram of |Δ log p| per token, counts on a log axis, bin edges 0, 0.5, …, 5.
    static var histogram: Chart {
        let edges = (0...10).map { Double($0) / 2 }
        let counts: [Double] = [1, 4, 30, 200, 1000, 300, 40, 5, 0, 1]
        return Chart(title: "tokens by mismatch", x: Axis("|log π − log μ|", unit: "nats"),
                     y: Axis("tokens", scale: .log10), series: [Series("tokens", style: .bars, x: edges, y: counts)])
    }

    /// A line through points of which two are not finite.
    static var notFinite: Chart {
        Chart(title: "reward", x: Axis("step"), y: Axis("reward"),
              series: [Series("mean", x: [0, 1, 2, 3, 4, 5, 6], y: [0.1, 0.3, .nan, 0.4, .infinity, 0.6, 0.7])])
    }

    /// A chart with nothing to draw.
    static var empty: Chart {
        Chart(title: "rollouts", x: Axis("step"), y: Axis("reward"), series: [Series("mean", x: [], y: [])])
    }

    /// Every sample chart, for the checks that hold for all of them.
    static var all: [Chart] { [lines, scatter, histogram, notFinite, empty] }
}
