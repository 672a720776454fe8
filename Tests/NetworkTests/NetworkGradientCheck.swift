import Foundation
import GradientCheck
@testable import Tensor

/// Central differences of L = Σ f() · r against the tape's gradients, for a few elements of each tensor (r and the
/// picked elements from one LCG stream seeded 7); each tensor's `requiresGrad` is put back afterwards.
/// Returns max|analytic − numeric| / max|numeric| per tensor.
func networkGradientCheck(_ tensors: [Tensor], training: Bool = false, samples: Int = 8, eps: Float = 1e-2,
                          _ f: (Ops) -> Tensor) -> [Double] {
    let keep = tensors.map(\.requiresGrad)
    defer { for (t, k) in zip(tensors, keep) { t.requiresGrad = k } }
    var seed: UInt64 = 7
    func rnd() -> Float {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return Float(seed >> 40) / Float(1 << 23) - 1
    }
    return centralDifferenceErrors(tensors, training: training, samples: samples, eps: eps,
                                   direction: { n in (0..<n).map { _ in rnd() } },
                                   picks: { x, n in
                                       (0..<n).map { _ in Int(UInt64(bitPattern: Int64(rnd() * 1e6)) % UInt64(x.count)) }
                                   }, f)
}
