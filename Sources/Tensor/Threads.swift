import CBLAS

/// Thread settings for processes that run the engine.
public enum EngineThreads {
    /// OpenBLAS's worker threads spin after each call and slow oneDNN when both run (ENGINE.md): any process that
    /// runs oneDNN uses OpenBLAS single-threaded. Call once at start-up, before the first matrix product.
    public static func configureBLASForEngine() {
        openblas_set_num_threads(1)
    }

    public static var blasThreads: Int { Int(openblas_get_num_threads()) }
}
