// Errors of the lab shell: one line each, naming the culprit and what would be accepted.

import Numerics

/// A command that could not run, with a one-line message for people. The message names
/// the culprit and what would have been accepted; the session is left as it was.
public struct LabError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }

    /// `'word'; did you mean 'candidate'?` when a candidate is close, else `'word'`.
    static func quoted(_ word: String, closestAmong candidates: [String]) -> String {
        if let match = closestMatch(to: word, among: candidates) { return "'\(word)'; did you mean '\(match)'?" }
        return "'\(word)'"
    }
}

/// How many bytes one command line may hold. Longer lines — from the terminal, a pipe, a
/// session file or a transcript — are refused whole, with their length.
public let maxLineBytes = 1 << 20

/// `1 MiB`, `10.0 MiB`, `512 bytes`: a byte count for error messages.
func describeBytes(_ count: Int) -> String {
    if count < 1024 { return "\(count) bytes" }
    if count < 1 << 20 { return "\(count / 1024) KiB" }
    if count % (1 << 20) == 0 { return "\(count >> 20) MiB" }
    return "\((Double(count) / 1_048_576 * 10).rounded() / 10) MiB"
}
