// Package chaos holds the chaos test. For every backend (SQLite, memory,
// Redis, Redis Cluster, PostgreSQL, AMQP with and without a job-state
// store), enqueuers in the test process enqueue jobs under caller-chosen
// IDs while worker processes run them, recording every execution in an
// append-only ledger, and the test SIGKILLs a worker every 1-3 s, now and
// then SIGSTOPs one for longer than its lease, and crash-restarts the
// server twice (its own redis-server with AOF fsync on every write, killed
// with SIGKILL; its own PostgreSQL cluster, stopped in immediate mode; the
// RabbitMQ node only in scripts/chaos, which started it). A bounded queue
// is hammered by 8 enqueuers with its depth sampled every 50 ms, and
// waiting jobs are corrupted in each backend's own storage format.
//
// Afterwards every job is accounted for: each enqueue error is a refusal
// (the job must not exist) or ambiguous (looked up by ID; found, it must
// finish); every stored job must finish (done, or dead for the permanently
// failing ones); reruns are counted by cause; corrupted jobs must end as
// their damage calls for; no count of waiting or running jobs may be left.
// docs/reliability.md has the figures of a long run and what each means.
//
// The package has no code outside its tests. `go test ./internal/chaos`
// (as CI runs it) uses 1,000 jobs per backend; scripts/chaos runs 20,000
// (CONVEYOR_CHAOS_JOBS).
package chaos
