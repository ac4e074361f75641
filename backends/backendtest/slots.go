package backendtest

import (
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// slotHeader is the key header the SlotReserver cases use (the worker
// passes flow.KeyHeader).
const slotHeader = "bt-key"

// testSlots checks backends.SlotReserver: jobs over their key's limit
// held back (Scheduled, no delivery used) while the others lease in
// order; slots given back by every outcome and by lease expiry; one limit
// over several tasks and queues; concurrent reserves never over a limit;
// a poison job dead whatever its limit; bad rules refused.
func testSlots(h *harness) {
	sr := h.b.(backends.SlotReserver)
	if h.s.SlotRulesUnsupported {
		slotsUnsupported(h, sr)
		return
	}
	slotsHoldBack(h, sr)
	slotsGivenBackByOutcomes(h, sr)
	slotsKeptByExtend(h, sr)
	slotsSharedAcrossTasksAndQueues(h, sr)
	slotsConcurrent(h, sr)
	slotsPoison(h, sr)
	slotsInvalid(h, sr)
	if _, ok := h.b.(backends.FairReserver); ok {
		slotsFair(h, sr)
	}
}

func (h *harness) kins(q, task, key, payload string) *backends.JobInsert {
	ins := h.ins(q, payload)
	ins.Task = task
	if key != "" {
		ins.Headers = map[string]string{slotHeader: key}
	}
	return ins
}

func (h *harness) reserveSlots(sr backends.SlotReserver, q string, limit int, lease time.Duration, rules ...backends.SlotRule) backends.ReserveSlotsResult {
	h.t.Helper()
	return h.reserveSlotsFair(sr, q, limit, lease, false, rules...)
}

func (h *harness) reserveSlotsFair(sr backends.SlotReserver, q string, limit int, lease time.Duration, fair bool, rules ...backends.SlotRule) backends.ReserveSlotsResult {
	h.t.Helper()
	res, err := sr.ReserveSlots(h.ctx, backends.ReserveSlotsParams{
		ReserveParams: backends.ReserveParams{Queue: q, Limit: limit, Lease: lease, Worker: "bt"},
		Rules:         rules, KeyHeader: slotHeader, Fair: fair,
	})
	if err != nil {
		h.t.Fatalf("ReserveSlots(%s): %v", q, err)
	}
	if n := len(res.Jobs) + len(res.HeldBack); n > limit {
		h.t.Fatalf("ReserveSlots(%s, limit %d) looked at %d jobs", q, limit, n)
	}
	for _, r := range res.Jobs {
		if r.State != job.Running || r.Lease.Token == "" {
			h.t.Fatalf("ReserveSlots leased %s as %s, lease %+v", r.ID, r.State, r.Lease)
		}
	}
	return res
}

func expectPayloads(h *harness, what string, recs []*job.Record, want string) {
	h.t.Helper()
	if got := payloads(recs); got != want {
		h.t.Fatalf("%s: %q, want %q", what, got, want)
	}
}

// slotsHoldBack: with a limit of 2 per key, a reserve leases two jobs of
// key A, the job of key B and the unlimited job, in order, and postpones
// A's other two by the backoff without using a delivery; they come back
// when it has passed, and wait again while A's slots are held.
func slotsHoldBack(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots")
	rule := backends.SlotRule{Task: "bt.slot", Name: "n", Limit: 2, Backoff: 10 * time.Second}
	h.enqueue(h.kins(q, "bt.slot", "A", "a1"), h.kins(q, "bt.slot", "A", "a2"), h.kins(q, "bt.slot", "A", "a3"),
		h.kins(q, "bt.slot", "A", "a4"), h.kins(q, "bt.slot", "B", "b1"), h.ins(q, "u1"))
	before := h.now().Add(rule.Backoff - h.s.TimePrecision)
	res := h.reserveSlots(sr, q, 10, longLease, rule)
	after := h.now().Add(rule.Backoff + h.s.TimePrecision)
	expectPayloads(h, "leased", res.Jobs, "a1 a2 b1 u1")
	expectPayloads(h, "held back", res.HeldBack, "a3 a4")
	for _, r := range res.HeldBack {
		if r.State != job.Scheduled || r.Deliveries != 0 || r.RunAt.Before(before) || r.RunAt.After(after) {
			h.t.Fatalf("held back %s: %s, deliveries %d, run at %s: want scheduled, none used, at the backoff's end (%s)", r.ID, r.State, r.Deliveries, r.RunAt, after)
		}
		h.expectState(r.ID, job.Scheduled)
	}
	if res := h.reserveSlots(sr, q, 10, longLease, rule); len(res.Jobs)+len(res.HeldBack) != 0 {
		h.t.Fatalf("a reserve before the backoff ended looked at %q and %q", payloads(res.Jobs), payloads(res.HeldBack))
	}
	h.pass(rule.Backoff)
	res = h.reserveSlots(sr, q, 10, longLease, rule)
	expectPayloads(h, "leased while A's slots are held", res.Jobs, "")
	expectPayloads(h, "held back again", res.HeldBack, "a3 a4")
	if d := h.get(res.HeldBack[0].ID); d != nil && d.Deliveries != 0 {
		h.t.Fatalf("a job held back twice used %d deliveries", d.Deliveries)
	}
}

// slotsGivenBackByOutcomes: complete, retry, dead letter, cancel and
// lease expiry each give the job's slot back.
func slotsGivenBackByOutcomes(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots-out")
	rule := backends.SlotRule{Task: "bt.slot", Name: "out", Limit: 1, Backoff: time.Second}
	for _, outcome := range []string{"complete", "retry", "dead", "cancel", "expiry"} {
		h.enqueue(h.kins(q, "bt.slot", "K", outcome+"-holder"), h.kins(q, "bt.slot", "K", outcome+"-next"))
		lease := longLease
		if outcome == "expiry" {
			lease = shortLease
		}
		res := h.reserveSlots(sr, q, 1, lease, rule)
		expectPayloads(h, outcome+": the holder", res.Jobs, outcome+"-holder")
		holder := res.Jobs[0]
		res = h.reserveSlots(sr, q, 1, lease, rule)
		expectPayloads(h, outcome+": held back behind the holder", res.HeldBack, outcome+"-next")
		switch outcome {
		case "complete":
			h.complete(holder, nil)
		case "retry":
			must(h.t, h.b.Retry(h.ctx, backends.RetryParams{Lease: holder.Lease, At: h.now().Add(time.Hour), Error: &job.AttemptError{Error: "x"}}))
		case "dead":
			must(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: holder.Lease, Error: job.AttemptError{Error: "x"}}))
		case "cancel":
			lease := holder.Lease
			_, err := h.b.Cancel(h.ctx, backends.CancelParams{JobID: holder.ID, Lease: &lease})
			must(h.t, err)
		case "expiry":
			h.pass(shortLease)
		}
		h.pass(rule.Backoff)
		res = h.reserveSlots(sr, q, 1, longLease, rule)
		want := outcome + "-next"
		if outcome == "expiry" {
			// The expired holder is due again first, and takes the slot
			// its lease gave back.
			want = outcome + "-holder"
		}
		expectPayloads(h, outcome+": after the holder's "+outcome, res.Jobs, want)
		h.complete(res.Jobs[0], nil)
		if outcome == "expiry" {
			res = h.reserveSlots(sr, q, 1, longLease, rule)
			expectPayloads(h, "expiry: the next", res.Jobs, "expiry-next")
			h.complete(res.Jobs[0], nil)
		}
	}
}

// slotsKeptByExtend: a holder whose lease is extended keeps its slot past
// the lease it was reserved with.
func slotsKeptByExtend(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots-extend")
	rule := backends.SlotRule{Task: "bt.slot", Name: "extend", Limit: 1, Backoff: time.Second}
	h.enqueue(h.kins(q, "bt.slot", "E", "holder"), h.kins(q, "bt.slot", "E", "next"))
	res := h.reserveSlots(sr, q, 1, shortLease, rule)
	expectPayloads(h, "the holder", res.Jobs, "holder")
	ext, err := h.b.Extend(h.ctx, backends.ExtendParams{Leases: []job.Lease{res.Jobs[0].Lease}, Lease: longLease})
	must(h.t, err)
	if len(ext) != 1 || ext[0].Lost {
		h.t.Fatalf("Extend = %+v", ext)
	}
	h.pass(shortLease + rule.Backoff) // past the first lease, inside the extended one
	res = h.reserveSlots(sr, q, 1, longLease, rule)
	expectPayloads(h, "leased while the extended holder runs", res.Jobs, "")
	expectPayloads(h, "held back by the extended holder", res.HeldBack, "next")
}

// slotsSharedAcrossTasksAndQueues: two tasks whose rules share a name
// share the limit, over queues; jobs without the header share key "".
func slotsSharedAcrossTasksAndQueues(h *harness, sr backends.SlotReserver) {
	q1, q2 := h.queue("slots-q1"), h.queue("slots-q2")
	rules := []backends.SlotRule{
		{Task: "bt.one", Name: "shared", Limit: 1, Backoff: time.Second},
		{Task: "bt.two", Name: "shared", Limit: 1, Backoff: time.Second},
	}
	h.enqueue(h.kins(q1, "bt.one", "K", "one"), h.kins(q1, "bt.one", "", "none-1"))
	h.enqueue(h.kins(q2, "bt.two", "K", "two"), h.kins(q2, "bt.two", "", "none-2"), h.kins(q2, "bt.two", "L", "other"))
	expectPayloads(h, "first queue", h.reserveSlots(sr, q1, 10, longLease, rules...).Jobs, "one none-1")
	res := h.reserveSlots(sr, q2, 10, longLease, rules...)
	expectPayloads(h, "second queue, leased", res.Jobs, "other")
	expectPayloads(h, "second queue, held back by the first's jobs", res.HeldBack, "two none-2")
}

// slotsFair: a fair reserve with rules looks at the jobs in the rounds'
// order and holds back those over their key's limit, counting the jobs a
// plain queue's reserve leased under the same limit; a group whose job was
// held back has had that turn, so the next rounds start with the groups
// served least recently, held back or not.
func slotsFair(h *harness, sr backends.SlotReserver) {
	qf, qp := h.queue("slots-fair"), h.queue("slots-fair-plain")
	rule := backends.SlotRule{Task: "bt.fair", Name: "fair", Limit: 1, Backoff: time.Second}
	tenant := func(q, grp, payload string) *backends.JobInsert {
		ins := h.kins(q, "bt.fair", grp, payload)
		ins.Group = grp
		return ins
	}
	h.enqueue(tenant(qp, "b", "plain-b"))
	plain := h.reserveSlots(sr, qp, 1, longLease, rule)
	expectPayloads(h, "plain queue", plain.Jobs, "plain-b")
	h.enqueue(tenant(qf, "a", "a0"), tenant(qf, "a", "a1"), tenant(qf, "a", "a2"),
		tenant(qf, "b", "b0"), tenant(qf, "b", "b1"), tenant(qf, "c", "c0"))
	res := h.reserveSlotsFair(sr, qf, 6, longLease, true, rule)
	expectPayloads(h, "fair, leased", res.Jobs, "a0 c0")
	expectPayloads(h, "fair, held back (b's slot held by the plain queue's job, a's by a0)", res.HeldBack, "b0 a1 b1 a2")
	for _, r := range res.HeldBack {
		h.expectState(r.ID, job.Scheduled)
	}
	h.complete(plain.Jobs[0], nil)
	h.complete(res.Jobs[0], nil)
	h.pass(rule.Backoff)
	// The rounds were a0 b0 c0, then a1 b1, then a2: c, then b, then a
	// were served last, whatever the rules did with their jobs.
	res = h.reserveSlotsFair(sr, qf, 6, longLease, true, rule)
	expectPayloads(h, "fair again, leased", res.Jobs, "b0 a1")
	expectPayloads(h, "fair again, held back", res.HeldBack, "b1 a2")
}

// slotsConcurrent: reserves racing on one key's jobs lease exactly the
// limit between them.
func slotsConcurrent(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots-race")
	const limit, racers = 3, 8
	rule := backends.SlotRule{Task: "bt.slot", Name: "race", Limit: limit, Backoff: time.Hour}
	var ins []*backends.JobInsert
	for i := range 2 * racers {
		ins = append(ins, h.kins(q, "bt.slot", "R", "r"+string(rune('a'+i))))
	}
	h.enqueue(ins...)
	var mu sync.Mutex
	leased, held := 0, 0
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			res, err := sr.ReserveSlots(h.ctx, backends.ReserveSlotsParams{
				ReserveParams: backends.ReserveParams{Queue: q, Limit: 2, Lease: longLease, Worker: "bt"},
				Rules:         []backends.SlotRule{rule}, KeyHeader: slotHeader,
			})
			if err != nil {
				h.t.Errorf("ReserveSlots: %v", err)
				return
			}
			mu.Lock()
			leased, held = leased+len(res.Jobs), held+len(res.HeldBack)
			mu.Unlock()
		})
	}
	wg.Wait()
	if h.t.Failed() {
		return
	}
	if leased != limit || held != 2*racers-limit {
		h.t.Fatalf("%d racing reserves leased %d jobs and held back %d, want %d and %d", racers, leased, held, limit, 2*racers-limit)
	}
}

// slotsPoison: a job that used its deliveries goes to Dead even while its
// key's limit is full; it is not held back.
func slotsPoison(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots-poison")
	rule := backends.SlotRule{Task: "bt.slot", Name: "poison", Limit: 2, Backoff: time.Second}
	poison := h.kins(q, "bt.slot", "P", "poison")
	poison.MaxDeliveries = 1
	h.enqueue(poison)
	expectPayloads(h, "the poison job's one delivery", h.reserveSlots(sr, q, 1, shortLease, rule).Jobs, "poison")
	h.enqueue(h.kins(q, "bt.slot", "P", "holder"))
	expectPayloads(h, "the holder", h.reserveSlots(sr, q, 1, longLease, rule).Jobs, "holder")
	h.pass(shortLease) // the poison job's lease ends: due, with no delivery left
	rule.Limit = 1     // and the holder fills the limit
	res := h.reserveSlots(sr, q, 2, longLease, rule)
	if len(res.Jobs)+len(res.HeldBack) != 0 {
		h.t.Fatalf("the poison job came back leased (%q) or held back (%q), want it dead", payloads(res.Jobs), payloads(res.HeldBack))
	}
	h.expectState(poison.ID, job.Dead)
}

// slotsInvalid: bad rules are refused before anything is reserved.
func slotsInvalid(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots-bad")
	h.enqueue(h.kins(q, "bt.slot", "K", "kept"))
	ok := backends.SlotRule{Task: "bt.slot", Name: "bad", Limit: 1, Backoff: time.Second}
	zero, noBackoff := ok, ok
	zero.Limit, noBackoff.Backoff = 0, 0
	for _, p := range []backends.ReserveSlotsParams{
		{Rules: []backends.SlotRule{zero}, KeyHeader: slotHeader},
		{Rules: []backends.SlotRule{noBackoff}, KeyHeader: slotHeader},
		{Rules: []backends.SlotRule{ok, ok}, KeyHeader: slotHeader},
		{Rules: []backends.SlotRule{ok}},
	} {
		p.ReserveParams = backends.ReserveParams{Queue: q, Limit: 1, Lease: longLease, Worker: "bt"}
		_, err := sr.ReserveSlots(h.ctx, p)
		expectErr(h.t, err, job.ErrInvalid)
	}
	expectPayloads(h, "after the refusals", h.reserveSlots(sr, q, 1, longLease, ok).Jobs, "kept")
}

// slotsUnsupported: a backend that cannot hold rules here says so, and
// leaves the queue as it was; without rules it reserves as Reserve does.
func slotsUnsupported(h *harness, sr backends.SlotReserver) {
	q := h.queue("slots-unsupported")
	h.enqueue(h.kins(q, "bt.slot", "K", "kept"))
	_, err := sr.ReserveSlots(h.ctx, backends.ReserveSlotsParams{
		ReserveParams: backends.ReserveParams{Queue: q, Limit: 1, Lease: longLease, Worker: "bt"},
		Rules:         []backends.SlotRule{{Task: "bt.slot", Name: "u", Limit: 1, Backoff: time.Second}}, KeyHeader: slotHeader,
	})
	expectErr(h.t, err, job.ErrUnsupported)
	expectPayloads(h, "without rules, after the refusal", h.reserveSlots(sr, q, 1, longLease).Jobs, "kept")
}
