-- Conveyor SQLite schema, version 1. Times are Unix microseconds; 0 means unset.
-- The CHECKs refuse a state outside job.States and an INTEGER column holding
-- anything else (SQLite would store text as text), which no query would ever
-- find due or finished. SQLite cannot add a CHECK to an existing table, so
-- files created before them have none: the janitor (Tidy) dead-letters such
-- rows there.
CREATE TABLE IF NOT EXISTS conveyor_jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT, -- enqueue order
    id               TEXT    NOT NULL UNIQUE,
    queue            TEXT    NOT NULL,
    task             TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    headers          TEXT,                              -- JSON object
    priority         INTEGER NOT NULL DEFAULT 0 CHECK (typeof(priority) = 'integer'),
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'scheduled', 'running', 'retrying', 'done', 'dead', 'cancelled')),
    run_at           INTEGER NOT NULL CHECK (typeof(run_at) = 'integer'),
    created_at       INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
    started_at       INTEGER NOT NULL DEFAULT 0 CHECK (typeof(started_at) = 'integer'),
    finished_at      INTEGER NOT NULL DEFAULT 0 CHECK (typeof(finished_at) = 'integer'),
    deliveries       INTEGER NOT NULL DEFAULT 0 CHECK (typeof(deliveries) = 'integer'),
    max_deliveries   INTEGER NOT NULL DEFAULT 0 CHECK (typeof(max_deliveries) = 'integer'),
    timeout_us       INTEGER NOT NULL DEFAULT 0 CHECK (typeof(timeout_us) = 'integer'),
    retry_policy     TEXT    NOT NULL DEFAULT '',
    unique_key       TEXT,
    unique_until     INTEGER NOT NULL DEFAULT 0 CHECK (typeof(unique_until) = 'integer'),
    errors           TEXT,                              -- JSON array of attempt errors
    result           BLOB,
    lease_token      TEXT,
    lease_expires_at INTEGER NOT NULL DEFAULT 0 CHECK (typeof(lease_expires_at) = 'integer'),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (typeof(cancel_requested) = 'integer'),
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
-- A long job's notes (progress, checkpoint, log lines: job.Notes as JSON),
-- written under the job's lease (notes.go); they go with the job.
CREATE TABLE IF NOT EXISTS conveyor_job_notes (
    id    TEXT PRIMARY KEY, -- the job's
    notes BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS conveyor_job_notes_gone AFTER DELETE ON conveyor_jobs
BEGIN
    DELETE FROM conveyor_job_notes WHERE id = OLD.id;
END;
