package celery

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// A consumer that crashed holding a message leaves it in kombu's unacked
// hash and index; past the visibility timeout a Go process puts it back on
// its queue, once, however many processes restore, and a worker runs it.
// A message taken recently stays where it is.
func TestRestoreUnackedPastTheVisibilityTimeout(t *testing.T) {
	ctx := context.Background()
	rdb := redisClient(t)
	q := fresh("restore")
	b := newBroker(t, Config{Redis: rdb})
	ins := []*backends.JobInsert{
		{ID: "old-" + q, Queue: q, Task: "tasks.add", Payload: []byte(`{"args":[1,2],"kwargs":{}}`)},
		{ID: "new-" + q, Queue: q, Task: "tasks.add", Payload: []byte(`{"args":[3,4],"kwargs":{}}`)},
	}
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: ins}); err != nil {
		t.Fatal(err)
	}
	// The crashed consumer: it took both (kombu takes from the right, the
	// first enqueued first), the first two hours ago, the second now.
	lists := listsOf(q)
	keys := append(append([]string(nil), lists...), unackedKey, unackedIndex)
	twoHoursAgo := strconv.FormatFloat(float64(time.Now().Add(-2*time.Hour).UnixNano())/1e9, 'f', 6, 64)
	if got, err := popScript.Run(ctx, rdb, keys, 1, twoHoursAgo).StringSlice(); err != nil || len(got) != 1 {
		t.Fatalf("taking the old message: %v, %v", got, err)
	}
	if got, err := popScript.Run(ctx, rdb, keys, 1, unixNow()).StringSlice(); err != nil || len(got) != 1 {
		t.Fatalf("taking the new message: %v, %v", got, err)
	}
	if n, _ := rdb.LLen(ctx, q).Result(); n != 0 {
		t.Fatalf("%d messages left on the queue, want 0", n)
	}

	tr := newRedisTransport(b.cfg)
	other := newRedisTransport(b.cfg) // a second process restoring at once
	n1, err := tr.restoreVisible(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n2, err := other.restoreVisible(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n1+n2 != 1 {
		t.Fatalf("restored %d and %d messages, want 1 in all (the old one, once)", n1, n2)
	}
	if n, _ := rdb.LLen(ctx, q).Result(); n != 1 {
		t.Fatalf("%d messages on the queue after the restore, want 1", n)
	}

	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute, Worker: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "old-"+q || recs[0].Deliveries < 1 {
		t.Fatalf("reserved %d jobs (%v), want the restored old one", len(recs), recs)
	}
	if err := b.Complete(ctx, backends.CompleteParams{Lease: recs[0].Lease, Result: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	// The new one is another consumer's for an hour yet: take it out of
	// the shared unacked hash, so no later run restores it.
	entries, _ := rdb.HGetAll(ctx, unackedKey).Result()
	for tag, e := range entries {
		if strings.Contains(e, q) {
			rdb.HDel(ctx, unackedKey, tag)
			rdb.ZRem(ctx, unackedIndex, tag)
		}
	}
}
