import CPostgres
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The rows a statement returned, every value in PostgreSQL's text format.
public struct QueryResult: Sendable {
    public let columns: [String]
    public let rows: [Row]
    /// Rows inserted, updated or deleted (from the command tag), 0 for other commands.
    public let affectedRows: Int
    /// The command tag, e.g. `UPDATE 3`, `COMMIT`, `ROLLBACK`.
    public let commandTag: String
}

/// One result row. Decode columns by name: `try row.decode("id", as: Int64.self)`.
public struct Row: Sendable {
    let index: [String: Int]
    public let values: [String?]

    /// The raw text of a column, nil for NULL or an unknown column.
    public subscript(_ column: String) -> String? {
        guard let i = index[column] else { return nil }
        return values[i]
    }

    public func decode<T: SQLDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let value = try decodeIfPresent(column, as: type) else {
            throw DatabaseError(.decoding, "column \(column) is NULL where a \(T.self) was expected")
        }
        return value
    }

    public func decodeIfPresent<T: SQLDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let i = index[column] else {
            throw DatabaseError(.decoding, "no column \(column) in the result (have \(index.keys.sorted().joined(separator: ", ")))")
        }
        guard let text = values[i] else { return nil }
        guard let value = T(sqlText: text) else {
            throw DatabaseError(.decoding, "column \(column): cannot read \(text.debugDescription) as \(T.self)")
        }
        return value
    }

    /// A one-dimensional array column (`text[]`, `jsonb[]`, …) as its elements' text.
    public func decodeArray(_ column: String) throws -> [String?] {
        let text: String = try decode(column)
        guard let items = SQLArray.parse(text) else {
            throw DatabaseError(.decoding, "column \(column): \(text.prefix(80).debugDescription) is not an array")
        }
        return items
    }
}

/// A `NOTIFY` received on a channel this connection listens to.
public struct Notification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    public let backendPID: Int32
}

/// One libpq connection. Statements are parameterised (`PQexecParams`, text format); nothing is built by
/// pasting values into SQL. The connection is used by one thread at a time: a recursive lock serialises callers
/// and keeps a transaction on the thread that opened it. A dropped connection is re-opened with capped
/// exponential backoff; a statement outside a transaction is retried once on the new connection, one inside a
/// transaction fails with `.connectionLost` (its outcome is unknown, the caller decides).
public final class Connection: @unchecked Sendable {
    public struct ReconnectPolicy: Sendable {
        public var attempts: Int
        public var initialDelay: TimeInterval
        public var maximumDelay: TimeInterval
        public init(attempts: Int = 10, initialDelay: TimeInterval = 0.05, maximumDelay: TimeInterval = 2) {
            self.attempts = attempts
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }
    }

    public let conninfo: String
    private let logger: Logger
    private let policy: ReconnectPolicy
    private let lock = NSRecursiveLock()
    private var handle: OpaquePointer?
    private var inTransaction = false
    private var channels: [String] = []
    private var pendingNotifications: [Notification] = []
    /// How many times the connection was re-opened after a drop.
    public private(set) var reconnects = 0

    /// Opens a connection. `conninfo` is a libpq keyword string or URI; empty means libpq's PG* variables
    /// and service file.
    public init(conninfo: String, logger: Logger, reconnect: ReconnectPolicy = ReconnectPolicy()) throws {
        self.conninfo = conninfo
        self.logger = logger
        self.policy = reconnect
        handle = try Self.open(conninfo)
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    public func close() {
        lock.lock(); defer { lock.unlock() }
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// The server process serving this connection (for `pg_terminate_backend` and logs).
    public var backendPID: Int32 {
        lock.lock(); defer { lock.unlock() }
        return handle.map { PQbackendPID($0) } ?? 0
    }

    public var serverVersion: Int {
        lock.lock(); defer { lock.unlock() }
        return handle.map { Int(PQserverVersion($0)) } ?? 0
    }

    // MARK: statements

    /// Runs one statement with `$1…$n` parameters. `name` says where the statement comes from in errors and logs.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any SQLEncodable] = [], name: String? = nil) throws -> QueryResult {
        lock.lock(); defer { lock.unlock() }
        var retried = false
        while true {
            do {
                if !inTransaction, !isHealthy { try reconnect() }
                return try execute(sql, parameters, name: name)
            } catch let error as DatabaseError where error.code == .connectionLost && !inTransaction && !retried {
                retried = true
                logger.warning("database connection lost, reconnecting", metadata: [
                    "statement": "\(name ?? "statement")", "error": "\(error.message)",
                ])
                try reconnect()
            }
        }
    }

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws. Nested calls join the outer one.
    @discardableResult
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        lock.lock(); defer { lock.unlock() }
        if inTransaction { return try body(self) }
        try query("BEGIN", name: "BEGIN")
        inTransaction = true
        defer { inTransaction = false }
        do {
            let value = try body(self)
            let result = try execute("COMMIT", [], name: "COMMIT")
            if result.commandTag == "ROLLBACK" {
                throw DatabaseError(.server, "the transaction was rolled back at COMMIT because a statement in it failed",
                                    context: "COMMIT")
            }
            return value
        } catch {
            if isHealthy { _ = try? execute("ROLLBACK", [], name: "ROLLBACK") }
            throw error
        }
    }

    /// Runs a fixed multi-statement script (a migration file) with the simple-query protocol. Only for SQL that
    /// ships with the program: it takes no parameters.
    public func runScript(_ sql: String, name: String) throws {
        lock.lock(); defer { lock.unlock() }
        guard let handle, isHealthy else { throw DatabaseError(.connectionLost, "not connected", context: name) }
        guard let result = PQexec(handle, sql) else { throw connectionError(handle, name: name) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        if status != PGRES_COMMAND_OK, status != PGRES_TUPLES_OK, status != PGRES_EMPTY_QUERY {
            throw resultError(result, handle: handle, name: name)
        }
    }

    // MARK: LISTEN / NOTIFY

    /// Starts listening on `channel` (a plain lower-case identifier); re-issued after every reconnect.
    public func listen(_ channel: String) throws {
        lock.lock(); defer { lock.unlock() }
        try Self.checkChannel(channel)
        // LISTEN takes an identifier, not a parameter; the name was checked to be a plain identifier above.
        try query("LISTEN \(channel)", name: "LISTEN")
        if !channels.contains(channel) { channels.append(channel) }
    }

    /// Waits up to `timeout` seconds for notifications; returns those received (empty on timeout). A dropped
    /// connection is re-opened and reported as no notification, so a caller that polls loses nothing.
    public func waitForNotifications(timeout: TimeInterval) throws -> [Notification] {
        lock.lock(); defer { lock.unlock() }
        if !isHealthy { try reconnect(); return [] }
        guard let handle else { return [] }
        drainNotifications(handle)
        if !pendingNotifications.isEmpty { return takePending() }
        var pfd = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(max(0, timeout * 1000)))
        if ready > 0 {
            if PQconsumeInput(handle) == 0 {
                logger.warning("connection lost while waiting for notifications, reconnecting")
                try reconnect()
                return []
            }
            drainNotifications(handle)
        }
        return takePending()
    }

    // MARK: internals

    private var isHealthy: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    private static func open(_ conninfo: String) throws -> OpaquePointer {
        guard let conn = PQconnectdb(conninfo) else {
            throw DatabaseError(.connectionFailed, "libpq could not allocate a connection")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(conn)
            throw DatabaseError(.connectionFailed, "cannot connect to PostgreSQL (\(redacted(conninfo))): \(message)")
        }
        // Text results in a fixed form that SQLTimestamp reads, whatever the server's defaults.
        if let r = PQexec(conn, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET client_encoding = 'UTF8'; SET client_min_messages = 'warning'") {
            PQclear(r)
        }
        return conn
    }

    private func reconnect() throws {
        if let handle { PQfinish(handle) }
        handle = nil
        var delay = policy.initialDelay
        var lastError: DatabaseError?
        for attempt in 1...max(1, policy.attempts) {
            do {
                let conn = try Self.open(conninfo)
                handle = conn
                reconnects += 1
                for channel in channels {
                    if let r = PQexec(conn, "LISTEN \(channel)") { PQclear(r) }
                }
                logger.info("database connection re-opened", metadata: ["attempt": "\(attempt)"])
                return
            } catch let error as DatabaseError {
                lastError = error
                // Jitter keeps many workers from reconnecting in lockstep.
                let sleep = delay * Double.random(in: 0.75...1.25)
                logger.debug("reconnect attempt failed", metadata: ["attempt": "\(attempt)", "retryIn": "\(sleep)"])
                Thread.sleep(forTimeInterval: sleep)
                delay = min(policy.maximumDelay, delay * 2)
            }
        }
        var error = lastError ?? DatabaseError(.connectionFailed, "cannot reconnect")
        error.code = .connectionLost
        error.message = "connection lost and not re-opened after \(policy.attempts) attempts: \(error.message)"
        throw error
    }

    private func execute(_ sql: String, _ parameters: [any SQLEncodable], name: String?) throws -> QueryResult {
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            throw DatabaseError(.connectionLost, "not connected", context: name)
        }
        let texts = parameters.map { $0.sqlText }
        let owned: [UnsafeMutablePointer<CChar>?] = texts.map { $0.flatMap { strdup($0) } }
        defer { owned.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = owned.map { $0.map { UnsafePointer($0) } }
        let result: OpaquePointer? = pointers.withUnsafeBufferPointer { buffer in
            PQexecParams(handle, sql, Int32(buffer.count), nil, buffer.count == 0 ? nil : buffer.baseAddress, nil, nil, 0)
        }
        guard let result else { throw connectionError(handle, name: name) }
        defer { PQclear(result) }
        drainNotifications(handle)
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            throw resultError(result, handle: handle, name: name)
        }
        let fieldCount = Int(PQnfields(result))
        var columns: [String] = []
        var index: [String: Int] = [:]
        for f in 0..<fieldCount {
            let column = String(cString: PQfname(result, Int32(f)))
            columns.append(column)
            if index[column] == nil { index[column] = f }
        }
        let rowCount = Int(PQntuples(result))
        var rows: [Row] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(fieldCount)
            for f in 0..<fieldCount {
                if PQgetisnull(result, Int32(r), Int32(f)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(r), Int32(f))))
                }
            }
            rows.append(Row(index: index, values: values))
        }
        let tag = String(cString: PQcmdStatus(result))
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return QueryResult(columns: columns, rows: rows, affectedRows: affected, commandTag: tag)
    }

    private func connectionError(_ handle: OpaquePointer, name: String?) -> DatabaseError {
        let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
        let code: DatabaseError.Code = PQstatus(handle) == CONNECTION_OK ? .server : .connectionLost
        return DatabaseError(code, message.isEmpty ? "no result from the server" : message, context: name)
    }

    private func resultError(_ result: OpaquePointer, handle: OpaquePointer, name: String?) -> DatabaseError {
        func field(_ code: UInt8) -> String? {
            guard let p = PQresultErrorField(result, Int32(code)) else { return nil }
            return String(cString: p)
        }
        let state = field(UInt8(ascii: "C"))
        var message = field(UInt8(ascii: "M"))
            ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        if message.isEmpty { message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines) }
        let lost = PQstatus(handle) != CONNECTION_OK || DatabaseError.isConnectionState(state)
        return DatabaseError(lost ? .connectionLost : .server, message, sqlState: state,
                             detail: field(UInt8(ascii: "D")), hint: field(UInt8(ascii: "H")), context: name)
    }

    private func drainNotifications(_ handle: OpaquePointer) {
        while let note = PQnotifies(handle) {
            let n = note.pointee
            pendingNotifications.append(Notification(
                channel: String(cString: n.relname), payload: n.extra.map { String(cString: $0) } ?? "",
                backendPID: n.be_pid))
            PQfreemem(note)
        }
    }

    private func takePending() -> [Notification] {
        defer { pendingNotifications.removeAll() }
        return pendingNotifications
    }

    static func checkChannel(_ channel: String) throws {
        let ok = !channel.isEmpty && channel.count <= 63 && channel.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "_"
        } && !(channel.first!.isNumber)
        if !ok { throw DatabaseError(.invalidInput, "channel name \(channel.debugDescription) is not a plain identifier") }
    }

    /// The connection string with every password replaced, for messages and for printing back to people: the
    /// keyword form (`password=…`, quoted values with `\'` escapes included), URI query parameters
    /// (`?password=…`, also `sslpassword`) and URI user info (`postgres://user:…@`, also with an empty user).
    public static func redacted(_ conninfo: String) -> String {
        if conninfo.isEmpty { return "libpq environment" }
        var text = conninfo
        // A quoted keyword value runs to its closing quote (skipping escapes); anything else to the next space.
        // In a URI that hides the rest of the query too, which errs on the safe side.
        text = text.replacingOccurrences(of: #"(?i)(password\s*=\s*)('(?:\\.|[^'\\])*'?|\S*)"#, with: "$1***",
                                         options: .regularExpression)
        text = text.replacingOccurrences(of: #"(://[^:/@?#\s]*):[^@/?#\s]*@"#, with: "$1:***@", options: .regularExpression)
        return text
    }

    /// Quotes a value for a libpq keyword/value connection string.
    public static func conninfoValue(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
