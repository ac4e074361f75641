package redisbackend_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/job"
)

// fairEnv is a backend without a background janitor (the test runs Tidy),
// its raw client and the key base of queue "f".
type fairEnv struct {
	t      *testing.T
	ctx    context.Context
	b      *redisbackend.Backend
	client *redis.Client
	base   string
	n      int
}

func newFairEnv(t *testing.T) *fairEnv {
	prefix := "fair-" + t.Name() + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	e := &fairEnv{t: t, ctx: context.Background(), client: newClient(t), base: prefix + ":{f}"}
	e.b = open(t, e.client, redisbackend.Config{Prefix: prefix, JanitorEvery: -1})
	return e
}

// add enqueues n jobs of group g, their payloads g0, g1, ...
func (e *fairEnv) add(g string, n int) {
	e.t.Helper()
	var jobs []*backends.JobInsert
	for i := range n {
		e.n++
		jobs = append(jobs, &backends.JobInsert{ID: fmt.Sprintf("j%d", e.n), Queue: "f", Task: "t", Payload: []byte(fmt.Sprint(g, i)), Group: g})
	}
	if _, err := e.b.Enqueue(e.ctx, backends.EnqueueParams{Jobs: jobs}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *fairEnv) reserve(fair bool, limit int) []string {
	e.t.Helper()
	p := backends.ReserveParams{Queue: "f", Limit: limit, Lease: time.Minute, Worker: "w"}
	var recs []*job.Record
	var err error
	if fair {
		recs, err = e.b.ReserveFair(e.ctx, p)
	} else {
		recs, err = e.b.Reserve(e.ctx, p)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

func (e *fairEnv) exists(keys ...string) int64 {
	e.t.Helper()
	n, err := e.client.Exists(e.ctx, keys...).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// Jobs that Reserve took, or that were cancelled, after the group index
// was built leave stale entries in it: a fair reserve passes over them and
// hands out every other job once.
func TestFairPassesOverJobsTakenElsewhere(t *testing.T) {
	e := newFairEnv(t)
	e.add("a", 4)
	e.add("b", 4)
	if got := e.reserve(true, 2); fmt.Sprint(got) != "[a0 b0]" {
		t.Fatalf("first fair reserve: %v", got)
	}
	taken := e.reserve(false, 2) // a1 a2: Reserve's order
	if fmt.Sprint(taken) != "[a1 a2]" {
		t.Fatalf("Reserve took %v", taken)
	}
	if _, err := e.b.Cancel(e.ctx, backends.CancelParams{JobID: "j6"}); err != nil { // b1
		t.Fatal(err)
	}
	if got := e.reserve(true, 10); fmt.Sprint(got) != "[a3 b2 b3]" {
		t.Fatalf("fair reserve after Reserve and Cancel: %v, want a3 b2 b3", got)
	}
}

// A queue no longer served fairly stops paying for its group index: once
// <base>:fair has expired (deleted here, as its expiry would), the janitor
// drops the index; a later fair reserve builds it again.
func TestFairIndexIsDroppedWithoutFairReserves(t *testing.T) {
	e := newFairEnv(t)
	e.add("a", 3)
	e.add("b", 3)
	e.reserve(true, 1)
	ring, ga, gb := e.base+":ring", e.base+":gr:a", e.base+":gr:b"
	if n := e.exists(ring, ga, gb); n != 3 {
		t.Fatalf("%d of the ring and the two group sets exist after a fair reserve", n)
	}
	if err := e.client.Del(e.ctx, e.base+":fair").Err(); err != nil {
		t.Fatal(err)
	}
	e.add("a", 1) // not indexed: the queue is not served fairly now
	if err := e.b.Tidy(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.exists(ring, ga, gb); n != 0 {
		t.Fatalf("%d of the ring and the group sets are left after the janitor", n)
	}
	got := e.reserve(true, 10)
	slices.Sort(got)
	if fmt.Sprint(got) != "[a0 a1 a2 b0 b1 b2]" { // this a0 is the later add's
		t.Fatalf("fair reserve after the index was rebuilt: %v", got)
	}
}

// Idle groups leave the ring: a group with no due job that a full round
// of the ring has passed since its last serving is pruned by the janitor,
// so tenants gone quiet cost a fair reserve nothing.
func TestFairRingPrunesIdleGroups(t *testing.T) {
	e := newFairEnv(t)
	for g := range 5 {
		e.add(fmt.Sprint("g", g), 1)
	}
	if got := e.reserve(true, 5); len(got) != 5 {
		t.Fatalf("reserved %v", got)
	}
	e.add("busy", 10)
	for range 10 {
		if got := e.reserve(true, 1); len(got) != 1 || got[0][:4] != "busy" {
			t.Fatalf("reserved %v", got)
		}
	}
	if err := e.b.Tidy(e.ctx); err != nil {
		t.Fatal(err)
	}
	groups, err := e.client.ZRange(e.ctx, e.base+":ring", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(groups) != "[busy]" {
		t.Fatalf("ring after the janitor: %v, want [busy]", groups)
	}
	e.add("g0", 1) // back: first, as a group never served
	e.add("busy", 1)
	if got := e.reserve(true, 2); fmt.Sprint(got) != "[g00 busy0]" {
		t.Fatalf("after g0 came back: %v", got)
	}
}

// The cost of fairness on Redis: a reserve of 10 from a queue of 100
// groups, plain and fair (each group's jobs in a set of their own, the
// ring walked from its least recently served group):
//
//	go test -run '^$' -bench 'Reserve10' -count 5 .
func BenchmarkReserve10(b *testing.B)     { benchReserve(b, false) }
func BenchmarkReserveFair10(b *testing.B) { benchReserve(b, true) }

func benchReserve(b *testing.B, fair bool) {
	be := open(b, newClient(b), redisbackend.Config{JanitorEvery: -1})
	ctx := context.Background()
	total := 10 * b.N
	for i := 0; i < total; i += 1000 {
		var jobs []*backends.JobInsert
		for j := i; j < min(i+1000, total); j++ {
			jobs = append(jobs, &backends.JobInsert{ID: "j" + strconv.Itoa(j), Queue: "f", Task: "t", Payload: []byte("{}"), Group: "g" + strconv.Itoa(j%100)})
		}
		if _, err := be.Enqueue(ctx, backends.EnqueueParams{Jobs: jobs}); err != nil {
			b.Fatal(err)
		}
	}
	p := backends.ReserveParams{Queue: "f", Limit: 10, Lease: time.Minute, Worker: "w"}
	if fair { // the index is built, 10,000 jobs a call, before the clock starts
		for range total/10_000 + 1 {
			if _, err := be.ReserveFair(ctx, backends.ReserveParams{Queue: "f", Limit: 1, Lease: time.Minute, Worker: "w"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		var recs []*job.Record
		var err error
		if fair {
			recs, err = be.ReserveFair(ctx, p)
		} else {
			recs, err = be.Reserve(ctx, p)
		}
		if err != nil || len(recs) == 0 {
			b.Fatal(len(recs), err)
		}
	}
}
