package redisbackend_test

import (
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
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
		lean, full := hash(t, client, base, p.lean), hash(t, client, base, p.full)
		for _, h := range []map[string]string{lean, full} { // differ by the enqueue order and time
			delete(h, "seq")
			delete(h, "ca")
			delete(h, "rk")
		}
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
