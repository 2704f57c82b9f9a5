import Foundation
import Lab
import Numerics

/// The first long option given twice on the command line, if any: a mistake (which one was
/// meant?), refused as the shell refuses it, not "the last wins". `--sizes` takes a list and
/// may repeat; nothing after `--` is an option.
func repeatedOption(_ arguments: [String]) -> String? {
    var seen: Set<String> = []
    for argument in arguments {
        if argument == "--" { break }
        guard argument.hasPrefix("--"), argument.count > 2 else { continue }
        let name = String(argument.dropFirst(2).prefix { $0 != "=" })
        if name == "sizes" { continue }
        if !seen.insert(name).inserted { return name }
    }
    return nil
}

if let name = repeatedOption(Array(CommandLine.arguments.dropFirst())) {
    FileHandle.standardError.write(Data("plab: --\(name) is given twice; give it once\n".utf8))
    exit(64)
}
if let problem = PortableBackend.threadSettingProblem {
    FileHandle.standardError.write(Data("plab: \(problem)\n".utf8))
}
configureAllocator()
Plab.main()
