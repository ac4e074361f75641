package redisbackend_test

import (
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/job"
)

// The lean enqueue script (one queue, no bound, no unique key) writes the
// same job hash and index entries as the full one, which a bound the batch
// cannot reach sends it through: the rest of the scripts read what either
// wrote.
func TestLeanEnqueueWritesWhatTheFullOneDoes(t *testing.T) {
	client := newClient(t)
	prefix := "lean-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b := open(t, client, redisbackend.Config{Prefix: prefix, JanitorEvery: -1})
	ctx := t.Context()
	base := prefix + ":{q}"
	due, later := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	ins := func(id string, maxDepth int, runAt time.Time) *backends.JobInsert {
		return &backends.JobInsert{ID: id, Queue: "q", Task: "t", Payload: []byte(`{"n":1}`), Priority: 3,
			RunAt: runAt, MaxDeliveries: 5, Timeout: time.Second, RetryPolicy: "rp",
			Headers: map[string]string{"k": "v"}, MaxDepth: maxDepth}
	}
	for _, p := range []struct {
		lean, full string
		runAt      time.Time
	}{{"lean-now", "full-now", due}, {"lean-later", "full-later", later}} {
		for _, j := range []*backends.JobInsert{ins(p.lean, 0, p.runAt), ins(p.full, 1000, p.runAt)} {
			res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{j}})
			if err != nil || len(res) != 1 || res[0].Duplicate {
				t.Fatalf("enqueue %s: %+v, %v", j.ID, res, err)
			}
		}
		lean, full := stable(hash(t, client, base, p.lean)), stable(hash(t, client, base, p.full))
		if !maps.Equal(lean, full) {
			t.Fatalf("lean script wrote %v, full one %v", lean, full)
		}
		for _, set := range []string{":s:pending", ":s:scheduled", ":later"} {
			a, errA := client.ZScore(ctx, base+set, p.lean).Result()
			f, errF := client.ZScore(ctx, base+set, p.full).Result()
			if (errA == nil) != (errF == nil) || (set == ":later" && a != f) {
				t.Fatalf("%s: lean %v (%v), full %v (%v)", set, a, errA, f, errF)
			}
		}
	}
	// A batch takes the lean script for many jobs (the one above was the
	// one-job script): the same hashes again.
	batch := []*backends.JobInsert{ins("batch-now", 0, due), ins("batch-later", 0, later)}
	if res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: batch}); err != nil || len(res) != 2 || res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("enqueue batch: %+v, %v", res, err)
	}
	for one, many := range map[string]string{"lean-now": "batch-now", "lean-later": "batch-later"} {
		a, m := stable(hash(t, client, base, one)), stable(hash(t, client, base, many))
		if !maps.Equal(a, m) {
			t.Fatalf("batch wrote %v, one-job script %v", m, a)
		}
	}
	// Duplicates in a batch: an ID that exists, and one twice in the batch
	// among fresh ones, each answered with the first's state.
	for _, tc := range []struct {
		ids  []string
		dups []bool
	}{{[]string{"fresh-1", "fresh-2", "fresh-1"}, []bool{false, false, true}}, {[]string{"lean-later", "fresh-3", "fresh-3"}, []bool{true, false, true}}} {
		var jobs []*backends.JobInsert
		for _, id := range tc.ids {
			jobs = append(jobs, ins(id, 0, due))
		}
		jobs[0].RunAt = later
		res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: jobs})
		if err != nil || len(res) != len(jobs) {
			t.Fatalf("enqueue %v: %+v, %v", tc.ids, res, err)
		}
		for i, r := range res {
			want := job.Pending
			if i == 0 || tc.ids[i] == tc.ids[0] {
				want = job.Scheduled
			}
			if r.ID != tc.ids[i] || r.Duplicate != tc.dups[i] || r.State != want {
				t.Fatalf("enqueue %v: result %d is %+v, want duplicate %v in state %s", tc.ids, i, r, tc.dups[i], want)
			}
		}
	}
	// Due: lean-now, full-now, batch-now, fresh-2 and fresh-3, once each.
	for _, set := range []string{":ready", ":s:pending"} {
		if n := client.ZCard(ctx, base+set).Val(); n != 5 {
			t.Fatalf("%s holds %d jobs, want 5", set, n)
		}
	}
	// A due job is in the ready set under the member its hash names.
	rk := client.HGet(ctx, base+":j:lean-now", "rk").Val()
	if s, err := client.ZScore(ctx, base+":ready", rk).Result(); err != nil || s != -3 {
		t.Fatalf("ready member %q: score %v, %v", rk, s, err)
	}
	// The same ID again is a duplicate, answered with its state.
	res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins("lean-later", 0, later)}})
	if err != nil || !res[0].Duplicate || res[0].State != "scheduled" {
		t.Fatalf("re-enqueue: %+v, %v", res, err)
	}
}

func hash(t *testing.T, client *redis.Client, base, id string) map[string]string {
	t.Helper()
	h, err := client.HGetAll(t.Context(), base+":j:"+id).Result()
	if err != nil || len(h) == 0 {
		t.Fatalf("job %s: %v, %v", id, h, err)
	}
	return h
}

// stable drops the fields that differ by the enqueue order and time.
func stable(h map[string]string) map[string]string {
	delete(h, "seq")
	delete(h, "ca")
	delete(h, "rk")
	return h
}
