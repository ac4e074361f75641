package worker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// onlyCore is the memory backend seen through backends.Backend alone: a
// backend without FairReserver, as AMQP is.
type onlyCore struct{ backends.Backend }

// A fair queue on a backend that cannot serve it fairly is refused at
// Start and at Reconfigure, with job.ErrUnsupported: never served unfairly.
func TestFairRefusedWithoutCapability(t *testing.T) {
	ctx := context.Background()
	b := onlyCore{membackend.New(membackend.Config{})}
	fair := []worker.QueueConfig{{Name: "reports", Fair: true}}

	w := worker.New(b, worker.Config{Queues: fair})
	worker.Register(w, BuildReport, func(context.Context, TenantReport) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("Start with a fair queue on %T: %v, want job.ErrUnsupported", b, err)
	}

	w = worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "reports"}}})
	worker.Register(w, BuildReport, func(context.Context, TenantReport) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	if err := w.Reconfigure(worker.LiveConfig{Queues: fair}); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("Reconfigure to a fair queue on %T: %v, want job.ErrUnsupported", b, err)
	}
	c := queue.NewClient(b, queue.Config{})
	if _, err := BuildReport.Enqueue(ctx, c, TenantReport{Tenant: "A"}, nil); err != nil {
		t.Fatal(err)
	}
	inline := worker.New(b, worker.Config{Queues: fair})
	worker.Register(inline, BuildReport, func(context.Context, TenantReport) (queue.None, error) { return queue.None{}, nil })
	if _, err := inline.WorkDue(ctx); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("WorkDue of a fair queue on %T: %v, want job.ErrUnsupported", b, err)
	}
}
