package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Suite is the conformance suite for one backend. Its Run methods run the
// parts; each subtest gets a fresh Clock and a backend from New.
type Suite struct {
	// New returns a backend for one subtest that tells time by clock.
	// The suite closes it when the subtest ends. Required.
	New func(t *testing.T, clock backends.Clock) backends.Backend
	// WallClock says that some of the backend's deadlines are kept by
	// its server in wall time (AMQP's message TTLs): the suite then lets
	// time pass instead of stepping the clock. Default false: every
	// deadline follows the clock, and no case sleeps.
	WallClock bool
	// TimePrecision is the coarsest unit the backend stores times in;
	// the suite compares times to it. Default time.Millisecond.
	TimePrecision time.Duration
	// BeginTx begins a transaction on b's own database, of the kind its
	// EnqueueTx takes. Required when the backend implements
	// backends.TxEnqueuer (the case fails without it); unused otherwise.
	BeginTx func(t *testing.T, b backends.Backend) Tx
	// FairBacklog is how many jobs the noisy tenant enqueues in the
	// FairReserver case before the quiet one enqueues 10. Default 50,000,
	// issue 17's workload; a backend whose inserts crawl under the race
	// detector (SQLite in pure Go: minutes for 50,000) may lower it there.
	FairBacklog int
	// FairGroups returns the groups b's fair ring holds for queue, so that
	// the FairReserver case can check that the janitor (the backend's
	// Tidy) forgot the idle ones. Optional: without it the case checks
	// only that a forgotten group loses no job.
	FairGroups func(t *testing.T, b backends.Backend, queue string) []string
	// SlotRulesUnsupported says the backend, a backends.SlotReserver,
	// answers a reserve with rules by job.ErrUnsupported on this
	// deployment (Redis Cluster): the SlotReserver case then checks that
	// it does, leasing and postponing nothing.
	SlotRulesUnsupported bool
}

// Timing used by the suite. Leases are short so expiry tests are quick, long
// enough that a slow race-enabled run on a loaded 2-core machine does not
// lose a lease it extends (500ms was seen to be too short there).
const (
	shortLease = time.Second
	longLease  = time.Minute
	waitLimit  = 15 * time.Second
)

type harness struct {
	t     *testing.T
	s     Suite
	b     backends.Backend
	clock *Clock
	ctx   context.Context
	ns    string // namespace for this subtest's queues, IDs and unique keys
}

func newHarness(t *testing.T, s Suite) *harness {
	t.Helper()
	t.Parallel()
	if s.TimePrecision == 0 {
		s.TimePrecision = time.Millisecond
	}
	clock := &Clock{}
	b := s.New(t, clock)
	t.Cleanup(func() { _ = b.Close() })
	return &harness{t: t, s: s, b: b, clock: clock, ctx: context.Background(), ns: randHex(6)}
}

// now is the backend's time.
func (h *harness) now() time.Time { return h.clock.Now() }

// pass lets d go by: a step of the clock, or for a backend that keeps
// wall time, a real wait.
func (h *harness) pass(d time.Duration) {
	if h.s.WallClock {
		time.Sleep(d)
		return
	}
	h.clock.Advance(d)
}

func randHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// queue returns a queue name owned by this subtest.
func (h *harness) queue(name string) string { return "bt-" + h.ns + "-" + name }

// newID returns a fresh job ID.
func (h *harness) newID() string { return h.ns + "-" + randHex(8) }

// ins builds an insert for queue q with a payload naming it.
func (h *harness) ins(q, payload string) *backends.JobInsert {
	return &backends.JobInsert{ID: h.newID(), Queue: q, Task: "bt.task", Payload: []byte(payload)}
}

func (h *harness) enqueue(jobs ...*backends.JobInsert) []backends.EnqueueResult {
	h.t.Helper()
	res, err := h.b.Enqueue(h.ctx, backends.EnqueueParams{Jobs: jobs})
	if err != nil {
		h.t.Fatalf("Enqueue: %v", err)
	}
	if len(res) != len(jobs) {
		h.t.Fatalf("Enqueue returned %d results for %d jobs", len(res), len(jobs))
	}
	return res
}

func (h *harness) reserve(q string, limit int, lease time.Duration) []*job.Record {
	h.t.Helper()
	recs, err := h.b.Reserve(h.ctx, backends.ReserveParams{Queue: q, Limit: limit, Lease: lease, Worker: "bt"})
	if err != nil {
		h.t.Fatalf("Reserve(%s): %v", q, err)
	}
	if len(recs) > limit {
		h.t.Fatalf("Reserve(%s, limit %d) returned %d jobs", q, limit, len(recs))
	}
	return recs
}

func (h *harness) reserveOne(q string, lease time.Duration) *job.Record {
	h.t.Helper()
	recs := h.reserve(q, 1, lease)
	if len(recs) != 1 {
		h.t.Fatalf("Reserve(%s) returned %d jobs, want 1", q, len(recs))
	}
	return recs[0]
}

func (h *harness) expectEmpty(q string) {
	h.t.Helper()
	if recs := h.reserve(q, 10, longLease); len(recs) != 0 {
		h.t.Fatalf("Reserve(%s) returned %d jobs (first %s, payload %q), want none", q, len(recs), recs[0].ID, recs[0].Payload)
	}
}

// eventuallyReserve reserves from q until a job comes back or waitLimit
// passes. On a stepped clock the first try answers; on wall time it polls,
// because the condition is the passage of a lease or retry time, which no
// backend announces.
func (h *harness) eventuallyReserve(q string, lease time.Duration) *job.Record {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if recs := h.reserve(q, 1, lease); len(recs) == 1 {
			return recs[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("no job became due in %s within %s", q, waitLimit)
	return nil
}

// eventuallyBuried reserves from q, expecting nothing each time, until the
// job id is dead, and returns it (nil if the backend cannot inspect). On
// wall time a broker returns an expired lease's delivery when it gets to
// it (a quorum queue on a cluster takes longer than one node), and the
// backend buries the job only when that delivery comes back, so this polls
// as eventuallyReserve does; on a stepped clock the first look must answer.
func (h *harness) eventuallyBuried(q, id string) *job.Record {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		h.expectEmpty(q)
		r := h.get(id)
		if r == nil || r.State == job.Dead || !h.s.WallClock || time.Now().After(deadline) {
			return h.expectState(id, job.Dead)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) complete(r *job.Record, result []byte) {
	h.t.Helper()
	if err := h.b.Complete(h.ctx, backends.CompleteParams{Lease: r.Lease, Result: result}); err != nil {
		h.t.Fatalf("Complete(%s): %v", r.ID, err)
	}
}

// get returns the job if the backend can inspect, else nil.
func (h *harness) get(id string) *job.Record {
	h.t.Helper()
	in, ok := h.b.(backends.Inspector)
	if !ok {
		return nil
	}
	r, err := in.GetJob(h.ctx, backends.GetJobParams{ID: id})
	if err != nil {
		h.t.Fatalf("GetJob(%s): %v", id, err)
	}
	return r
}

// expectState checks a job's state where the backend can inspect.
func (h *harness) expectState(id string, want job.State) *job.Record {
	h.t.Helper()
	r := h.get(id)
	if r != nil && r.State != want {
		h.t.Fatalf("job %s is %s, want %s", id, r.State, want)
	}
	return r
}

func expectErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
}
