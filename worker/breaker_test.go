package worker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

func TestBreakerPostponesInsteadOfBurningRetries(t *testing.T) {
	var healthy atomic.Bool
	var calls atomic.Int32
	task := queue.NewTask[Args, queue.None]("charge", queue.TaskOptions{
		Breaker: "payments",
		Retry:   &retry.Policy{Stop: retry.StopAfterAttempt(10), Wait: retry.WaitFixed(10 * time.Millisecond)},
	})
	e := newEnv(t, worker.Config{Concurrency: 1, Breakers: map[string]worker.BreakerConfig{
		"payments": {ConsecutiveFailures: 3, OpenFor: time.Second},
	}})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) {
		calls.Add(1)
		if !healthy.Load() {
			return queue.None{}, errors.New("payments API: 503")
		}
		return queue.None{}, nil
	})
	var reqs []queue.Request
	for i := range 6 {
		reqs = append(reqs, task.Request(Args{N: i}, nil))
	}
	refs, err := e.c.EnqueueMany(context.Background(), reqs...)
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	deadline := time.Now().Add(10 * time.Second)
	for !breakerIs(e.w, "payments", "open") {
		if time.Now().After(deadline) {
			t.Fatalf("breaker never opened: %+v", e.w.Breakers())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := e.w.Breakers()[0]; !st.OpenUntil.After(time.Now()) {
		t.Fatalf("open breaker reports OpenUntil %v", st.OpenUntil)
	}
	healthy.Store(true) // the downstream recovers; the half-open trial succeeds
	attempts := 0
	for _, r := range refs {
		rec := e.wait(r.ID)
		if rec.State != job.Done {
			t.Fatalf("job %s ended %s", r.ID, rec.State)
		}
		attempts += rec.Attempts()
	}
	if attempts != 3 || calls.Load() != 9 {
		t.Fatalf("%d failed attempts, %d handler calls; want 3 (the ones that tripped it) and 9", attempts, calls.Load())
	}
	if !breakerIs(e.w, "payments", "closed") {
		t.Fatalf("breaker after recovery: %+v", e.w.Breakers())
	}
}

func breakerIs(w *worker.Worker, name, state string) bool {
	for _, b := range w.Breakers() {
		if b.Name == name {
			return b.State == state
		}
	}
	return false
}
