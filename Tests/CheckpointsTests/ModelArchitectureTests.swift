import Testing
import Foundation
@testable import Checkpoints

@Test("HRNetV2 presets have the mmseg widths and head sizes")
func presets() {
    #expect(ModelArchitecture.w48(variant: .C).concatChannels == 720)
    #expect(ModelArchitecture.w18(variant: .plain).concatChannels == 270)
    #expect(ModelArchitecture.tinyFixture(variant: .A).concatChannels == 120)
    #expect(ModelArchitecture.w18Small(variant: .C).stages[3].modules == 2)
    #expect(ModelArchitecture.w48(variant: .C).displayName == "HRNetV2-W48 M2MRF-C")
}

@Test("Variants map to one-step or cascade fuse paths as the reference says")
func variants() {
    #expect(!ModelArchitecture.Variant.A.cascadeDown && !ModelArchitecture.Variant.A.cascadeUp)
    #expect(!ModelArchitecture.Variant.B.cascadeDown && ModelArchitecture.Variant.B.cascadeUp)
    #expect(ModelArchitecture.Variant.C.cascadeDown && !ModelArchitecture.Variant.C.cascadeUp)
    #expect(ModelArchitecture.Variant.D.cascadeDown && ModelArchitecture.Variant.D.cascadeUp)
}

@Test("The architecture round-trips through JSON (it travels in metadata.json)")
func codable() throws {
    let a = ModelArchitecture.w18Small(variant: .D)
    let data = try JSONEncoder().encode(a)
    #expect(try JSONDecoder().decode(ModelArchitecture.self, from: data) == a)
}

@Test("Architecture names parse as users type them; unknown families and variants do not")
func names() {
    #expect(ModelArchitecture.named("w48-C") == .w48(variant: .C))
    #expect(ModelArchitecture.named("W18-small-plain") == .w18Small(variant: .plain))
    #expect(ModelArchitecture.named("w16-small-C")?.stages[3].channels == [16, 32, 64, 128])
    #expect(ModelArchitecture.named("tiny-d") == .tinyFixture(variant: .D))
    #expect(ModelArchitecture.named("resnet-C") == nil)
    #expect(ModelArchitecture.named("w18-small-E") == nil)
    #expect(ModelArchitecture.named("w48") == nil)
}
