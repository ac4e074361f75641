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
// The same workload runs on clusters (cluster_*_test.go, on the clusters
// scripts/lib/clusters.sh starts): a Redis Cluster of 3 masters and 3
// replicas whose main-queue master is SIGKILLed and its replica promoted,
// with every write WAITing for a replica; a 3-node RabbitMQ cluster, a
// node stopped and restarted while clients reconnect to live nodes through
// a URL of several addresses; a PostgreSQL primary and streaming replica,
// the primary stopped and the replica promoted, with synchronous
// replication (nothing acknowledged may be lost) and without (the loss is
// measured). Redis Cluster also runs the conformance suite and a worker of
// 16 queues that must reach every master; RabbitMQ, the AMQP backend's
// suite. docs/scaling.md has what they measured.
//
// TestChord (chords_test.go) runs workflows under the same abuse: chords
// of 10 members on Redis, PostgreSQL and AMQP with a store, their
// worker processes running the workflow engine (its observer, Run and
// reconciler), SIGKILLed or SIGSTOPped every 1-3 s, the server
// crash-restarted once (AMQP's broker only in scripts/chaos). Afterwards
// every chord must be done with every step done, every member's job there
// with its value, its callback's runs each given exactly the 10 results in
// order, after every member succeeded, rerun only after a kill, a stop or
// the restart took its lease (or, counted apart, load), no two runs of one
// delivery, and no workflow left open nor job counted.
//
// The package has no code outside its tests. `go test ./internal/chaos`
// (as CI runs it) uses 1,000 jobs and 100 chords per backend;
// scripts/chaos runs 20,000 and 1,000 (CONVEYOR_CHAOS_JOBS,
// CONVEYOR_CHAOS_CHORDS).
package chaos
