import Foundation

/// A database failure a user can act on: a stable `code` to match on, the server's SQLSTATE when it sent one,
/// its message, detail and hint, and which statement or file was involved.
public struct DatabaseError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is, independent of the wording.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Could not open a connection at all.
        public static let connectionFailed = Code("connection failed")
        /// The connection dropped while a statement ran (server shut down, backend terminated, network).
        public static let connectionLost = Code("connection lost")
        /// The server rejected the statement (see `sqlState`).
        public static let server = Code("server error")
        /// A row could not be read as the expected Swift type.
        public static let decoding = Code("decoding")
        /// The schema is not what this program needs, or a migration failed.
        public static let migration = Code("migration")
        /// The embedded PostgreSQL could not be set up, started or stopped.
        public static let embeddedServer = Code("embedded server")
        /// Input given to the store was invalid (bad manifest row, unknown state name, …).
        public static let invalidInput = Code("invalid input")
        /// Something asked for is not there.
        public static let notFound = Code("not found")
    }

    public var code: Code
    /// Five-character SQLSTATE from the server, e.g. `23505` for a unique violation.
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The named statement (or file) the error came from.
    public var context: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil,
                context: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.context = context
    }

    public var description: String {
        var text = ""
        if let context { text += "\(context): " }
        text += message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail, !detail.isEmpty { text += "; detail: \(detail)" }
        if let hint, !hint.isEmpty { text += "; hint: \(hint)" }
        return text
    }

    /// SQLSTATE classes and codes that mean the connection is gone rather than the statement being wrong:
    /// 08 connection exceptions, 57P01 admin shutdown (pg_terminate_backend), 57P02 crash shutdown, 57P03 cannot connect now.
    static func isConnectionState(_ state: String?) -> Bool {
        guard let state else { return false }
        return state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03"
    }

    /// Unique violation, foreign-key violation, check violation: the data broke a constraint.
    public var isConstraintViolation: Bool {
        guard let sqlState else { return false }
        return sqlState.hasPrefix("23")
    }
}
