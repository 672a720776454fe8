import Testing
@testable import Lesions

@Test("Classes keep the official order and IDRiD codes")
func order() {
    #expect(LesionClass.allCases.map(\.code) == ["EX", "HE", "SE", "MA"])
    #expect(LesionClass(code: "ma") == .microaneurysm)
    #expect(LesionClass(code: "OD") == nil)
    #expect(LesionClass.microaneurysm.labelIndex == 4)
}
