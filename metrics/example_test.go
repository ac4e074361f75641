package metrics_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// One Metrics observes both sides of a process: the client's enqueues and
// the worker's runs. Serve reg at /metrics with promhttp.
func ExampleNew() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	b := membackend.New(membackend.Config{})
	double := queue.NewTask[int, int]("math.double", queue.TaskOptions{})
	w := worker.New(b, worker.Config{Observer: m})
	worker.Register(w, double, func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	c := queue.NewClient(b, queue.Config{Observer: m})
	for n := range 3 {
		_, _ = double.Enqueue(ctx, c, n, nil)
	}
	_, _ = w.WorkDue(ctx)
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := ""
			for _, l := range s.GetLabel() {
				labels += " " + l.GetName() + "=" + l.GetValue()
			}
			fmt.Printf("%s%s %v\n", f.GetName(), labels, s.GetCounter().GetValue())
		}
	}
	// Output:
	// conveyor_jobs_enqueued_total queue=default 3
	// conveyor_jobs_finished_total outcome=succeeded queue=default task=math.double 3
	// conveyor_jobs_started_total queue=default task=math.double 3
}
