import Foundation
import Testing
@testable import Store
import TestSupport

@Suite("libpq connection")
struct ConnectionTests {
    @Test("Parameters travel intact: quotes, backslashes, Unicode, NULL, arrays, dates, numbers")
    func parametersRoundTrip() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try db.connect()
            let tricky = "O'Brien \"quoted\" back\\slash ; DROP TABLE x; -- é 眼底 😀"
            let row = try c.query("""
                SELECT $1::text AS s, $2::text AS n, $3::bigint AS i, $4::double precision AS d, $5::boolean AS b,
                       $6::timestamptz AS t, $7::text[] AS a, cardinality($7::text[]) AS len, $8::bigint[] AS ints
                """, [tricky, SQLNull(), Int64.max, 0.1, true, Date(timeIntervalSince1970: 1_700_000_000.25),
                      [tricky, nil, "", "a,b", "{x}"], [Int64(1), nil, -3]]).rows[0]
            #expect(try row.decode("s", as: String.self) == tricky)
            #expect(try row.decodeIfPresent("n", as: String.self) == nil)
            #expect(try row.decode("i", as: Int64.self) == Int64.max)
            #expect(try row.decode("d", as: Double.self) == 0.1)
            #expect(try row.decode("b", as: Bool.self))
            #expect(try row.decode("t", as: Date.self) == Date(timeIntervalSince1970: 1_700_000_000.25))
            #expect(try row.decode("len", as: Int.self) == 5)
            #expect(try row.decodeArray("a") == [tricky, nil, "", "a,b", "{x}"])
            #expect(try row.decodeArray("ints") == ["1", nil, "-3"])
            #expect(throws: DatabaseError.self) { try row.decode("n", as: String.self) }
            #expect(throws: DatabaseError.self) { try row.decode("s", as: Int.self) }
        }
    }

    @Test("Server errors carry SQLSTATE, message and the statement's name")
    func errorsExplainThemselves() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try db.connect()
            try c.query("CREATE TABLE t (id int PRIMARY KEY)")
            try c.query("INSERT INTO t VALUES (1)")
            let duplicate = try #require(throws: DatabaseError.self) {
                try c.query("INSERT INTO t VALUES ($1)", [1], name: "InsertT")
            }
            #expect(duplicate.sqlState == "23505")
            #expect(duplicate.code == .server)
            #expect(duplicate.isConstraintViolation)
            #expect(duplicate.description.hasPrefix("InsertT: duplicate key value"))
            #expect(duplicate.detail?.contains("(id)=(1)") == true)
            let syntax = try #require(throws: DatabaseError.self) { try c.query("SELEC 1") }
            #expect(syntax.sqlState == "42601")
            // The connection is still usable afterwards.
            #expect(try c.query("SELECT 1 AS one").rows[0]["one"] == "1")
        }
    }

    @Test("A connection that cannot be opened says where it tried, without the password")
    func connectionFailure() throws {
        let error = try #require(throws: DatabaseError.self) {
            try Connection(conninfo: "host=127.0.0.1 port=1 user=u password=secret dbname=x connect_timeout=2",
                           logger: TestPostgres.defaultLogger)
        }
        #expect(error.code == .connectionFailed)
        #expect(error.description.contains("127.0.0.1"))
        #expect(!error.description.contains("secret"))
        #expect(Connection.redacted("postgresql://me:hunter2@db/x") == "postgresql://me:***@db/x")
    }

    @Test("Transactions commit on return and roll back on a thrown error")
    func transactions() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try db.connect()
            try c.query("CREATE TABLE t (v text)")
            try c.transaction { c in try c.query("INSERT INTO t VALUES ('kept')") }
            struct Stop: Error {}
            #expect(throws: Stop.self) {
                try c.transaction { c in
                    try c.query("INSERT INTO t VALUES ('dropped')")
                    throw Stop()
                }
            }
            #expect(throws: DatabaseError.self) {
                try c.transaction { c in
                    try c.query("INSERT INTO t VALUES ('dropped too')")
                    try c.query("INSERT INTO t VALUES (1/0)")
                }
            }
            #expect(try c.query("SELECT v FROM t").rows.map { $0["v"] } == ["kept"])
        }
    }

    @Test("A statement after pg_terminate_backend reconnects and runs; inside a transaction it fails cleanly")
    func reconnectsAfterTermination() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try db.connect()
            let admin = try db.connect()
            let first = c.backendPID
            try admin.query("SELECT pg_terminate_backend($1)", [first])
            #expect(try c.query("SELECT 41 + $1::int AS v", [1]).rows[0]["v"] == "42")
            #expect(c.reconnects == 1)
            #expect(c.backendPID != first)

            try c.query("CREATE TABLE t (v int)")
            let error = try #require(throws: DatabaseError.self) {
                try c.transaction { c in
                    try c.query("INSERT INTO t VALUES (1)")
                    try admin.query("SELECT pg_terminate_backend($1)", [c.backendPID])
                    try c.query("INSERT INTO t VALUES (2)")
                }
            }
            #expect(error.code == .connectionLost)
            #expect(try c.query("SELECT count(*) AS n FROM t").rows[0]["n"] == "0")
        }
    }

    @Test("Timestamps and array literals are written and read in PostgreSQL's text forms")
    func textForms() {
        #expect(SQLTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01 00:00:00.000000+00")
        #expect(SQLTimestamp.parse("2026-11-23 06:50:00.5+01") == Date(timeIntervalSince1970: 1_795_413_000.5))
        #expect(SQLTimestamp.parse("2026-11-23") == Date(timeIntervalSince1970: 1_795_392_000))
        #expect(SQLTimestamp.parse("not a date") == nil)
        #expect(SQLArray.literal(["a\"b", nil, "c\\d"]) == #"{"a\"b",NULL,"c\\d"}"#)
        #expect(SQLArray.parse("{}") == [])
        #expect(SQLArray.parse(#"{plain,"with space",NULL,"q\"uote"}"#) == ["plain", "with space", nil, "q\"uote"])
    }

    @Test("SHA-256 matches the FIPS 180-4 test vectors")
    func sha256() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var hasher = SHA256()
        for _ in 0..<1000 { hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: 1000)) }
        #expect(SHA256.hexString(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
