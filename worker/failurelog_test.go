package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

// Every failed attempt is logged by default, as a warning naming the task,
// the job, the attempt and the error, and what comes next.
func TestFailedAttemptsAreLogged(t *testing.T) {
	var lg logs
	var calls atomic.Int32
	task := queue.NewTask[Args, queue.None]("logged.flaky", queue.TaskOptions{Retry: fastRetry})
	e := newEnv(t, worker.Config{ID: "w-log", Logger: lg.logger()})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) {
		if n := calls.Add(1); n < 3 {
			return queue.None{}, fmt.Errorf("try %d: smtp refused", n)
		}
		return queue.None{}, nil
	})
	e.start()
	h := enqueue(t, e.c, task, Args{})
	e.wait(h.ID)
	got := lg.lines(t, "job attempt failed")
	if len(got) != 2 {
		t.Fatalf("%d failure lines, want 2: %v", len(got), got)
	}
	for i, l := range got {
		want := map[string]any{"level": "WARN", "task": "logged.flaky", "job": h.ID, "worker": "w-log",
			"attempt": float64(i + 1), "err": fmt.Sprintf("try %d: smtp refused", i+1), "outcome": "retried"}
		for k, v := range want {
			if l[k] != v {
				t.Fatalf("line %d: %s = %v, want %v (%v)", i, k, l[k], v, l)
			}
		}
		if l["retry_in"] == nil {
			t.Fatalf("line %d does not say when it runs again: %v", i, l)
		}
	}
}

// An app that reports failures its own way turns the warnings off; a job
// dead-lettered is still logged, at Info.
func TestQuietFailedAttempts(t *testing.T) {
	var lg logs
	task := queue.NewTask[Args, queue.None]("logged.quiet", queue.TaskOptions{Retry: fastRetry})
	e := newEnv(t, worker.Config{Logger: lg.logger(), QuietFailedAttempts: true})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, errors.New("down") })
	e.start()
	h := enqueue(t, e.c, task, Args{})
	e.wait(h.ID)
	if got := lg.lines(t, "job attempt failed"); len(got) != 0 {
		t.Fatalf("failure lines with QuietFailedAttempts: %v", got)
	}
	dead := lg.lines(t, "job dead-lettered")
	if len(dead) != 1 || dead[0]["level"] != "INFO" || dead[0]["job"] != h.ID || dead[0]["attempt"] != float64(3) || dead[0]["reason"] != "retries exhausted" {
		t.Fatalf("dead-letter lines %v", dead)
	}
}

// A permanent error is a failed attempt too: logged, and dead-lettered.
func TestPermanentFailureIsLogged(t *testing.T) {
	var lg logs
	task := queue.NewTask[Args, queue.None]("logged.permanent", queue.TaskOptions{})
	e := newEnv(t, worker.Config{Logger: lg.logger()})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) {
		return queue.None{}, retry.Permanent(errors.New("card declined"))
	})
	e.start()
	h := enqueue(t, e.c, task, Args{})
	e.wait(h.ID)
	got := lg.lines(t, "job attempt failed")
	if len(got) != 1 || got[0]["outcome"] != "dead_lettered" || got[0]["job"] != h.ID || got[0]["attempt"] != float64(1) {
		t.Fatalf("failure lines %v", got)
	}
}
