import Testing
@testable import Tensor

@Test("OpenBLAS runs single-threaded once the engine is configured")
func blasSingleThreaded() {
    EngineThreads.configureBLASForEngine()
    #expect(EngineThreads.blasThreads == 1)
}
