import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program and waits for it, with posix_spawn and waitpid. Foundation's `Process` is not used for
/// PostgreSQL's tools: it learns that a child ended from a descriptor the child inherits, and `pg_ctl start`
/// leaves a daemon holding every inherited descriptor, so `waitUntilExit` would wait for the server to stop.
/// Here the child gets only stdin (/dev/null) and stdout+stderr (a file).
enum ChildProcess {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let closeFrom: CloseFrom? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: CloseFrom.self) }
    static let changeDirectory: ChangeDirectory? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: ChangeDirectory.self) }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                    directory: String, output: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc ≥ 2.34 / 2.29 extensions, not visible to Swift without _GNU_SOURCE: looked up at run time.
        if let closeFrom = Self.closeFrom { _ = closeFrom(&actions, 3) }
        if let changeDirectory = Self.changeDirectory { _ = changeDirectory(&actions, directory) }

        let argv = ([executable] + arguments).map { strdup($0) }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let argvNull = argv + [nil]
        let envNull = envp + [nil]
        let status = posix_spawn(&pid, executable, &actions, nil, argvNull, envNull)
        guard status == 0 else {
            throw DatabaseError(.embeddedServer, "cannot run \(executable): \(String(cString: strerror(status)))")
        }
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 {
            guard errno == EINTR else {
                throw DatabaseError(.embeddedServer, "waiting for \(executable) failed: \(String(cString: strerror(errno)))")
            }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import as macros.
        if waitStatus & 0x7f == 0 { return (waitStatus >> 8) & 0xff }
        return 128 + (waitStatus & 0x7f)
    }
}
