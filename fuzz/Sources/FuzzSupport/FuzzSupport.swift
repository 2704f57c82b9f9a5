// What the fuzz targets share: a sandbox directory to work in, and the standard registry
// with every command's run guarded so that a fuzzed line stays cheap and never touches a
// file outside the sandbox.

import Foundation
import Lab
import Model
import Numerics
import RL

/// The directory a fuzz target works in: made fresh under $TMPDIR when first used, holding
/// copies of the fixtures, the working directory while an input runs (not in between: the
/// fuzzer reads its corpus by relative paths), and removed when the process exits normally
/// (a crash leaves it for the post-mortem; scripts/fuzz runs with TMPDIR in its build
/// directory and removes it).
public enum Sandbox {
    /// Runs one input in the sandbox: in it as the working directory, and removing what
    /// commands wrote there afterwards.
    public static func run<T>(_ body: () throws -> T) rethrows -> T {
        let outside = FileManager.default.currentDirectoryPath
        guard chdir(path) == 0 else { fatalError("cannot enter the sandbox \(path)") }
        defer {
            clean()
            guard chdir(outside) == 0 else { fatalError("cannot leave the sandbox for \(outside)") }
        }
        return try body()
    }

    /// The sandbox's path (made on first use).
    public static let path: String = {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/plab-fuzz-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("cannot make a sandbox directory in \(base)") }
        let path = String(cString: made)
        sandboxPathForExit = path
        atexit { try? FileManager.default.removeItem(atPath: sandboxPathForExit) }
        copyFixtures(into: path)
        // Every session's base model is the tiny one, so that model commands stay cheap.
        setenv("PLAB_BASE_MODEL", path + "/tiny", 1)
        return path
    }()

    /// Names in the sandbox that the fuzz targets rely on and `clean()` keeps.
    public static let fixtures: Set<String> = ["tiny", "s.plab", "t.transcript"]

    /// Removes everything commands wrote into the sandbox, keeping the fixtures.
    public static func clean() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: path) else { return }
        for name in names where !fixtures.contains(name) {
            try? fm.removeItem(atPath: path + "/" + name)
        }
    }

    /// A directory of the sandbox for one target's own files (made empty).
    public static func scratch(_ name: String) -> String {
        let dir = path + "/" + name
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    private static func copyFixtures(into path: String) {
        let fm = FileManager.default
        let source = fuzzDirectory.appendingPathComponent("fixtures")
        for name in fixtures {
            do {
                try fm.copyItem(atPath: source.appendingPathComponent(name).path, toPath: path + "/" + name)
            } catch {
                fatalError("cannot copy the fuzz fixture \(name) into the sandbox: \(error)")
            }
        }
    }
}

/// The sandbox path, for the exit handler (a C function pointer cannot capture).
nonisolated(unsafe) private var sandboxPathForExit = ""

/// The repository's `fuzz/` directory.
public let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The fuzzer's bytes as text: invalid UTF-8 becomes U+FFFD, as a terminal would show it.
public func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// The fuzzer's bytes as an array.
public func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Writes bytes to a file of the sandbox (replacing it).
public func write(_ bytes: some Collection<UInt8>, to path: String) {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        fatalError("cannot write \(path) in the sandbox")
    }
}

// MARK: The guarded registry

extension Registry {
    /// The standard registry, every command (and sub-command) guarded by `FuzzBudget`:
    /// parsing and argument checks are exactly the standard ones; a command whose work or
    /// files the budget refuses fails with "not run while fuzzing" instead of running.
    public static let fuzzing: Registry = {
        let standard = Registry.standard
        return Registry(commands: standard.commands.map { guarded($0, path: $0.name) }, settings: standard.settings,
                        promptParts: standard.promptParts, restorers: standard.restorers)
    }()

    private static func guarded(_ command: Command, path: String) -> Command {
        var command = command
        command.subcommands = command.subcommands.map { guarded($0, path: path + " " + $0.name) }
        if let run = command.run {
            let specs = command.allArguments
            command.run = { context in
                if let reason = FuzzBudget.refusal(path, specs: specs, context: context) {
                    throw LabError("\(path): not run while fuzzing: \(reason)")
                }
                try run(context)
            }
        }
        return command
    }
}

/// What a fuzzed command may do: read and write only inside the sandbox, and only a few
/// milliseconds of work.
///
/// Work is estimated as (parameters + `tokenOverhead`) × tokens processed × passes, and
/// refused above `maxWork`: the tiny base model of the sandbox (508 parameters) rolls out
/// the default 64 prompts within it, the default shape (191,296) one prompt.
public enum FuzzBudget {
    /// The most work a command may do (see above).
    public static let maxWork = 20_000_000
    /// The most additions `accumulate` may make.
    public static let maxAdditions = 200_000
    /// The largest model `model new` may make.
    public static let maxParameters = 200_000
    /// What one token costs beyond the parameters (sampling, bookkeeping), in parameters.
    public static let tokenOverhead = 2_000

    /// Why the command should not run, or nil when it may.
    public static func refusal(_ path: String, specs: [ArgumentSpec], context: CommandContext) -> String? {
        let arguments = context.arguments
        // Files: relative paths without `..`, so inside the sandbox (the working directory).
        for spec in specs {
            guard case .path = spec.kind else { continue }
            for value in arguments.texts(spec.name) where !isInsideSandbox(value) {
                return "the path '\(value)' is outside the sandbox"
            }
        }
        let settings = context.session.settings
        func integer(_ name: String) -> Int? { Int(settings.text(name)) }
        func work(sequences: Int, tokens: Int, passes: Int = 1) -> String? {
            let lab = context.session.lab
            let w = Double(lab.policy.config.parameterCount + tokenOverhead) * Double(sequences) * Double(tokens) * Double(passes)
            return w > Double(maxWork) ? "about \(Int(w)) parameter-tokens of work, more than \(maxWork)" : nil
        }
        // Tokens of one sequence of the task: its longest prompt and the response limit.
        func taskTokens(response: Int? = nil) -> Int {
            let spec = context.session.lab.task.spec
            return spec.longestPrompt + (response ?? integer("max_len") ?? spec.longestAnswer + 4)
        }
        switch path {
        case "model save":
            return "a checkpoint save flushes files to disk (CheckpointTests cover it)"
        case "model new":
            var config = LlamaConfig.labDefault
            for (key, value) in arguments.assignments {
                guard case .integer(let n) = value else { continue }
                switch key {
                case "hidden": config.hiddenSize = n
                case "layers": config.numHiddenLayers = n
                case "heads": config.numAttentionHeads = n
                case "kv_heads": config.numKeyValueHeads = n
                case "intermediate": config.intermediateSize = n
                default: break
                }
            }
            let count = config.parameterCount
            return count > maxParameters ? "\(count) parameters, more than \(maxParameters)" : nil
        case "accumulate":
            let n = arguments.integer("N") ?? 0
            return n > maxAdditions ? "\(n) additions, more than \(maxAdditions)" : nil
        case "rollout":
            let tokens = taskTokens(response: settings.integer("max_new"))
            return work(sequences: arguments.integer("N") ?? settings.integer("prompts"), tokens: tokens, passes: 2)
        case "compare":
            let presets = max(1, arguments.texts("ENGINES").count)
            let prompts = arguments.integer("prompts") ?? settings.integer("prompts")
            return work(sequences: presets * prompts, tokens: taskTokens(response: settings.integer("max_new")), passes: 2)
        case "eval":
            let trainer = context.session.lab.trainer
            let all = arguments.flag("heldout") ? trainer.task.heldOut.count : trainer.sanitySet?.count ?? 0
            return work(sequences: arguments.integer("N") ?? all, tokens: taskTokens())
        case "step":
            let sequences = (arguments.integer("N") ?? 1) * settings.integer("prompts") * (integer("samples") ?? 8)
            return work(sequences: sequences, tokens: taskTokens(), passes: 3 + (integer("minibatches") ?? 1))
        case "pretrain":
            let batch = context.session.lab.trainer.pretrainSettings.batchSize
            return work(sequences: (arguments.integer("N") ?? 1) * batch, tokens: taskTokens(), passes: 3)
        case "sanity build":
            let sequences = (arguments.integer("candidates") ?? 1024) * (arguments.integer("samples") ?? 16)
            return work(sequences: sequences, tokens: taskTokens())
        default:
            return nil
        }
    }

    /// Whether a path stays inside the working directory: relative, without `..`.
    public static func isInsideSandbox(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.hasPrefix("~")
            && !path.split(separator: "/", omittingEmptySubsequences: false).contains("..")
    }
}

/// Stops the fuzzer with the message when a property does not hold (`precondition` drops
/// its message in optimised builds; `fatalError` prints it).
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError(message()) }
}
