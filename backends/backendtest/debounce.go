package backendtest

import (
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// testDebounce checks backends.Debouncer on the suite's stepped clock: a
// burst of one key makes one job with the last payload, pushed back by
// each enqueue up to its max wait; a running job does not count; keys
// and queues are apart; concurrent enqueues of a key make one job.
func testDebounce(h *harness) {
	d := h.b.(backends.Debouncer)
	q := h.queue("deb")
	const window, maxWait = 10 * time.Second, 30 * time.Second
	debounce := func(q, key, payload string) backends.EnqueueResult {
		h.t.Helper()
		ins := h.ins(q, payload)
		ins.Headers = map[string]string{"which": payload}
		res, err := d.Debounce(h.ctx, backends.DebounceParams{Job: ins, Key: key, Window: window, MaxWait: maxWait})
		if err != nil {
			h.t.Fatalf("Debounce(%s, %s): %v", key, payload, err)
		}
		return res
	}

	first := debounce(q, "k", "a")
	if first.Duplicate || first.State != job.Scheduled {
		h.t.Fatalf("first debounce = %+v, want a new scheduled job", first)
	}
	// Each enqueue 8s after the one before pushes the run back by the
	// window, until the max wait (30s after the first) caps it.
	for _, payload := range []string{"b", "c", "d"} {
		h.pass(8 * time.Second)
		if res := debounce(q, "k", payload); res.ID != first.ID || !res.Duplicate {
			h.t.Fatalf("debounce %s = %+v, want job %s replaced", payload, res, first.ID)
		}
		h.expectEmpty(q)
	}
	other := debounce(q, "other", "x") // another key: a job of its own, due at 34s
	if other.Duplicate || other.ID == first.ID {
		h.t.Fatalf("another key's debounce = %+v, want a new job", other)
	}
	h.pass(5*time.Second + h.s.TimePrecision) // 29s: "d" would run at 34s without the cap
	h.expectEmpty(q)
	h.pass(time.Second) // 30s
	r := h.reserveOne(q, longLease)
	if r.ID != first.ID || string(r.Payload) != "d" || r.Headers["which"] != "d" {
		h.t.Fatalf("reserved %s with payload %q headers %v, want %s with the last enqueue's", r.ID, r.Payload, r.Headers, first.ID)
	}
	h.expectEmpty(q)

	// The key's job is running: the next enqueue makes a new job.
	next := debounce(q, "k", "e")
	if next.Duplicate || next.ID == first.ID || next.State != job.Scheduled {
		h.t.Fatalf("debounce while the key's job runs = %+v, want a new scheduled job", next)
	}
	h.complete(r, nil)
	h.pass(window)
	got := map[string]string{}
	for _, r := range h.reserve(q, 10, longLease) {
		got[r.ID] = string(r.Payload)
	}
	if len(got) != 2 || got[next.ID] != "e" || got[other.ID] != "x" {
		h.t.Fatalf("reserved %v, want %s (e) and %s (x)", got, next.ID, other.ID)
	}

	// Another queue with the same key is apart; a due job not yet
	// reserved is still waiting and takes the last payload.
	q2 := h.queue("deb2")
	a := debounce(q2, "k", "p1")
	h.pass(maxWait + time.Second)
	if b := debounce(q2, "k", "p2"); b.ID != a.ID || !b.Duplicate || b.State != job.Pending {
		h.t.Fatalf("debounce of a due job past its max wait = %+v, want %s replaced and due", b, a.ID)
	}
	if r := h.reserveOne(q2, longLease); r.ID != a.ID || string(r.Payload) != "p2" {
		h.t.Fatalf("reserved %s %q, want %s p2", r.ID, r.Payload, a.ID)
	}

	// Concurrent enqueues of one key make one job.
	q3 := h.queue("deb3")
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Go(func() { ids[i] = debounce(q3, "k", "c").ID })
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			h.t.Fatalf("concurrent debounces named jobs %v, want one", ids)
		}
	}
	h.pass(window)
	if n := len(h.reserve(q3, 10, longLease)); n != 1 {
		h.t.Fatalf("concurrent debounces of one key made %d jobs, want 1", n)
	}

	_, err := d.Debounce(h.ctx, backends.DebounceParams{Job: h.ins(q, "bad"), Key: "k"})
	expectErr(h.t, err, job.ErrInvalid)
	_, err = d.Debounce(h.ctx, backends.DebounceParams{Job: h.ins(q, "bad"), Window: time.Second})
	expectErr(h.t, err, job.ErrInvalid)
}
