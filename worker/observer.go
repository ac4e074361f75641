package worker

import (
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Observer hears what a worker does with each job, for metrics. Its
// methods must be quick and safe for concurrent use: they run on the
// job's goroutine.
type Observer interface {
	// Started reports a delivery of rec about to run.
	Started(rec *job.Record)
	// Finished reports what became of it after its handler ran for ran.
	Finished(rec *job.Record, o Outcome, ran time.Duration)
}

// Outcome is what a worker made of one delivery.
type Outcome string

// The outcomes.
const (
	Succeeded    Outcome = "succeeded"     // completed
	Retried      Outcome = "retried"       // failed an attempt; will run again
	DeadLettered Outcome = "dead_lettered" // failed for good, or cannot run
	Postponed    Outcome = "postponed"     // an open breaker or a snooze: no attempt used
	Cancelled    Outcome = "cancelled"     // someone asked it to stop
	Released     Outcome = "released"      // the worker shut down: another will run it
	LeaseLost    Outcome = "lease_lost"    // its lease expired, while it ran or before its outcome was recorded: another worker owns it, this outcome is discarded
	Unrecorded   Outcome = "unrecorded"    // the backend failed to record the outcome: it runs again after its lease
	UnknownTask  Outcome = "unknown_task"  // released: no handler on this worker, another may have one (Config.UnknownTaskDelay); no attempt used
)
