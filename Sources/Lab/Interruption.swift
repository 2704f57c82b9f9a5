// Ctrl-C: a process-wide request to stop, honoured by long loops at their safe points.

#if os(Linux)
import Synchronization
#endif

/// Thrown at a safe point when the user asked to stop (Ctrl-C). The command ends there;
/// work finished before the safe point stays done, nothing is half-applied.
public struct Interrupted: Error, Sendable {
    public init() {}
}

/// The process-wide interruption flag.
///
/// The terminal's Ctrl-C handler calls `request()` (it is async-signal-safe: one atomic
/// exchange). Long loops call `check()` between units of work that leave the state
/// consistent — a finished RL step, a finished batch of rollouts — and let the `Interrupted`
/// error end the command. The session clears the flag before and after every command.
public enum Interruption {
    /// Throws `Interrupted` if Ctrl-C was pressed since the command started.
    public static func check() throws(Interrupted) {
        if isRequested { throw Interrupted() }
    }

    /// Whether Ctrl-C was pressed since the command started.
    public static var isRequested: Bool { state.load() & requestedBit != 0 }

    /// Asks the running command to stop; returns what the caller should do about a press
    /// that nothing will notice. Safe to call from a signal handler.
    public static func request() -> RequestEffect {
        let old = state.fetchOr(requestedBit)
        if old & runningBit == 0 { return .nothingRunning }
        return old & requestedBit != 0 ? .alreadyRequested : .willStop
    }

    /// What a Ctrl-C press led to.
    public enum RequestEffect: Sendable {
        /// A command is running and will stop at its next safe point.
        case willStop
        /// A command is running and was already asked to stop (the second press).
        case alreadyRequested
        /// No command is running.
        case nothingRunning
    }

    /// Forgets a request that no command noticed (a Ctrl-C at the prompt).
    public static func clear() { state.store(0) }

    /// Called by the session around each command. A request that came while a command ran
    /// but was never noticed (the command had no safe point left) stays set after it ends,
    /// until the next command starts: a runner of session files reads it between lines
    /// (`isRequested`) and stops there, so the press is not lost.
    static func commandStarted() { state.store(runningBit) }
    static func commandEnded() { state.clear(runningBit) }

    private static let runningBit = 1
    private static let requestedBit = 2
    private static let state = AtomicFlags()
}

#if os(Linux)
/// An atomic word of flags.
private final class AtomicFlags: Sendable {
    private let bits = Atomic<Int>(0)
    func load() -> Int { bits.load(ordering: .acquiring) }
    func store(_ value: Int) { bits.store(value, ordering: .releasing) }
    func fetchOr(_ value: Int) -> Int { bits.bitwiseOr(value, ordering: .acquiringAndReleasing).oldValue }
    func clear(_ value: Int) { bits.bitwiseAnd(~value, ordering: .acquiringAndReleasing) }
}
#else
import Foundation

/// An atomic word of flags (a lock; `Atomic` needs macOS 15, newer than the package's floor).
private final class AtomicFlags: @unchecked Sendable {
    private var bits = 0
    private let lock = NSLock()
    func load() -> Int { lock.withLock { bits } }
    func store(_ value: Int) { lock.withLock { bits = value } }
    func fetchOr(_ value: Int) -> Int { lock.withLock { let old = bits; bits |= value; return old } }
    func clear(_ value: Int) { lock.withLock { bits &= ~value } }
}
#endif
