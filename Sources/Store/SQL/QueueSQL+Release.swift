/// Giving a claimed job back (a worker shutting down).
extension QueueSQL {
    /// Hands job $1 back untouched when worker $3 still holds attempt $2 (a worker shutting down before it started
    /// the image): available again at once, and the attempt it never made is not counted.
    static var jobReleaseIfRunning: Statement { Statement("""
        UPDATE jobs SET state = 'available', attempt = attempt - 1, attempted_by = NULL, attempted_at = NULL,
                        heartbeat_at = NULL,
                        metadata = jsonb_set(metadata, '{released}', to_jsonb(COALESCE((metadata->>'released')::int, 0) + 1))
        WHERE id = $1 AND attempt = $2 AND attempted_by = $3 AND state = 'running'
        RETURNING id
        """) }
}
