import Foundation

extension JobQueue {
    /// Gives a claimed job back to the queue without counting an attempt. False when the lease was already lost.
    @discardableResult
    public func release(_ lease: JobLease) throws -> Bool {
        let result = try connection.query(QueueSQL.jobReleaseIfRunning, [lease.jobID, lease.attempt, worker])
        return !result.rows.isEmpty
    }
}
