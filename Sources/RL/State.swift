// Saving and resuming a trainer: everything a run needs to continue exactly as if it had
// never stopped.
//
// Weights go in model.safetensors (the checkpoint's own tensors). Beside them:
//   lab.json  "rl": `TrainerState` (task, settings, counters, loss scalers, sanity set)
//   lab_state.safetensors: "rl.adam.m", "rl.adam.v", "pretrain.adam.m", "pretrain.adam.v"
// Random state needs no saving: every stream is named after its step ("rl/rollout/12"),
// so the step counters are the stream positions.
//
// What the trainer does not own, and the caller must restore too for an exact resume:
// the engines' precision profiles and the matrix-product backend.

import Model
import Numerics
import Storage

/// The trainer's state other than the weights and the optimizer moments.
public struct TrainerState: Sendable, Hashable, Codable {
    /// Layout version of this record.
    public var version = 1
    public var task: TaskSpec
    /// The settings of the run; nil in a model saved for sharing (whoever loads it keeps
    /// their own).
    public var settings: RLSettings?
    public var pretrainSettings: PretrainSettings?
    public var step: Int
    public var pretrainStep: Int
    /// AdamW update counts (bias correction).
    public var adamSteps: Int
    public var pretrainAdamSteps: Int
    public var scaler: LossScaler
    public var pretrainScaler: LossScaler
    /// The sanity set: prompts (answers are recomputed from them).
    public var sanityPrompts: [[Int32]]?
}

/// A complete in-memory copy of a trainer and its weights.
public struct TrainerSnapshot: Sendable {
    public var seed: UInt64
    public var state: TrainerState
    public var weights: ModelWeights
    public var optimizer: AdamW
    public var pretrainOptimizer: AdamW
}

extension Trainer {
    public var state: TrainerState {
        TrainerState(task: task.spec, settings: settings, pretrainSettings: pretrainSettings, step: stepsTaken,
                     pretrainStep: pretrainStepsTaken, adamSteps: optimizer.t, pretrainAdamSteps: pretrainOptimizer.t,
                     scaler: scaler, pretrainScaler: pretrainScaler, sanityPrompts: sanitySet?.map(\.prompt))
    }

    /// Everything needed to continue exactly from here.
    public func snapshot() -> TrainerSnapshot {
        TrainerSnapshot(seed: seed, state: state, weights: policy.master, optimizer: optimizer, pretrainOptimizer: pretrainOptimizer)
    }

    /// Puts a snapshot back: weights (synced into both engines), task, settings, counters,
    /// optimizer and scaler states. Checks everything first; nothing changes on error.
    public func restore(_ s: TrainerSnapshot) throws(NumericsError) {
        let n = policy.master.data.count
        guard s.weights.config == policy.config else { throw .invalidArgument("the saved weights have another model configuration") }
        for (name, count) in [("rl m", s.optimizer.momentCounts.m), ("rl v", s.optimizer.momentCounts.v),
                              ("pretrain m", s.pretrainOptimizer.momentCounts.m), ("pretrain v", s.pretrainOptimizer.momentCounts.v)] where count != n {
            throw .invalidArgument("saved optimizer state '\(name)' has \(count) values; the model has \(n) parameters")
        }
        guard s.state.version == 1 else { throw .invalidArgument("trainer state version \(s.state.version) is newer than this plab reads (1)") }
        try s.state.settings?.validate()
        try s.state.pretrainSettings?.validate()
        try checkFits(s.state.task, s.state.settings ?? settings)
        let data = try TaskData(spec: s.state.task, seed: s.seed)
        var sanity: [Problem]? = nil
        if let prompts = s.state.sanityPrompts {
            sanity = []
            for p in prompts {
                guard let answer = s.state.task.solve(p) else {
                    throw .invalidArgument("saved sanity prompt '\(Vocabulary.standard.decode(p))' is not a \(s.state.task.kind.rawValue) prompt")
                }
                sanity!.append(Problem(prompt: p, answer: answer))
            }
        }
        try policy.setMaster(s.weights)
        restoreFields(task: data, state: s.state, sanity: sanity, optimizer: s.optimizer, pretrainOptimizer: s.pretrainOptimizer)
    }

    // MARK: Checkpoints

    /// The checkpoint of the current weights with the trainer's state (lab.json "rl" and
    /// lab_state.safetensors), ready for `saveCheckpoint(_:to:)`. Without the optimizer
    /// (a model to share, 5× smaller) the moments and the settings are left out and the
    /// state records no optimizer steps: training from it starts fresh AdamW moments with
    /// the loader's settings.
    public func checkpoint(includeOptimizer: Bool = true) throws(NumericsError) -> Checkpoint {
        var lab = LabMetadata(vocabulary: Vocabulary.standard.tokens, task: task.spec.description, seed: seed,
                              step: stepsTaken)
        var st = state
        if !includeOptimizer {
            st.adamSteps = 0
            st.pretrainAdamSteps = 0
            st.settings = nil
            st.pretrainSettings = nil
        }
        try lab.setExtra("rl", st)
        let v = Vocabulary.standard
        let special = SpecialTokenIDs(bos: Int(v.bos), eos: Int(v.eos), pad: Int(v.pad))
        if !includeOptimizer { return Checkpoint(weights: policy.master, lab: lab, labState: nil, specialTokens: special) }
        var tensors = SafeTensorsFile(metadata: ["content": "plab trainer state: AdamW moments"])
        let n = policy.master.data.count
        // An optimizer that has not updated yet has zero moments: nothing to write (a load
        // starts it afresh, as it was), rather than two float32 copies of the model of zeros.
        for (prefix, adam) in [("rl.adam", optimizer), ("pretrain.adam", pretrainOptimizer)] where adam.t > 0 {
            try tensors.add(prefix + ".m", shape: [n], values: adam.m)
            try tensors.add(prefix + ".v", shape: [n], values: adam.v)
        }
        return Checkpoint(weights: policy.master, lab: lab, labState: tensors.names.isEmpty ? nil : tensors, specialTokens: special)
    }

    /// Resumes from a checkpoint written by `checkpoint()`. A plain model (no "rl" record)
    /// loads its weights and starts fresh optimizer states with the current settings.
    public func restore(from c: Checkpoint) throws(NumericsError) {
        let n = c.weights.data.count
        let seed = c.lab?.seed ?? self.seed
        guard let lab = c.lab, let state = try lab.extra("rl", as: TrainerState.self) else {
            try policy.setMaster(c.weights)
            restoreFields(task: task, state: TrainerState(task: task.spec, settings: settings, pretrainSettings: pretrainSettings,
                                                          step: 0, pretrainStep: 0, adamSteps: 0, pretrainAdamSteps: 0,
                                                          scaler: LossScaler(settings: settings.lossScaler),
                                                          pretrainScaler: LossScaler(settings: settings.lossScaler),
                                                          sanityPrompts: sanitySet?.map(\.prompt)),
                          sanity: sanitySet, optimizer: AdamW(parameterCount: n), pretrainOptimizer: AdamW(parameterCount: n))
            return
        }
        func moments(_ prefix: String, steps: Int) throws(NumericsError) -> AdamW {
            var a = AdamW(parameterCount: n)
            if let file = c.labState, file[prefix + ".m"] != nil {
                a.m = try file.values(prefix + ".m", shape: [n])
                a.v = try file.values(prefix + ".v", shape: [n])
                a.t = steps
            } else if steps > 0 {
                throw .invalidArgument("the checkpoint's trainer state has \(steps) \(prefix) optimizer steps but no moments in \(CheckpointFile.labState)")
            }
            return a
        }
        let snapshot = TrainerSnapshot(seed: seed, state: state, weights: c.weights,
                                       optimizer: try moments("rl.adam", steps: state.adamSteps),
                                       pretrainOptimizer: try moments("pretrain.adam", steps: state.pretrainAdamSteps))
        try restore(snapshot)
    }
}
