package amqpbackend_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// BenchmarkQueueStats times QueueStats on a store holding 20,000 waiting
// jobs (go test -run '^$' -bench QueueStats): what a dashboard scrape
// costs.
func BenchmarkQueueStats(b *testing.B) {
	be := open(b, amqpbackend.Config{Store: sqliteStore(b)})
	ctx := context.Background()
	q := fresh("stats-bench")
	const jobs, batch = 20000, 1000
	for i := 0; i < jobs; i += batch {
		var ins []*backends.JobInsert
		for j := range batch {
			ins = append(ins, &backends.JobInsert{ID: fmt.Sprint("s-", i+j), Queue: q, Task: "t"})
		}
		if _, err := be.Enqueue(ctx, backends.EnqueueParams{Jobs: ins}); err != nil {
			b.Fatal(err)
		}
	}
	in := be.(backends.Inspector)
	b.ResetTimer()
	for range b.N {
		st, err := in.QueueStats(ctx, backends.QueueStatsParams{Queue: q})
		if err != nil || len(st) != 1 || st[0].Depth() != jobs {
			b.Fatalf("QueueStats = %+v, %v", st, err)
		}
	}
}

var allStates = []job.State{job.Pending, job.Scheduled, job.Running, job.Retrying, job.Done, job.Dead, job.Cancelled}

// jobCounts counts queue q's stored jobs by state, from the jobs themselves.
func jobCounts(t *testing.T, in backends.Inspector, q string) map[job.State]int {
	t.Helper()
	out := map[job.State]int{}
	for _, st := range allStates {
		page, err := in.ListJobs(context.Background(), backends.ListJobsParams{Queue: q, State: st, Limit: 1000})
		must(t, err)
		if len(page.Jobs) > 0 {
			out[st] = len(page.Jobs)
		}
	}
	return out
}

// statCounts is QueueStats' counts of queue q (nil if it lists no q).
func statCounts(t *testing.T, in backends.Inspector, q string) map[job.State]int {
	t.Helper()
	st, err := in.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
	must(t, err)
	if len(st) == 0 {
		return nil
	}
	return st[0].Counts
}

// QueueStats counts from the store's counters, which every change keeps:
// after enqueues, reserves, completes, retries, dead letters, cancels, a
// delete, a replay and a restore from a message, the counts are what the
// jobs say, in this process at once and in another within a flush. A
// counter damaged by hand is repaired by the janitor's recount.
func TestCountsMatchTheJobs(t *testing.T) {
	st := sqliteStore(t)
	b := open(t, amqpbackend.Config{Store: st, JanitorEvery: 300 * time.Millisecond})
	other := open(t, amqpbackend.Config{Store: st})
	in := b.(backends.Inspector)
	ctx := context.Background()
	q := fresh("counts")
	var batch []*backends.JobInsert
	for i := range 10 {
		batch = append(batch, &backends.JobInsert{ID: fmt.Sprint("c-", i), Queue: q, Task: "t", MaxDepth: 50})
	}
	batch = append(batch, &backends.JobInsert{ID: "later", Queue: q, Task: "t", RunAt: time.Now().Add(time.Hour)})
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: batch})
	must(t, err)
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{
		MessageId: "foreign", Type: "t"})) // no record: one is restored from the message when it is delivered, and counted
	var recs []*job.Record
	testenv.WaitFor(t, 10*time.Second, "8 jobs reserved", func() bool {
		got, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 8 - len(recs), Lease: time.Minute})
		must(t, err)
		recs = append(recs, got...)
		return len(recs) == 8
	})
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: recs[0].Lease}))
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: recs[1].Lease}))
	must(t, b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[2].Lease, Error: job.AttemptError{Error: "x"}}))
	must(t, b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[3].Lease, Error: job.AttemptError{Error: "y"}}))
	e := job.AttemptError{Attempt: 1, Error: "again"}
	must(t, b.Retry(ctx, backends.RetryParams{Lease: recs[4].Lease, At: time.Now().Add(time.Hour), Error: &e}))
	lease := recs[5].Lease
	_, err = b.Cancel(ctx, backends.CancelParams{JobID: recs[5].ID, Lease: &lease})
	must(t, err)
	_, err = b.Cancel(ctx, backends.CancelParams{JobID: "later"})
	must(t, err)
	admin := b.(backends.Admin)
	if n, err := admin.ReplayJobs(ctx, backends.ReplayJobsParams{IDs: []string{recs[2].ID}}); err != nil || n != 1 {
		t.Fatalf("ReplayJobs = %d, %v", n, err)
	}
	if n, err := admin.DeleteJobs(ctx, backends.DeleteJobsParams{IDs: []string{recs[1].ID}}); err != nil || n != 1 {
		t.Fatalf("DeleteJobs = %d, %v", n, err)
	}

	want := jobCounts(t, in, q)
	t.Logf("the jobs: %v", want)
	if got := statCounts(t, in, q); !maps.Equal(got, want) {
		t.Fatalf("QueueStats counts %v, the jobs %v", got, want)
	}
	testenv.WaitFor(t, 10*time.Second, "the other process to see the counts", func() bool {
		return maps.Equal(statCounts(t, other.(backends.Inspector), q), want)
	})

	// Damage a counter as a process that died before its flush would.
	key := testPrefix + "/amqp/count/" + q
	kv, err := st.GetKV(ctx, backends.GetKVParams{Key: key})
	must(t, err)
	_, err = st.PutKV(ctx, backends.PutKVParams{Key: key, Value: []byte(`{"running":{"0":99}}`), IfVersion: kv.Version})
	must(t, err)
	if got := statCounts(t, in, q); got[job.Running] != 99 {
		t.Fatalf("running after the damage = %d, want 99 (the counters are what QueueStats reads)", got[job.Running])
	}
	testenv.WaitFor(t, 10*time.Second, "the recount to repair the counts", func() bool {
		return maps.Equal(statCounts(t, in, q), want)
	})
}

// A depth slot leaked by a process that died between finishing a job and
// giving its slot back would keep a bounded queue short of its bound for
// good; the recount sets the counter to what the jobs say.
func TestRecountRepairsALeakedDepthSlot(t *testing.T) {
	st := sqliteStore(t)
	b := open(t, amqpbackend.Config{Store: st, JanitorEvery: 300 * time.Millisecond})
	ctx := context.Background()
	q := fresh("depth-leak")
	bounded := func(id string) *backends.JobInsert {
		return &backends.JobInsert{ID: id, Queue: q, Task: "t", MaxDepth: 2}
	}
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{bounded("d-1")}})
	must(t, err)
	key := testPrefix + "/amqp/depth/" + q
	kv, err := st.GetKV(ctx, backends.GetKVParams{Key: key})
	must(t, err)
	_, err = st.PutKV(ctx, backends.PutKVParams{Key: key, Value: []byte("2"), IfVersion: kv.Version}) // one slot leaked
	must(t, err)
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{bounded("d-2")}}); !errors.Is(err, job.ErrQueueFull) {
		t.Fatalf("enqueue with the slot leaked = %v, want ErrQueueFull (the damage took)", err)
	}
	testenv.WaitFor(t, 10*time.Second, "the recount to give the leaked slot back", func() bool {
		_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{bounded("d-2")}})
		return err == nil
	})
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{bounded("d-3")}}); !errors.Is(err, job.ErrQueueFull) {
		t.Fatalf("a third job in a queue bounded to 2 = %v, want ErrQueueFull", err)
	}
}

// A finished job's count goes when its record does, at its retention.
func TestCountsForgetExpiredJobs(t *testing.T) {
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), KeepDone: 300 * time.Millisecond})
	in := b.(backends.Inspector)
	ctx := context.Background()
	q := fresh("counts-expire")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "e-1", Queue: q, Task: "t"}}})
	must(t, err)
	r := reserveOne(t, b, q, "e-1")
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
	testenv.WaitFor(t, 10*time.Second, "the done job forgotten", func() bool {
		_, err := in.GetJob(ctx, backends.GetJobParams{ID: "e-1"})
		return errors.Is(err, job.ErrNotFound)
	})
	testenv.WaitFor(t, 10*time.Second, "its count gone", func() bool { return statCounts(t, in, q)[job.Done] == 0 })
}
