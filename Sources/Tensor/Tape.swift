import Dispatch

/// Records the backward step of every op of a training forward pass, then runs them in reverse.
///
/// Gradients are keyed by tensor identity and kept in the tensor's own layout (blocked activations get blocked
/// gradients). Only tensors with `requiresGrad` receive gradients; an op whose output got no gradient is skipped.
public final class Tape {
    private var steps: [(kind: String, run: () -> Void)] = []
    private var grads: [ObjectIdentifier: Tensor] = [:]
    /// The tensor behind each key of `grads` (a gradient is handed over by tensor in `handOver`).
    private var owners: [ObjectIdentifier: Tensor] = [:]
    /// Seconds of backward by op kind, when not nil (the bench's split).
    public var profile: [String: Double]?

    public init() {}

    /// Adds the backward step of the op just run.
    public func record(_ kind: String = "other", _ step: @escaping () -> Void) { steps.append((kind, step)) }

    /// dL/dt, once backward has reached t (nil if nothing flowed to it).
    public func gradient(_ t: Tensor) -> Tensor? { grads[ObjectIdentifier(t)] }

    /// dL/dt, handed over: the tape forgets it. Backward steps take their output's gradient this way, so
    /// intermediate gradients are freed as soon as they have been propagated.
    public func takeGradient(_ t: Tensor) -> Tensor? {
        owners[ObjectIdentifier(t)] = nil
        return grads.removeValue(forKey: ObjectIdentifier(t))
    }

    /// Adds every gradient this tape still holds (after its backward: those of the tensors its ops read but did not
    /// make, i.e. parameters and inputs) to `parent`'s, and forgets them.
    public func handOver(to parent: Tape) {
        for (key, g) in grads { parent.accumulate(owners[key]!, g) }
        grads = [:]
        owners = [:]
    }

    /// Adds g to dL/dt. The first gradient of a tensor is adopted as is (no copy): callers hand over fresh tensors.
    public func accumulate(_ t: Tensor, _ g: Tensor) {
        guard t.requiresGrad else { return }
        precondition(g.shape == t.shape, "gradient \(g.shape) for a tensor of shape \(t.shape)")
        let key = ObjectIdentifier(t)
        if let existing = grads[key] {
            existing.add(g.inLayout(existing.layout))
        } else {
            grads[key] = g.inLayout(t.layout)
            owners[key] = t
        }
    }

    /// Runs every recorded step in reverse, starting from dL/dloss = 1 for a one-element loss.
    public func backward(from loss: Tensor) {
        let seed = Tensor(shape: loss.shape, layout: loss.layout)
        seed.fill(1)
        backward(from: loss, gradient: seed)
    }

    /// Runs every recorded step in reverse, starting from a given dL/doutput.
    public func backward(from output: Tensor, gradient: Tensor) {
        grads[ObjectIdentifier(output)] = gradient.layout == output.layout ? gradient
            : (output.layout == .plain ? gradient.toPlain() : gradient.toBlocked())
        owners[ObjectIdentifier(output)] = output
        // Pop as we go: each step's closure (and the activations it holds) is freed once it has run.
        while let step = steps.popLast() {
            if profile != nil {
                let t0 = DispatchTime.now().uptimeNanoseconds
                step.run()
                profile![step.kind, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            } else {
                step.run()
            }
        }
    }
}
