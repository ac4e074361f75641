// Package flow is Conveyor's flow control across a cluster: rate limits
// (token buckets), concurrency limits per key (slot sets whose slots end
// with the job's lease) and expiry (a job not started by a time is never
// run late).
//
// Limits are held in the backend (backends.Limiter, or the fallback on
// its KVStore), never in a process, so adding worker processes never
// raises them. A task declares its limits in queue.TaskOptions and a
// worker queue in worker.QueueConfig; the worker asks a Gate before each
// delivery runs. A job held back by a limit is postponed, not failed: it
// uses no attempt and no delivery, like a job behind an open breaker.
//
// A gate counts what it does under each limit (States: slots held, tokens
// taken, jobs held back), which workers announce and worker.Limits sums
// for the dashboard, the CLI and the metrics. An Override, kept in the
// backend's KVStore, changes a limit's figures on every gate within
// OverrideRefresh: limits change at run time without a restart.
//
// The package imports only backends and job, so that both the queue
// package (which stores a job's key and expiry in its headers) and the
// worker (which enforces the limits) can use it.
package flow
