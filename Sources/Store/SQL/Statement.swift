/// One of Store's SQL statements: its text, and the name errors and logs call it by. The name is the Swift name it is
/// defined under, capitalised (`QueueSQL.jobClaim` runs as "JobClaim"), so each name is written once. Statements are
/// therefore computed properties (`static var jobClaim: Statement { Statement("…") }`): there, `#function` is the
/// property's name.
///
/// Every statement that touches the schema lives in one of the `…SQL` namespaces of this folder, with the tables it
/// touches in its comment; the rest of the project asks Store's types, never the database.
struct Statement: Sendable {
    let name: String
    let sql: String

    init(_ sql: String, definedAs property: String = #function) {
        self.sql = sql
        self.name = property.prefix(1).uppercased() + property.dropFirst()
    }
}

extension Connection {
    /// Runs one of Store's statements with `$1…$n` parameters.
    @discardableResult
    func query(_ statement: Statement, _ parameters: [any SQLEncodable] = []) throws -> QueryResult {
        try query(statement.sql, parameters, name: statement.name)
    }
}
