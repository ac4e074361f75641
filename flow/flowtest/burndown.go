package flowtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Overheads are the limits BenchOverhead compares, each set far above
// what a worker reaches, so that only their bookkeeping costs: none, a
// task rate limit, a concurrency limit over 16 keys.
var Overheads = []struct {
	Name string
	Opts queue.TaskOptions
}{
	{"unlimited", queue.TaskOptions{}},
	{"rate", queue.TaskOptions{RateLimit: &flow.RateLimit{Limit: 10_000_000, Per: time.Second}}},
	{"concurrency", queue.TaskOptions{ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 1000}}},
}

// BenchOverhead runs one sub-benchmark per entry of Overheads on the
// backend open gives: b.N no-op jobs enqueued in batches of 500, then
// burned down by a worker of concurrency 50, the burn-down timed.
func BenchOverhead(b *testing.B, open func(b *testing.B) backends.Backend) {
	for i, o := range Overheads {
		b.Run(o.Name, func(b *testing.B) {
			be := open(b)
			q := fmt.Sprintf("flow-bench-%d-%d", i, time.Now().UnixNano())
			opts := o.Opts
			opts.Queue = q
			task := queue.NewTask[struct{}, queue.None]("flow.bench."+o.Name, opts)
			c := queue.NewClient(be, queue.Config{})
			ctx := context.Background()
			for done := 0; done < b.N; {
				n := min(500, b.N-done)
				reqs := make([]queue.Request, n)
				for j := range reqs {
					reqs[j] = task.Request(struct{}{}, &queue.EnqueueOptions{Key: fmt.Sprint(j % 16)})
				}
				if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			var ran atomic.Int64
			all := make(chan struct{})
			w := worker.New(be, worker.Config{Queues: []worker.QueueConfig{{Name: q}}, Concurrency: 50, PollInterval: 10 * time.Millisecond})
			worker.Register(w, task, func(context.Context, struct{}) (queue.None, error) {
				if ran.Add(1) == int64(b.N) {
					close(all)
				}
				return queue.None{}, nil
			})
			b.ResetTimer()
			if err := w.Start(ctx); err != nil {
				b.Fatal(err)
			}
			<-all
			b.StopTimer()
			_ = w.Stop(ctx)
		})
	}
}
