import Tensor

/// The M2MRF operator (the official `M2MRF` module): resampling by learned many-to-many patch mappings.
///
/// With patch side k (8), scale s, compressed channels C' = C_in / r (r = 4), hidden width D = k²·C'/α (α = 64,
/// so D = C'), output patch side k_out = k·s, for x [N, C_in, H, W]:
///
///     pad bottom/right to Hp × Wp, multiples of k          [N, C_in, Hp, Wp]
///     sample_encode_conv, 1×1 with bias                    [N, C', Hp, Wp]      (padding becomes the bias)
///     unfold into k×k patches, one row per patch           [N·L, C'·k²]         L = (Hp/k)·(Wp/k), rows (n, ph, pw)
///     sample.sample_fc  (Linear C'·k² → D, bias)           [N·L, D]             no nonlinearity between the FCs
///     sample.sample_fc1 (Linear D → C'·k_out², bias)       [N·L, C'·k_out²]
///     fold: each row becomes one k_out×k_out block         [N, C', Hp·s, Wp·s]
///     crop to max(⌊H·s⌋, 1) × max(⌊W·s⌋, 1)                (floor sizes from the unpadded input)
///     sample_decode_conv, 1×1 with bias                    [N, C_out, ⌊H·s⌋, ⌊W·s⌋]
///
/// The reference crops after the decode conv; a 1×1 convolution acts per pixel, so cropping first gives the same
/// numbers for less work.
final class M2MRF {
    /// s = up / down: (2, 1), (8, 1), (1, 2), (1, 8)…
    let up, down: Int
    let patch, outPatch, compressed: Int
    let encodeWeight, encodeBias, fcWeight, fcBias, fc1Weight, fc1Bias, decodeWeight, decodeBias: Tensor

    /// prefix: the module's own name, e.g. `backbone.stage4.0.fuse_layers.1.0.0.0`.
    init(_ prefix: String, scaleUp up: Int = 1, scaleDown down: Int = 1, in inC: Int, out outC: Int,
         settings: (patch: Int, encodeRate: Int, fcRate: Int), _ store: ParameterStore) {
        precondition(up == 1 || down == 1)
        self.up = up
        self.down = down
        patch = settings.patch
        outPatch = patch * up / down
        precondition(outPatch >= 1 && outPatch * down == patch * up, "M2MRF patch \(patch) cannot scale by \(up)/\(down)")
        compressed = inC / settings.encodeRate
        let hidden = patch * patch * compressed / settings.fcRate
        let k2 = patch * patch, ko2 = outPatch * outPatch
        encodeWeight = store.make(prefix + ".sample_encode_conv.weight", [compressed, inC, 1, 1], .xavierUniform)
        encodeBias = store.make(prefix + ".sample_encode_conv.bias", [compressed], .zeros)
        fcWeight = store.make(prefix + ".sample.sample_fc.weight", [hidden, compressed * k2, 1], .xavierUniform)
        fcBias = store.make(prefix + ".sample.sample_fc.bias", [hidden], .zeros)
        fc1Weight = store.make(prefix + ".sample.sample_fc1.weight", [compressed * ko2, hidden, 1], .xavierUniform)
        fc1Bias = store.make(prefix + ".sample.sample_fc1.bias", [compressed * ko2], .zeros)
        decodeWeight = store.make(prefix + ".sample_decode_conv.weight", [outC, compressed, 1, 1], .xavierUniform)
        decodeBias = store.make(prefix + ".sample_decode_conv.bias", [outC], .zeros)
    }

    /// Output side for an input side (floor, at least 1).
    func outputSize(_ n: Int) -> Int { max(n * up / down, 1) }

    func callAsFunction(_ x: Tensor, _ ops: Ops) -> Tensor {
        let k = patch
        let gh = (x.h + k - 1) / k, gw = (x.w + k - 1) / k
        let padded = ops.padBottomRight(x, height: gh * k, width: gw * k)
        let z = ops.conv(padded, encodeWeight, bias: encodeBias)
        let rows = ops.unfold(z, patch: k)
        let hidden = ops.linear(rows, fcWeight, bias: fcBias)
        let mapped = ops.linear(hidden, fc1Weight, bias: fc1Bias)
        let folded = ops.fold(mapped, batch: x.n, channels: compressed, gridHeight: gh, gridWidth: gw, patch: outPatch,
                              layout: z.layout)
        let cropped = ops.crop(folded, height: outputSize(x.h), width: outputSize(x.w))
        return ops.conv(cropped, decodeWeight, bias: decodeBias)
    }
}
