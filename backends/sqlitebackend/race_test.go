//go:build race

package sqlitebackend_test

// fairBacklog is the conformance suite's Suite.FairBacklog: under the race
// detector, 50,000 inserts into SQLite (pure Go) took 4.5 minutes on a
// loaded CI machine, so the fairness case enqueues 5,000 there; without
// it, the 50,000.
const fairBacklog = 5_000
