package backendtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// RunCapabilities checks every optional interface the backend implements and
// skips the ones it does not, by type assertion.
func (s Suite) RunCapabilities(t *testing.T) {
	probe := s.New(t, backends.SystemClock{})
	_ = probe.Close()
	caps := []struct {
		name string
		has  bool
		fn   func(*harness)
	}{
		{"Inspector", is[backends.Inspector](probe), testInspector},
		{"Admin", is[backends.Admin](probe) && is[backends.Inspector](probe), testAdmin},
		{"Pauser", is[backends.Pauser](probe), testPauser},
		{"Notifier", is[backends.Notifier](probe), testNotifier},
		{"BatchCompleter", is[backends.BatchCompleter](probe), testBatchCompleter},
		{"KVStore", is[backends.KVStore](probe), testKV},
		{"KVBatcher", is[backends.KVBatcher](probe), testKVBatch},
		{"TxEnqueuer", is[backends.TxEnqueuer](probe), testTxEnqueuer},
		{"Debouncer", is[backends.Debouncer](probe), testDebounce},
		{"Limits", hasLimits(probe), testLimits},
		{"Annotator", is[backends.Annotator](probe), testAnnotator},
		{"AnnotateKV", is[backends.KVStore](probe), testAnnotateKV},
		{"FairReserver", is[backends.FairReserver](probe), testFair},
		{"SlotReserver", is[backends.SlotReserver](probe), testSlots},
		{"ExhaustiveReserver", backends.Exhaustive(probe), testExhaustive},
	}
	for _, c := range caps {
		t.Run(c.name, func(t *testing.T) {
			if !c.has {
				t.Skipf("backend %T does not implement %s", probe, c.name)
			}
			c.fn(newHarness(t, s))
		})
	}
}

func is[I any](b backends.Backend) bool {
	_, ok := b.(I)
	return ok
}

func testInspector(h *harness) {
	in := h.b.(backends.Inspector)
	q := h.queue("inspect")
	// One job in every state.
	later := h.ins(q, "scheduled")
	later.RunAt = h.now().Add(time.Hour)
	h.enqueue(h.ins(q, "done"), h.ins(q, "dead"), h.ins(q, "retrying"), h.ins(q, "running"), h.ins(q, "cancelled"), h.ins(q, "pending"), later)
	recs := h.reserve(q, 5, longLease)
	if len(recs) != 5 {
		h.t.Fatalf("reserved %d jobs, want 5", len(recs))
	}
	h.complete(recs[0], []byte("r"))
	must(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: recs[1].Lease, Error: job.AttemptError{Error: "x"}}))
	must(h.t, h.b.Retry(h.ctx, backends.RetryParams{Lease: recs[2].Lease, At: h.now().Add(time.Hour), Error: &job.AttemptError{Error: "y"}}))
	lease := recs[4].Lease
	_, err := h.b.Cancel(h.ctx, backends.CancelParams{JobID: recs[4].ID, Lease: &lease})
	must(h.t, err)

	stats, err := in.QueueStats(h.ctx, backends.QueueStatsParams{Queue: q})
	must(h.t, err)
	if len(stats) != 1 || stats[0].Queue != q {
		h.t.Fatalf("QueueStats(%s) = %+v", q, stats)
	}
	for _, st := range job.States() {
		if stats[0].Counts[st] != 1 {
			h.t.Fatalf("counts %v: want 1 job in every state", stats[0].Counts)
		}
	}
	if d := stats[0].Depth(); d != 4 {
		h.t.Fatalf("depth %d, want 4 unfinished", d)
	}

	r, err := in.GetJob(h.ctx, backends.GetJobParams{ID: recs[3].ID})
	must(h.t, err)
	if r.State != job.Running || string(r.Payload) != "running" || r.Lease.ExpiresAt.IsZero() {
		h.t.Fatalf("GetJob(running) = %+v", r)
	}
	_, err = in.GetJob(h.ctx, backends.GetJobParams{ID: h.newID()})
	expectErr(h.t, err, job.ErrNotFound)
	_, err = in.ListJobs(h.ctx, backends.ListJobsParams{Queue: q, State: "bogus"})
	expectErr(h.t, err, job.ErrInvalid)

	// Paging: 5 pending jobs, 2 a page, oldest first, no repeats.
	pq := h.queue("pages")
	var want []string
	for i := range 5 {
		ins := h.ins(pq, string(rune('a'+i)))
		want = append(want, ins.ID)
		h.enqueue(ins)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			h.t.Fatal("paging does not end")
		}
		page, err := in.ListJobs(h.ctx, backends.ListJobsParams{Queue: pq, State: job.Pending, Limit: 2, Cursor: cursor})
		must(h.t, err)
		if len(page.Jobs) > 2 {
			h.t.Fatalf("page of %d jobs, limit 2", len(page.Jobs))
		}
		for _, r := range page.Jobs {
			got = append(got, r.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if !slices.Equal(got, want) {
		h.t.Fatalf("listed %v, want %v", got, want)
	}
	testListEveryQueue(h, in)
}

// testListEveryQueue pages through the pending jobs of every queue (Queue
// ""), which hold other subtests' jobs too: this one's, enqueued into two
// queues in turn, come once each, each queue's oldest first.
func testListEveryQueue(h *harness, in backends.Inspector) {
	qa, qb := h.queue("every-a"), h.queue("every-b")
	want, got := map[string][]string{}, map[string][]string{}
	for i := range 6 { // one at a time, a tick apart: each is older than the next
		in := h.ins([]string{qa, qb}[i%2], "every")
		want[in.Queue] = append(want[in.Queue], in.ID)
		h.enqueue(in)
		h.pass(time.Millisecond)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			h.t.Fatal("paging every queue does not end")
		}
		page, err := in.ListJobs(h.ctx, backends.ListJobsParams{State: job.Pending, Limit: 3, Cursor: cursor})
		must(h.t, err)
		if len(page.Jobs) > 3 {
			h.t.Fatalf("page of %d jobs, limit 3", len(page.Jobs))
		}
		for _, r := range page.Jobs {
			if seen[r.ID] {
				h.t.Fatalf("job %s listed twice", r.ID)
			}
			seen[r.ID] = true
			if r.State != job.Pending {
				h.t.Fatalf("listing pending gave %s in state %s", r.ID, r.State)
			}
			if r.Queue == qa || r.Queue == qb {
				got[r.Queue] = append(got[r.Queue], r.ID)
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	for _, q := range []string{qa, qb} {
		if !slices.Equal(got[q], want[q]) {
			h.t.Fatalf("every queue's pending listed %s's jobs as %v, want %v (oldest first)", q, got[q], want[q])
		}
	}
}

func testAdmin(h *harness) {
	ad := h.b.(backends.Admin)
	q := h.queue("admin")
	h.enqueue(h.ins(q, "a"), h.ins(q, "b"), h.ins(q, "c"))
	recs := h.reserve(q, 3, longLease)
	for _, r := range recs {
		must(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: r.Lease, Error: job.AttemptError{Error: "boom"}}))
	}
	// Replay one with an edited payload.
	n, err := ad.ReplayJobs(h.ctx, backends.ReplayJobsParams{IDs: []string{recs[0].ID}, Payloads: map[string][]byte{recs[0].ID: []byte("fixed")}})
	if err != nil || n != 1 {
		h.t.Fatalf("ReplayJobs = %d, %v", n, err)
	}
	r := h.reserveOne(q, longLease)
	if r.ID != recs[0].ID || string(r.Payload) != "fixed" || r.Deliveries != 1 || r.Attempts() != 1 {
		h.t.Fatalf("replayed job: id %s payload %q deliveries %d attempts %d", r.ID, r.Payload, r.Deliveries, r.Attempts())
	}
	h.complete(r, nil)
	// Replay all of the queue's dead letters.
	if n, err := ad.ReplayJobs(h.ctx, backends.ReplayJobsParams{Queue: q}); err != nil || n != 2 {
		h.t.Fatalf("ReplayJobs(queue) = %d, %v", n, err)
	}
	if got := h.reserve(q, 10, longLease); len(got) != 2 {
		h.t.Fatalf("after replaying all, reserved %d, want 2", len(got))
	}
	// Running jobs are neither deleted nor purged.
	if n, err := ad.DeleteJobs(h.ctx, backends.DeleteJobsParams{IDs: []string{recs[1].ID}}); err != nil || n != 0 {
		h.t.Fatalf("DeleteJobs(running) = %d, %v", n, err)
	}
	n, err = ad.PurgeQueue(h.ctx, backends.PurgeQueueParams{Queue: q, States: []job.State{job.Running, job.Done}})
	if err != nil || n != 1 {
		h.t.Fatalf("PurgeQueue(done) = %d, %v; want the 1 done job", n, err)
	}
	in := h.b.(backends.Inspector)
	if _, err := in.GetJob(h.ctx, backends.GetJobParams{ID: recs[0].ID}); err == nil {
		h.t.Fatal("purged job still there")
	}
	h.expectState(recs[1].ID, job.Running)
	// Delete a waiting job.
	w := h.ins(q, "w")
	h.enqueue(w)
	if n, err := ad.DeleteJobs(h.ctx, backends.DeleteJobsParams{IDs: []string{w.ID, h.newID()}}); err != nil || n != 1 {
		h.t.Fatalf("DeleteJobs = %d, %v", n, err)
	}
	h.expectEmpty(q)
}

func testPauser(h *harness) {
	p := h.b.(backends.Pauser)
	q := h.queue("pause")
	h.enqueue(h.ins(q, "x"))
	must(h.t, p.PauseQueue(h.ctx, backends.PauseQueueParams{Queue: q}))
	h.expectEmpty(q)
	if in, ok := h.b.(backends.Inspector); ok {
		st, err := in.QueueStats(h.ctx, backends.QueueStatsParams{Queue: q})
		must(h.t, err)
		if len(st) != 1 || !st[0].Paused {
			h.t.Fatalf("QueueStats of a paused queue = %+v", st)
		}
	}
	// Other queues are not affected.
	other := h.queue("other")
	h.enqueue(h.ins(other, "y"))
	h.complete(h.reserveOne(other, longLease), nil)
	must(h.t, p.ResumeQueue(h.ctx, backends.PauseQueueParams{Queue: q}))
	h.complete(h.reserveOne(q, longLease), nil)
}

func testNotifier(h *harness) {
	n := h.b.(backends.Notifier)
	q := h.queue("notify")
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	events, err := n.Listen(ctx, backends.ListenParams{Queues: []string{q}})
	must(h.t, err)
	ins := h.ins(q, "x")
	h.enqueue(ins)
	await(h.t, events, func(ev backends.Event) bool { return ev.Kind == backends.JobsAvailable && ev.Queue == q })
	r := h.reserveOne(q, longLease)
	h.complete(r, nil)
	await(h.t, events, func(ev backends.Event) bool { return ev.Kind == backends.JobFinished && ev.JobID == ins.ID })
	cancel()
	for range events { // the channel closes once ctx ends
	}
}

func testBatchCompleter(h *harness) {
	bc := h.b.(backends.BatchCompleter)
	q := h.queue("batch-complete")
	h.enqueue(h.ins(q, "a"), h.ins(q, "b"), h.ins(q, "c"))
	recs := h.reserve(q, 3, longLease)
	if len(recs) != 3 {
		h.t.Fatalf("reserved %d, want 3", len(recs))
	}
	stale := recs[1].Lease
	stale.Token += "-stale"
	errs, err := bc.CompleteMany(h.ctx, backends.CompleteManyParams{Jobs: []backends.CompleteParams{
		{Lease: recs[0].Lease, Result: []byte("ra")}, {Lease: stale}, {Lease: recs[2].Lease, Result: []byte("rc")},
	}})
	if err != nil || len(errs) != 3 {
		h.t.Fatalf("CompleteMany = %v, %v", errs, err)
	}
	if errs[0] != nil || errs[2] != nil {
		h.t.Fatalf("held leases failed: %v", errs)
	}
	expectErr(h.t, errs[1], job.ErrLeaseLost)
	if r := h.expectState(recs[0].ID, job.Done); r != nil && string(r.Result) != "ra" {
		h.t.Fatalf("result %q", r.Result)
	}
	h.expectState(recs[1].ID, job.Running)
	h.expectState(recs[2].ID, job.Done)
	h.complete(recs[1], nil)
}

func await(t *testing.T, events <-chan backends.Event, match func(backends.Event) bool) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event channel closed early")
			}
			if match(ev) {
				return
			}
		case <-timeout:
			t.Fatalf("no matching event within %s", waitLimit)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
