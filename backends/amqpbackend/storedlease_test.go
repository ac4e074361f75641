package amqpbackend_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// gatedStore holds the first read of a job's record until released: the
// process reading it froze in the middle of a claim.
type gatedStore struct {
	backends.KVStore
	once          sync.Once
	hit, released chan struct{}
}

func (g *gatedStore) GetKV(ctx context.Context, p backends.GetKVParams) (backends.KV, error) {
	if strings.Contains(p.Key, "/job/") {
		g.once.Do(func() { close(g.hit); <-g.released })
	}
	return g.KVStore.GetKV(ctx, p)
}

// A process that froze mid-claim while the broker gave its delivery to
// another process claims late, over the other's live lease: the claim is
// refused (the job is held), and the other's outcome is recorded. Taken
// over, that outcome was refused and the job's only message acked, which
// left the job running with nothing to run it (the chaos test saw this as
// a job stuck running, deliveries 2, attempts 0).
func TestLateClaimDoesNotStrandTheJob(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	u, err := url.Parse(testenv.RabbitMQURL(t))
	must(t, err)
	px := faulttest.NewProxy(t, u.Host)
	u.Host = px.Addr()
	gate := &gatedStore{KVStore: st, hit: make(chan struct{}), released: make(chan struct{})}
	frozen := open(t, amqpbackend.Config{URL: u.String(), Store: gate, Heartbeat: time.Second})
	healthy := open(t, amqpbackend.Config{Store: st})
	q := fresh("lateclaim")
	const id = "late-1"
	_, err = healthy.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t"}}})
	must(t, err)

	claimed := make(chan []*job.Record, 1)
	go func() { // until the Reserve that took the delivery returns
		for {
			recs, err := frozen.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
			select {
			case <-gate.hit:
				claimed <- recs
				return
			default:
				if err != nil {
					t.Error(err)
					close(claimed)
					return
				}
			}
		}
	}()
	<-gate.hit
	px.Cut() // its connection is gone: the broker requeues the delivery
	first := reserveOne(t, healthy, q, id)
	close(gate.released)
	if recs := <-claimed; len(recs) != 0 {
		t.Fatalf("the late claim took the job, delivery %d, over a live lease", recs[0].Deliveries)
	}
	must(t, healthy.Complete(ctx, backends.CompleteParams{Lease: first.Lease}))
	if got, err := healthy.(backends.Inspector).GetJob(ctx, backends.GetJobParams{ID: id}); err != nil || got.State != job.Done || got.Deliveries != 1 {
		t.Fatalf("GetJob = %+v, %v; want done at delivery 1", got, err)
	}
}

// A copy of a running job's message (the broker requeued the holder's
// delivery when its session was lost, or a frozen process's delivery went
// back) waits while the holder's lease lasts, and is dropped once the
// holder finished the job: one run, not two at once.
func TestCopyOfAHeldJobWaitsForTheHolder(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	var logs logBuffer
	b := open(t, amqpbackend.Config{Store: st, Logger: logTo(&logs)})
	q := fresh("held")
	const id = "held-1"
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t"}}})
	must(t, err)
	first := reserveOne(t, b, q, id)
	// The copy, as the broker would requeue it.
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{MessageId: id, Type: "t"}))
	copyWaits(t, b, &logs, q, id, "held back", "while the holder's lease lasts")
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: first.Lease}))
	copyWaits(t, b, &logs, q, id, "message dropped", "after the holder finished")
}

// Extend extends the lease in the store, which is what a copy of the
// message goes by: a job whose first lease has passed but was extended is
// still held.
func TestExtendedLeaseHoldsInTheStore(t *testing.T) {
	ctx := context.Background()
	clock := &backendtest.Clock{}
	var logs logBuffer
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), Clock: clock, Logger: logTo(&logs)})
	q := fresh("extended")
	const id = "ext-1"
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t"}}})
	must(t, err)
	first := reserveOne(t, b, q, id) // a minute's lease
	res, err := b.Extend(ctx, backends.ExtendParams{Leases: []job.Lease{first.Lease}, Lease: time.Hour})
	must(t, err)
	if len(res) != 1 || res[0].Lost {
		t.Fatalf("Extend = %+v; want the lease extended", res)
	}
	clock.Advance(2 * time.Minute) // past the first lease, within the extended one
	rec, err := b.(backends.Inspector).GetJob(ctx, backends.GetJobParams{ID: id})
	must(t, err)
	if !rec.Lease.ExpiresAt.Equal(res[0].ExpiresAt) {
		t.Fatalf("the stored lease expires at %v; want %v, as extended", rec.Lease.ExpiresAt, res[0].ExpiresAt)
	}
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".work", q, false, false, amqp.Publishing{MessageId: id, Type: "t"}))
	copyWaits(t, b, &logs, q, id, "held back", "within the extended lease")
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: first.Lease}))
}

// copyWaits reserves from q until b logs (at Debug) that it settled the
// copy of job id's message as logged says ("held back", "message
// dropped"); the copy running meanwhile fails the test, as when says.
func copyWaits(t *testing.T, b backends.Backend, logs *logBuffer, q, id, logged, when string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "the copy "+logged, func() bool {
		recs, err := b.Reserve(context.Background(), backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
		must(t, err)
		if len(recs) > 0 {
			t.Fatalf("the copy ran as delivery %d %s", recs[0].Deliveries, when)
		}
		return logs.line("DEBUG", logged, id) != ""
	})
}
