import Numerics

/// What one command did: its output for the transcript, or an error, and whether the
/// session should end.
public struct CommandResult: Sendable, Equatable {
    public var output: String
    public var error: String?
    public var quit: Bool

    public static func ok(_ output: String = "") -> CommandResult { CommandResult(output: output, error: nil, quit: false) }
    public static func failed(_ message: String) -> CommandResult { CommandResult(output: "", error: message, quit: false) }
    public static let quit = CommandResult(output: "", error: nil, quit: true)
}

/// The live state of a lab session and the commands that act on it. It never prints: the
/// caller decides where output goes (terminal, transcript, test).
public final class Session {
    public init() {}

    /// Command names, for help and completion.
    public static let commandNames = ["cast", "formats", "help", "quit"]

    /// Runs one line. A line that fails changes nothing.
    public func execute(_ line: String) -> CommandResult {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let name = words.first, !name.hasPrefix("#") else { return .ok() }
        let args = Array(words.dropFirst())
        switch name {
        case "quit", "exit": return .quit
        case "help": return .ok(Session.helpText)
        case "formats":
            do {
                let formats = args.isEmpty ? NumberFormat.named : try args.map { a throws(NumericsError) in try NumberFormat.parse(a) }
                return .ok(formatsTable(formats))
            } catch { return .failed(error.description) }
        case "cast": return cast(args)
        default:
            let hint = closestMatch(to: name, among: Session.commandNames).map { "; did you mean '\($0)'?" } ?? ""
            return .failed("unknown command '\(name)'\(hint) (try 'help')")
        }
    }

    static let helpText = """
    Commands:
      cast FORMAT VALUE… [--rounding nearest|zero|stochastic] [--seed N] [--saturate] [--bits]
                         round numbers to a format (e.g. cast bf16 1.00390625 0x3f800001)
      formats [FORMAT…]  list number formats and their exact parameters
      help               this list
      quit               leave the shell (Ctrl-D too)
    """

    private func cast(_ args: [String]) -> CommandResult {
        var positional: [String] = []
        var rounding = RoundingMode.nearestEven
        var seed: UInt64 = 0
        var saturate = false, bits = false
        var i = 0
        do {
            while i < args.count {
                let a = args[i]
                switch a {
                case "--saturate": saturate = true
                case "--bits": bits = true
                case "--rounding", "--seed":
                    guard i + 1 < args.count else { return .failed("cast: \(a) needs a value") }
                    i += 1
                    if a == "--rounding" { rounding = try RoundingMode.parse(args[i]) }
                    else {
                        guard let s = UInt64(args[i]) else { return .failed("cast: --seed needs a non-negative integer, not '\(args[i])'") }
                        seed = s
                    }
                default:
                    if a.hasPrefix("--") {
                        let hint = closestMatch(to: a, among: ["--rounding", "--seed", "--saturate", "--bits"]).map { "; did you mean \($0)?" } ?? ""
                        return .failed("cast: unknown option '\(a)'\(hint)")
                    }
                    positional.append(a)
                }
                i += 1
            }
            guard positional.count >= 2 else { return .failed("usage: cast FORMAT VALUE… (e.g. cast e4m3 0.3 500)") }
            var request = CastRequest(format: try NumberFormat.parse(positional[0]))
            request.rounding = rounding
            request.seed = seed
            request.saturate = saturate
            request.showBits = bits
            let values = Array(positional.dropFirst())
            let out = try request.run(values) { "value \($0 + 1)" }
            return .ok(zip(values, out).map { "\($0) -> \($1)" }.joined(separator: "\n"))
        } catch {
            return .failed("cast: \(error.description)")
        }
    }
}
