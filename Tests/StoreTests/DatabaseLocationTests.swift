import Testing
import Foundation
@testable import Store

@Test("An explicit --database wins over the environment")
func explicitWins() {
    let loc = DatabaseLocation.resolve(database: "postgres://x/y", stateDirectory: nil,
                                       environment: ["DATABASE_URL": "postgres://a/b", "PGHOST": "h"])
    #expect(loc == .connectionString("postgres://x/y"))
}

@Test("DATABASE_URL, then PG* variables, then the embedded server")
func fallbackOrder() {
    #expect(DatabaseLocation.resolve(database: nil, stateDirectory: nil, environment: ["DATABASE_URL": "u"]) == .connectionString("u"))
    #expect(DatabaseLocation.resolve(database: nil, stateDirectory: nil, environment: ["PGSERVICE": "nightly"]) == .libpqEnvironment)
    let dir = URL(fileURLWithPath: "/tmp/state")
    #expect(DatabaseLocation.resolve(database: nil, stateDirectory: dir, environment: [:]) == .embedded(stateDirectory: dir))
}
