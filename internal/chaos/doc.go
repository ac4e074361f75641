// Package chaos holds the chaos test: for each backend, worker processes
// run jobs that record every execution in an append-only ledger while the
// test SIGKILLs workers, SIGSTOPs one for longer than its lease and
// restarts the server; then it counts every job. The package has no code
// outside its tests.
//
// `go test ./internal/chaos` (as CI runs it) uses 2,000 jobs per backend;
// scripts/chaos runs 20,000 (CONVEYOR_CHAOS_JOBS).
package chaos
