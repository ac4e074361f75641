package worker_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// TenantReport is a job of one tenant of a shared queue.
type TenantReport struct {
	Tenant string `json:"tenant"`
}

var BuildReport = queue.NewTask[TenantReport, queue.None]("reports.build", queue.TaskOptions{Queue: "reports"})

// A fair queue serves its tenants round-robin: tenant A enqueues 1,000
// reports, then tenant B enqueues 3, and B's three start among A's first
// few, not after A's thousand. The tenant is the job's Key.
func ExampleQueueConfig_fair() {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "reports", Fair: true}}})
	var started []string
	worker.Register(w, BuildReport, func(ctx context.Context, r TenantReport) (queue.None, error) {
		started = append(started, r.Tenant)
		return queue.None{}, nil
	})

	ctx := context.Background()
	client := queue.NewClient(b, queue.Config{})
	enqueue := func(tenant string, n int) {
		reqs := make([]queue.Request, n)
		for i := range reqs {
			reqs[i] = BuildReport.Request(TenantReport{Tenant: tenant}, &queue.EnqueueOptions{Key: tenant})
		}
		if _, err := client.EnqueueMany(ctx, reqs...); err != nil {
			panic(err)
		}
	}
	enqueue("A", 1000)
	enqueue("B", 3)

	n, err := w.WorkDue(ctx)
	fmt.Println("ran", n, err)
	fmt.Println("first 8:", strings.Join(started[:8], " "))
	// Output:
	// ran 1003 <nil>
	// first 8: A B A B A B A A
}
