/// Records the backward step of every op of a training forward pass, then runs them in reverse.
///
/// Gradients are keyed by tensor identity and kept in the tensor's own layout (blocked activations get blocked
/// gradients). Only tensors with `requiresGrad` receive gradients; an op whose output got no gradient is skipped.
public final class Tape {
    private var steps: [() -> Void] = []
    private var grads: [ObjectIdentifier: Tensor] = [:]

    public init() {}

    /// Adds the backward step of the op just run.
    public func record(_ step: @escaping () -> Void) { steps.append(step) }

    /// dL/dt, once backward has reached t (nil if nothing flowed to it).
    public func gradient(_ t: Tensor) -> Tensor? { grads[ObjectIdentifier(t)] }

    /// Adds g to dL/dt. The first gradient of a tensor is adopted as is (no copy): callers hand over fresh tensors.
    public func accumulate(_ t: Tensor, _ g: Tensor) {
        guard t.requiresGrad else { return }
        precondition(g.shape == t.shape, "gradient \(g.shape) for a tensor of shape \(t.shape)")
        let key = ObjectIdentifier(t)
        if let existing = grads[key] {
            existing.add(g.layout == existing.layout ? g : (existing.layout == .plain ? g.toPlain() : g.toBlocked()))
        } else {
            grads[key] = g.layout == t.layout ? g : (t.layout == .plain ? g.toPlain() : g.toBlocked())
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
        for step in steps.reversed() { step() }
        steps.removeAll()
    }
}
