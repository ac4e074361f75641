// Package tasks are the tasks of the daemon tests' worker binary: a job
// that sleeps, one that fails, one that holds memory.
package tasks

import (
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// SleepArgs say how long a Sleep job runs.
type SleepArgs struct {
	Ms int `json:"ms"`
}

// Sleep runs for its Ms or until cancelled; it logs "job running" with the
// process's running count at start, which the tests read.
var Sleep = queue.NewTask[SleepArgs, queue.None]("test.sleep", queue.TaskOptions{})

// Fail fails every attempt, permanently: one failed attempt, a dead letter.
var Fail = queue.NewTask[struct{}, queue.None]("test.fail", queue.TaskOptions{Retry: &retry.Policy{Stop: retry.StopAfterAttempt(1)}})

// LeakArgs say how much memory a Leak job keeps for good.
type LeakArgs struct {
	MiB int `json:"mib"`
}

// Leak keeps MiB of touched memory until its process ends.
var Leak = queue.NewTask[LeakArgs, queue.None]("test.leak", queue.TaskOptions{})

// BatchesArgs say how many batches a Batches job works through.
type BatchesArgs struct {
	N int `json:"n"`
}

// Batches works through N batches with worker.Iterate, a checkpoint after
// each; it logs "batch done" with the batch's number as each one ends,
// which the tests read as the ledger of what ran.
var Batches = queue.NewTask[BatchesArgs, queue.None]("test.batches", queue.TaskOptions{})
