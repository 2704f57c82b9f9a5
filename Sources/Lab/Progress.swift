// Progress of long commands: a bar with rate and time left, on the terminal only.

import Foundation

/// Shows progress somewhere a person looks (the terminal's standard error); never part of
/// a command's output, so never in transcripts. The executable installs one when standard
/// error is a terminal; sessions without one show nothing.
public protocol ProgressDisplay: AnyObject {
    /// Replaces the progress line with `line`.
    func show(_ line: String)
    /// Erases the progress line if one is shown (the session calls it after every command).
    func clear()
}

/// Counts a long command's work, draws it at most ten times a second, and is where the
/// command notices Ctrl-C.
///
///     var progress = context.progress("steps", total: n)
///     for i in 0..<n { …; try progress.advance(to: i + 1) }
///     progress.finish()
public struct ProgressMeter {
    public let label: String
    public let total: Int
    let display: ProgressDisplay?
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDrawn: UInt64 = 0
    private var shown = false

    init(label: String, total: Int, display: ProgressDisplay?) {
        self.label = label
        self.total = max(total, 1)
        self.display = display
    }

    /// Records that `done` units are finished; throws `Interrupted` if Ctrl-C was pressed.
    public mutating func advance(to done: Int) throws(Interrupted) {
        try Interruption.check()
        guard let display else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDrawn >= 100_000_000 else { return }
        let elapsed = Double(now - start) * 1e-9
        if !shown && elapsed < 0.3 { return }  // quick commands draw nothing
        lastDrawn = now
        shown = true
        display.show(ProgressMeter.line(label: label, done: done, total: total, elapsed: elapsed))
    }

    /// Erases the bar (also call it when the loop ends early).
    public mutating func finish() {
        if shown { display?.clear() }
        shown = false
    }

    /// `steps [########------------]  40%  1.2M/s  3s left`.
    public static func line(label: String, done: Int, total: Int, elapsed: Double, width: Int = 24) -> String {
        let fraction = min(1, max(0, Double(done) / Double(max(total, 1))))
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = String(Int((fraction * 100).rounded(.down)))
        var out = "\(label) [\(bar)] \(String(repeating: " ", count: 3 - percent.count))\(percent)%"
        guard elapsed > 0, done > 0 else { return out }
        let rate = Double(done) / elapsed
        out += "  \(shortCount(rate))/s"
        let left = Double(total - done) / rate
        out += "  \(shortDuration(left)) left"
        return out
    }
}

/// `950`, `12.3k`, `4.5M`, `1.2G`.
func shortCount(_ x: Double) -> String {
    for (limit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where x >= limit {
        return String(format: "%.1f", x / limit) + suffix
    }
    return String(format: "%.0f", x)
}

/// `45s`, `3m12s`, `2h05m`.
func shortDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded(.up))
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
}

/// `0.42 ms`, `12.3 ms`, `1.25 s`: a duration for people.
func shortSeconds(_ seconds: Double) -> String {
    seconds < 1 ? String(format: "%.3g ms", seconds * 1000) : String(format: "%.3g s", seconds)
}
