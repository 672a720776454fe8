import Foundation

/// The training loss, defined once: the official `BinaryLoss(loss_type='dice', smooth=1e-5)` ("bdice",
/// m2mrf-reference.md §3) — checked against PyTorch's numbers by the parity tests through
/// `SegmentationModel.trainingStep(input:labels:)` — extended to partially-labelled data, optionally plus binary
/// cross-entropy and batch dice for our trainer.
///
/// Input: logits [N, C, H, W] already resized to the label size (C = 4 lesions, or 5 with the optic disc), labels
/// [N, H, W] with 0 = background and v = 1…C the channel v−1 (the merged map, MA > SE > HE > EX > OD), and for each
/// image which channels its dataset annotates ([N, C]; C is taken from these flags).
/// Per image n and class c, with p = sigmoid(logit), g = (label == c+1), sums over the H·W pixels:
///
///     L_nc = 1 − (2·Σpg + ε) / (Σp + Σg + ε),   ε = 1e-5
///     L    = (1/N) Σ_n (1/|A_n|) Σ_{c ∈ A_n} L_nc
///
/// A_n is the set of classes annotated for image n. When every image annotates all four, |A_n| = 4 and this is the
/// official `mean_n (1/4) Σ_c L_nc` exactly; a class an image does not annotate gets neither loss nor gradient,
/// instead of being taught "no lesion here". The BCE term, when its weight is non-zero, is the mean over the
/// annotated (image, class, pixel) elements of `BCEWithLogits`, with `pos_weight` on the lesion pixels when asked.
public enum BinaryDiceLoss {
    public static let smooth: Double = 1e-5
    /// The lesion classes; a model with the optic disc has one channel more, which the loss treats like any other.
    public static let classes = 4

    /// The loss and its gradient with respect to the logits (same layout as `logits`).
    ///
    /// With `batchDice`, each class's sums run over every image of the batch annotated for it, and the loss is the
    /// mean over the classes annotated anywhere in the batch: `L = (1/|C|) Σ_c L_c` (nnU-Net's "batch dice", not
    /// the official loss). A crop without a class then still pays for that class's false positives through the
    /// batch's denominator, where the per-image form gives it almost no gradient.
    public static func evaluate(logits: [Float], labels: [UInt8], annotated: [Bool], batch n: Int, height h: Int, width w: Int,
                                bceWeight: Float = 0, batchDice: Bool = false, bcePositiveWeight: Float = 1) throws(NetworkError) -> (loss: Float, gradient: [Float]) {
        // Channels from the flags: 4, or 5 with the optic disc (label value 5).
        let c = n > 0 ? annotated.count / n : classes, hw = h * w
        guard n > 0, annotated.count == n * c, logits.count == n * c * hw, labels.count == n * hw, annotated.count == n * c else {
            throw NetworkError.badInput("loss: \(logits.count) logits, \(labels.count) labels and \(annotated.count) flags do not fit a batch of \(n) × \(c) × \(h) × \(w)")
        }
        if let bad = labels.first(where: { $0 > UInt8(c) }) {
            throw NetworkError.badInput("loss: label value \(bad) is not 0 (background) or 1…\(c)")
        }
        // The dice terms: each a class and the images its sums run over, with its weight in the mean.
        var terms: [(cls: Int, images: [Int], weight: Double)] = []
        if batchDice {
            let present = (0..<c).map { cls in (0..<n).filter { annotated[$0 * c + cls] } }.enumerated().filter { !$0.element.isEmpty }
            for (cls, images) in present { terms.append((cls, images, 1.0 / Double(present.count))) }
        } else {
            for image in 0..<n {
                let classesHere = (0..<c).filter { annotated[image * c + $0] }
                for cls in classesHere { terms.append((cls, [image], 1.0 / (Double(n) * Double(classesHere.count)))) }
            }
        }
        var gradient = [Float](repeating: 0, count: logits.count)
        var loss = 0.0
        for term in terms {
            let target = UInt8(term.cls + 1)
            var sumPG = 0.0, sumP = 0.0, sumG = 0.0
            for image in term.images {
                let base = (image * c + term.cls) * hw
                for i in 0..<hw {
                    let p = sigmoid(Double(logits[base + i]))
                    let g: Double = labels[image * hw + i] == target ? 1 : 0
                    sumPG += p * g
                    sumP += p
                    sumG += g
                }
            }
            let numerator = 2 * sumPG + smooth, denominator = sumP + sumG + smooth
            loss += term.weight * (1 - numerator / denominator)
            // dL/dp_i = −(2·g_i·den − num) / den²; dp/dx = p(1 − p).
            for image in term.images {
                let base = (image * c + term.cls) * hw
                for i in 0..<hw {
                    let p = sigmoid(Double(logits[base + i]))
                    let g: Double = labels[image * hw + i] == target ? 1 : 0
                    let dp = -(2 * g * denominator - numerator) / (denominator * denominator)
                    gradient[base + i] = Float(term.weight * dp * p * (1 - p))
                }
            }
        }
        if bceWeight != 0 {
            let k = Double(bceWeight) / Double(annotated.filter { $0 }.count * hw), w = Double(bcePositiveWeight)
            for image in 0..<n {
                for cls in 0..<c where annotated[image * c + cls] {
                    let base = (image * c + cls) * hw, target = UInt8(cls + 1)
                    for i in 0..<hw {
                        let x = Double(logits[base + i])
                        let g: Double = labels[image * hw + i] == target ? 1 : 0
                        // PyTorch: (1 − g)·x + (1 + (w − 1)·g)·softplus(−x); d/dx = (1 − g) − (1 + (w − 1)·g)·(1 − σ(x)).
                        let lw = 1 + (w - 1) * g
                        loss += k * ((1 - g) * x + lw * (log1p(exp(-abs(x))) + max(-x, 0)))
                        gradient[base + i] += Float(k * ((1 - g) - lw * (1 - sigmoid(x))))
                    }
                }
            }
        }
        return (Float(loss), gradient)
    }

    @inline(__always) static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
}
