package amqpbackend_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

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

// A process that froze mid-claim, past its lease, while the broker gave
// its delivery to another process, and then claimed late over that one's
// lease, leaves the other holding the job's only message. That one's
// outcome is refused (its lease is gone), and its delivery must go back
// to the broker: acked, the job stayed running with nothing left to run
// it (the chaos test saw this as a job stuck running, deliveries 2,
// attempts 0).
func TestLateClaimDoesNotStrandTheJob(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	u, err := url.Parse(testenv.RabbitMQURL(t))
	must(t, err)
	px := faulttest.NewProxy(t, u.Host)
	u.Host = px.Addr()
	gate := &gatedStore{KVStore: st, hit: make(chan struct{}), released: make(chan struct{})}
	// Its clock an hour behind: the lease it claims with has expired by
	// the time its claim lands, as after a freeze longer than the lease.
	behind := &backendtest.Clock{}
	behind.Advance(-time.Hour)
	frozen := open(t, amqpbackend.Config{URL: u.String(), Store: gate, Heartbeat: time.Second, Clock: behind})
	healthy := open(t, amqpbackend.Config{Store: st})
	q := fresh("lateclaim")
	const id = "late-1"
	_, err = healthy.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t"}}})
	must(t, err)

	claimed := make(chan struct{})
	go func() {
		defer close(claimed)
		for {
			recs, err := frozen.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
			if len(recs) > 0 || err != nil {
				return
			}
		}
	}()
	<-gate.hit
	px.Cut() // its connection is gone: the broker requeues the delivery
	first := reserveOne(t, healthy, q, id)
	close(gate.released)
	<-claimed
	got, err := healthy.(backends.Inspector).GetJob(ctx, backends.GetJobParams{ID: id})
	must(t, err)
	if got.State != job.Running || got.Deliveries != 2 {
		t.Fatalf("after the late claim the job is %s with %d deliveries; want running, 2", got.State, got.Deliveries)
	}

	if err := healthy.Complete(ctx, backends.CompleteParams{Lease: first.Lease}); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("Complete under the lease claimed over returned %v; want ErrLeaseLost", err)
	}
	again := reserveOne(t, healthy, q, id)
	must(t, healthy.Complete(ctx, backends.CompleteParams{Lease: again.Lease}))
	if got, err := healthy.(backends.Inspector).GetJob(ctx, backends.GetJobParams{ID: id}); err != nil || got.State != job.Done {
		t.Fatalf("GetJob = %+v, %v; want done", got, err)
	}
}
