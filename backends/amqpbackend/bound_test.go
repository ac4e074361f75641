package amqpbackend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// fill enqueues one job at a time into the bounded queue until n were
// tried, and returns how many were accepted.
func fill(t *testing.T, b backends.Backend, q, prefix string, n, bound int) int {
	t.Helper()
	ok := 0
	for i := range n {
		_, err := b.Enqueue(context.Background(), backends.EnqueueParams{Jobs: []*backends.JobInsert{{
			ID: fmt.Sprint(prefix, i), Queue: q, Task: "t", MaxDepth: bound}}})
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, job.ErrQueueFull):
			t.Fatalf("Enqueue: %v", err)
		}
	}
	return ok
}

// readyOnceReturned waits until the queue has no consumer, so that every
// delivery was returned to it, and returns how many messages it holds.
func readyOnceReturned(t *testing.T, q string) int {
	t.Helper()
	ready := 0
	testenv.WaitFor(t, 10*time.Second, "the deliveries returned", func() bool {
		st, err := rawChannel(t).QueueDeclarePassive(testPrefix+".q."+q, true, false, false, false, nil)
		must(t, err)
		ready = st.Messages
		return st.Consumers == 0
	})
	return ready
}

// Without a store, the deliveries a Backend holds unacknowledged (running
// or prefetched) count against the bound with the broker's ready
// messages: when the consumer is killed and the broker requeues them, the
// queue holds no more than the bound (one more on a quorum queue, which
// learns it is full asynchronously). Deliveries held by another process
// are not visible over AMQP: the queue then holds up to the bound plus
// that process's prefetch, which the test reports.
func TestBoundCountsDeliveriesInFlight(t *testing.T) {
	for _, kind := range []string{"quorum", "classic"} {
		t.Run(kind, func(t *testing.T) {
			const bound, prefetch = 20, 5
			most := bound
			if kind == "quorum" {
				most++
			}
			cfg := amqpbackend.Config{QueueType: kind, Prefetch: prefetch}
			ctx := context.Background()

			q := fresh("inflight-" + kind)
			b := open(t, cfg)
			accepted := fill(t, b, q, "a-", bound+5, bound)
			running := 0
			testenv.WaitFor(t, 10*time.Second, "two jobs running", func() bool { // and the prefetch full
				recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 2 - running, Lease: time.Minute})
				must(t, err)
				running += len(recs)
				return running == 2
			})
			accepted += fill(t, b, q, "b-", 10, bound)
			must(t, b.Close()) // the consumer dies with its prefetch: the broker requeues it
			total := readyOnceReturned(t, q)
			t.Logf("one process: %d accepted, %d ready once the consumer died (bound %d)", accepted, total, bound)
			if total != accepted || total > most {
				t.Fatalf("%d ready after the consumer died, %d accepted; want at most %d", total, accepted, most)
			}

			q = fresh("inflight-apart-" + kind)
			enq, worker := open(t, cfg), open(t, cfg)
			accepted = fill(t, enq, q, "a-", bound, bound)
			testenv.WaitFor(t, 10*time.Second, "a job running in the other process", func() bool {
				recs, err := worker.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
				must(t, err)
				return len(recs) == 1
			})
			accepted += fill(t, enq, q, "b-", 10, bound)
			must(t, worker.Close())
			total = readyOnceReturned(t, q)
			t.Logf("two processes: %d accepted, %d ready once the worker died (bound %d, its prefetch %d)", accepted, total, bound, prefetch)
			if total > most+prefetch {
				t.Fatalf("%d ready, more than the bound %d plus the dead worker's prefetch %d", total, most, prefetch)
			}
		})
	}
}
