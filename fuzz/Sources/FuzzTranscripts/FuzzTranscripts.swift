// Fuzz target: transcripts, their headers, and replay.
//
// The input is a transcript file. It is read, parsed (`Transcript(lines:name:)`), its
// header applied to a fresh session of the guarded registry (seed, backend, `# set:`
// settings, at most 4 `# state:` commands) and at most 8 of its commands replayed and
// compared. When the header holds no `# state:` line, the transcript the replay wrote is
// read back and replayed in turn, and must match: what plab records, it replays.

import Foundation
import FuzzSupport
import Lab

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTranscripts(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Sandbox.run {
        write(bytes(data, size), to: "fuzz.transcript")
        guard let lines = try? readLines(ofFile: "fuzz.transcript"),
              var transcript = try? Transcript(lines: lines, name: "fuzz.transcript") else { return }
        transcript.header.state = Array(transcript.header.state.prefix(4))
        transcript.entries = Array(transcript.entries.prefix(8))
        guard let first = try? transcript.replay(name: "fuzz.transcript", registry: .fuzzing) else { return }
        guard transcript.header.state.isEmpty else { return }

        // Replay what the replay wrote, from a clean sandbox (as the first replay had).
        Sandbox.clean()
        let name = "replayed.transcript"
        write(Data(first.transcript.map { $0 + "\n" }.joined().utf8), to: name)
        let again: ReplayResult
        do {
            let reread = try Transcript(lines: try readLines(ofFile: name), name: name)
            again = try reread.replay(name: name, registry: .fuzzing)
        } catch {
            fatalError("the transcript a replay wrote cannot be replayed: \(error)\n\(first.transcript.joined(separator: "\n"))")
        }
        if let difference = again.difference {
            fatalError("the transcript a replay wrote replays differently:\n\(difference)")
        }
    }
    return 0
}
