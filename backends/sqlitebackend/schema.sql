-- Conveyor SQLite schema, version 1. Times are Unix microseconds; 0 means unset.
CREATE TABLE IF NOT EXISTS conveyor_jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT, -- enqueue order
    id               TEXT    NOT NULL UNIQUE,
    queue            TEXT    NOT NULL,
    task             TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    headers          TEXT,                              -- JSON object
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0,
    deliveries       INTEGER NOT NULL DEFAULT 0,
    max_deliveries   INTEGER NOT NULL DEFAULT 0,
    timeout_us       INTEGER NOT NULL DEFAULT 0,
    retry_policy     TEXT    NOT NULL DEFAULT '',
    unique_key       TEXT,
    unique_until     INTEGER NOT NULL DEFAULT 0,
    errors           TEXT,                              -- JSON array of attempt errors
    result           BLOB,
    lease_token      TEXT,
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker           TEXT    NOT NULL DEFAULT ''
);
-- Reserve walks this index in order; finished jobs are not in it.
CREATE INDEX IF NOT EXISTS conveyor_jobs_due ON conveyor_jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'scheduled', 'retrying');
CREATE INDEX IF NOT EXISTS conveyor_jobs_leased ON conveyor_jobs (queue, lease_expires_at)
    WHERE state = 'running';
CREATE INDEX IF NOT EXISTS conveyor_jobs_state ON conveyor_jobs (queue, state, seq);
-- Pruning finds expired finished jobs without a scan.
CREATE INDEX IF NOT EXISTS conveyor_jobs_finished ON conveyor_jobs (state, finished_at)
    WHERE state IN ('done', 'cancelled', 'dead');
CREATE INDEX IF NOT EXISTS conveyor_jobs_unique ON conveyor_jobs (unique_key)
    WHERE unique_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS conveyor_queues (
    name   TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);
-- The KVStore: coordination state (scheduler entries, leader lease). A
-- deleted or expired key keeps its row and version, so versions only grow.
CREATE TABLE IF NOT EXISTS conveyor_kv (
    key        TEXT PRIMARY KEY,
    value      BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0 -- microseconds; 0: never
);
