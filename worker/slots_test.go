package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/flow/flowtest"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// noSlotRules is a memory backend whose reserve cannot hold concurrency
// rules, as Redis Cluster's cannot.
type noSlotRules struct{ *membackend.Backend }

func (noSlotRules) ReserveSlots(context.Context, backends.ReserveSlotsParams) (backends.ReserveSlotsResult, error) {
	return backends.ReserveSlotsResult{}, fmt.Errorf("not here: %w", job.ErrUnsupported)
}

// A concurrency limit per job key on a backends.SlotReserver is held by
// the reserve: two workers (on one memory backend, on two handles of one
// SQLite file) each with room for 8 jobs never run more than 2 jobs of a
// key at once, every job runs once without an attempt used, and the jobs
// over the limit are postponed inside the reserve, never delivered (no
// Postponed outcome), yet counted as held back; so too when one worker
// serves the queue fairly and the other plainly. On a backend whose
// reserve cannot hold the rule the worker holds the same limit with the
// limiter's slots: then the jobs over it are delivered and postponed.
func TestConcurrencyLimitHeldByTheReserve(t *testing.T) {
	mem := membackend.New(membackend.Config{})
	noRules := noSlotRules{membackend.New(membackend.Config{})}
	sqlite := openSQLite(t, filepath.Join(t.TempDir(), "conc.db"), 2)
	for _, tc := range []struct {
		name      string
		bs        [2]backends.Backend // the two workers'
		inReserve bool
		fair      bool // the first worker serves the queue fairly, the second plainly: one count still
	}{
		{"memory", [2]backends.Backend{mem, mem}, true, false},
		{"sqlite", [2]backends.Backend{sqlite[0], sqlite[1]}, true, false},
		{"memory fair and plain", [2]backends.Backend{mem, mem}, true, true},
		{"sqlite fair and plain", [2]backends.Backend{sqlite[0], sqlite[1]}, true, true},
		{"limiter", [2]backends.Backend{noRules, noRules}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := queue.NewTask[Args, queue.None]("flow.slots", queue.TaskOptions{
				Queue: "slots", ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 2, Backoff: 5 * time.Millisecond},
			})
			var ledger flowtest.Ledger
			postponed := &outcomeCount{want: worker.Postponed}
			var ws []*worker.Worker
			for i, b := range tc.bs {
				w := worker.New(b, worker.Config{ID: fmt.Sprintf("w%d", i), Queues: []worker.QueueConfig{{Name: "slots", Fair: tc.fair && i == 0}},
					Concurrency: 8, PollInterval: 20 * time.Millisecond, Observer: postponed})
				worker.Register(w, task, func(ctx context.Context, _ Args) (queue.None, error) {
					j, _ := worker.JobFromContext(ctx)
					defer ledger.Enter(flow.ByJobKey(j))()
					time.Sleep(20 * time.Millisecond) // long enough for others to try to overlap
					return queue.None{}, nil
				})
				startWorker(t, w)
				ws = append(ws, w)
			}
			runKeyed(t, tc.bs[0], task, 30, 3)
			ledger.AtMost(t, 2)
			var heldBack int64
			for _, w := range ws {
				// Stopped, every delivery has given its slot back: a job is
				// done in the backend before its worker reports the slot free.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := w.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
				for _, st := range w.LimitStates() {
					if st.Kind == flow.KindConcurrency && st.Name == "flow.slots" {
						heldBack += st.HeldBackTotal
						if st.InUse != 0 {
							t.Errorf("worker reports %d slots in use after every job finished", st.InUse)
						}
					}
				}
			}
			if heldBack == 0 {
				t.Fatal("no job was held back: the limit was never reached")
			}
			switch n := postponed.n.Load(); {
			case tc.inReserve && n != 0:
				t.Fatalf("%d deliveries were postponed by admission: the reserve did not hold the limit", n)
			case !tc.inReserve && n == 0:
				t.Fatal("no delivery was postponed: the limiter did not hold the limit")
			}
			t.Logf("most running at once per key: %v; %d held back, %d deliveries postponed", ledger.Most(), heldBack, postponed.n.Load())
		})
	}
}
