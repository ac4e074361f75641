package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Run runs the whole conformance suite against the backends s.New returns.
func (s Suite) Run(t *testing.T) {
	t.Run("Core", s.RunCore)
	t.Run("Capabilities", s.RunCapabilities)
}

// RunCore checks the contracts of backends.Backend.
func (s Suite) RunCore(t *testing.T) { s.runCore(t, true) }

// RunStateless checks the core contracts that do not need the backend to
// find a job by ID: all of RunCore but cancel by ID, unique keys and
// duplicate IDs, and the exact all-or-nothing depth bound. It is what a
// message broker without a job-state store must pass (see amqpbackend);
// such a backend answers those calls with job.ErrUnsupported or, for the
// bound, with its broker's own.
func (s Suite) RunStateless(t *testing.T) { s.runCore(t, false) }

func (s Suite) runCore(t *testing.T, lookups bool) {
	tests := []struct {
		name    string
		fn      func(*harness)
		lookups bool // needs jobs found by ID, or counted exactly
	}{
		{"RoundTrip", testRoundTrip, false},
		{"InvalidInput", testInvalidInput, false},
		{"BatchKeepsOrder", testBatchKeepsOrder, false},
		{"PriorityOrder", testPriorityOrder, false},
		{"RunAtOrder", testRunAtOrder, false},
		{"LeaseExpiryRedelivers", testLeaseExpiry, false},
		{"ExtendKeepsLease", testExtendKeepsLease, false},
		{"PoisonMessage", testPoisonMessage, false},
		{"RetryAt", testRetryAt, false},
		{"SnoozeGivesBackDelivery", testSnooze, false},
		{"DeadLetter", testDeadLetter, false},
		{"Cancel", testCancel, true},
		{"Uniqueness", testUniqueness, true},
		{"ResentBatch", testResentBatch, true},
		{"DepthBoundUnderConcurrency", testDepthBound, true},
		{"Results", testResults, false},
		{"ConcurrentWorkersRunEachJobOnce", testConcurrentWorkers, false},
		{"WholeRecord", testWholeRecord, false},
		{"AfterClose", testAfterClose, false},
		{"CancelledContext", testCancelledContext, false},
	}
	for _, tc := range tests {
		if tc.lookups && !lookups {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(newHarness(t, s)) })
	}
}

func testRoundTrip(h *harness) {
	q := h.queue("rt")
	ins := &backends.JobInsert{
		ID: h.newID(), Queue: q, Task: "bt.roundtrip", Payload: []byte(`{"n":1}`),
		Headers: map[string]string{"traceparent": "00-abc-def-01"}, Priority: 3,
		MaxDeliveries: 7, Timeout: 9 * time.Second, RetryPolicy: "fast",
	}
	// In a batch with a job due later, so that a backend's batch path (a
	// bulk load, say) is the one that must keep every field.
	later := &backends.JobInsert{ID: h.newID(), Queue: q, Task: "bt.roundtrip", RunAt: h.now().Add(time.Hour)}
	res := h.enqueue(ins, later)
	if res[0].ID != ins.ID || res[0].Duplicate || res[0].State != job.Pending {
		h.t.Fatalf("enqueue result = %+v", res[0])
	}
	if res[1].ID != later.ID || res[1].Duplicate || res[1].State != job.Scheduled {
		h.t.Fatalf("enqueue result of the job due later = %+v, want scheduled", res[1])
	}
	before := h.now()
	r := h.reserveOne(q, longLease)
	switch {
	case r.ID != ins.ID, r.Queue != q, r.Task != ins.Task, !bytes.Equal(r.Payload, ins.Payload):
		h.t.Fatalf("reserved %+v, want the inserted job", r)
	case r.Headers["traceparent"] != "00-abc-def-01", r.Priority != 3, r.MaxDeliveries != 7,
		r.Timeout != 9*time.Second, r.RetryPolicy != "fast":
		h.t.Fatalf("reserved job lost fields: %+v", r)
	case r.State != job.Running, r.Deliveries != 1, r.Lease.Token == "", r.Lease.JobID != r.ID:
		h.t.Fatalf("reserved job not leased: state %s deliveries %d lease %+v", r.State, r.Deliveries, r.Lease)
	case r.Lease.ExpiresAt.Before(before.Add(longLease - 5*time.Second)):
		h.t.Fatalf("lease expires at %v, want about %v from now", r.Lease.ExpiresAt, longLease)
	}
	h.expectEmpty(q)
	h.complete(r, nil)
	h.expectState(r.ID, job.Done)
	expectErr(h.t, h.b.Complete(h.ctx, backends.CompleteParams{Lease: r.Lease}), job.ErrLeaseLost)
}

func testInvalidInput(h *harness) {
	q := h.queue("inv")
	bad := []*backends.JobInsert{
		{ID: h.newID(), Task: "t"},
		{ID: h.newID(), Queue: q},
		{Queue: q, Task: "t"},
		{ID: h.newID() + "\xff", Queue: q, Task: "t"}, // not UTF-8
	}
	for _, ins := range bad {
		_, err := h.b.Enqueue(h.ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{h.ins(q, "good"), ins}})
		expectErr(h.t, err, job.ErrInvalid)
	}
	h.expectEmpty(q) // the good job in each bad batch was not inserted
	_, err := h.b.Reserve(h.ctx, backends.ReserveParams{Queue: q, Limit: 0, Lease: time.Second})
	expectErr(h.t, err, job.ErrInvalid)
	if res, err := h.b.Enqueue(h.ctx, backends.EnqueueParams{}); err != nil || len(res) != 0 {
		h.t.Fatalf("empty batch: %v, %v", res, err)
	}
}

func testBatchKeepsOrder(h *harness) {
	q := h.queue("fifo")
	var batch []*backends.JobInsert
	for i := range 20 {
		batch = append(batch, h.ins(q, fmt.Sprint(i)))
	}
	res := h.enqueue(batch...)
	for i, r := range res {
		if r.ID != batch[i].ID {
			h.t.Fatalf("result %d has ID %s, want %s", i, r.ID, batch[i].ID)
		}
	}
	var got []string
	for len(got) < 20 {
		recs := h.reserve(q, 7, longLease)
		if len(recs) == 0 {
			h.t.Fatalf("only %d of 20 jobs reserved", len(got))
		}
		for _, r := range recs {
			got = append(got, string(r.Payload))
		}
	}
	for i, p := range got {
		if p != fmt.Sprint(i) {
			h.t.Fatalf("reserve order %v, want enqueue order", got)
		}
	}
}

func testPriorityOrder(h *harness) {
	q := h.queue("prio")
	mk := func(p string, prio int) *backends.JobInsert {
		ins := h.ins(q, p)
		ins.Priority = prio
		return ins
	}
	h.enqueue(mk("low-1", -1), mk("mid-1", 0), mk("high-1", 5))
	h.enqueue(mk("high-2", 5), mk("mid-2", 0))
	want := []string{"high-1", "high-2", "mid-1", "mid-2", "low-1"}
	for _, w := range want {
		if r := h.reserveOne(q, longLease); string(r.Payload) != w {
			h.t.Fatalf("reserved %s, want %s (order %v)", r.Payload, w, want)
		}
	}
}

func testRunAtOrder(h *harness) {
	q := h.queue("runat")
	now := h.now()
	at := func(p string, d time.Duration) *backends.JobInsert {
		ins := h.ins(q, p)
		ins.RunAt = now.Add(d)
		return ins
	}
	res := h.enqueue(at("future", time.Hour), at("recent", -time.Second), at("older", -time.Minute))
	if res[0].State != job.Scheduled || res[1].State != job.Pending {
		h.t.Fatalf("states %s, %s: want scheduled, pending", res[0].State, res[1].State)
	}
	for _, w := range []string{"older", "recent"} {
		if r := h.reserveOne(q, longLease); string(r.Payload) != w {
			h.t.Fatalf("reserved %s, want %s", r.Payload, w)
		}
	}
	h.expectEmpty(q) // the future job is not due
	h.expectState(res[0].ID, job.Scheduled)
}

func testLeaseExpiry(h *harness) {
	q := h.queue("lease")
	h.enqueue(h.ins(q, "x"))
	first := h.reserveOne(q, shortLease)
	h.expectEmpty(q)
	// The worker "crashes": no extend, no complete.
	h.pass(shortLease)
	second := h.eventuallyReserve(q, longLease)
	if second.ID != first.ID || second.Deliveries != 2 || second.Lease.Token == first.Lease.Token {
		h.t.Fatalf("redelivered %s deliveries %d token %q; want %s, 2, a new token", second.ID, second.Deliveries, second.Lease.Token, first.ID)
	}
	// The crashed worker comes back: every lease operation must fail.
	expectErr(h.t, h.b.Complete(h.ctx, backends.CompleteParams{Lease: first.Lease}), job.ErrLeaseLost)
	expectErr(h.t, h.b.Retry(h.ctx, backends.RetryParams{Lease: first.Lease, At: h.now()}), job.ErrLeaseLost)
	expectErr(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: first.Lease}), job.ErrLeaseLost)
	ext, err := h.b.Extend(h.ctx, backends.ExtendParams{Leases: []job.Lease{first.Lease, second.Lease}, Lease: longLease})
	if err != nil || len(ext) != 2 || !ext[0].Lost || ext[1].Lost || ext[1].JobID != second.ID {
		h.t.Fatalf("Extend(stale, current) = %+v, %v; want lost, kept", ext, err)
	}
	h.complete(second, nil)
}

func testExtendKeepsLease(h *harness) {
	q := h.queue("extend")
	h.enqueue(h.ins(q, "x"))
	r := h.reserveOne(q, shortLease)
	// Keep extending for several lease lengths; nobody else may get the job.
	for range 20 {
		h.pass(shortLease / 5)
		ext, err := h.b.Extend(h.ctx, backends.ExtendParams{Leases: []job.Lease{r.Lease}, Lease: shortLease})
		if err != nil || len(ext) != 1 || ext[0].Lost {
			h.t.Fatalf("Extend = %+v, %v", ext, err)
		}
		if !ext[0].ExpiresAt.After(h.now()) {
			h.t.Fatalf("extended lease expires at %v, in the past", ext[0].ExpiresAt)
		}
		h.expectEmpty(q)
	}
	h.complete(r, nil)
}

func testPoisonMessage(h *harness) {
	q := h.queue("poison")
	ins := h.ins(q, "crashes every worker")
	ins.MaxDeliveries = 2
	h.enqueue(ins)
	h.reserveOne(q, shortLease) // delivery 1: the worker dies
	h.pass(shortLease)
	if r := h.eventuallyReserve(q, shortLease); r.Deliveries != 2 {
		h.t.Fatalf("second delivery has Deliveries %d", r.Deliveries)
	}
	// Delivery 2's worker dies too. Once its lease is over, the job must go
	// to dead letter instead of a third delivery.
	h.pass(shortLease + 100*time.Millisecond)
	h.expectEmpty(q)
	if r := h.eventuallyBuried(q, ins.ID); r != nil {
		if le := r.LastError(); le == nil || le.Error == "" {
			h.t.Fatalf("poison job dead without a reason: %+v", r.Errors)
		} else if le.Attempt != r.Attempts() || le.At.IsZero() {
			h.t.Fatalf("poison dead letter %+v: want attempt %d (the next one) and its time", *le, r.Attempts())
		}
	}
}

func testRetryAt(h *harness) {
	q := h.queue("retry")
	h.enqueue(h.ins(q, "x"))
	r := h.reserveOne(q, longLease)
	failedAt := h.now()
	err := h.b.Retry(h.ctx, backends.RetryParams{
		Lease: r.Lease, At: h.now().Add(shortLease),
		Error: &job.AttemptError{Attempt: 1, At: failedAt, Error: "downstream said no"},
	})
	if err != nil {
		h.t.Fatalf("Retry: %v", err)
	}
	h.expectState(r.ID, job.Retrying)
	h.expectEmpty(q)
	h.pass(shortLease)
	again := h.eventuallyReserve(q, longLease)
	if again.ID != r.ID || again.Deliveries != 2 || again.Attempts() != 1 || again.Errors[0].Error != "downstream said no" {
		h.t.Fatalf("retried job: deliveries %d errors %+v", again.Deliveries, again.Errors)
	}
	if d := again.Errors[0].At.Sub(failedAt); d < -time.Millisecond || d > time.Millisecond {
		h.t.Fatalf("attempt time %v, want %v", again.Errors[0].At, failedAt)
	}
	// Retry at a past time makes the job due at once.
	if err := h.b.Retry(h.ctx, backends.RetryParams{Lease: again.Lease, At: h.now().Add(-time.Second),
		Error: &job.AttemptError{Attempt: 2, At: h.now(), Error: "again"}}); err != nil {
		h.t.Fatalf("Retry: %v", err)
	}
	if third := h.reserveOne(q, longLease); third.Attempts() != 2 {
		h.t.Fatalf("third delivery has %d attempts, want 2", third.Attempts())
	}
}

func testSnooze(h *harness) {
	q := h.queue("snooze")
	ins := h.ins(q, "x")
	ins.MaxDeliveries = 1
	h.enqueue(ins)
	r := h.reserveOne(q, longLease)
	// A snooze (breaker open, graceful release) uses neither an attempt nor
	// a delivery, so even a MaxDeliveries of 1 survives it.
	for range 3 {
		if err := h.b.Retry(h.ctx, backends.RetryParams{Lease: r.Lease, At: h.now()}); err != nil {
			h.t.Fatalf("snooze: %v", err)
		}
		r = h.reserveOne(q, longLease)
		if r.Deliveries != 1 || r.Attempts() != 0 {
			h.t.Fatalf("after snooze: deliveries %d attempts %d, want 1, 0", r.Deliveries, r.Attempts())
		}
	}
	if err := h.b.Retry(h.ctx, backends.RetryParams{Lease: r.Lease, At: h.now().Add(time.Hour)}); err != nil {
		h.t.Fatalf("snooze: %v", err)
	}
	h.expectState(r.ID, job.Scheduled)
	h.expectEmpty(q)
}

func testDeadLetter(h *harness) {
	q := h.queue("dead")
	h.enqueue(h.ins(q, "x"))
	r := h.reserveOne(q, longLease)
	if err := h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: r.Lease,
		Error: job.AttemptError{Attempt: 1, At: h.now(), Error: "permanent: bad address"}}); err != nil {
		h.t.Fatalf("DeadLetter: %v", err)
	}
	h.expectEmpty(q)
	if d := h.expectState(r.ID, job.Dead); d != nil {
		if d.LastError() == nil || d.LastError().Error != "permanent: bad address" || d.FinishedAt.IsZero() {
			h.t.Fatalf("dead job: errors %+v finished %v", d.Errors, d.FinishedAt)
		}
	}
}

func testCancel(h *harness) {
	q := h.queue("cancel")
	waiting := h.ins(q, "waiting")
	later := h.ins(q, "later")
	later.RunAt = h.now().Add(time.Hour)
	running := h.ins(q, "running")
	h.enqueue(waiting, later)
	for _, id := range []string{waiting.ID, later.ID} {
		st, err := h.b.Cancel(h.ctx, backends.CancelParams{JobID: id})
		if err != nil || st != job.Cancelled {
			h.t.Fatalf("Cancel(waiting) = %s, %v", st, err)
		}
	}
	h.expectEmpty(q)
	h.expectState(later.ID, job.Cancelled)

	h.enqueue(running)
	r := h.reserveOne(q, longLease)
	st, err := h.b.Cancel(h.ctx, backends.CancelParams{JobID: r.ID})
	if err != nil || st != job.Running {
		h.t.Fatalf("Cancel(running) = %s, %v; want running (stop requested)", st, err)
	}
	ext, err := h.b.Extend(h.ctx, backends.ExtendParams{Leases: []job.Lease{r.Lease}, Lease: longLease})
	if err != nil || ext[0].Lost || !ext[0].CancelRequested {
		h.t.Fatalf("Extend after cancel = %+v, %v; want CancelRequested", ext, err)
	}
	// The worker stops the handler and finishes the job as cancelled.
	lease := r.Lease
	if st, err := h.b.Cancel(h.ctx, backends.CancelParams{JobID: r.ID, Lease: &lease}); err != nil || st != job.Cancelled {
		h.t.Fatalf("Cancel(with lease) = %s, %v", st, err)
	}
	expectErr(h.t, h.b.Complete(h.ctx, backends.CompleteParams{Lease: r.Lease}), job.ErrLeaseLost)
	_, err = h.b.Cancel(h.ctx, backends.CancelParams{JobID: r.ID})
	expectErr(h.t, err, job.ErrFinished)
	_, err = h.b.Cancel(h.ctx, backends.CancelParams{JobID: h.newID()})
	expectErr(h.t, err, job.ErrNotFound)

	// A dead job is finished too.
	h.enqueue(h.ins(q, "dies"))
	r = h.reserveOne(q, longLease)
	must(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: r.Lease, Error: job.AttemptError{Error: "x"}}))
	_, err = h.b.Cancel(h.ctx, backends.CancelParams{JobID: r.ID})
	expectErr(h.t, err, job.ErrFinished)
}

func testUniqueness(h *harness) {
	q := h.queue("uniq")
	key := "bt-" + h.ns + "-invoice-42"
	mk := func() *backends.JobInsert {
		ins := h.ins(q, "x")
		ins.UniqueKey = key
		return ins
	}
	first := mk()
	// Two in one batch, then one more: one job.
	res := h.enqueue(first, mk())
	if res[0].Duplicate || !res[1].Duplicate || res[1].ID != first.ID {
		h.t.Fatalf("batch with a repeated key = %+v", res)
	}
	if res := h.enqueue(mk()); !res[0].Duplicate || res[0].ID != first.ID || res[0].State != job.Pending {
		h.t.Fatalf("duplicate enqueue = %+v, want the existing job", res[0])
	}
	// Re-sending an insert with an existing ID (a client retrying after a
	// timeout) is a duplicate too, not a second job.
	again := h.ins(q, "x")
	again.ID = first.ID
	if res := h.enqueue(again); !res[0].Duplicate || res[0].ID != first.ID {
		h.t.Fatalf("re-sent insert = %+v, want the existing job", res[0])
	}
	r := h.reserveOne(q, longLease)
	h.expectEmpty(q)
	if res := h.enqueue(mk()); !res[0].Duplicate || res[0].State != job.Running {
		h.t.Fatalf("enqueue while running = %+v, want the running job", res[0])
	}
	h.complete(r, nil)
	// Without a window the key is free once the job finished.
	second := mk()
	second.UniqueUntil = h.now().Add(time.Hour)
	if res := h.enqueue(second); res[0].Duplicate {
		h.t.Fatalf("enqueue after finish was a duplicate of %s", res[0].ID)
	}
	r = h.reserveOne(q, longLease)
	h.complete(r, nil)
	// With a window the key is held until the window ends, finished or not.
	if res := h.enqueue(mk()); !res[0].Duplicate || res[0].ID != second.ID {
		h.t.Fatalf("enqueue inside the window = %+v, want duplicate of %s", res[0], second.ID)
	}
	// Another key is another job.
	other := h.ins(q, "y")
	other.UniqueKey = key + "-other"
	if res := h.enqueue(other); res[0].Duplicate {
		h.t.Fatal("a different key was treated as a duplicate")
	}
}

// A batch sent again after a lost reply, with jobs added, stores only the
// new ones; an ID given twice in one batch is one job. (Backends that load
// a batch in bulk without per-row conflict handling must still answer each
// job.)
func testResentBatch(h *harness) {
	q := h.queue("resent")
	first := []*backends.JobInsert{h.ins(q, "a"), h.ins(q, "b")}
	h.enqueue(first...)
	again := func(orig *backends.JobInsert) *backends.JobInsert {
		ins := h.ins(q, "again")
		ins.ID = orig.ID
		return ins
	}
	c, d := h.ins(q, "c"), h.ins(q, "d")
	res := h.enqueue(again(first[0]), c, again(first[1]), d, again(d))
	want := []struct {
		id  string
		dup bool
	}{{first[0].ID, true}, {c.ID, false}, {first[1].ID, true}, {d.ID, false}, {d.ID, true}}
	for i, w := range want {
		if res[i].ID != w.id || res[i].Duplicate != w.dup || res[i].State != job.Pending {
			h.t.Fatalf("re-sent batch: result %d = %+v, want ID %s, duplicate %v, pending", i, res[i], w.id, w.dup)
		}
	}
	var got []string
	for _, r := range h.reserve(q, 10, longLease) {
		got = append(got, string(r.Payload))
	}
	if !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		h.t.Fatalf("jobs stored after the re-sent batch: %q, want a b c d", got)
	}
}

func testDepthBound(h *harness) {
	q := h.queue("bound")
	const bound, enqueuers, each = 10, 8, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for range enqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				ins := h.ins(q, "x")
				ins.MaxDepth = bound
				_, err := h.b.Enqueue(h.ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins}})
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, job.ErrQueueFull):
					full++
				default:
					h.t.Errorf("Enqueue: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != bound || full != enqueuers*each-bound {
		h.t.Fatalf("%d enqueued and %d refused, want %d and %d", ok, full, bound, enqueuers*each-bound)
	}
	// Finishing one job makes room for exactly one more; a batch of two
	// does not fit and inserts nothing.
	r := h.reserveOne(q, longLease)
	h.complete(r, nil)
	a, b := h.ins(q, "a"), h.ins(q, "b")
	a.MaxDepth, b.MaxDepth = bound, bound
	_, err := h.b.Enqueue(h.ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{a, b}})
	expectErr(h.t, err, job.ErrQueueFull)
	h.enqueue(a)
	got := 0
	for {
		recs := h.reserve(q, 100, longLease)
		if len(recs) == 0 {
			break
		}
		got += len(recs)
	}
	if got != bound {
		h.t.Fatalf("queue holds %d reservable jobs, want %d", got, bound)
	}
}

func testResults(h *harness) {
	q := h.queue("results")
	h.enqueue(h.ins(q, "x"))
	r := h.reserveOne(q, longLease)
	h.complete(r, []byte(`{"sum":42}`))
	if d := h.expectState(r.ID, job.Done); d != nil {
		if string(d.Result) != `{"sum":42}` || d.FinishedAt.IsZero() {
			h.t.Fatalf("done job result %q finished %v", d.Result, d.FinishedAt)
		}
	}
}

func testConcurrentWorkers(h *harness) {
	q := h.queue("swarm")
	const jobs, workers = 400, 8
	var batch []*backends.JobInsert
	for i := range jobs {
		batch = append(batch, h.ins(q, fmt.Sprint(i)))
		if len(batch) == 50 {
			h.enqueue(batch...)
			batch = nil
		}
	}
	swarm(h, workers, jobs, func() ([]*job.Record, error) {
		return h.b.Reserve(h.ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: longLease})
	})
}

// swarm runs workers goroutines that reserve and complete until reserve
// returns nothing, and checks that each of the jobs ran once, leased to
// one worker at a time.
func swarm(h *harness, workers, jobs int, reserve func() ([]*job.Record, error)) {
	var mu sync.Mutex
	held := map[string]bool{}
	done := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				recs, err := reserve()
				if err != nil {
					h.t.Errorf("reserve: %v", err)
					return
				}
				if len(recs) == 0 {
					return
				}
				for _, r := range recs {
					mu.Lock()
					if held[r.ID] {
						h.t.Errorf("job %s leased to two workers at once", r.ID)
					}
					held[r.ID] = true
					mu.Unlock()
				}
				for _, r := range recs {
					mu.Lock()
					delete(held, r.ID)
					done[r.ID]++
					mu.Unlock()
					if err := h.b.Complete(h.ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
						h.t.Errorf("Complete: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(done) != jobs {
		h.t.Fatalf("%d distinct jobs ran, want %d", len(done), jobs)
	}
	for id, n := range done {
		if n != 1 {
			h.t.Fatalf("job %s ran %d times", id, n)
		}
	}
}
