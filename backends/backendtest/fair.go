package backendtest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// fairBacklogJobs is how many jobs the noisy tenant enqueues in the
// fairness case (unless Suite.FairBacklog says otherwise) before the quiet
// one enqueues fairQuietJobs: the workload of issue 17 ("tenant A enqueues
// 50,000 no-op jobs, then tenant B enqueues 10").
const (
	fairBacklogJobs = 50_000
	fairQuietJobs   = 10
)

// testFair checks backends.FairReserver: rounds across groups, the ring
// kept across calls, priority within a group, weights, delayed and retried jobs
// in their group's turn, idle groups forgotten without losing a job or a
// busy group's place, and a quiet tenant not behind a noisy one's
// backlog.
func testFair(h *harness) {
	fr := h.b.(backends.FairReserver)
	fairRoundRobin(h, fr)
	fairAcrossCalls(h, fr)
	fairPriorityWithinGroup(h, fr)
	fairWeighted(h, fr)
	fairDelayedAndRetried(h, fr)
	fairConcurrent(h, fr)
	fairIdleGroups(h, fr)
	fairBacklog(h, fr, cmp.Or(h.s.FairBacklog, fairBacklogJobs), fairQuietJobs)
}

func (h *harness) gins(q, grp, payload string) *backends.JobInsert {
	ins := h.ins(q, payload)
	ins.Group = grp
	return ins
}

func (h *harness) reserveFair(fr backends.FairReserver, q string, limit int) []*job.Record {
	h.t.Helper()
	recs, err := fr.ReserveFair(h.ctx, backends.ReserveParams{Queue: q, Limit: limit, Lease: longLease, Worker: "bt"})
	if err != nil {
		h.t.Fatalf("ReserveFair(%s): %v", q, err)
	}
	if len(recs) > limit {
		h.t.Fatalf("ReserveFair(%s, limit %d) returned %d jobs", q, limit, len(recs))
	}
	for _, r := range recs {
		if r.State != job.Running || r.Lease.Token == "" || r.Deliveries < 1 {
			h.t.Fatalf("ReserveFair returned %s %s, deliveries %d, lease %+v: want it leased", r.ID, r.State, r.Deliveries, r.Lease)
		}
	}
	return recs
}

func payloads(recs []*job.Record) string {
	var ps []string
	for _, r := range recs {
		ps = append(ps, string(r.Payload))
	}
	return strings.Join(ps, " ")
}

// fairRoundRobin: three groups enqueued one after the other come back a
// job from each in turn, in one call; the rest of the queue is then empty.
func fairRoundRobin(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-rr")
	var batch []*backends.JobInsert
	for _, g := range []string{"a", "b", "c"} {
		for i := range 3 {
			batch = append(batch, h.gins(q, g, fmt.Sprint(g, i)))
		}
	}
	h.enqueue(batch...)
	if got := payloads(h.reserveFair(fr, q, 9)); got != "a0 b0 c0 a1 b1 c1 a2 b2 c2" {
		h.t.Fatalf("ReserveFair order %q, want a job of each group in turn", got)
	}
	if recs := h.reserveFair(fr, q, 9); len(recs) != 0 {
		h.t.Fatalf("ReserveFair after all were leased returned %q", payloads(recs))
	}
	h.expectEmpty(q)
}

// fairAcrossCalls: the ring holds across calls of one job each, and a
// group that joins later comes first (it was never served), then takes its
// turn at the back.
func fairAcrossCalls(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-ring")
	h.enqueue(h.gins(q, "a", "a0"), h.gins(q, "a", "a1"), h.gins(q, "a", "a2"), h.gins(q, "b", "b0"), h.gins(q, "b", "b1"))
	var got []*job.Record
	got = append(got, h.reserveFair(fr, q, 1)...) // a0
	got = append(got, h.reserveFair(fr, q, 1)...) // b0
	h.enqueue(h.gins(q, "c", "c0"), h.gins(q, "c", "c1"))
	for range 5 {
		got = append(got, h.reserveFair(fr, q, 1)...)
	}
	if p := payloads(got); p != "a0 b0 c0 a1 b1 c1 a2" {
		h.t.Fatalf("one job a call: order %q, want a0 b0 c0 a1 b1 c1 a2", p)
	}
}

// fairPriorityWithinGroup: within a group the order is Reserve's; across
// groups the turn comes first.
func fairPriorityWithinGroup(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-prio")
	low, high := h.gins(q, "a", "a-low"), h.gins(q, "a", "a-high")
	high.Priority = 5
	b := h.gins(q, "b", "b-low")
	h.enqueue(low, high, b)
	if got := payloads(h.reserveFair(fr, q, 3)); got != "a-high b-low a-low" {
		h.t.Fatalf("order %q, want a-high b-low a-low", got)
	}
}

// fairWeighted: a group of weight 3 takes three jobs a turn, within a
// call and across calls: a turn begun in one call goes on in the next, and
// only a finished turn sends the group to the back.
func fairWeighted(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-weighted")
	var batch []*backends.JobInsert
	for i := range 8 {
		batch = append(batch, h.gins(q, "a", fmt.Sprint("a", i)), h.gins(q, "b", fmt.Sprint("b", i)))
	}
	h.enqueue(batch...)
	reserve := func(limit int) string {
		h.t.Helper()
		recs, err := fr.ReserveFair(h.ctx, backends.ReserveParams{Queue: q, Limit: limit, Lease: longLease, Worker: "bt", Weights: map[string]int{"a": 3}})
		if err != nil {
			h.t.Fatalf("ReserveFair(%s, weights a:3): %v", q, err)
		}
		return payloads(recs)
	}
	if got := reserve(4); got != "a0 a1 a2 b0" {
		h.t.Fatalf("weights a:3, limit 4: %q, want a0 a1 a2 b0", got)
	}
	var got []string
	for range 4 {
		got = append(got, reserve(1))
	}
	if p := strings.Join(got, " "); p != "a3 a4 a5 b1" {
		h.t.Fatalf("weights a:3, one job a call: %q, want a3 a4 a5 b1", p)
	}
	// a has two jobs left, fewer than a turn: b's rounds follow.
	if got := reserve(8); got != "a6 a7 b2 b3 b4 b5 b6 b7" {
		h.t.Fatalf("weights a:3, limit 8: %q, want a6 a7 b2 b3 b4 b5 b6 b7", got)
	}
}

// fairDelayedAndRetried: a group whose only job is delayed is not in the
// rounds until it is due; a retried job comes back in its own group's
// turn, not as a new group's.
func fairDelayedAndRetried(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-later")
	later := h.gins(q, "a", "a-later")
	later.RunAt = h.now().Add(longLease / 2) // due before b's leases expire
	h.enqueue(later, h.gins(q, "b", "b0"), h.gins(q, "b", "b1"))
	if got := payloads(h.reserveFair(fr, q, 5)); got != "b0 b1" {
		h.t.Fatalf("with a's job delayed: %q, want b0 b1", got)
	}
	h.pass(longLease/2 + time.Second)
	if got := payloads(h.reserveFair(fr, q, 5)); got != "a-later" {
		h.t.Fatalf("once due: %q, want a-later", got)
	}

	q = h.queue("fair-retry")
	h.enqueue(h.gins(q, "a", "a0"), h.gins(q, "a", "a1"), h.gins(q, "b", "b0"), h.gins(q, "b", "b1"))
	first := h.reserveFair(fr, q, 1) // a0; a is now behind b
	if payloads(first) != "a0" {
		h.t.Fatalf("first: %q, want a0", payloads(first))
	}
	must(h.t, h.b.Retry(h.ctx, backends.RetryParams{Lease: first[0].Lease, At: h.now(), Error: &job.AttemptError{Attempt: 1, At: h.now(), Error: "x"}}))
	got := h.reserveFair(fr, q, 4)
	// b's turn comes first; a's two follow in a's turns, with b1 between.
	if len(got) != 4 || string(got[0].Payload) != "b0" || string(got[2].Payload) != "b1" {
		h.t.Fatalf("after a retry: %q, want b0, a job of a, b1, a job of a", payloads(got))
	}
	as := []string{string(got[1].Payload), string(got[3].Payload)}
	slices.Sort(as)
	if fmt.Sprint(as) != "[a0 a1]" {
		h.t.Fatalf("after a retry: %q, want a0 and a1 in a's turns", payloads(got))
	}
}

// fairBacklog is the workload of issue 17: group A enqueues backlog jobs,
// then group B enqueues quiet; a worker reserving 10 at a time must start
// all of B's before more than quiet of A's. It logs the bound measured:
// how many of A's were reserved before B's last.
func fairBacklog(h *harness, fr backends.FairReserver, backlog, quiet int) {
	q := h.queue("fair-backlog")
	const chunk = 1000
	began := time.Now()
	for i := 0; i < backlog; i += chunk {
		var batch []*backends.JobInsert
		for j := i; j < min(i+chunk, backlog); j++ {
			batch = append(batch, h.gins(q, "A", "A"))
		}
		h.enqueue(batch...)
	}
	var batch []*backends.JobInsert
	for range quiet {
		batch = append(batch, h.gins(q, "B", "B"))
	}
	h.enqueue(batch...)
	start := time.Now()
	aBefore, b := 0, 0
	for b < quiet {
		recs := h.reserveFair(fr, q, 10)
		if len(recs) == 0 {
			h.t.Fatalf("ReserveFair returned nothing with %d of B's %d jobs left", quiet-b, quiet)
		}
		for _, r := range recs {
			switch {
			case string(r.Payload) == "B":
				b++
			case b < quiet:
				aBefore++
			}
		}
	}
	h.t.Logf("fairness: %d of A's %d jobs were reserved before B's %d (10 a call, in %v; the enqueues took %v)",
		aBefore, backlog, quiet, time.Since(start).Round(time.Microsecond), start.Sub(began).Round(time.Millisecond))
	if aBefore > quiet {
		h.t.Fatalf("%d of A's jobs were reserved before B's %d: B waited behind A", aBefore, quiet)
	}
}

// fairConcurrent: fair reserves from many goroutines at once lease each
// job to one of them, and together drain every group.
func fairConcurrent(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-swarm")
	const groups, perGroup, workers = 5, 60, 6
	var batch []*backends.JobInsert
	for g := range groups {
		for i := range perGroup {
			batch = append(batch, h.gins(q, fmt.Sprint("g", g), fmt.Sprint(g, "-", i)))
		}
	}
	h.enqueue(batch...)
	swarm(h, workers, groups*perGroup, func() ([]*job.Record, error) {
		return fr.ReserveFair(h.ctx, backends.ReserveParams{Queue: q, Limit: 7, Lease: longLease})
	})
}

// fairIdleGroups: after the janitor ran (Tidy, where the backend has it)
// with groups idle for more than a round, which a backend may forget, a
// job enqueued into such a group, one into a group whose only job was
// running, and a dead one replayed into a third are all served.
func fairIdleGroups(h *harness, fr backends.FairReserver) {
	q := h.queue("fair-idle")
	h.enqueue(h.gins(q, "s", "s0"), h.gins(q, "x", "x0"), h.gins(q, "y", "y0"))
	first := h.reserveFair(fr, q, 3)
	if payloads(first) != "s0 x0 y0" {
		h.t.Fatalf("first round: %q, want s0 x0 y0", payloads(first))
	}
	h.enqueue(h.gins(q, "r", "r0"))
	running := h.reserveFair(fr, q, 1)
	if payloads(running) != "r0" {
		h.t.Fatalf("r's turn: %q, want r0", payloads(running))
	}
	h.complete(first[0], nil)
	h.complete(first[1], nil)
	must(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: first[2].Lease, Error: job.AttemptError{Error: "boom"}}))
	// Thirty more serving numbers than the queue has groups: s, x and y
	// are idle for a whole round.
	var fill []*backends.JobInsert
	for i := range 30 {
		fill = append(fill, h.gins(q, fmt.Sprint("f", i%3), "f"))
	}
	h.enqueue(fill...)
	for _, r := range h.reserveFair(fr, q, 30) {
		h.complete(r, nil)
	}
	if t, ok := h.b.(interface{ Tidy(context.Context) error }); ok {
		must(h.t, t.Tidy(h.ctx))
	} else if h.s.FairGroups != nil {
		h.t.Fatalf("Suite.FairGroups is set, but %T has no Tidy to prune the ring", h.b)
	}
	if h.s.FairGroups != nil {
		// s, x and y are idle and a round behind: forgotten. The f groups
		// were served last: kept. r's job is running, which a backend may
		// count as a due job or not.
		ring := slices.DeleteFunc(h.s.FairGroups(h.t, h.b, q), func(g string) bool { return g == "r" })
		slices.Sort(ring)
		if fmt.Sprint(ring) != "[f0 f1 f2]" {
			h.t.Fatalf("the ring after the janitor: %v (r aside), want [f0 f1 f2]", ring)
		}
	}
	h.enqueue(h.gins(q, "x", "x1"), h.gins(q, "r", "r1"), h.gins(q, "s", "s1"))
	want := "r1 s1 x1"
	if ad, ok := h.b.(backends.Admin); ok {
		if n, err := ad.ReplayJobs(h.ctx, backends.ReplayJobsParams{IDs: []string{first[2].ID}}); err != nil || n != 1 {
			h.t.Fatalf("ReplayJobs(y0) = %d, %v", n, err)
		}
		want = "r1 s1 x1 y0"
	}
	got := h.reserveFair(fr, q, 10)
	sorted := strings.Fields(payloads(got))
	slices.Sort(sorted)
	if strings.Join(sorted, " ") != want {
		h.t.Fatalf("after the janitor: %q, want each of %s", payloads(got), want)
	}
	h.complete(running[0], nil) // its lease held through the janitor
}
