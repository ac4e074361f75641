// Package membackend is an in-process backend: jobs live in memory, guarded
// by one mutex, with heaps for due, scheduled and leased jobs so reserve
// stays O(log n) at any depth.
//
// Use it in unit tests and single-process apps that can afford to lose
// queued jobs on exit. It implements every optional capability except
// transactional enqueue and batch completion (a completion costs it one
// lock, so batching would only add a hand-off). For tests that want a task to run at enqueue, see
// worker.Inline.
package membackend
