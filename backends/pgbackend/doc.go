// Package pgbackend stores Conveyor jobs in PostgreSQL (13 or newer) through
// github.com/jackc/pgx/v5.
//
// The schema is versioned, embedded migrations with up and down steps
// (Migrate, `conveyor migrate`, or Config.Migrate at start), in a schema of
// its own (Config.Schema, default "conveyor"), so several apps can share a
// database. The jobs table refuses a state outside job.States (a CHECK,
// migration 4, which dead-letters rows already holding one, with the
// reason), so no row can sit in a state no query ever looks at.
//
// Reserve is one statement that picks due jobs with FOR UPDATE SKIP LOCKED
// on a partial index of waiting jobs and leases them, sent in the same
// round trip as the recovery of the queue's expired leases (a heartbeat
// column, lease_expires_at, so a dead worker's jobs come back after one
// lease, not a long rescue window). Completions are batched (CompleteMany,
// fed by the worker's group commit). Enqueue is one COPY for a batch (copy.go),
// one INSERT for a single job, or, with a depth bound or unique key, one
// transaction holding the queue's row lock and the key's advisory lock.
//
// Statement triggers log per-queue, per-state count deltas, which the
// janitor folds into one counter row per queue and state, and NOTIFY when
// jobs become due or finish, so statistics never scan the jobs table and
// idle workers wake within milliseconds. The janitor, which one process
// runs at a time, also prunes finished jobs after KeepDone/KeepDead, and
// vacuums the jobs table when 10,000 dead row versions have piled up, which
// autovacuum, visiting once a minute, would let grow to a million under a
// busy queue (Config.NoVacuum).
//
// Transactions: EnqueueTx takes the caller's pgx.Tx or *sql.Tx, so a job
// exists if and only if the caller's rows commit; CompleteTx finishes a job
// in the handler's own transaction.
//
// PgBouncer in transaction mode: set Config.NoListen (LISTEN needs a
// session; listeners then poll) and use a connection string with
// default_query_exec_mode=exec, since transaction pooling cannot keep
// prepared statements (TestConformanceWithoutPreparedStatements runs the
// core suite so). simple_protocol is not supported: it sends parameters as
// untyped literals, which the lease arithmetic cannot type.
package pgbackend
