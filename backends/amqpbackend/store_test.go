package amqpbackend_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// logBuffer is a slog destination tests read back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// line returns the first logged line that contains every one of words.
func (l *logBuffer) line(words ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(l.buf.String()) {
		found := true
		for _, w := range words {
			found = found && strings.Contains(line, w)
		}
		if found {
			return line
		}
	}
	return ""
}

func logTo(l *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// reserveOne reserves until the job id is handed out, and fails on any
// other job.
func reserveOne(t *testing.T, b backends.Backend, q, id string) *job.Record {
	t.Helper()
	var got *job.Record
	testenv.WaitFor(t, 10*time.Second, "job "+id, func() bool {
		recs, err := b.Reserve(context.Background(), backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
		must(t, err)
		for _, r := range recs {
			if r.ID != id {
				t.Fatalf("reserved %s, want %s", r.ID, id)
			}
			got = r
		}
		return got != nil
	})
	return got
}

// A store that lost a waiting job's record (restarted without persistence,
// restored from an older backup, cleaned by hand) does not make the job
// vanish: its message carries the whole job, the record is restored from
// it and the job runs, with a warning that names it. So does a job another
// producer published straight into the queue, which never had a record.
func TestStoreLossRestoresFromTheMessage(t *testing.T) {
	st := sqliteStore(t)
	var logs logBuffer
	// A record deleted right after its enqueue: wait a little, not the
	// default 10s, for an enqueue that might still write it.
	b := open(t, amqpbackend.Config{Store: st, Logger: logTo(&logs), RecordWait: 200 * time.Millisecond})
	in := b.(backends.Inspector)
	ctx := context.Background()
	q := fresh("lost")

	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "lost-1", Queue: q, Task: "t", Payload: []byte(`{"n":1}`)}}})
	must(t, err)
	must(t, st.DeleteKV(ctx, backends.DeleteKVParams{Key: testPrefix + "/amqp/job/lost-1"}))
	r := reserveOne(t, b, q, "lost-1")
	if string(r.Payload) != `{"n":1}` || r.Task != "t" {
		t.Fatalf("restored job = %+v", r)
	}
	if logs.line("WARN", "store record missing", "lost-1", q) == "" {
		t.Fatalf("no warning names the restored job; log:\n%s", logs.buf.String())
	}
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease, Result: []byte("ok")}))
	if got, err := in.GetJob(ctx, backends.GetJobParams{ID: "lost-1"}); err != nil || got.State != job.Done {
		t.Fatalf("GetJob of the restored job = %+v, %v; want done", got, err)
	}

	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{
		MessageId: "foreign-1", Type: "t", Body: []byte("from elsewhere")}))
	r = reserveOne(t, b, q, "foreign-1")
	if string(r.Payload) != "from elsewhere" || r.Deliveries != 1 {
		t.Fatalf("foreign job = %+v", r)
	}
	if got, err := in.GetJob(ctx, backends.GetJobParams{ID: "foreign-1"}); err != nil || got.State != job.Running {
		t.Fatalf("GetJob of the foreign job = %+v, %v; want running", got, err)
	}
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
	if logs.line("WARN", "store record missing", "foreign-1") == "" {
		t.Fatalf("no warning names the foreign job; log:\n%s", logs.buf.String())
	}
}

// A job deleted on purpose leaves a tombstone: its message, still in the
// queue, is dropped without a run, and the drop is logged at Debug.
func TestDeletedJobIsDroppedNotRestored(t *testing.T) {
	var logs logBuffer
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), Logger: logTo(&logs)})
	ctx := context.Background()
	q := fresh("deleted")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{
		{ID: "del-1", Queue: q, Task: "t"}, {ID: "keep-1", Queue: q, Task: "t"}}})
	must(t, err)
	n, err := b.(backends.Admin).DeleteJobs(ctx, backends.DeleteJobsParams{IDs: []string{"del-1"}})
	if err != nil || n != 1 {
		t.Fatalf("DeleteJobs = %d, %v", n, err)
	}
	r := reserveOne(t, b, q, "keep-1")
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
	testenv.WaitFor(t, 10*time.Second, "the drop logged", func() bool {
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
		must(t, err)
		if len(recs) > 0 {
			t.Fatalf("reserved %s after it was deleted", recs[0].ID)
		}
		return logs.line("DEBUG", "message dropped", "del-1", "deleted") != ""
	})
	if line := logs.line("store record missing", "del-1"); line != "" {
		t.Fatalf("a deleted job was restored: %s", line)
	}
}

// A worker killed after publishing a retry but before recording it leaves
// a second message of the job's incarnation behind (here published by
// hand, as that worker did). Whichever runs, the job's deliveries keep
// counting up from the store's count: no number repeats.
func TestDeliveriesCountOnAcrossAnUnrecordedRetry(t *testing.T) {
	clock := &backendtest.Clock{}
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), Clock: clock})
	ctx := context.Background()
	q := fresh("unrecorded-retry")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "ur-1", Queue: q, Task: "t"}}})
	must(t, err)
	reserve := func(want int) *job.Record {
		t.Helper()
		var got []*job.Record
		testenv.WaitFor(t, 10*time.Second, "the job's delivery", func() bool {
			got, err = b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
			must(t, err)
			return len(got) == 1
		})
		if got[0].Deliveries != want {
			t.Fatalf("delivery %d of the job, want %d", got[0].Deliveries, want)
		}
		return got[0]
	}
	first := reserve(1)
	ae := job.AttemptError{Attempt: 1, Error: "once"}
	must(t, b.Retry(ctx, backends.RetryParams{Lease: first.Lease, At: time.Now(), Error: &ae}))
	reserve(2)
	// What the killed worker's unrecorded retry left: incarnation 1 again,
	// counted from its delivery 1.
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{
		MessageId: "ur-1", Type: "t", Headers: amqp.Table{"x-conveyor-deliveries": int64(1), "x-conveyor-incarnation": int64(1)}}))
	// It arrives while the job runs its delivery 2, waits while that
	// delivery's lease lasts, and is then its delivery 3, not a second
	// delivery 2.
	clock.Advance(2 * time.Minute)
	third := reserve(3)
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: third.Lease}))
}

// With a store, a job's deliveries are the ones that were leased: a
// message returned after its consumer died before starting it (the
// broker's x-delivery-count, here set by hand on a copy) does not bring
// the job nearer to poison.
func TestReturnedPrefetchIsNoDelivery(t *testing.T) {
	clock := &backendtest.Clock{}
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), Clock: clock})
	ctx := context.Background()
	q := fresh("prefetch-returns")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "pr-1", Queue: q, Task: "t", MaxDeliveries: 2}}})
	must(t, err)
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{
		MessageId: "pr-1", Type: "t", Headers: amqp.Table{"x-conveyor-max-deliveries": int64(2), "x-delivery-count": int64(5)}}))
	var got []*job.Record
	testenv.WaitFor(t, 10*time.Second, "both messages of the job", func() bool {
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 2, Lease: time.Minute})
		must(t, err)
		if got = append(got, recs...); len(got) == 1 && len(recs) == 1 {
			clock.Advance(2 * time.Minute) // the other message waits while the first one's lease lasts
		}
		return len(got) == 2
	})
	if got[0].Deliveries != 1 || got[1].Deliveries != 2 {
		t.Fatalf("deliveries %d and %d, want 1 and 2 (the store's count)", got[0].Deliveries, got[1].Deliveries)
	}
	rec, err := b.(backends.Inspector).GetJob(ctx, backends.GetJobParams{ID: "pr-1"})
	if err != nil || rec.State != job.Running {
		t.Fatalf("job = %+v, %v; want running, not a poison message", rec, err)
	}
}

// A worker that froze between publishing a retry and recording it finds,
// when it wakes, that its delivery went back to the broker and another
// worker took the job. The retry it published is surplus: it is dropped
// when it arrives (logged at Debug), the job is the later delivery's, and
// the frozen worker's record step does not overwrite that delivery's
// record. Here the returned delivery and the surplus retry are published
// by hand, as the broker and the frozen worker did.
func TestSupersededRetryIsDropped(t *testing.T) {
	var logs logBuffer
	clock := &backendtest.Clock{}
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), Logger: logTo(&logs), Clock: clock})
	ctx := context.Background()
	q := fresh("superseded-retry")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "sr-1", Queue: q, Task: "t"}}})
	must(t, err)
	first := reserveOne(t, b, q, "sr-1")
	publish := func(h amqp.Table) {
		t.Helper()
		must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{MessageId: "sr-1", Type: "t", Headers: h}))
	}
	// The frozen worker's delivery, returned, is taken again once the
	// frozen worker's lease has expired in the store.
	publish(nil)
	clock.Advance(2 * time.Minute)
	second := reserveOne(t, b, q, "sr-1")
	if second.Deliveries != 2 {
		t.Fatalf("the returned message ran as delivery %d, want 2", second.Deliveries)
	}
	// The frozen worker's retry of delivery 1, published before it froze.
	publish(amqp.Table{"x-conveyor-deliveries": int64(1), "x-conveyor-incarnation": int64(1), "x-conveyor-retried-from": int64(1),
		"x-conveyor-errors": `[{"attempt":1,"error":"frozen worker's failure"}]`})
	// Its Retry, when it wakes, finds the lease gone and publishes nothing.
	ae := job.AttemptError{Attempt: 1, Error: "frozen worker's failure"}
	if err := b.Retry(ctx, backends.RetryParams{Lease: first.Lease, At: time.Now(), Error: &ae}); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("Retry by the superseded delivery = %v, want job.ErrLeaseLost", err)
	}
	testenv.WaitFor(t, 10*time.Second, "the surplus retry dropped", func() bool {
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
		must(t, err)
		if len(recs) > 0 {
			t.Fatalf("the surplus retry ran as delivery %d", recs[0].Deliveries)
		}
		return logs.line("DEBUG", "message dropped", "sr-1", "superseded") != ""
	})
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: second.Lease}))
	rec, err := b.(backends.Inspector).GetJob(ctx, backends.GetJobParams{ID: "sr-1"})
	if err != nil || rec.State != job.Done || rec.Deliveries != 2 || rec.Attempts() != 0 {
		t.Fatalf("job = %+v, %v; want done at delivery 2 with no failed attempt", rec, err)
	}
}

// A bounded job restored from its message keeps the one place in its
// queue's bound that its enqueue took: it is not counted a second time,
// and its finish gives the place back.
func TestRestoredJobKeepsItsPlaceInTheBound(t *testing.T) {
	st := sqliteStore(t)
	b := open(t, amqpbackend.Config{Store: st, RecordWait: 200 * time.Millisecond})
	ctx := context.Background()
	q := fresh("restored-bound")
	enqueue := func(id string) error {
		_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t", MaxDepth: 1}}})
		return err
	}
	must(t, enqueue("rb-1"))
	must(t, st.DeleteKV(ctx, backends.DeleteKVParams{Key: testPrefix + "/amqp/job/rb-1"}))
	r := reserveOne(t, b, q, "rb-1")
	if err := enqueue("rb-2"); !errors.Is(err, job.ErrQueueFull) {
		t.Fatalf("enqueue while the restored job runs = %v, want job.ErrQueueFull", err)
	}
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
	if err := enqueue("rb-3"); err != nil {
		t.Fatalf("enqueue after the restored job finished = %v, want its place free", err)
	}
}

// An enqueue publishes, then records. A process that died in between left
// a message of a new job and no record (published here by hand, with the
// creation time an enqueue gives it): the message waits Config.RecordWait
// for the record, which a live enqueue would write meanwhile, then the
// record is restored from it and the job runs, with a warning.
func TestMessageOfADeadEnqueueWaitsThenRuns(t *testing.T) {
	var logs logBuffer
	const wait = 500 * time.Millisecond
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), Logger: logTo(&logs), RecordWait: wait})
	ctx := context.Background()
	q := fresh("dead-enqueue")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "de-0", Queue: q, Task: "t"}}}) // declares the queue
	must(t, err)
	r := reserveOne(t, b, q, "de-0")
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))

	published := time.Now()
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{
		MessageId: "de-1", Type: "t", Headers: amqp.Table{"x-conveyor-created-at": published.UnixNano()}}))
	r = reserveOne(t, b, q, "de-1")
	if waited := time.Since(published); waited < wait {
		t.Fatalf("the job ran %v after its message was published, before RecordWait (%v) passed", waited, wait)
	}
	if logs.line("WARN", "store record missing", "de-1") == "" {
		t.Fatalf("no warning names the restored job; log:\n%s", logs.buf.String())
	}
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
}

// A unique key whose holder has no record may belong to an enqueue between
// its publish and its record: it is taken over only once it is older than
// Config.RecordWait (then it was left by a dead enqueue or a deleted job).
func TestYoungUniqueKeyWithoutRecordIsNotTakenOver(t *testing.T) {
	st := sqliteStore(t)
	const wait = 500 * time.Millisecond
	b := open(t, amqpbackend.Config{Store: st, RecordWait: wait})
	ctx := context.Background()
	q := fresh("young-unique")
	claimed := time.Now()
	_, err := st.PutKV(ctx, backends.PutKVParams{Key: testPrefix + "/amqp/unique/" + q + "/k",
		Value: []byte("in-flight\x00" + strconv.FormatInt(claimed.UnixNano(), 10))})
	must(t, err)
	enqueue := func(id string) backends.EnqueueResult {
		t.Helper()
		res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t", UniqueKey: "k"}}})
		must(t, err)
		return res[0]
	}
	if res := enqueue("yu-1"); !res.Duplicate || res.ID != "in-flight" {
		if time.Since(claimed) < wait {
			t.Fatalf("enqueue with a young key = %+v, want a duplicate of in-flight", res)
		}
	}
	time.Sleep(wait) // the key's age is what is tested: no signal to wait on
	if res := enqueue("yu-2"); res.Duplicate || res.ID != "yu-2" {
		t.Fatalf("enqueue with a key older than RecordWait = %+v, want it taken over by yu-2", res)
	}
}
