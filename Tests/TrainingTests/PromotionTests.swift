import Foundation
import Testing
@testable import Training

private let set14 = ValidationMetrics.ValidationSet(set: "/val", imageNames: (1...14).map { "IDRiD_\($0)" })
private let set13 = ValidationMetrics.ValidationSet(set: "/val", imageNames: (1...13).map { "IDRiD_\($0)" })

@Test("Metrics JSON round-trips flat figures, the validation set and the baseline")
func metricsJSON() {
    let m = ValidationMetrics(validation: set14, figures: ["mAP": 0.61, "mIoU": 0.4],
                              baseline: .init(model: "old", figures: ["mAP": 0.6]))
    #expect(m.json.contains("\"mAP\":0.61"))
    #expect(ValidationMetrics.parse(m.json) == m)
    #expect(ValidationMetrics.parse("{}") == ValidationMetrics())
    #expect(ValidationMetrics.parse("not json").figures.isEmpty)
    #expect(set14.fingerprint != set13.fingerprint)
    #expect(ValidationMetrics.ValidationSet(set: "/elsewhere", imageNames: (1...14).reversed().map { "IDRiD_\($0)" }).fingerprint == set14.fingerprint)
}

@Test("Promotion: better promotes, worse or equal is refused unless forced, nothing active promotes")
func promotionRules() {
    let active = (name: "v1", metrics: ValidationMetrics(validation: set14, figures: ["mAP": 0.60]))
    let better = (name: "v2", metrics: ValidationMetrics(validation: set14, figures: ["mAP": 0.62]))
    let worse = (name: "v3", metrics: ValidationMetrics(validation: set14, figures: ["mAP": 0.55]))
    let equal = (name: "v4", metrics: ValidationMetrics(validation: set14, figures: ["mAP": 0.60]))
    #expect(Promotion.decide(candidate: better, active: active).promote)
    #expect(!Promotion.decide(candidate: worse, active: active).promote)
    #expect(Promotion.decide(candidate: worse, active: active).reason.contains("not better: mAP 0.5500 vs 0.6000"))
    #expect(!Promotion.decide(candidate: equal, active: active).promote)
    let forced = Promotion.decide(candidate: worse, active: active, force: true)
    #expect(forced.promote && forced.reason.hasPrefix("forced:"))
    #expect(Promotion.decide(candidate: worse, active: nil).promote)
    #expect(!Promotion.decide(candidate: active, active: active).promote)
}

@Test("Promotion compares like with like: the baseline measured in the same run, else the same validation images")
func promotionSameImages() {
    let active = (name: "v1", metrics: ValidationMetrics(validation: set13, figures: ["mAP": 0.90]))
    let elsewhere = (name: "v2", metrics: ValidationMetrics(validation: set14, figures: ["mAP": 0.62]))
    #expect(!Promotion.decide(candidate: elsewhere, active: active).promote)
    #expect(Promotion.decide(candidate: elsewhere, active: active).reason.contains("no mAP on the validation images"))
    var withBaseline = elsewhere
    withBaseline.metrics.baseline = .init(model: "v1", figures: ["mAP": 0.58])
    #expect(Promotion.decide(candidate: withBaseline, active: active).promote)
    withBaseline.metrics.baseline = .init(model: "v0", figures: ["mAP": 0.58])   // measured against another model
    #expect(!Promotion.decide(candidate: withBaseline, active: active).promote)
    let noFigures = (name: "v5", metrics: ValidationMetrics())
    #expect(!Promotion.decide(candidate: noFigures, active: active).promote)
}
