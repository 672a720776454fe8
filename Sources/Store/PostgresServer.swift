import CPostgres
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where the system's PostgreSQL programs (`initdb`, `pg_ctl`, `postgres`) are.
public struct PostgresInstallation: Sendable {
    public let binDirectory: URL

    public init(binDirectory: URL) { self.binDirectory = binDirectory }

    /// `$FUNDUS_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian), else `initdb` on PATH.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PostgresInstallation {
        let fm = FileManager.default
        if let dir = environment["FUNDUS_PG_BIN"], !dir.isEmpty {
            return PostgresInstallation(binDirectory: URL(fileURLWithPath: dir))
        }
        let debian = "/usr/lib/postgresql"
        let versions = ((try? fm.contentsOfDirectory(atPath: debian)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for v in versions where fm.isExecutableFile(atPath: "\(debian)/\(v)/bin/initdb") {
            return PostgresInstallation(binDirectory: URL(fileURLWithPath: "\(debian)/\(v)/bin"))
        }
        for dir in (environment["PATH"] ?? "/usr/bin:/usr/local/bin").split(separator: ":")
        where fm.isExecutableFile(atPath: "\(dir)/initdb") {
            return PostgresInstallation(binDirectory: URL(fileURLWithPath: String(dir)))
        }
        throw DatabaseError(.embeddedServer, "no PostgreSQL server programs found (looked in \(debian)/<version>/bin and PATH)",
                            hint: "install the Debian package postgresql (scripts/setup.sh does) or set FUNDUS_PG_BIN")
    }

    func tool(_ name: String) -> String { binDirectory.appendingPathComponent(name).path }
}

/// How to reach a running server we manage.
public struct ServerAddress: Sendable, Equatable {
    public let port: Int
    /// Directory of the Unix socket, when the server has one.
    public let socketDirectory: String?
    public let user: String
    public let database: String

    /// libpq keyword/value connection string; over the Unix socket when there is one, else loopback TCP.
    public var conninfo: String { conninfo(database: database) }

    public func conninfo(database: String) -> String {
        let host = socketDirectory ?? "127.0.0.1"
        return "host=\(Connection.conninfoValue(host)) port=\(port) user=\(Connection.conninfoValue(user)) "
            + "dbname=\(Connection.conninfoValue(database)) connect_timeout=10"
    }

    /// A URI for people and psql: `postgresql://fundus@127.0.0.1:54321/fundus`.
    public var url: String { "postgresql://\(user)@127.0.0.1:\(port)/\(database)" }
}

/// A PostgreSQL server of our own: a data directory under `root`, listening on loopback and (when the path is
/// short enough) a Unix socket in `root/run`, trusting local connections of its one user. When this process
/// is root, `initdb` and `pg_ctl` run as an unprivileged system user (default `postgres`) because PostgreSQL
/// refuses to run as root; the folders it writes are handed to that user.
public struct PostgresServer: Sendable {
    public struct Settings: Sendable {
        /// False turns off fsync and friends: for throw-away test servers only.
        public var durable: Bool
        public var sharedBuffers: String
        public var maxConnections: Int

        public init(durable: Bool, sharedBuffers: String, maxConnections: Int) {
            self.durable = durable
            self.sharedBuffers = sharedBuffers
            self.maxConnections = maxConnections
        }

        public static let embedded = Settings(durable: true, sharedBuffers: "128MB", maxConnections: 100)
        public static let test = Settings(durable: false, sharedBuffers: "16MB", maxConnections: 40)
    }

    public enum Status: Sendable, Equatable {
        case notInitialised
        case stopped
        case running(pid: Int32, address: ServerAddress)
        /// A process with the recorded PID is alive but does not answer yet (starting or shutting down).
        case starting(pid: Int32)
        /// `postmaster.pid` names a process that is gone (the server was killed).
        case stale(pid: Int32)
    }

    public static let user = "fundus"
    public static let database = "fundus"

    public let root: URL
    public let settings: Settings
    public let installation: PostgresInstallation
    /// The system user the server runs as when we are root; nil when we run it as ourselves.
    public let serverUser: String?
    let logger: Logger

    public var dataDirectory: URL { root.appendingPathComponent("data") }
    public var socketDirectory: URL { root.appendingPathComponent("run") }
    public var logFile: URL { root.appendingPathComponent("server.log") }
    var portFile: URL { root.appendingPathComponent("port") }

    public init(root: URL, settings: Settings, installation: PostgresInstallation? = nil, logger: Logger,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.root = root.standardizedFileURL
        self.settings = settings
        self.installation = try installation ?? PostgresInstallation.locate(environment: environment)
        self.logger = logger
        if geteuid() == 0 {
            let name = environment["FUNDUS_PG_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
            guard getpwnam(name) != nil else {
                throw DatabaseError(.embeddedServer,
                    "running as root, and PostgreSQL refuses to: the system user \(name) to run it as does not exist",
                    hint: "install the Debian package postgresql (it creates the user), or set FUNDUS_PG_USER to another unprivileged user")
            }
            serverUser = name
        } else {
            serverUser = nil
        }
    }

    /// The socket is used only when its full path fits the kernel's 107-byte limit and needs no quoting.
    var usableSocketDirectory: String? {
        let path = socketDirectory.path
        let safe = path.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "/._-".unicodeScalars.contains($0) }
        return safe && path.utf8.count + ".s.PGSQL.65535".utf8.count < 100 ? path : nil
    }

    // MARK: life cycle

    /// Creates the cluster when there is none: initdb, then our access rules and settings.
    public func initialiseIfNeeded() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) { return }
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try fm.createDirectory(at: socketDirectory, withIntermediateDirectories: true)
        try handToServerUser(root)
        try handToServerUser(socketDirectory)
        try checkServerUserCanWrite(root)
        if fm.fileExists(atPath: dataDirectory.path) {
            // A half-made cluster from an interrupted initdb: initdb wants an empty directory.
            try fm.removeItem(at: dataDirectory)
        }
        logger.info("creating PostgreSQL cluster", metadata: ["data": "\(dataDirectory.path)"])
        let (status, output) = try runTool("initdb", [
            "-D", dataDirectory.path, "-U", Self.user, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        ])
        guard status == 0 else {
            throw DatabaseError(.embeddedServer, "initdb failed (exit \(status)) for \(dataDirectory.path)",
                                detail: String(output.suffix(2000)))
        }
        // Trust only the one local user, only over the socket and loopback.
        let hba = """
            # fundus-screen: the embedded server trusts its own user on this machine only.
            local   all   \(Self.user)                 trust
            host    all   \(Self.user)   127.0.0.1/32  trust
            host    all   \(Self.user)   ::1/128       trust

            """
        var conf = """

            # fundus-screen settings
            listen_addresses = '127.0.0.1'
            unix_socket_directories = ''
            unix_socket_permissions = 0700
            shared_buffers = '\(settings.sharedBuffers)'
            max_connections = \(settings.maxConnections)
            log_min_messages = warning
            log_connections = off

            """
        if !settings.durable {
            conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        }
        try writeServerFile(dataDirectory.appendingPathComponent("pg_hba.conf"), hba, append: false)
        try writeServerFile(dataDirectory.appendingPathComponent("postgresql.conf"), conf, append: true)
    }

    /// What the data directory's `postmaster.pid` says, checked against the running processes.
    public func status() -> Status {
        let fm = FileManager.default
        guard fm.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) else { return .notInitialised }
        guard let lock = try? String(contentsOf: dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8)
        else { return .stopped }
        let lines = lock.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let pid = lines.first.flatMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }) else { return .stale(pid: 0) }
        guard Self.isPostgresProcess(pid) else { return .stale(pid: pid) }
        guard lines.count > 3, let port = Int(lines[3].trimmingCharacters(in: .whitespaces)) else { return .starting(pid: pid) }
        let socket = lines.count > 4 ? lines[4].trimmingCharacters(in: .whitespaces) : ""
        let address = ServerAddress(port: port, socketDirectory: socket.isEmpty ? nil : socket,
                                    user: Self.user, database: Self.database)
        guard PQping(address.conninfo(database: "postgres")) == PQPING_OK else { return .starting(pid: pid) }
        return .running(pid: pid, address: address)
    }

    /// Reuses the running server or starts it (creating the cluster first when needed), recovering from a
    /// stale `postmaster.pid` left by a killed server. Concurrent callers are serialised by a lock file.
    @discardableResult
    public func start() throws -> ServerAddress {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return try withLockFile {
            try initialiseIfNeeded()
            let deadline = Date().addingTimeInterval(60)
            while true {
                switch status() {
                case .running(_, let address):
                    try ensureDatabase(address)
                    return address
                case .starting(let pid):
                    guard Date() < deadline else {
                        throw DatabaseError(.embeddedServer, "PostgreSQL (pid \(pid)) in \(dataDirectory.path) does not answer after 60 s",
                                            detail: logTail())
                    }
                    Thread.sleep(forTimeInterval: 0.2)
                case .stale(let pid):
                    logger.warning("removing stale postmaster.pid of a server that is gone", metadata: ["pid": "\(pid)"])
                    try? FileManager.default.removeItem(at: dataDirectory.appendingPathComponent("postmaster.pid"))
                case .stopped, .notInitialised:
                    let address = try launch()
                    try ensureDatabase(address)
                    return address
                }
            }
        }
    }

    /// Stops the server (fast shutdown: running statements are cancelled, data is safe). Returns false when it was not running.
    @discardableResult
    public func stop(immediate: Bool = false) throws -> Bool {
        switch status() {
        case .notInitialised, .stopped: return false
        case .stale:
            try? FileManager.default.removeItem(at: dataDirectory.appendingPathComponent("postmaster.pid"))
            return false
        case .running, .starting:
            let (status, output) = try runTool("pg_ctl", [
                "stop", "-D", dataDirectory.path, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60", "-s",
            ])
            guard status == 0 else {
                throw DatabaseError(.embeddedServer, "pg_ctl stop failed (exit \(status)) for \(dataDirectory.path)",
                                    detail: output)
            }
            return true
        }
    }

    /// Makes this server's cluster a copy of a stopped one (`cp -a`, ownership kept): much faster than initdb
    /// when many throw-away servers are needed.
    public func cloneCluster(from template: PostgresServer) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try handToServerUser(root)
        if fm.fileExists(atPath: dataDirectory.path) { try fm.removeItem(at: dataDirectory) }
        let status = try ChildProcess.run("/bin/cp", ["-a", template.dataDirectory.path, dataDirectory.path],
                                          environment: [:], directory: "/", output: "/dev/null")
        guard status == 0 else {
            throw DatabaseError(.embeddedServer, "cannot copy the cluster \(template.dataDirectory.path) to \(dataDirectory.path)")
        }
        try? fm.removeItem(at: dataDirectory.appendingPathComponent("postmaster.pid"))
    }

    // MARK: internals

    private func launch() throws -> ServerAddress {
        var port = (try? String(contentsOf: portFile, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        var lastOutput = ""
        for attempt in 1...5 {
            let chosen = try port ?? Self.freeLoopbackPort()
            var options = "-p \(chosen)"
            if let socket = usableSocketDirectory {
                try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true)
                try handToServerUser(socketDirectory)
                options += " -k \(socket)"
            }
            logger.info("starting PostgreSQL", metadata: ["data": "\(dataDirectory.path)", "port": "\(chosen)"])
            let logStart = (try? FileManager.default.attributesOfItem(atPath: logFile.path)[.size] as? Int) ?? 0
            let (status, output) = try runTool("pg_ctl", [
                "start", "-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60", "-s", "-o", options,
            ])
            if status == 0 {
                try? "\(chosen)\n".write(to: portFile, atomically: true, encoding: .utf8)
                if case .running(_, let address) = self.status() { return address }
                // pg_ctl said ready; give the status file a moment.
                Thread.sleep(forTimeInterval: 0.2)
                if case .running(_, let address) = self.status() { return address }
                throw DatabaseError(.embeddedServer, "PostgreSQL started in \(dataDirectory.path) but does not answer", detail: logTail())
            }
            let log = logTail(from: logStart)
            lastOutput = output + "\n" + log
            if log.contains("could not bind") || log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets") {
                logger.info("port taken, choosing another", metadata: ["port": "\(chosen)"])
                port = nil
            } else if log.contains("shared memory block") || log.contains("lock file") {
                // Children of a killed server still hold its shared memory; they exit once they notice.
                logger.info("waiting for the processes of a killed server to exit", metadata: ["attempt": "\(attempt)"])
                Thread.sleep(forTimeInterval: 1)
                if case .stale = self.status() {
                    try? FileManager.default.removeItem(at: dataDirectory.appendingPathComponent("postmaster.pid"))
                }
            } else {
                break
            }
        }
        throw DatabaseError(.embeddedServer, "pg_ctl start failed for \(dataDirectory.path) (log: \(logFile.path))",
                            detail: String(lastOutput.suffix(2000)))
    }

    /// Creates our database in a fresh cluster.
    private func ensureDatabase(_ address: ServerAddress) throws {
        let admin = try Connection(conninfo: address.conninfo(database: "postgres"), logger: logger)
        defer { admin.close() }
        let exists = try admin.query(ServerSQL.databaseExists, [Self.database])
        if exists.rows.isEmpty { try admin.query(ServerSQL.databaseCreate) }
    }

    private func logTail(from offset: Int = 0) -> String {
        guard let data = FileManager.default.contents(atPath: logFile.path) else { return "" }
        let slice = data.count > offset ? data[offset...] : data[...]
        return String(decoding: slice.suffix(3000), as: UTF8.self)
    }

    private func withLockFile<T>(_ body: () throws -> T) throws -> T {
        let path = root.appendingPathComponent(".lock").path
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DatabaseError(.embeddedServer, "cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else {
            throw DatabaseError(.embeddedServer, "cannot lock \(path): \(String(cString: strerror(errno)))")
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// Runs a PostgreSQL program, as the server user when we are root. Output goes through a file, never a pipe
    /// that a daemonised postmaster could keep open.
    func runTool(_ name: String, _ arguments: [String]) throws -> (Int32, String) {
        var executable = installation.tool(name)
        var argv = arguments
        if let serverUser {
            argv = ["-u", serverUser, "--", executable] + arguments
            executable = Self.runuser
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        for key in DatabaseLocation.libpqVariables { environment.removeValue(forKey: key) }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-pgtool-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        let status = try ChildProcess.run(executable, argv, environment: environment, directory: root.path, output: output.path)
        return (status, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    static var runuser: String {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") ? "/usr/sbin/runuser" : "/sbin/runuser"
    }

    private func handToServerUser(_ url: URL) throws {
        guard let serverUser, let pw = getpwnam(serverUser) else { return }
        if chown(url.path, pw.pointee.pw_uid, pw.pointee.pw_gid) != 0 {
            throw DatabaseError(.embeddedServer, "cannot hand \(url.path) to user \(serverUser): \(String(cString: strerror(errno)))")
        }
        chmod(url.path, 0o700)
    }

    private func writeServerFile(_ url: URL, _ text: String, append: Bool) throws {
        if append, let handle = FileHandle(forWritingAtPath: url.path) {
            defer { try? handle.close() }
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
        } else {
            try text.write(to: url, atomically: false, encoding: .utf8)
        }
        if let serverUser, let pw = getpwnam(serverUser) { chown(url.path, pw.pointee.pw_uid, pw.pointee.pw_gid) }
    }

    private func checkServerUserCanWrite(_ url: URL) throws {
        guard let serverUser else { return }
        let status = try ChildProcess.run(Self.runuser, ["-u", serverUser, "--", "/usr/bin/test", "-w", url.path],
                                          environment: ["PATH": "/usr/bin:/bin"], directory: "/", output: "/dev/null")
        if status != 0 {
            throw DatabaseError(.embeddedServer,
                "PostgreSQL runs as the system user \(serverUser) (this process is root) and cannot write \(url.path)",
                hint: "make every parent folder traversable (chmod o+x) or choose a --state-dir such as /var/lib/fundus-screen")
        }
    }

    /// Whether a user can traverse every existing folder on the way to `path` (missing ones we create 0755).
    public static func isReachable(_ path: String, uid: uid_t, gid: gid_t) -> Bool {
        var components = path.split(separator: "/").map(String.init)
        while true {
            let current = "/" + components.joined(separator: "/")
            var info = stat()
            if stat(current, &info) == 0 {
                let mode = info.st_mode
                let ok = info.st_uid == uid ? mode & S_IXUSR != 0
                    : info.st_gid == gid ? mode & S_IXGRP != 0 : mode & S_IXOTH != 0
                if !ok { return false }
            }
            if components.isEmpty { return true }
            components.removeLast()
        }
    }

    static func isPostgresProcess(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno != EPERM { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return true }
        // A killed postmaster may linger as a zombie until init reaps it: that is not a running server.
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        if state == "Z" || state == "X" { return false }
        let name = stat[stat.index(after: open)..<close]
        return name.hasPrefix("postgres") || name.hasPrefix("postmaster")
    }

    /// A loopback TCP port nobody listens on right now (bind to port 0 and read what the kernel chose).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DatabaseError(.embeddedServer, "socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw DatabaseError(.embeddedServer, "bind(): \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
