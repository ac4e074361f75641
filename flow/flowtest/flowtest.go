// Package flowtest holds what tests of flow control on real backends
// share: a ledger of jobs running at once per key, and the check that jobs
// a limit held back used neither an attempt nor a delivery. A test
// package, named so; production code never imports it.
package flowtest

import (
	"context"
	"sync"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Ledger counts the jobs running at once per key and the most ever.
type Ledger struct {
	mu      sync.Mutex
	running map[string]int
	most    map[string]int
}

// Enter records a job of key starting; the function it returns records
// its end.
func (l *Ledger) Enter(key string) (leave func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running == nil {
		l.running, l.most = map[string]int{}, map[string]int{}
	}
	l.running[key]++
	l.most[key] = max(l.most[key], l.running[key])
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.running[key]--
	}
}

// Most returns the most jobs that ran at once, per key.
func (l *Ledger) Most() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.most))
	for k, n := range l.most {
		out[k] = n
	}
	return out
}

// AtMost fails t if any key had more than limit jobs running at once.
func (l *Ledger) AtMost(t testing.TB, limit int) {
	t.Helper()
	for key, n := range l.Most() {
		if n > limit {
			t.Fatalf("key %s had %d jobs running at once under a limit of %d", key, n, limit)
		}
	}
}

// HeldBackUnspent fails t unless every scheduled job of queue q (the ones
// a limit postponed) has used no attempt and no delivery, and returns how
// many there are.
func HeldBackUnspent(t testing.TB, in backends.Inspector, q string) int {
	t.Helper()
	page, err := in.ListJobs(context.Background(), backends.ListJobsParams{Queue: q, State: job.Scheduled, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Jobs {
		if r.Attempts() != 0 || r.Deliveries != 0 {
			t.Fatalf("held-back job %s used %d attempts and %d deliveries", r.ID, r.Attempts(), r.Deliveries)
		}
	}
	return len(page.Jobs)
}
